#!/usr/bin/env bash
# Benchmark `bootstrap plan stage0` on a generated 10,000-step chain against
# `make -n all` on the equivalent Makefile (targets from the issue:
# cold <= 8x make's dry run, warm <= 1.0x, peak RSS < 300 MB).
#
#   bench/plan.sh            # defaults: 10000 steps, 100 files, 100 sources, seed 1
#   STEPS=20000 FILES=200 SOURCES=100 SEED=1 bench/plan.sh
#
# Needs cargo, python3, make; installs hyperfine and GNU time with apt-get
# when missing. Prints a Markdown table for BENCHMARKS.md. Exits 0 whether
# or not the targets are met (it is a measurement, not a gate); it exits
# non-zero only if something cannot be measured (build fails, the generated
# chain does not load, ...).
set -euo pipefail

STEPS=${STEPS:-10000}
FILES=${FILES:-100}
SOURCES=${SOURCES:-100}
SEED=${SEED:-1}
RUNS_COLD=${RUNS_COLD:-10}
RUNS_WARM=${RUNS_WARM:-20}
RUNS_MAKE=${RUNS_MAKE:-20}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# --- tools ------------------------------------------------------------------
missing=()
command -v hyperfine >/dev/null 2>&1 || missing+=(hyperfine)
[ -x /usr/bin/time ] || missing+=(time)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
fi
for t in cargo python3 make hyperfine; do
    command -v "$t" >/dev/null 2>&1 || { echo "error: $t not found" >&2; exit 1; }
done

# --- build ------------------------------------------------------------------
echo "building release binary (cargo may wait for a lock held by another build)" >&2
(cd "$ROOT" && cargo build --release --quiet)

TMP=$(mktemp -d "${TMPDIR:-/tmp}/bootstrap-bench.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
# Copy the binary so a concurrent `cargo build` cannot swap it mid-run.
BIN="$TMP/bootstrap"
cp "$ROOT/target/release/bootstrap" "$BIN"

# --- chain ------------------------------------------------------------------
DIR="$TMP/chain"
python3 "$ROOT/bench/gen_chain.py" "$DIR" --steps "$STEPS" --files "$FILES" --sources "$SOURCES" --seed "$SEED"
COLD="$TMP/state-cold"
WARM="$TMP/state-warm"

# The generated chain must load cleanly and plan every step.
if ! "$BIN" -C "$DIR" --state "$TMP/state-check" check >"$TMP/check.out" 2>&1; then
    echo "error: bootstrap check failed on the generated chain:" >&2
    cat "$TMP/check.out" >&2
    exit 1
fi
if ! "$BIN" -C "$DIR" --state "$WARM" plan stage0 >"$TMP/plan.out" 2>"$TMP/plan.err"; then
    echo "error: bootstrap plan stage0 failed on the generated chain:" >&2
    cat "$TMP/plan.err" >&2
    exit 1
fi
planned=$(head -1 "$TMP/plan.out")
case "$planned" in
    *" $STEPS step(s) "*) ;;
    *) echo "error: unexpected plan header: $planned" >&2; exit 1 ;;
esac
made=$(cd "$DIR" && make -n -f Makefile all | grep -c '^true$' || true)
[ "$made" = "$STEPS" ] || { echo "error: make -n ran $made recipes, expected $STEPS" >&2; exit 1; }

# --- timings ----------------------------------------------------------------
cd "$DIR"
CMD_MAKE="make -n -f Makefile all > /dev/null"
CMD_COLD="$BIN -C $DIR --state $COLD plan stage0 > /dev/null"
CMD_WARM="$BIN -C $DIR --state $WARM plan stage0 > /dev/null"

hyperfine --style basic --warmup 2 --runs "$RUNS_MAKE" \
    -n make-dry-run "$CMD_MAKE" --export-json "$TMP/make.json" >&2
hyperfine --style basic --warmup 1 --runs "$RUNS_COLD" --prepare "rm -rf $COLD" \
    -n plan-cold "$CMD_COLD" --export-json "$TMP/cold.json" >&2
hyperfine --style basic --warmup 2 --runs "$RUNS_WARM" \
    -n plan-warm "$CMD_WARM" --export-json "$TMP/warm.json" >&2

