#!/usr/bin/env bash
# Benchmark the OCI backend: 20 independent trivial steps
# (`/bin/sh -c "echo N > /r"` on the busybox test seed's image, output /r
# captured) with `bootstrap --backend oci build` on a fresh state
# directory, against 20 sequential `docker run --rm --network none IMAGE
# /bin/sh -c "echo N > /r"` through the Docker CLI, on the same engine and
# the same image (loaded with `bootstrap seed import`). Target from the OCI
# backend issue: bootstrap's total at most 1.2x the CLI's.
#
#   bench/oci.sh                     # STEPS=20 RUNS=5
#
# What differs, on purpose or by necessity:
# - bootstrap also sends the container init in, removes the engine's
#   HOSTNAME from the environment, downloads and hashes /r, stores it with
#   fsyncs and writes a receipt per step: its whole job. The CLI loop
#   throws /r away with the container.
# - bootstrap runs independent steps in parallel (--jobs, default: CPUs);
#   it is also measured with -j1, strictly sequential like the CLI loop.
#
# Needs a Docker engine (DOCKER_HOST or the default socket) and its CLI,
# cargo; installs hyperfine with apt-get when missing; builds the test
# seeds with tests/seeds/build.sh. Prints a Markdown table for
# BENCHMARKS.md. A measurement, not a gate: exits 0 whether or not the
# target is met.
set -euo pipefail

STEPS=${STEPS:-20}
RUNS=${RUNS:-5}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$ROOT/bench/lib.sh"

need hyperfine:hyperfine
setup oci
REF=$("$BIN" -q seed import busybox "$ROOT/target/test-seeds/busybox.tar")
IMAGE=${REF#*@}
echo "image $IMAGE" >&2

CHAIN="$TMP/chain"
trivial_chain "$CHAIN" "$STEPS"

cat > "$TMP/docker-loop.sh" <<SH
#!/bin/sh
set -e
for i in \$(seq 1 $STEPS); do
    docker run --rm --network none "$IMAGE" /bin/sh -c "echo \$i > /r"
done
SH
chmod +x "$TMP/docker-loop.sh"

B="$BIN -q -C $CHAIN --state $TMP/state --backend oci --seed busybox=$REF"
# Sanity: both run; bootstrap captured every output.
"$TMP/docker-loop.sh"
$B build stage0
n=$(find "$TMP/state/receipts/steps" -name '*.json' | wc -l)
[ "$n" -eq "$STEPS" ] || { echo "bootstrap wrote $n receipts, expected $STEPS" >&2; exit 1; }

JSON="$TMP/result.json"
hyperfine --style basic --warmup 1 --runs "$RUNS" --export-json "$JSON" \
    --prepare "rm -rf '$TMP/state'" \
    -n "docker run --rm x$STEPS (CLI, sequential)" "$TMP/docker-loop.sh" \
    -n "bootstrap --backend oci build ($STEPS steps, -j1)" "$B -j1 build stage0" \
    -n "bootstrap --backend oci build ($STEPS steps, -j$(nproc))" "$B build stage0" >&2

ratio_table "$JSON" "docker run"
