/*
 * What the engine's freestanding programs share (oci/init.c, the OCI
 * backend's container init; remote/runner.c, the remote backend's step
 * runner): x86_64 Linux system calls without libc, the few string helpers
 * they need, running an argv the way every backend does, and the entry
 * point, which calls the program's own `start(sp)`.
 */

typedef unsigned long size_t;

/* The system call numbers both use; each program adds its own. */
enum {
    SYS_read = 0, SYS_write = 1, SYS_open = 2, SYS_close = 3, SYS_fork = 57,
    SYS_execve = 59, SYS_exit = 60, SYS_wait4 = 61, SYS_chdir = 80,
    SYS_unlink = 87, SYS_dup2 = 33,
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

/* The compiler may emit calls to these for copies and clears. */
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

static __attribute__((noreturn)) void quit(int code) {
    for (;;) sys3(SYS_exit, code, 0, 0);
}

static long num(const char *s) {
    long v = 0;
    while (*s >= '0' && *s <= '9') v = v * 10 + (*s++ - '0');
    return v;
}

/* Runs argv with env; PATH from env when argv[0] has no slash, as the
 * local backend does. Only returns on failure. */
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

/* v in decimal, written at the end of buf (24 bytes): where it starts. */
static char *num_text(char *buf, long v) {
    int i = 23;
    buf[i] = 0;
    if (v < 0) v = -v;
    do {
        buf[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return buf + i;
}

/* Runs argv in workdir with env, as every backend runs a step's command
 * (stdout onto stderr too when merge_stdout), and waits for it: its wait
 * status. With reap_all it waits for any child until this one ends, so
 * that pid 1 also reaps the step's orphans. */
static int run_command(char **argv, char **env, const char *workdir, int merge_stdout, int reap_all) {
    long pid = sys3(SYS_fork, 0, 0, 0);
    if (pid == 0) {
        if (merge_stdout) sys3(SYS_dup2, 2, 1, 0);
        if (sys3(SYS_chdir, (long)workdir, 0, 0) < 0) {
            put(2, "bootstrap sandbox: cannot enter the workdir ");
            put(2, workdir);
            put(2, "\n");
            quit(127);
        }
        run(argv, env);
        put(2, "bootstrap sandbox: cannot run \"");
        put(2, argv[0]);
        put(2, "\"\n");
        quit(127);
    }
    if (pid < 0) {
        put(2, "bootstrap sandbox: fork failed\n");
        quit(121);
    }
    int status = 0;
    for (;;) {
        long r = sys4(SYS_wait4, reap_all ? -1 : pid, (long)&status, 0, 0);
        if (r == pid) break;
        if (r < 0 && r != -4 /* EINTR */) quit(122);
    }
    return status;
}

void start(long *sp);

__asm__(".globl _start\n"
        "_start:\n"
        "  xor %rbp, %rbp\n"
        "  mov %rsp, %rdi\n"
        "  and $-16, %rsp\n"
        "  call start\n"
        "  hlt\n");