# --- peak memory (KiB, GNU time %M) ----------------------------------------
rm -rf "$COLD"
/usr/bin/time -f %M -o "$TMP/rss-cold" "$BIN" -C "$DIR" --state "$COLD" plan stage0 >/dev/null
/usr/bin/time -f %M -o "$TMP/rss-warm" "$BIN" -C "$DIR" --state "$WARM" plan stage0 >/dev/null
/usr/bin/time -f %M -o "$TMP/rss-make" make -n -f Makefile all >/dev/null

# --- report -----------------------------------------------------------------
CPU=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | sed 's/.*: //' || echo unknown)
COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
DIRTY=$(git -C "$ROOT" status --porcelain --untracked-files=no -- src Cargo.toml Cargo.lock 2>/dev/null | head -c1)
[ -n "$DIRTY" ] && COMMIT="$COMMIT+dirty"

python3 - "$TMP" "$STEPS" "$FILES" "$SOURCES" "$SEED" "$(nproc)" "$CPU" "$COMMIT" \
    "$(hyperfine --version)" "$(make --version | head -1)" \
    "$RUNS_MAKE" "$RUNS_COLD" "$RUNS_WARM" <<'PY'
import json, sys
(tmp, steps, files, sources, seed, ncpu, cpu, commit, hfv, makev,
 rmake, rcold, rwarm) = sys.argv[1:]

def load(name):
    with open(f"{tmp}/{name}.json") as f:
        return json.load(f)["results"][0]

def rss(name):
    with open(f"{tmp}/rss-{name}") as f:
        return int(f.read().split()[-1])  # KiB

mk, cold, warm = load("make"), load("cold"), load("warm")
rc, rw, rm = rss("cold"), rss("warm"), rss("make")
r_cold = cold["mean"] / mk["mean"]
r_warm = warm["mean"] / mk["mean"]
MB = 1000 * 1000 / 1024  # KiB per MB

def ms(r):
    return f"{r['mean']*1e3:.1f} ± {r['stddev']*1e3:.1f}"

def ok(b):
    return "met" if b else "**not met**"

print()
print(f"Chain: {steps} steps in {files} files, {sources} sources, seed {seed}; "
      f"{ncpu} CPU(s), {cpu}; bootstrap {commit}; {hfv}; {makev}.")
print()
print("| command | runs | mean (ms) | vs make -n | peak RSS (MB) | target | result |")
print("|---|---:|---:|---:|---:|---|---|")
print(f"| `make -n all` | {rmake} | {ms(mk)} | 1.00× | {rm/MB:.1f} | — | — |")
print(f"| `plan stage0`, cold state | {rcold} | {ms(cold)} | {r_cold:.2f}× | {rc/MB:.1f} "
      f"| ≤ 8×, < 300 MB | time {ok(r_cold <= 8)}, memory {ok(rc/MB < 300)} |")
print(f"| `plan stage0`, warm state | {rwarm} | {ms(warm)} | {r_warm:.2f}× | {rw/MB:.1f} "
      f"| ≤ 1.0×, < 300 MB | time {ok(r_warm <= 1.0)}, memory {ok(rw/MB < 300)} |")
print()
print(f"ratio cold/make = {r_cold:.2f}, warm/make = {r_warm:.2f}; "
      f"min/max ms: make {mk['min']*1e3:.1f}/{mk['max']*1e3:.1f}, "
      f"cold {cold['min']*1e3:.1f}/{cold['max']*1e3:.1f}, "
      f"warm {warm['min']*1e3:.1f}/{warm['max']*1e3:.1f}")
PY

echo
echo "Reproduce (from the repository root):"
echo "  STEPS=$STEPS FILES=$FILES SOURCES=$SOURCES SEED=$SEED RUNS_COLD=$RUNS_COLD RUNS_WARM=$RUNS_WARM RUNS_MAKE=$RUNS_MAKE bench/plan.sh"
echo "which runs, in the generated directory:"
echo "  hyperfine --warmup 2 --runs $RUNS_MAKE 'make -n -f Makefile all > /dev/null'"
echo "  hyperfine --warmup 1 --runs $RUNS_COLD --prepare 'rm -rf STATE' 'bootstrap -C DIR --state STATE plan stage0 > /dev/null'"
echo "  hyperfine --warmup 2 --runs $RUNS_WARM 'bootstrap -C DIR --state WARM plan stage0 > /dev/null'   # WARM filled by one earlier run"
