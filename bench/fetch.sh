#!/usr/bin/env bash
# Benchmark `bootstrap fetch` (download, SHA-256 while streaming, fsync,
# rename into the store) of one 500 MiB file from a local HTTP server
# against `curl -o` of the same URL, in the same run. Target from the store
# issue: at least 0.9x curl's throughput. For context it also times what a
# careful user does by hand: curl -o, then sha256sum -c.
#
#   bench/fetch.sh              # SIZE_MIB=500 RUNS=5
#
# Needs cargo, python3 and curl; installs hyperfine with apt-get when
# missing. The server is bench/serve.py (sendfile). Prints a Markdown table.
set -euo pipefail

SIZE_MIB=${SIZE_MIB:-500}
RUNS=${RUNS:-5}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

command -v hyperfine >/dev/null 2>&1 || {
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine >&2
}
for t in cargo python3 curl hyperfine; do
    command -v "$t" >/dev/null 2>&1 || { echo "error: $t not found" >&2; exit 1; }
done

echo "building release binary" >&2
(cd "$ROOT" && cargo build --release --quiet)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bootstrap-bench-fetch.XXXXXX")
SERVER_PID=
trap '[ -n "$SERVER_PID" ] && kill "$SERVER_PID" 2>/dev/null; rm -rf "$TMP"' EXIT
BIN="$TMP/bootstrap"
cp "$ROOT/target/release/bootstrap" "$BIN"

mkdir -p "$TMP/www"
head -c "$((SIZE_MIB * 1048576))" /dev/urandom > "$TMP/www/big.bin"
SHA=$(sha256sum "$TMP/www/big.bin" | cut -d' ' -f1)
python3 "$ROOT/bench/serve.py" "$TMP/www" "$TMP/port" &
SERVER_PID=$!
for _ in $(seq 50); do [ -s "$TMP/port" ] && break; sleep 0.1; done
URL="http://127.0.0.1:$(cat "$TMP/port")/big.bin"

CHAIN="$TMP/chain"
mkdir -p "$CHAIN/chain" "$CHAIN/stage0"
cat > "$CHAIN/chain/chain.kdl" <<KDL
chain "bench" {
    arch "x86_64"
    source-date-epoch 0
    stage "stage0" description="bench"
}
seed "a" { description "a" }
seed "b" { description "b" }
source "big" {
    url "$URL"
    sha256 "$SHA"
}
KDL
cat > "$CHAIN/stage0/use.kdl" <<'KDL'
step "use" {
    root "seed"
    source "big"
    run "/bin/true"
    output "/out"
}
KDL

# Same bytes first.
"$BIN" -C "$CHAIN" --state "$TMP/state" -q fetch
cmp "$TMP/state/sources/$SHA" "$TMP/www/big.bin"

hyperfine --warmup 1 --runs "$RUNS" --export-markdown "$TMP/table.md" \
    -n 'curl -o' --prepare "rm -f $TMP/out.bin" "curl -s -o $TMP/out.bin $URL" \
    -n 'curl -o && sha256sum -c' --prepare "rm -f $TMP/out.bin" "curl -s -o $TMP/out.bin $URL && echo '$SHA  $TMP/out.bin' | sha256sum -c --quiet" \
    -n 'bootstrap fetch' --prepare "rm -rf $TMP/state" "$BIN -C $CHAIN --state $TMP/state -q fetch" >&2
echo
cat "$TMP/table.md"
echo
echo "throughput: $SIZE_MIB MiB / mean time; ratio = curl mean / bootstrap mean"
