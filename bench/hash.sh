#!/usr/bin/env bash
# Benchmark `bootstrap hash` (tree digest: BLAKE3 and SHA-256 of every file)
# on a generated ~1 GiB tree against the coreutils pipeline
#   find . -type f -print0 | sort -z | xargs -0 sha256sum
# and against the same pipeline with b3sum. Warm page cache (hyperfine
# warm-up runs). Target from the store issue: >= 3x faster than sha256sum.
#
#   bench/hash.sh                        # 20000 small files + 4 x 150 MiB
#   SMALL=20000 BIG=4 BIG_MIB=150 RUNS=5 bench/hash.sh
#
# Needs cargo and python3; installs hyperfine and b3sum with apt-get when
# missing. Prints a Markdown table for BENCHMARKS.md. A measurement, not a
# gate: exits 0 whether or not the target is met.
set -euo pipefail

SMALL=${SMALL:-20000}
BIG=${BIG:-4}
BIG_MIB=${BIG_MIB:-150}
RUNS=${RUNS:-5}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

missing=()
command -v hyperfine >/dev/null 2>&1 || missing+=(hyperfine)
command -v b3sum >/dev/null 2>&1 || missing+=(b3sum)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi

echo "building release binary" >&2
(cd "$ROOT" && cargo build --release --quiet)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bootstrap-bench-hash.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
BIN="$TMP/bootstrap"
cp "$ROOT/target/release/bootstrap" "$BIN"

TREE="$TMP/tree"
echo "generating $SMALL small files and $BIG x $BIG_MIB MiB in $TREE" >&2
python3 - "$TREE" "$SMALL" "$BIG" "$BIG_MIB" <<'PY'
import os, random, sys
root, small, big, big_mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(1)
block = os.urandom(1 << 20)
for i in range(small):
    d = os.path.join(root, f"d{i % 200:03}", f"e{i % 7}")
    os.makedirs(d, exist_ok=True)
    n = rng.randint(1, 32 << 10)
    off = rng.randint(0, len(block) - n)
    with open(os.path.join(d, f"f{i:05}.dat"), "wb") as f:
        f.write(block[off:off + n])
    if i % 10 == 0:
        os.chmod(os.path.join(d, f"f{i:05}.dat"), 0o755)
os.makedirs(os.path.join(root, "big"), exist_ok=True)
for j in range(big):
    with open(os.path.join(root, "big", f"blob{j}.bin"), "wb") as f:
        for k in range(big_mib):
            f.write(os.urandom(1 << 20))
PY
BYTES=$(du -sb "$TREE" | cut -f1)
echo "tree: $(find "$TREE" -type f | wc -l) files, $((BYTES / 1048576)) MiB" >&2

# Same answers first: the tool's list must be what sha256sum computes.
(cd "$TREE" && "$BIN" hash --sha256sums . | sha256sum -c --strict --quiet)

cd "$TREE"
hyperfine --warmup 1 --runs "$RUNS" --export-markdown "$TMP/table.md" \
    -n 'find | sort | xargs sha256sum' "find . -type f -print0 | sort -z | xargs -0 sha256sum > /dev/null" \
    -n 'find | sort | xargs b3sum' "find . -type f -print0 | sort -z | xargs -0 b3sum > /dev/null" \
    -n 'bootstrap hash' "$BIN hash . > /dev/null" >&2
echo
cat "$TMP/table.md"
