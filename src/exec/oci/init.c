/*
 * pid 1 of a step container on the OCI backend (see mod.rs).
 *
 * The engine (Docker or Podman) gives every process it starts variables of
 * its own (HOSTNAME), a /.dockerenv file and the host's /etc/resolv.conf,
 * and runs one command per container. This program, uploaded as
 * /.bootstrap-init and started as the container's only command, removes
 * what it can of that, runs the step's commands in order with exactly the
 * step's environment, and reports on stdout, one line:
 *
 *   ok                       every command exited 0; every output exists
 *   exit I CODE              command I (from 0) exited with CODE
 *   signal I SIG             command I was killed by SIG
 *   bad O missing            output O (from 0) does not exist
 *   bad O link K | notdir K  its first K path components end in a symlink
 *                            or a non-directory on the way to it
 *   refused cgroupns         the step would share a cgroup namespace with
 *                            the engine (nothing of the step ran)
 *   refused caps             a capability only the init may hold could not
 *                            be dropped (nothing of the step ran)
 *
 * A step gets a cgroup namespace of its own. Docker makes one when asked;
 * Podman's Docker API (4.x) ignores the request on cgroup v1 hosts, so
 * there the backend grants CAP_SYS_ADMIN and CAP_SETPCAP, this program
 * makes the namespace itself, then drops both from every capability set,
 * the bounding set included, before anything of the step runs.
 *
 * The commands' stdout and stderr both go to the container's stderr (the
 * step's log), so nothing they write can be taken for the report.
 *
 * Arguments: WORKDIR, then a count and that many KEY=VALUE environment
 * entries, a count and that many output paths (absolute, normalised), a
 * count of commands and for each its argc and arguments.
 *
 * Freestanding (no libc: it must run on any seed, and on a scratch root
 * where there is none), x86_64 Linux system calls only.
 */

#include "../freestanding.h"

enum {
    SYS_lstat = 6, SYS_mkdir = 83, SYS_chmod = 90,
    SYS_umask = 95, SYS_getpid = 39, SYS_capget = 125, SYS_capset = 126,
    SYS_prctl = 157, SYS_unshare = 272,
};

#define CLONE_NEWCGROUP 0x02000000
#define PR_CAPBSET_READ 23
#define PR_CAPBSET_DROP 24
#define CAP_SETPCAP 8
#define CAP_SYS_ADMIN 21

static void put_num(int fd, long v) {
    char buf[24];
    put(fd, num_text(buf, v));
}

/* struct stat on x86_64: st_mode is the 32-bit field at offset 24. */
static int lstat_mode(const char *path, unsigned *mode) {
    unsigned long st[18];
    if (sys3(SYS_lstat, (long)path, (long)st, 0) < 0) return -1;
    *mode = *(unsigned *)((char *)st + 24);
    return 0;
}

#define S_IFMT 0170000
#define S_IFDIR 0040000
#define S_IFLNK 0120000

/* Checks one output path; 0 when it exists and nothing on the way to it
 * is a symlink or a non-directory. */
static int check_output(const char *out, int index) {
    char buf[4096];
    size_t n = len(out);
    if (n >= sizeof buf) n = sizeof buf - 1;
    memcpy(buf, out, n);
    buf[n] = 0;
    int component = 0;
    for (size_t i = 1; i <= n; i++) {
        if (i < n && buf[i] != '/') continue;
        char saved = buf[i];
        buf[i] = 0;
        component++;
        unsigned mode;
        int last = i == n;
        if (lstat_mode(buf, &mode) < 0) {
            put(1, "bad ");
            put_num(1, index);
            put(1, " missing\n");
            return -1;
        }
        if (!last && (mode & S_IFMT) != S_IFDIR) {
            put(1, "bad ");
            put_num(1, index);
            put(1, (mode & S_IFMT) == S_IFLNK ? " link " : " notdir ");
            put_num(1, component);
            put(1, "\n");
            return -1;
        }
        buf[i] = saved;
    }
    return 0;
}

/* 1 when every line of /proc/self/cgroup ("ID:CONTROLLERS:PATH") has the
 * path "/": this process is at the root of a cgroup namespace, which a
 * container's process only is in a namespace of its own. */
static int at_cgroup_root(void) {
    static char buf[16384];
    long fd = sys3(SYS_open, (long)"/proc/self/cgroup", 0, 0);
    if (fd < 0) return 0;
    long n = 0, r;
    while (n < (long)sizeof buf - 1 && (r = sys3(SYS_read, fd, (long)(buf + n), (long)(sizeof buf - 1 - n))) > 0) n += r;
    sys3(SYS_close, fd, 0, 0);
    if (n <= 0 || n >= (long)sizeof buf - 1) return 0;
    buf[n] = 0;
    const char *p = buf;
    while (*p) {
        int colons = 0;
        while (*p && *p != '\n' && colons < 2) colons += *p++ == ':';
        if (colons < 2 || p[0] != '/' || (p[1] != '\n' && p[1] != 0)) return 0;
        while (*p && *p != '\n') p++;
        if (*p) p++;
    }
    return 1;
}

