#!/usr/bin/env bash
# Benchmark the real stage1 (mes 0.27 and tcc, i386): `bootstrap verify
# stage1` on both test seeds from a fresh state directory (which verifies
# stage0, then stage1), against the same work done by hand, two lineages at
# once as bootstrap runs two seeds: stage0 by upstream's kaem.amd64 (its
# three commands), then every stage1 step's kaem script, as `bootstrap
# --json audit stage1` gives it (workdir, env, script), run by stage0's kaem
# under bwrap in a root made the way bootstrap makes one (the step's sources
# fresh, the outputs of its needs copied over). Target from the stage1
# issue: bootstrap at most 1.2x.
#
#   bench/stage1.sh        # one run of each (each is about 15-20 minutes)
#
# What differs, on purpose or by necessity:
# - bootstrap runs stage0 as 18 steps (phases 0-11 twice, as a
#   cross-check) where the baseline runs kaem.amd64 once.
# - bootstrap's fresh state means copying the distfiles into the store,
#   unpacking and hashing them, hashing both seeds, and hashing, storing and
#   fsyncing every step's output; the baseline only unpacks and copies.
#
# Needs root (namespaces), the kernel's IA32 emulation (stage1 programs are
# i386), cargo, ../shared/distfiles (or DISTFILES=DIR); installs bubblewrap
# and jq when missing; builds the test seeds. Prints a Markdown table for
# BENCHMARKS.md. A measurement, not a gate.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DISTFILES=${DISTFILES:-$ROOT/../shared/distfiles}
CHAIN=${CHAIN:-$ROOT}
. "$ROOT/bench/lib.sh"

for f in stage0-posix-1.9.1.from-git.tar.gz mes-0.27.tar.gz nyacc-1.00.2-lb1.from-git.tar.gz \
    tcc-0.9.26-1147-gee75a10c.tar.gz tcc-0.9.27.tar.bz2 live-bootstrap-984b8322.from-git.tar.gz; do
    [ -f "$DISTFILES/$f" ] || { echo "no $DISTFILES/$f: set DISTFILES" >&2; exit 1; }
done
need bwrap:bubblewrap jq:jq
setup stage1
SEEDS="--seed alpine=$ROOT/target/test-seeds/busybox --seed debian=$ROOT/target/test-seeds/debian"
B="$BIN -q -C $CHAIN --state $TMP/state --distfiles $DISTFILES --offline $SEEDS"

# The stage1 steps in chain order, as the audit gives them.
$BIN -q -C "$CHAIN" --state "$TMP/audit-state" --json audit stage1 \
    | jq '[.stages[] | select(.stage == "stage1") | .steps[]
           | { step, workdir, env, sources: [.sources[].name], needs: [.needs[].step],
               outputs: [.outputs[].path], interpreter: .interpreted.interpreter, text: .interpreted.script }]' \
    > "$TMP/steps.json"
[ "$(jq length "$TMP/steps.json")" -gt 0 ] || { echo "no stage1 steps in the audit" >&2; exit 1; }

cat > "$TMP/by-hand.py" <<'PY'
"""One lineage by hand: stage0 by upstream's kaem.amd64, then each stage1
step's script by stage0's kaem under bwrap, in a root made as bootstrap
makes it (its sources fresh, then the outputs of its needs copied over),
its declared outputs kept for the steps after it. Plain copies, no store,
no hashing."""
import json, os, shutil, subprocess, sys
d, distfiles, chain, steps = sys.argv[1], sys.argv[2], sys.argv[3], json.load(open(sys.argv[4]))
log = open(d + '.log', 'w')
shutil.rmtree(d, ignore_errors=True)
os.makedirs(d + '/pristine')
def unpack(tarball, name):
    os.makedirs(f'{d}/pristine/{name}')
    subprocess.run(['tar', 'xf', f'{distfiles}/{tarball}', '-C', f'{d}/pristine/{name}',
                    '--strip-components=1', '--no-same-owner'], check=True)
unpack('stage0-posix-1.9.1.from-git.tar.gz', 'stage0-posix')
unpack('mes-0.27.tar.gz', 'mes-0.27')
unpack('nyacc-1.00.2-lb1.from-git.tar.gz', 'nyacc-1.00.2-lb1')
unpack('tcc-0.9.26-1147-gee75a10c.tar.gz', 'tcc-0.9.26')
unpack('tcc-0.9.27.tar.bz2', 'tcc-0.9.27')
unpack('live-bootstrap-984b8322.from-git.tar.gz', 'live-bootstrap')
for f in ('mes-config.h', 'hello.c'):
    shutil.copy(f'{chain}/stage1/files/{f}', f'{d}/pristine/{f}')
def bwrap(root, workdir, env, argv):
    cmd = ['bwrap', '--unshare-all', '--die-with-parent', '--hostname', 'bootstrap', '--bind', root, '/',
           '--dev', '/dev', '--proc', '/proc', '--tmpfs', '/tmp', '--clearenv', '--chdir', workdir]
    for k, v in env.items():
        cmd += ['--setenv', k, v]
    subprocess.run(cmd + argv, check=True, stdout=log, stderr=subprocess.STDOUT)
