/*
 * The program a remote step's action runs (see mod.rs): REAPI gives an
 * action one argv, a step may have several commands, and the engine must
 * know which one failed and how. Placed in the input root as
 * /.bootstrap-run, it removes itself (so the step never sees it) and runs
 * each command in order in WORKDIR with the environment it was given (the
 * action's). It exits 0 when every command did; otherwise its last line
 * on stderr (the step's log) says which command ended how,
 *
 *   bootstrap runner: exit I CODE     command I (from 0) exited with CODE
 *   bootstrap runner: signal I SIG    command I was killed by SIG
 *
 * and it exits with CODE (or 128 + SIG), so a server that does not cache
 * failures does not cache a failed step.
 *
 * Arguments: WORKDIR, a count of commands, and for each its argc and
 * arguments. Freestanding (no libc: a scratch root has none), x86_64 Linux
 * system calls only.
 */

typedef unsigned long size_t;

enum {
    SYS_read = 0, SYS_write = 1, SYS_open = 2, SYS_close = 3, SYS_fork = 57,
    SYS_execve = 59, SYS_exit = 60, SYS_wait4 = 61, SYS_chdir = 80,
    SYS_unlink = 87,
};

static long sys3(long n, long a, long b, long c) {
    long r;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
    return r;
}

static long sys4(long n, long a, long b, long c, long d) {
    long r;
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10) : "rcx", "r11", "memory");
    return r;
}

void *memset(void *d, int c, size_t n) {
    unsigned char *p = d;
    while (n--) *p++ = (unsigned char)c;
    return d;
}

void *memcpy(void *d, const void *s, size_t n) {
    unsigned char *p = d;
    const unsigned char *q = s;
    while (n--) *p++ = *q++;
    return d;
}

static size_t len(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

static void put(int fd, const char *s) { sys3(SYS_write, fd, (long)s, (long)len(s)); }

static char *add(char *at, const char *s) {
    size_t n = len(s);
    memcpy(at, s, n);
    return at + n;
}

static char *add_num(char *at, long v) {
    char buf[24];
    int i = 23;
    buf[i] = 0;
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return add(at, buf + i);
}

static __attribute__((noreturn)) void quit(int code) {
    for (;;) sys3(SYS_exit, code, 0, 0);
}

static long num(const char *s) {
    long v = 0;
    while (*s >= '0' && *s <= '9') v = v * 10 + (*s++ - '0');
    return v;
}

/* Runs argv with env, looking argv[0] up in env's PATH when it has no
 * slash, as the other backends do. Only returns on failure. */
static void run(char **argv, char **env) {
    const char *name = argv[0];
    int slash = 0;
    for (const char *p = name; *p; p++) slash |= *p == '/';
    if (slash) {
        sys3(SYS_execve, (long)name, (long)argv, (long)env);
        return;
    }
    const char *path = "/usr/bin:/bin";
    for (char **e = env; *e; e++) {
        const char *v = *e;
        if (v[0] == 'P' && v[1] == 'A' && v[2] == 'T' && v[3] == 'H' && v[4] == '=') path = v + 5;
    }
    char full[4096];
    size_t nlen = len(name);
    while (*path) {
        size_t i = 0;
        while (path[i] && path[i] != ':') i++;
        if (i + 1 + nlen + 1 <= sizeof full) {
            memcpy(full, path, i);
            size_t at = i;
            if (at == 0) full[at++] = '.';
            full[at++] = '/';
            memcpy(full + at, name, nlen + 1);
            sys3(SYS_execve, (long)full, (long)argv, (long)env);
        }
        path += i;
        if (*path == ':') path++;
    }
}

/* Says how command C ended and exits as it did. */
static __attribute__((noreturn)) void ended(const char *how, long c, long value, int code) {
    static char line[80];
    char *at = add(line, "bootstrap runner: ");
    at = add(at, how);
    at = add(at, " ");
    at = add_num(at, c);
    at = add(at, " ");
    at = add_num(at, value);
    add(at, "\n");
    put(2, line);
    quit(code);
}

void start(long *sp) {
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    char **env = argv + argc + 1;
    if (argc < 3) {
        put(2, "bootstrap runner: usage: WORKDIR NCMD (ARGC ARGS...)...\n");
        quit(124);
    }
    sys3(SYS_unlink, (long)"/.bootstrap-run", 0, 0);
    long i = 1;
    const char *workdir = argv[i++];
    long ncmd = num(argv[i++]);
    for (long c = 0; c < ncmd; c++) {
        long n = num(argv[i]);
        char **cargv = argv + i + 1;
        char *next = cargv[n];
        cargv[n] = 0;
        long pid = sys3(SYS_fork, 0, 0, 0);
        if (pid == 0) {
            if (sys3(SYS_chdir, (long)workdir, 0, 0) < 0) {
                put(2, "bootstrap sandbox: cannot enter the workdir ");
                put(2, workdir);
                put(2, "\n");
                quit(127);
            }
            run(cargv, env);
            put(2, "bootstrap sandbox: cannot run \"");
            put(2, cargv[0]);
            put(2, "\"\n");
            quit(127);
        }
        if (pid < 0) {
            put(2, "bootstrap runner: fork failed\n");
            quit(121);
        }
        int status = 0;
        for (;;) {
            long r = sys4(SYS_wait4, pid, (long)&status, 0, 0);
            if (r == pid) break;
            if (r < 0 && r != -4 /* EINTR */) quit(122);
        }
        cargv[n] = next;
        i += 1 + n;
        if ((status & 0x7f) == 0) {
            int code = (status >> 8) & 0xff;
            if (code != 0) ended("exit", c, code, code);
        } else {
            ended("signal", c, status & 0x7f, 128 + (status & 0x7f));
        }
    }
    quit(0);
}

__asm__(".globl _start\n"
        "_start:\n"
        "  xor %rbp, %rbp\n"
        "  mov %rsp, %rdi\n"
        "  and $-16, %rsp\n"
        "  call start\n"
        "  hlt\n");
