#!/usr/bin/env bash
# Benchmark the real stage0 (stage0-posix 1.9.1, AMD64): `bootstrap verify
# stage0` on both test seeds from a fresh state directory, against
# upstream's own run of the same tree: the three commands of kaem.amd64
# (kaem-optional-seed on mescc-tools-seed-kaem.kaem, kaem-0 on
# mescc-tools-mini-kaem.kaem, bin/kaem on kaem.run) under bwrap, on two
# fresh copies of the tree at once (one per seed, as bootstrap runs two
# lineages). Target from the stage0 issue: bootstrap at most 1.3x.
#
#   bench/stage0.sh                  # RUNS=3
#
# What differs, on purpose or by necessity:
# - bootstrap runs every phase as its own step (hex0 ... kaem, 14 steps)
#   and, beside them, upstream's seed and mini scripts as a cross-check
#   (seed-kaem, mini-kaem), so phases 0-11 run twice per seed; plus the
#   seed check. Its fresh state also means copying the distfile into the
#   store, unpacking and hashing it, hashing both seeds, and hashing,
#   storing and fsyncing every step's output.
# - The baseline's time includes unpacking the distfile into each copy.
# - bwrap binds each copy of the tree read-write (ext4); bootstrap gives
#   each step a tmpfs copy of its inputs (sandbox::copy).
#
# Needs root (namespaces), cargo, ../shared/distfiles (or DISTFILES=DIR
# with stage0-posix-1.9.1.from-git.tar.gz); installs bubblewrap and
# hyperfine with apt-get when missing; builds the test seeds. Prints a
# Markdown table for BENCHMARKS.md. A measurement, not a gate.
set -euo pipefail

RUNS=${RUNS:-3}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DISTFILES=${DISTFILES:-$ROOT/../shared/distfiles}
CHAIN=${CHAIN:-$ROOT}
TARBALL="$DISTFILES/stage0-posix-1.9.1.from-git.tar.gz"
. "$ROOT/bench/lib.sh"

[ -f "$TARBALL" ] || { echo "no $TARBALL: set DISTFILES" >&2; exit 1; }
need hyperfine:hyperfine bwrap:bubblewrap
setup stage0
SEEDS="--seed alpine=$ROOT/target/test-seeds/busybox --seed debian=$ROOT/target/test-seeds/debian"

cat > "$TMP/upstream.sh" <<SH
#!/bin/sh
# One tree: a fresh copy, then kaem.amd64's three commands under bwrap.
set -e
d=\$1
rm -rf "\$d"; mkdir -p "\$d"
tar xzf "$TARBALL" -C "\$d" --strip-components=1
B="bwrap --unshare-all --die-with-parent --hostname bootstrap --bind \$d /w --chdir /w --dev /dev --proc /proc --clearenv"
\$B ./bootstrap-seeds/POSIX/AMD64/kaem-optional-seed ./AMD64/mescc-tools-seed-kaem.kaem >/dev/null 2>&1
\$B ./AMD64/artifact/kaem-0 ./AMD64/mescc-tools-mini-kaem.kaem >/dev/null 2>&1
\$B ./AMD64/bin/kaem --verbose --strict --file ./AMD64/kaem.run >/dev/null 2>&1
SH
cat > "$TMP/upstream-two.sh" <<SH
#!/bin/sh
# Two trees at once, as two seeds.
"$TMP/upstream.sh" "$TMP/tree-a" & a=\$!
"$TMP/upstream.sh" "$TMP/tree-b" & b=\$!
wait \$a && wait \$b
SH
chmod +x "$TMP/upstream.sh" "$TMP/upstream-two.sh"

B="$BIN -q -C $CHAIN --state $TMP/state --distfiles $DISTFILES --offline $SEEDS"
# Sanity: both complete; bootstrap verifies all 18 steps.
"$TMP/upstream-two.sh"
for t in a b; do
    (cd "$TMP/tree-$t" && ./AMD64/bin/sha256sum -c amd64.answers >/dev/null)
done
$B verify stage0 --no-signatures
rm -rf "$TMP/state"

JSON="$TMP/result.json"
hyperfine --style basic --runs "$RUNS" --export-json "$JSON" \
    -n "upstream kaem.amd64 under bwrap, 2 trees at once" \
    --prepare "rm -rf '$TMP/tree-a' '$TMP/tree-b'" "$TMP/upstream-two.sh" \
    -n "bootstrap verify stage0 (2 seeds, fresh state)" \
    --prepare "rm -rf '$TMP/state'" "$B verify stage0 --no-signatures" >&2
ratio_table "$JSON" "upstream"

# Where bootstrap's time goes, from one more fresh run: CPU, memory, disk.
rm -rf "$TMP/state"
/usr/bin/time -f "bootstrap: %e s wall, %U s user, %S s system, %M KiB peak RSS" $B verify stage0 --no-signatures 2>&1 >/dev/null | tail -1
echo "state directory after one run: $(du -sh "$TMP/state" | cut -f1)"
