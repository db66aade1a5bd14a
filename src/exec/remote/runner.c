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

#include "../freestanding.h"

static char *add(char *at, const char *s) {
    size_t n = len(s);
    memcpy(at, s, n);
    return at + n;
}

static char *add_num(char *at, long v) {
    char buf[24];
    return add(at, num_text(buf, v));
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
        int status = run_command(cargv, env, workdir, 0, 0);
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
