#!/usr/bin/env bash
# Before and after a restructuring (issue "One engine, thin commands"): for
# two revisions, in worktrees of their own, on this machine one after the
# other:
#   - a clean `cargo build` (debug), then `cargo test --no-run` on top;
#   - the lines of src/cli/;
#   - bench/plan.sh and bench/verify.sh as each revision has them (their
#     ratio tables: `plan` against `make -n`, cached `verify` against
#     `check`).
#
#   bench/redesign.sh [BEFORE [AFTER]]   # defaults: 72d550b HEAD
#
# Needs what those scripts need (root for verify.sh). Prints Markdown for
# BENCHMARKS.md. A measurement, not a gate.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BEFORE=${1:-72d550b}
AFTER=${2:-HEAD}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bootstrap-redesign.XXXXXX")
trap 'git -C "$ROOT" worktree remove --force "$WORK/before" 2>/dev/null; git -C "$ROOT" worktree remove --force "$WORK/after" 2>/dev/null; rm -rf "$WORK"' EXIT

seconds() { python3 -c 'import sys,time; t=time.monotonic(); import subprocess; subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); print(f"{time.monotonic()-t:.0f}")' "$@"; }

for side in before after; do
    rev=$BEFORE; [ "$side" = after ] && rev=$AFTER
    git -C "$ROOT" worktree add --detach "$WORK/$side" "$rev" >/dev/null 2>&1
    dir="$WORK/$side"
    # The test seeds are the same for both: built once, shared.
    mkdir -p "$dir/target"
    ln -s "$ROOT/target/test-seeds" "$dir/target/test-seeds"
    echo "## $side ($(git -C "$dir" rev-parse --short HEAD))"
    build=$(cd "$dir" && seconds cargo build --locked)
    tests=$(cd "$dir" && seconds cargo test --locked --no-run)
    cli=$(cat "$dir"/src/cli/*.rs "$dir"/src/cli/store/*.rs | wc -l)
    echo "| clean \`cargo build\` | \`cargo test --no-run\` after it | lines in src/cli |"
    echo "|---|---|---|"
    echo "| ${build} s | ${tests} s | ${cli} |"
    echo
    (cd "$dir" && bash bench/plan.sh 2>/dev/null | grep -E '^\|' || true)
    echo
    (cd "$dir" && bash bench/verify.sh 2>/dev/null | grep -E '^\|' || true)
    echo
done