# stage0: upstream's three commands in its own tree; its AMD64/bin is then
# the layer every stage1 step gets from its stage0 needs.
s0 = f'{d}/stage0'
os.makedirs(s0 + '/src')
shutil.copytree(f'{d}/pristine/stage0-posix', s0 + '/src/stage0-posix', symlinks=True)
for argv in (['./bootstrap-seeds/POSIX/AMD64/kaem-optional-seed', './AMD64/mescc-tools-seed-kaem.kaem'],
             ['./AMD64/artifact/kaem-0', './AMD64/mescc-tools-mini-kaem.kaem'],
             ['./AMD64/bin/kaem', '--verbose', '--strict', '--file', './AMD64/kaem.run']):
    bwrap(s0, '/src/stage0-posix', {}, argv)
base = {'HOME': '/homeless', 'SOURCE_DATE_EPOCH': '0', 'TZ': 'UTC', 'LC_ALL': 'C'}
for st in steps:
    root = f'{d}/root'
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root + '/src')
    for name in st['sources']:
        src = f'{d}/pristine/{name}'
        if os.path.isdir(src):
            shutil.copytree(src, f'{root}/src/{name}', symlinks=True)
        else:
            shutil.copy(src, f'{root}/src/{name}')
    for need in st['needs']:
        layer = f'{d}/layers/{need}' if os.path.isdir(f'{d}/layers/{need}') else None
        if layer:
            shutil.copytree(layer, root, symlinks=True, dirs_exist_ok=True)
        else:  # a stage0 step
            shutil.copytree(f'{s0}/src/stage0-posix/AMD64/bin', f'{root}/src/stage0-posix/AMD64/bin', dirs_exist_ok=True)
    with open(f'{root}/src/.script', 'w') as f:
        f.write(st['text'])
    bwrap(root, st['workdir'], {**base, **st['env']}, st['interpreter'] + ['/src/.script'])
    for out in st['outputs']:
        path = out if out.startswith('/') else st['workdir'].rstrip('/') + '/' + out
        src, dst = root + path, f'{d}/layers/{st["step"]}' + path
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if os.path.isdir(src):
            shutil.copytree(src, dst, symlinks=True)
        else:
            shutil.copy(src, dst)
shutil.rmtree(f'{d}/root')
PY
cat > "$TMP/by-hand-two.sh" <<SH
#!/bin/sh
# Two lineages at once, as two seeds.
python3 "$TMP/by-hand.py" "$TMP/tree-a" "$DISTFILES" "$CHAIN" "$TMP/steps.json" & a=\$!
python3 "$TMP/by-hand.py" "$TMP/tree-b" "$DISTFILES" "$CHAIN" "$TMP/steps.json" & b=\$!
wait \$a && wait \$b
SH
chmod +x "$TMP/by-hand-two.sh"

# CPU is the whole machine's busy time over the run (from /proc/stat), not
# time(1)'s: processes inside bwrap's PID namespace are not counted to
# their caller, so time(1) saw 15 s of CPU for a run that kept both cores
# busy. On a quiet machine the rest of it is noise.
busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
measure() { # NAME COMMAND...: one run; wall, machine CPU seconds, peak RSS of the largest process
    local before after
    before=$(busy)
    /usr/bin/time -f "%e %M" -o "$TMP/time" "$@" >/dev/null 2>"$TMP/err" \
        || { echo "$1 failed:" >&2; tail -20 "$TMP/err" >&2; exit 1; }
    after=$(busy)
    read -r wall rss < "$TMP/time"
    echo "$wall $(( (after - before) / $(getconf CLK_TCK) )) $rss"
}
echo "by hand: stage0 + stage1 on two trees at once" >&2
read -r hw hc hm < <(measure "$TMP/by-hand-two.sh")
# Both lineages made the final tcc and the same report.
cmp "$TMP/tree-a/layers/tcc-0.9.27/usr/bin/tcc" "$TMP/tree-b/layers/tcc-0.9.27/usr/bin/tcc"
cmp "$TMP/tree-a/layers/hello/hello/report.txt" "$TMP/tree-b/layers/hello/hello/report.txt"
hdisk=$(du -sk "$TMP/tree-a" "$TMP/tree-b" | awk '{ s += $1 } END { print s }')
rm -rf "$TMP/tree-a" "$TMP/tree-b"

echo "bootstrap verify stage1 (2 seeds, fresh state)" >&2
rm -rf "$TMP/state"
read -r bw bc bm < <(measure $B verify stage1 --no-signatures)
bdisk=$(du -sk "$TMP/state" | cut -f1)

python3 - "$hw" "$hc" "$hm" "$hdisk" "$bw" "$bc" "$bm" "$bdisk" <<'PY'
import sys
hw, hc, hm, hd, bw, bc, bm, bd = map(float, sys.argv[1:])
print("| command | wall | CPU (the machine's, user + system) | peak RSS of one process | disk after the run |")
print("|---|---|---|---|---|")
print(f"| by hand: kaem.amd64 + the stage1 kaem scripts under bwrap, 2 trees at once | {hw:.0f} s | {hc:.0f} s | {hm / 1024:.0f} MiB | {hd / 1024:.0f} MiB |")
print(f"| bootstrap verify stage1 (2 seeds, fresh state) | {bw:.0f} s | {bc:.0f} s | {bm / 1024:.0f} MiB | {bd / 1024:.0f} MiB |")
print(f"\nratio bootstrap / by hand: {bw / hw:.2f}x wall, {bc / hc:.2f}x CPU")
PY
