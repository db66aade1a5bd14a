#!/usr/bin/env bash
# Benchmark the real stage1 (mes 0.27 and tcc, i386): `bootstrap verify
# stage1` on both test seeds from a fresh state directory, which verifies
# stage0 and then stage1, against the same work done by hand: stage0 by
# upstream's kaem.amd64 (its three commands), then every stage1 step's kaem
# script, as `bootstrap --json audit stage1` gives it (workdir, env,
# script), run by stage0's kaem under bwrap in one tree holding the same
# sources at /src/<name>, on two trees at once (one per seed, as bootstrap
# runs two lineages). Target from the stage1 issue: bootstrap at most 1.2x.
#
#   bench/stage1.sh        # one run of each (a run is about 15-25 minutes)
#
# What differs, on purpose or by necessity:
# - bootstrap runs stage0 as 18 steps (some phases twice, as cross-checks)
#   and each stage1 step in a fresh root made of its sources and the layers
#   of its needs; the baseline runs every step in one tree, in place.
# - bootstrap's fresh state means copying the distfiles into the store,
#   unpacking and hashing them, hashing both seeds, and hashing, storing and
#   fsyncing every step's output; the baseline only unpacks.
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

# The stage1 steps in chain order, one JSON object per line.
$BIN -q -C "$CHAIN" --json audit stage1 \
    | jq -c '.stages[] | select(.stage == "stage1") | .steps[]
             | { step, workdir, env, interpreter: .interpreted.interpreter, text: .interpreted.script }' > "$TMP/steps.jsonl"
[ -s "$TMP/steps.jsonl" ] || { echo "no stage1 steps in the audit" >&2; exit 1; }

cat > "$TMP/by-hand.sh" <<SH
#!/usr/bin/env bash
# One tree: fresh sources, stage0 by kaem.amd64, then every stage1 script.
set -euo pipefail
d=\$1
rm -rf "\$d"; mkdir -p "\$d/src" "\$d/usr"
un() { mkdir -p "\$d/src/\$2"; tar xf "$DISTFILES/\$1" -C "\$d/src/\$2" --strip-components=1 --no-same-owner; }
un stage0-posix-1.9.1.from-git.tar.gz stage0-posix
un mes-0.27.tar.gz mes-0.27
un nyacc-1.00.2-lb1.from-git.tar.gz nyacc-1.00.2-lb1
un tcc-0.9.26-1147-gee75a10c.tar.gz tcc-0.9.26
un tcc-0.9.27.tar.bz2 tcc-0.9.27
un live-bootstrap-984b8322.from-git.tar.gz live-bootstrap
cp "$CHAIN/stage1/files/mes-config.h" "\$d/src/mes-config.h"
cp "$CHAIN/stage1/files/hello.c" "\$d/src/hello.c"
BW="bwrap --unshare-all --die-with-parent --hostname bootstrap --bind \$d / --dev /dev --proc /proc --tmpfs /tmp --clearenv"
(
  cd "\$d/src/stage0-posix"
  \$BW --chdir /src/stage0-posix ./bootstrap-seeds/POSIX/AMD64/kaem-optional-seed ./AMD64/mescc-tools-seed-kaem.kaem
  \$BW --chdir /src/stage0-posix ./AMD64/artifact/kaem-0 ./AMD64/mescc-tools-mini-kaem.kaem
  \$BW --chdir /src/stage0-posix ./AMD64/bin/kaem --verbose --strict --file ./AMD64/kaem.run
) >"\$d.log" 2>&1
while IFS= read -r line; do
  jq -r .text <<<"\$line" > "\$d/src/.script"
  wd=\$(jq -r .workdir <<<"\$line")
  mapfile -t envs < <(jq -r '.env | to_entries[] | "--setenv\n\(.key)\n\(.value)"' <<<"\$line")
  mapfile -t interp < <(jq -r '.interpreter[]' <<<"\$line")
  \$BW --setenv HOME /homeless --setenv SOURCE_DATE_EPOCH 0 --setenv TZ UTC --setenv LC_ALL C \
      "\${envs[@]}" --chdir "\$wd" "\${interp[@]}" /src/.script >>"\$d.log" 2>&1
done < "$TMP/steps.jsonl"
SH
cat > "$TMP/by-hand-two.sh" <<SH
#!/bin/sh
# Two trees at once, as two seeds.
"$TMP/by-hand.sh" "$TMP/tree-a" & a=\$!
"$TMP/by-hand.sh" "$TMP/tree-b" & b=\$!
wait \$a && wait \$b
SH
chmod +x "$TMP/by-hand.sh" "$TMP/by-hand-two.sh"

measure() { # NAME COMMAND...: one run; wall, CPU, peak RSS of the largest process
    /usr/bin/time -f "%e %U %S %M" -o "$TMP/time" "$@" >/dev/null 2>"$TMP/err" \
        || { echo "$1 failed:" >&2; tail -20 "$TMP/err" >&2; exit 1; }
    cat "$TMP/time"
}
echo "by hand: stage0 + stage1 on two trees at once" >&2
read -r hw hu hs hm < <(measure "$TMP/by-hand-two.sh")
for t in a b; do
    [ -x "$TMP/tree-$t/usr/bin/tcc" ] || { echo "by hand: tree $t has no tcc; see $TMP/tree-$t.log" >&2; exit 1; }
done
hdisk=$(du -sk "$TMP/tree-a" "$TMP/tree-b" | awk '{ s += $1 } END { print s }')
cmp "$TMP/tree-a/hello/report.txt" "$TMP/tree-b/hello/report.txt"
rm -rf "$TMP/tree-a" "$TMP/tree-b"

echo "bootstrap verify stage1 (2 seeds, fresh state)" >&2
rm -rf "$TMP/state"
read -r bw bu bs bm < <(measure $B verify stage1 --no-signatures)
bdisk=$(du -sk "$TMP/state" | cut -f1)

python3 - "$hw" "$hu" "$hs" "$hm" "$hdisk" "$bw" "$bu" "$bs" "$bm" "$bdisk" <<'PY'
import sys
hw, hu, hs, hm, hd, bw, bu, bs, bm, bd = map(float, sys.argv[1:])
print("| command | wall | CPU (user + system) | peak RSS of one process | disk after the run |")
print("|---|---|---|---|---|")
print(f"| by hand: kaem.amd64 + the stage1 kaem scripts under bwrap, 2 trees at once | {hw:.0f} s | {hu + hs:.0f} s | {hm / 1024:.0f} MiB | {hd / 1024:.0f} MiB |")
print(f"| bootstrap verify stage1 (2 seeds, fresh state) | {bw:.0f} s | {bu + bs:.0f} s | {bm / 1024:.0f} MiB | {bd / 1024:.0f} MiB |")
print(f"\nratio bootstrap / by hand: {bw / hw:.2f}x wall, {(bu + bs) / (hu + hs):.2f}x CPU")
PY
