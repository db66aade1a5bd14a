#!/usr/bin/env bash
# Benchmark the local sandbox backend: 20 independent trivial steps
# (`/bin/sh -c "echo N > /r"` on the busybox test seed, output /r captured)
# with `bootstrap build` on a fresh state directory, against 20 sequential
# `bwrap` runs (Debian's bubblewrap) with the same namespaces (all of them,
# hostname `bootstrap`, cleared environment, /dev, /proc) running the same
# shell command. Target from the local sandbox issue: bootstrap's total at
# most 2.0x bwrap's.
#
#   bench/sandbox.sh                 # STEPS=20 RUNS=10
#
# What differs, on purpose or by necessity:
# - bootstrap also hashes the seed, writes a receipt per step, captures
#   and hashes /r, renames it into the store and fsyncs: its whole job.
# - Debian's bubblewrap (0.8) has no overlay option, so its root is the
#   seed bound read-only and the writable place is a fresh host directory
#   bound at /tmp (the command writes /tmp/r there); bootstrap's root is an
#   overlay with a writable scratch layer.
# - bootstrap runs independent steps in parallel (--jobs, default: CPUs);
#   it is also measured with -j1, strictly sequential like the bwrap loop.
#
# Needs root (namespaces, overlayfs), cargo; installs bubblewrap and
# hyperfine with apt-get when missing; builds the test seeds with
# tests/seeds/build.sh. Prints a Markdown table for BENCHMARKS.md.
# A measurement, not a gate: exits 0 whether or not the target is met.
set -euo pipefail

STEPS=${STEPS:-20}
RUNS=${RUNS:-10}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/bench/lib.sh"

need hyperfine:hyperfine bwrap:bubblewrap
setup sandbox
SEED="$ROOT/target/test-seeds/busybox"

CHAIN="$TMP/chain"
trivial_chain "$CHAIN" "$STEPS"

cat > "$TMP/bwrap-loop.sh" <<SH
#!/bin/sh
set -e
rm -rf "$TMP/bw"
for i in \$(seq 1 $STEPS); do
    mkdir -p "$TMP/bw/\$i"
    bwrap --unshare-all --die-with-parent --hostname bootstrap \
        --ro-bind "$SEED" / --bind "$TMP/bw/\$i" /tmp --dev /dev --proc /proc \
        --clearenv --setenv PATH /usr/bin:/bin:/usr/sbin:/sbin --setenv HOME /homeless \
        --setenv TZ UTC --setenv LC_ALL C --setenv SOURCE_DATE_EPOCH 0 --chdir / \
        /bin/sh -c "echo \$i > /tmp/r"
done
SH
chmod +x "$TMP/bwrap-loop.sh"

# Sanity: both produce the outputs.
"$TMP/bwrap-loop.sh"
[ "$(cat "$TMP/bw/$STEPS/r")" = "$STEPS" ] || { echo "bwrap loop produced no output" >&2; exit 1; }
"$BIN" -q -C "$CHAIN" --state "$TMP/state" --seed "busybox=$SEED" build stage0
n=$(find "$TMP/state/receipts/steps" -name '*.json' | wc -l)
[ "$n" -eq "$STEPS" ] || { echo "bootstrap wrote $n receipts, expected $STEPS" >&2; exit 1; }

JSON="$TMP/result.json"
hyperfine --style basic --warmup 2 --runs "$RUNS" --export-json "$JSON" \
    --prepare "rm -rf '$TMP/state'" \
    -n "bwrap x$STEPS (sequential)" "$TMP/bwrap-loop.sh" \
    -n "bootstrap build ($STEPS steps, -j1)" "$BIN -q -C $CHAIN --state $TMP/state --seed busybox=$SEED -j1 build stage0" \
    -n "bootstrap build ($STEPS steps, -j$(nproc))" "$BIN -q -C $CHAIN --state $TMP/state --seed busybox=$SEED build stage0" >&2

ratio_table "$JSON" bwrap