/* Makes the cgroup namespace this process's own where it is not, then
 * leaves no set holding CAP_SYS_ADMIN or CAP_SETPCAP. 0, or what it could
 * not do ("cgroupns", "caps"). */
static const char *own_cgroup_namespace(void) {
    if (!at_cgroup_root()) {
        sys3(SYS_unshare, CLONE_NEWCGROUP, 0, 0);
        if (!at_cgroup_root()) return "cgroupns";
    }
    /* CAP_SETPCAP last: dropping from the bounding set needs it. */
    sys3(SYS_prctl, PR_CAPBSET_DROP, CAP_SYS_ADMIN, 0);
    sys3(SYS_prctl, PR_CAPBSET_DROP, CAP_SETPCAP, 0);
    struct { unsigned version; int pid; } head = { 0x20080522, 0 };
    struct { unsigned effective, permitted, inheritable; } data[2];
    if (sys3(SYS_capget, (long)&head, (long)data, 0) < 0) return "caps";
    unsigned mask = ~((1u << CAP_SYS_ADMIN) | (1u << CAP_SETPCAP));
    data[0].effective &= mask;
    data[0].permitted &= mask;
    data[0].inheritable &= mask;
    if (sys3(SYS_capset, (long)&head, (long)data, 0) < 0) return "caps";
    if (sys3(SYS_prctl, PR_CAPBSET_READ, CAP_SYS_ADMIN, 0) != 0 || sys3(SYS_prctl, PR_CAPBSET_READ, CAP_SETPCAP, 0) != 0) return "caps";
    return 0;
}

void start(long *sp) {
    long argc = sp[0];
    char **argv = (char **)(sp + 1);
    /* It changes files at the root: only ever as a container's pid 1,
     * never on a host where someone ran it by hand. */
    if (argc < 2 || sys3(SYS_getpid, 0, 0, 0) != 1) {
        put(2, "bootstrap's container init: runs only as pid 1 of a step container\n");
        quit(120);
    }
    const char *refused = own_cgroup_namespace();
    if (refused) {
        put(1, "refused ");
        put(1, refused);
        put(1, "\n");
        quit(0);
    }
    sys3(SYS_unlink, (long)"/.bootstrap-init", 0, 0);
    sys3(SYS_unlink, (long)"/.dockerenv", 0, 0);
    /* The host's resolver settings: nothing of the host in the step. */
    long fd = sys3(SYS_open, (long)"/etc/resolv.conf", 01 | 01000 /* O_WRONLY|O_TRUNC */, 0);
    if (fd >= 0) sys3(SYS_close, fd, 0, 0);
    sys3(SYS_umask, 0, 0, 0);
    if (sys3(SYS_mkdir, (long)"/tmp", 01777, 0) == 0) sys3(SYS_chmod, (long)"/tmp", 01777, 0);
    sys3(SYS_umask, 022, 0, 0);

    long i = 1;
    const char *workdir = argv[i++];
    long nenv = num(argv[i++]);
    char **env = argv + i;
    i += nenv;
    /* The environment ends where the output count begins: make it a
     * NULL-terminated array by moving the count out of the way. */
    long nout = num(argv[i]);
    argv[i++] = 0;
    char **outs = argv + i;
    i += nout;
    long ncmd = num(argv[i++]);
    for (long c = 0; c < ncmd; c++) {
        long n = num(argv[i]);
        char **cargv = argv + i + 1;
        /* Terminate this argv at the next command's count (restored below). */
        char *next = cargv[n];
        cargv[n] = 0;
        /* stdout onto the log; pid 1 also reaps the orphans of the step. */
        int status = run_command(cargv, env, workdir, 1, 1);
        cargv[n] = next;
        i += 1 + n;
        if ((status & 0x7f) == 0) {
            int code = (status >> 8) & 0xff;
            if (code != 0) {
                put(1, "exit ");
                put_num(1, c);
                put(1, " ");
                put_num(1, code);
                put(1, "\n");
                quit(0);
            }
        } else {
            put(1, "signal ");
            put_num(1, c);
            put(1, " ");
            put_num(1, status & 0x7f);
            put(1, "\n");
            quit(0);
        }
    }
    for (long o = 0; o < nout; o++) {
        if (check_output(outs[o], (int)o) < 0) quit(0);
    }
    put(1, "ok\n");
    quit(0);
}
