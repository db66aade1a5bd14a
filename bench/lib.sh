# Shared by the bench/*.sh scripts that run built steps (sandbox.sh,
# verify.sh); source it after setting ROOT. Defines:
#   need CMD:PACKAGE...   installs the Debian packages of missing commands
#   setup NAME            builds the release binary and the test seeds, makes
#                         TMP (removed on exit) and copies the binary to BIN
#   trivial_chain DIR N   writes a chain of N independent steps `s1`…`sN`
#                         (`/bin/sh -c "echo I > /r"` on seed busybox,
#                         output /r) in one stage, stage0, to DIR
#   layered_chain DIR N   writes a chain of N trivial steps over four stages,
#                         each needing up to two earlier ones (seeded: the
#                         same chain every time), seeds busybox and debian
#   ratio_table JSON WHAT a Markdown table of a hyperfine --export-json file,
#                         each mean as a ratio to the first command's ("WHAT")

need() {
    local missing=() pair
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing: ${missing[*]}" >&2
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
    fi
}

setup() {
    echo "building release binary and test seeds" >&2
    (cd "$ROOT" && cargo build --release --quiet)
    "$ROOT/tests/seeds/build.sh" "$ROOT/target/test-seeds"
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/bootstrap-bench-$1.XXXXXX")
    trap 'rm -rf "$TMP"' EXIT
    BIN="$TMP/bootstrap"
    cp "$ROOT/target/release/bootstrap" "$BIN"
}

ratio_table() {
    python3 - "$1" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
base = r[0]["mean"]
print(f"| command | mean ± σ | min | ratio to {sys.argv[2]} (mean) |")
print("|---|---|---|---|")
for x in r:
    print(f"| {x['command']} | {x['mean']*1000:.1f} ± {x['stddev']*1000:.1f} ms | {x['min']*1000:.1f} ms | {x['mean']/base:.2f}x |")
PY
}

trivial_chain() {
    mkdir -p "$1/chain" "$1/stage0"
    cat > "$1/chain/chain.kdl" <<KDL
chain "bench" {
    arch "x86_64"
    source-date-epoch 0
    stage "stage0" description="trivial steps"
}
seed "busybox" { description "busybox-static" }
seed "other" { description "unused here" }
KDL
    : > "$1/stage0/steps.kdl"
    local i
    for i in $(seq 1 "$2"); do
        cat >> "$1/stage0/steps.kdl" <<KDL
step "s$i" {
    root "seed"
    run "/bin/sh" "-c" "echo $i > /r"
    output "/r"
}
KDL
    done
}

layered_chain() {
python3 - "$1" "$2" <<'PY'
import os, random, sys
out, n = sys.argv[1], int(sys.argv[2])
rng = random.Random(1)
stages = 4
os.makedirs(f"{out}/chain")
with open(f"{out}/chain/chain.kdl", "w") as f:
    f.write('chain "bench" {\n    arch "x86_64"\n    source-date-epoch 0\n')
    for s in range(stages):
        f.write(f'    stage "stage{s}" description="generated"\n')
    f.write('}\nseed "busybox" { description "busybox-static" }\nseed "debian" { description "minbase" }\n')
per = (n + stages - 1) // stages
for s in range(stages):
    os.makedirs(f"{out}/stage{s}")
    with open(f"{out}/stage{s}/steps.kdl", "w") as f:
        for i in range(s * per, min(n, (s + 1) * per)):
            needs = sorted(set(rng.randrange(i) for _ in range(rng.randint(0, 2)))) if i else []
            f.write(f'step "s{i}" {{\n    root "seed"\n')
            if needs:
                f.write("    needs " + " ".join(f'"s{j}"' for j in needs) + "\n")
            f.write(f'    run "/bin/sh" "-c" "mkdir -p /o && echo {i} > /o/{i}"\n    output "/o/{i}"\n}}\n')
PY
}
