#!/usr/bin/env bash
# Benchmark the remote backend (issue: beyond one machine) against the
# local one, in the same run, on this machine: BuildGrid (tests/remote,
# in-memory CAS, PostgreSQL scheduler) on 127.0.0.1 and `bootstrap worker`s
# of the same release binary.
#
#   bench/remote.sh            # RUNS=3
#
# Measured, each from a fresh state directory and (for remote) a freshly
# restarted server, so no action result is cached and every blob is sent:
# - 20 trivial steps (`build stage0` of a generated chain, seed busybox):
#   local, and remote with one worker;
# - the real stage0 on two seeds (`verify stage0 --no-signatures`): local,
#   remote with one worker (one slot per CPU, like local's --jobs), with
#   one worker of one slot, and with two workers of one slot (do the two
#   lineages run side by side?);
# - and the real stage0 again with the server's action cache warm (a new
#   client state, same server): what a second engineer re-verifying gets.
# Goal from the issue: one worker within 1.5x of local for the real stage0.
#
# Needs root (namespaces), cargo, python3 with venv, PostgreSQL's server
# binaries (Debian: postgresql), ../shared/distfiles (or DISTFILES=DIR);
# installs hyperfine when missing. Prints Markdown for BENCHMARKS.md. A
# measurement, not a gate.
set -euo pipefail

RUNS=${RUNS:-3}
PORT=${PORT:-50161}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DISTFILES=${DISTFILES:-$ROOT/../shared/distfiles}
. "$ROOT/bench/lib.sh"

[ -f "$DISTFILES/stage0-posix-1.9.1.from-git.tar.gz" ] || { echo "no stage0-posix in $DISTFILES: set DISTFILES" >&2; exit 1; }
need hyperfine:hyperfine
setup remote
CLUSTER="$ROOT/target/remote-cluster-bench"
"$ROOT/tests/remote/cluster.sh" install "$CLUSTER" >&2
URL="grpc://127.0.0.1:$PORT"
trap '"$TMP/fresh.sh" 0 >/dev/null 2>&1 || true; "$ROOT/tests/remote/cluster.sh" stop "$CLUSTER" >&2 || true; rm -rf "$TMP"' EXIT

# fresh.sh N [J]: stop the workers, restart the server (forgetting every
# blob and result), start N workers of J slots each (default: one per
# CPU); fresh.sh 0 only stops.
cat > "$TMP/fresh.sh" <<SH
#!/bin/sh
set -e
for p in \$(cat "$TMP"/worker-*.pid 2>/dev/null); do kill \$p 2>/dev/null || true; done
rm -f "$TMP"/worker-*.pid
sleep 0.5
[ "\$1" = 0 ] && exit 0
"$ROOT/tests/remote/cluster.sh" stop "$CLUSTER" >/dev/null 2>&1 || true
"$ROOT/tests/remote/cluster.sh" start "$CLUSTER" $PORT >/dev/null
i=0
while [ \$i -lt \$1 ]; do
    rm -rf "$TMP/worker-state-\$i"
    "$BIN" --state "$TMP/worker-state-\$i" \${2:+-j \$2} --remote $URL --remote-instance main worker >"$TMP/worker-\$i.log" 2>&1 &
    echo \$! > "$TMP/worker-\$i.pid"
    i=\$((i + 1))
done
sleep 1
SH
chmod +x "$TMP/fresh.sh"

REMOTE="--backend remote --remote $URL --remote-instance main"

# 20 trivial steps.
trivial_chain "$TMP/trivial" 20
T="$BIN -q -C $TMP/trivial --state $TMP/state --seed busybox=$ROOT/target/test-seeds/busybox"
"$TMP/fresh.sh" 1
$T $REMOTE build stage0 >/dev/null   # sanity
rm -rf "$TMP/state"
hyperfine --style basic --runs "$RUNS" --export-json "$TMP/trivial.json" \
    -n "local: build 20 trivial steps" --prepare "rm -rf $TMP/state" "$T build stage0" \
    -n "remote, 1 worker: build 20 trivial steps" --prepare "rm -rf $TMP/state; $TMP/fresh.sh 1" "$T $REMOTE build stage0" >&2
echo "### 20 trivial steps"
echo
ratio_table "$TMP/trivial.json" "local"
echo

# The real stage0 on two seeds.
S="$BIN -q -C $ROOT --state $TMP/state --distfiles $DISTFILES --offline --seed alpine=$ROOT/target/test-seeds/busybox --seed debian=$ROOT/target/test-seeds/debian"
"$TMP/fresh.sh" 1
$S $REMOTE verify stage0 --no-signatures >/dev/null   # sanity
rm -rf "$TMP/state"
hyperfine --style basic --runs "$RUNS" --export-json "$TMP/stage0.json" \
    -n "local: verify stage0 (2 seeds)" --prepare "rm -rf $TMP/state" "$S verify stage0 --no-signatures" \
    -n "remote, 1 worker: verify stage0 (2 seeds)" --prepare "rm -rf $TMP/state; $TMP/fresh.sh 1" "$S $REMOTE verify stage0 --no-signatures" \
    -n "remote, 1 worker of 1 slot: verify stage0 (2 seeds)" --prepare "rm -rf $TMP/state; $TMP/fresh.sh 1 1" "$S $REMOTE verify stage0 --no-signatures" \
    -n "remote, 2 workers of 1 slot: verify stage0 (2 seeds)" --prepare "rm -rf $TMP/state; $TMP/fresh.sh 2 1" "$S $REMOTE verify stage0 --no-signatures" \
    -n "remote, 1 worker, server's cache warm: verify stage0 (2 seeds)" --prepare "rm -rf $TMP/state" "$S $REMOTE verify stage0 --no-signatures" >&2
echo "### The real stage0 on two seeds"
echo
ratio_table "$TMP/stage0.json" "local"
echo

# Side by side: with two workers of one slot each, does each take steps?
"$TMP/fresh.sh" 2 1
rm -rf "$TMP/state"
$S $REMOTE verify stage0 --no-signatures >/dev/null
echo "leases per worker with two workers: $(for i in 0 1; do grep -c 'running lease' "$TMP/worker-$i.log" || true; done | paste -sd/ -)"
"$TMP/fresh.sh" 0
