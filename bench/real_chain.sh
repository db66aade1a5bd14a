#!/usr/bin/env bash
# Benchmark reading the whole real chain (issue: the whole chain): `plan
# stage3` (cold and warm state), `audit stage2` and `check` on the
# repository's chain as it is now, against the same commands on the chain
# as it was at BASE (the ~25-step sketch of stages 2 and 3), with the same
# binary, in the same run; and `graph --format dot` of the whole chain
# rendered by Graphviz's `dot -Tsvg`, with `--reduce` and without (time
# and size only: it must render; DOT_TIMEOUT, default 900 s, bounds it).
#
#   bench/real_chain.sh [BASE]      # BASE: a git revision, default 20c958c
#
# Needs cargo, hyperfine, dot (installed when missing). Prints Markdown for
# BENCHMARKS.md. A measurement, not a gate.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BASE=${1:-20c958c}
. "$ROOT/bench/lib.sh"
need hyperfine:hyperfine dot:graphviz

echo "building release binary" >&2
(cd "$ROOT" && cargo build --release --quiet)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bootstrap-bench-real-chain.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
BIN="$TMP/bootstrap"
cp "$ROOT/target/release/bootstrap" "$BIN"

# The two chains: the working tree's, and BASE's, as plain directories.
mkdir -p "$TMP/now" "$TMP/base"
for d in chain stage0 stage1 stage2 stage3; do
    cp -r "$ROOT/$d" "$TMP/now/$d"
done
git -C "$ROOT" archive "$BASE" chain stage0 stage1 stage2 stage3 | tar -x -C "$TMP/base"

count() { "$BIN" -C "$1" --state "$TMP/count" --json check | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["steps"], "steps,", d["unverified"], "unverified")'; }
echo "chain: now $(count "$TMP/now"), at $BASE $(count "$TMP/base")"
echo "chain text: now $(cat "$TMP"/now/*/*.kdl | wc -c) bytes, at $BASE $(cat "$TMP"/base/*/*.kdl | wc -c) bytes"
echo

run() { # NAME ARGS...
    local name=$1; shift
    hyperfine -N --warmup 3 --runs 20 --export-json "$TMP/$name.json" \
        --command-name "$name at $BASE" "$BIN -C $TMP/base --state $TMP/state-base $*" \
        --command-name "$name now" "$BIN -C $TMP/now --state $TMP/state-now $*" >&2
    ratio_table "$TMP/$name.json" "$BASE"
    echo
}

# Warm: the parse cache filled by the warmup runs.
run "plan stage3 (warm)" plan stage3
run "audit stage2 (warm)" audit stage2
run "check (warm)" check
# Cold: a fresh state directory, so every file is parsed again.
hyperfine -N --runs 10 --export-json "$TMP/cold.json" \
    --prepare "rm -rf $TMP/cold-base $TMP/cold-now" \
    --command-name "plan stage3 (cold) at $BASE" "$BIN -C $TMP/base --state $TMP/cold-base plan stage3" \
    --command-name "plan stage3 (cold) now" "$BIN -C $TMP/now --state $TMP/cold-now plan stage3" >&2
ratio_table "$TMP/cold.json" "$BASE"
echo

render() { # NAME ARGS...: graph, then dot -Tsvg, timed
    local name=$1; shift
    "$BIN" -C "$TMP/now" --state "$TMP/state-now" graph --format dot "$@" > "$TMP/chain.dot"
    local start end
    start=$(date +%s.%N)
    if timeout "${DOT_TIMEOUT:-900}" dot -Tsvg "$TMP/chain.dot" > "$TMP/chain.svg"; then
        end=$(date +%s.%N)
        printf '%s | dot -Tsvg: %s nodes, %s edges, %.2f s, %s bytes of SVG\n' "$name" \
            "$(grep -cE '^    "[^"]+";$' "$TMP/chain.dot" || true)" "$(grep -c -- '->' "$TMP/chain.dot" || true)" \
            "$(echo "$end - $start" | bc)" "$(wc -c < "$TMP/chain.svg")"
    else
        echo "$name | dot -Tsvg: not done after ${DOT_TIMEOUT:-900} s ($(grep -c -- '->' "$TMP/chain.dot" || true) edges)"
    fi
}
render "graph --reduce" --reduce
render "graph"
