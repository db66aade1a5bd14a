#!/usr/bin/env bash
# A cached `verify` of the bench/verify.sh chain by two revisions' release
# binaries in one hyperfine run, each on a state directory of its own
# (their stage receipts' binary twins may differ in layout), with `check`
# of each as the baseline: a before/after comparison that machine drift
# between two separate runs cannot blur.
#
#   bench/verify_ab.sh [BEFORE [AFTER]]   # defaults: 72d550b HEAD; STEPS=1000 RUNS=30
#
# Needs root (the first verify runs the steps), cargo, python3, hyperfine.
# Prints a Markdown table for BENCHMARKS.md. A measurement, not a gate.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BEFORE=${1:-72d550b}
AFTER=${2:-HEAD}
STEPS=${STEPS:-1000}
RUNS=${RUNS:-30}
. "$ROOT/bench/lib.sh"
need hyperfine:hyperfine
"$ROOT/tests/seeds/build.sh" "$ROOT/target/test-seeds" >&2
SEEDS="$ROOT/target/test-seeds"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bootstrap-ab.XXXXXX")
trap 'for s in before after; do git -C "$ROOT" worktree remove --force "$TMP/$s" 2>/dev/null || true; done; rm -rf "$TMP"' EXIT

for side in before after; do
    rev=$BEFORE; [ "$side" = after ] && rev=$AFTER
    git -C "$ROOT" worktree add --detach "$TMP/$side" "$rev" >/dev/null 2>&1
    echo "building $side ($rev)" >&2
    (cd "$TMP/$side" && CARGO_TARGET_DIR="$TMP/target-$side" cargo build --release --locked --quiet)
    cp "$TMP/target-$side/release/bootstrap" "$TMP/bootstrap-$side"
done

CHAIN="$TMP/chain"
layered_chain "$CHAIN" "$STEPS"
seeds="--seed busybox=$SEEDS/busybox.tar --seed debian=$SEEDS/debian.tar"
for side in before after; do
    echo "first verify by $side (runs $STEPS steps on two seeds)" >&2
    "$TMP/bootstrap-$side" -q -C "$CHAIN" --state "$TMP/state-$side" $seeds verify stage3
done
sleep 2.1
JSON="$TMP/result.json"
hyperfine -N --style basic --warmup 3 --runs "$RUNS" --export-json "$JSON" \
    -n "check, before" "$TMP/bootstrap-before -q -C $CHAIN --state $TMP/state-before check" \
    -n "check, after" "$TMP/bootstrap-after -q -C $CHAIN --state $TMP/state-after check" \
    -n "cached verify stage3, before" "$TMP/bootstrap-before -q -C $CHAIN --state $TMP/state-before $seeds verify stage3" \
    -n "cached verify stage3, after" "$TMP/bootstrap-after -q -C $CHAIN --state $TMP/state-after $seeds verify stage3" >&2
ratio_table "$JSON" "check, before"
