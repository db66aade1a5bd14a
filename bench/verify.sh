#!/usr/bin/env bash
# Benchmark a fully cached `bootstrap verify` against `bootstrap check` on the
# same generated chain: STEPS trivial steps (`/bin/sh -c "echo N > /o/N"`,
# each needing up to two earlier steps) over four stages, on both test seeds
# (busybox and debian from tests/seeds/build.sh). The chain is verified once
# before timing; the timed verify runs nothing, it only proves that from the
# receipts. Target from the gate issue: cached verify at most 2x check.
#
# The seeds are given as tarballs (`--seed NAME=FILE.tar`), like a chain's
# pinned rootfs: their identity is remembered by one stat each. Given as
# directories, every command re-fingerprints them (an lstat per entry, about
# 25 ms for the 6,700 entries of the Debian seed); that row is shown too.
#
#   bench/verify.sh                  # STEPS=1000 RUNS=10
#
# Needs root (the first, uncached verify runs the steps), cargo, python3;
# installs hyperfine with apt-get when missing. Prints a Markdown table for
# BENCHMARKS.md. A measurement, not a gate: exits 0 whether or not the
# target is met.
set -euo pipefail

STEPS=${STEPS:-1000}
RUNS=${RUNS:-10}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/bench/lib.sh"

need hyperfine:hyperfine
setup verify
SEEDS="$ROOT/target/test-seeds"

CHAIN="$TMP/chain"
layered_chain "$CHAIN" "$STEPS"
V="$BIN -q -C $CHAIN --seed busybox=$SEEDS/busybox.tar --seed debian=$SEEDS/debian.tar verify stage3"
VD="$BIN -q -C $CHAIN --seed busybox=$SEEDS/busybox --seed debian=$SEEDS/debian verify stage3"
echo "first verify (runs $STEPS steps on two seeds)" >&2
start=$(date +%s.%N)
$V
$VD
echo "  took $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f s", b - a }')" >&2
# A cached run notes that every layer is present only once the store's
# layers/ is two seconds old (a removal in the same clock tick could go
# unseen); until then each run reads layers/ instead. Timed: the settled case.
sleep 2.1

JSON="$TMP/result.json"
hyperfine -N --style basic --warmup 2 --runs "$RUNS" --export-json "$JSON" \
    -n "bootstrap check ($STEPS steps)" "$BIN -q -C $CHAIN check" \
    -n "bootstrap verify stage3 (cached, 2 tarball seeds)" "$V" \
    -n "bootstrap verify stage3 (cached, 2 directory seeds)" "$VD" >&2

ratio_table "$JSON" check
