#!/usr/bin/env bash
# Build the two seed root filesystems that the project's tests run build steps on.
#
# What it does
#   tests/seeds/build.sh OUT_DIR
# produces, from Debian packages:
#   OUT_DIR/busybox/      a minimal rootfs made from Debian's busybox-static package:
#                         bin/busybox plus a relative symlink for every applet that
#                         `busybox --list-full` prints, empty tmp/ etc/ dev/ proc/ root/,
#                         and an etc/passwd and etc/group that know only root.
#   OUT_DIR/debian/       a `debootstrap --variant=minbase` of the host's Debian release,
#                         fetched from the mirror the host's apt is already configured
#                         with (no mirror is named in this script), without the apt
#                         package cache and package lists.
#   OUT_DIR/<name>.tar    an uncompressed tarball of each rootfs (--numeric-owner, paths
#                         relative to the rootfs root), suitable for `docker import`.
#   OUT_DIR/<name>.stamp  the sha256 of this script at the time the seed was built.
#
# Why two different userlands
#   The engine runs every build step on two independent "seed distros" and compares the
#   outputs: a step whose result depends on the seed it ran on is not reproducible. For
#   that comparison to mean anything the seeds have to really differ, so one is a single
#   static busybox binary (its own shell, its own coreutils, no libc on disk) and the
#   other is a full glibc/GNU-coreutils/dash Debian base system.
#
# Caching
#   Each seed is built in a hidden temporary directory next to its final place
#   (OUT_DIR/.<name>.tmp.XXXXXX) and renamed into place only once the rootfs and its
#   tarball are complete; the stamp is written last. A seed whose stamp holds this
#   script's current sha256 and whose directory and tarball exist is skipped, so repeated
#   test runs are fast, and editing this script rebuilds both seeds. A failed or
#   interrupted build leaves nothing under a final name (and no stamp), and its leftover
#   temporary directory is removed on exit or by the next run. Concurrent runs on the
#   same OUT_DIR are serialised with a lock file.
#
# How the tests call it
#   tests/seeds/build.sh target/test-seeds
# It must run as root (debootstrap, chroot, device nodes, file ownership). One line per
# seed goes to stderr: built or cached, and how long it took.
set -euo pipefail

die() { echo "seeds: $*" >&2; exit 1; }

[[ $# -eq 1 ]] || die "usage: $0 OUT_DIR"
[[ $(id -u) -eq 0 ]] || die "must run as root"

export LC_ALL=C
export PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:${PATH:-}"

SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")
SCRIPT_SHA=$(sha256sum "$SCRIPT" | cut -d' ' -f1)

mkdir -p "$1"
OUT=$(readlink -f "$1")

# Serialise concurrent runs (tests may start several at once).
exec 9>"$OUT/.build.lock"
flock 9

# ---------------------------------------------------------------------------
# Temporary directories, background jobs and cleanup.

CUR_TMP=""   # temporary build directory of the seed being built, if any
CUR_PID=""   # process group of the long-running command in progress, if any

# Unmount everything mounted at or below $1 (deepest first), then remove $1 without
# crossing into any file system that could not be unmounted.
remove_tree() {
    local dir=$1 m
    [[ -e $dir ]] || return 0
    while read -r m; do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done < <(awk -v d="$dir" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/self/mounts | sort -r)
    rm -rf --one-file-system -- "$dir"
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM HUP
    if [[ -n $CUR_PID ]]; then
        kill -TERM -- "-$CUR_PID" 2>/dev/null || true
        wait "$CUR_PID" 2>/dev/null || true
    fi
    if [[ -n $CUR_TMP ]]; then
        remove_tree "$CUR_TMP" || echo "seeds: could not remove $CUR_TMP" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# Run a command in its own process group and wait for it, so that a signal to this
# script is handled at once (bash defers traps while a foreground command runs) and the
# whole command tree is stopped by cleanup. `run -C DIR cmd...` runs it in DIR.
run() {
    local dir=.
    if [[ $1 == -C ]]; then dir=$2; shift 2; fi
    setsid bash -c 'cd "$1" || exit; shift; exec "$@"' run "$dir" "$@" &
    CUR_PID=$!
    local rc=0
    wait "$CUR_PID" || rc=$?
    CUR_PID=""
    return "$rc"
}

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1fs", b - a }'; }

# ---------------------------------------------------------------------------
# Host configuration.

# The host's Debian codename, from /etc/os-release.
host_codename() {
    local c
    c=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    [[ -n $c ]] || die "no VERSION_CODENAME in /etc/os-release"
    echo "$c"
}

# The URI of the host's main Debian archive, from its apt sources (one-line .list format
# and deb822 .sources format, in the order apt reads them). The first `deb` entry whose
# suite is exactly the release codename wins (that skips -security, -updates and
# -backports entries); failing that, the first `deb` entry at all. Only http, https and
# file URIs are considered, since those are what debootstrap can fetch from.
host_mirror() {
    local codename=$1 files=() f uri
    if [[ -f /etc/apt/sources.list ]]; then files+=(/etc/apt/sources.list); fi
    # apt reads sources.list.d in name order whatever the format; the glob sorts by name.
    for f in /etc/apt/sources.list.d/*; do
        case $f in *.list | *.sources) if [[ -f $f ]]; then files+=("$f"); fi ;; esac
    done
    [[ ${#files[@]} -gt 0 ]] || die "no apt sources in /etc/apt"
    # Each format prints "PRIORITY URI" per deb entry: 0 if its suite is the codename.
    uri=$(
        for f in "${files[@]}"; do
            case $f in
            *.sources)
                awk -v cn="$codename" '
                    function flush(   n, i, u, s, isdeb, main) {
                        if (types == "" || uris == "" || tolower(enabled) == "no") { reset(); return }
                        n = split(types, t, /[ \t]+/); isdeb = 0
                        for (i = 1; i <= n; i++) if (t[i] == "deb") isdeb = 1
                        if (!isdeb) { reset(); return }
                        n = split(suites, s, /[ \t]+/); main = 1
                        for (i = 1; i <= n; i++) if (s[i] == cn) main = 0
                        split(uris, u, /[ \t]+/)
                        print main, u[1]
                        reset()
                    }
                    function reset() { types = ""; uris = ""; suites = ""; enabled = ""; field = "" }
                    function val(line) { sub(/^[^:]*:[ \t]*/, "", line); sub(/[ \t]+$/, "", line); return line }
                    BEGIN { reset() }
                    /^#/ { next }
                    /^[ \t]*$/ { flush(); next }
                    /^[ \t]/ { v = $0; gsub(/^[ \t]+|[ \t]+$/, "", v)
                               if (field == "uris") uris = uris " " v
                               else if (field == "suites") suites = suites " " v
                               else if (field == "types") types = types " " v
                               next }
                    { key = tolower($0); sub(/:.*/, "", key); field = key
                      if (key == "types") types = val($0)
                      else if (key == "uris") uris = val($0)
                      else if (key == "suites") suites = val($0)
                      else if (key == "enabled") enabled = val($0) }
                    END { flush() }
                ' "$f"
                ;;
            *)
                awk -v cn="$codename" '
                    { sub(/#.*/, "") }
                    $1 != "deb" { next }
                    { i = 2
                      if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                      if (i + 1 > NF) next
                      print ($(i + 1) == cn ? 0 : 1), $i }
                ' "$f"
                ;;
            esac
        done | awk '$2 ~ /^(https?|file):/' | sort -s -k1,1n | awk 'NR == 1 { print $2 }'
    )
    [[ -n $uri ]] || die "no usable deb entry in the host's apt sources"
    echo "${uri%/}"
}

# ---------------------------------------------------------------------------
# Seed builders. Each gets an empty directory ROOT to fill.

build_busybox() {
    local root=$1 dl="$CUR_TMP/download" deb bin applet dir up depth i
    mkdir -p "$dl"
    # apt downloads as its unprivileged _apt user when that user can write the target
    # directory (otherwise it warns and downloads as root).
    chmod 0755 "$CUR_TMP" "$dl"
    if id -u _apt >/dev/null 2>&1; then chown _apt "$dl"; fi
    if ! run -C "$dl" apt-get download -q busybox-static >&2; then
        echo "seeds: apt-get download failed, updating package lists and retrying" >&2
        run apt-get update -q >&2
        run -C "$dl" apt-get download -q busybox-static >&2
    fi
    deb=$(find "$dl" -maxdepth 1 -name 'busybox-static_*.deb' -print -quit)
    [[ -n $deb ]] || die "apt-get download produced no busybox-static .deb"
    mkdir -p "$dl/x"
    dpkg-deb -x "$deb" "$dl/x"
    bin=$(find "$dl/x" -type f -path '*/bin/busybox' -print -quit)
    [[ -n $bin ]] || die "no bin/busybox in $deb"

    mkdir -p "$root/bin"
    install -m 0755 "$bin" "$root/bin/busybox"
    "$root/bin/busybox" --list-full > "$dl/applets" \
        || die "this busybox has no --list-full"
    while IFS= read -r applet; do
        applet=${applet#/}
        [[ -n $applet && $applet != bin/busybox ]] || continue
        if [[ -e $root/$applet || -L $root/$applet ]]; then continue; fi
        dir=$(dirname "$applet")
        if [[ $dir == bin ]]; then
            up=busybox
        else
            up=bin/busybox
            if [[ $dir != . ]]; then
                depth=$(awk -F/ '{ print NF }' <<<"$dir")
                for ((i = 0; i < depth; i++)); do up="../$up"; done
            fi
            mkdir -p "$root/$dir"
        fi
        ln -s "$up" "$root/$applet"
    done < "$dl/applets"

    mkdir -p "$root/tmp" "$root/etc" "$root/dev" "$root/proc" "$root/root"
    chmod 1777 "$root/tmp"
    chmod 0700 "$root/root"
    echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
    echo 'root:x:0:' > "$root/etc/group"
    chmod 0644 "$root/etc/passwd" "$root/etc/group"
    rm -rf "$dl"
}

build_debian() {
    local root=$1 codename mirror
    codename=$(host_codename)
    mirror=$(host_mirror "$codename")
    if ! command -v debootstrap >/dev/null; then
        echo "seeds: installing debootstrap" >&2
        if ! run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >&2; then
            run apt-get update -q >&2
            run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap >&2
        fi
    fi
    echo "seeds: debootstrap --variant=minbase $codename from $mirror" >&2
    run debootstrap --variant=minbase "$codename" "$root" "$mirror" >&2
    rm -f "$root"/var/cache/apt/archives/*.deb
    rm -rf "$root"/var/lib/apt/lists/*
}

# ---------------------------------------------------------------------------
# Driver.

seed() {
    local name=$1 start final="$OUT/$1" tar="$OUT/$1.tar" stamp="$OUT/$1.stamp" old
    start=$(now)
    if [[ -f $stamp && $(cat "$stamp") == "$SCRIPT_SHA" && -d $final && -f $tar ]]; then
        echo "seed $name: cached ($(elapsed "$start"))" >&2
        return
    fi

    # Leftovers of earlier interrupted runs (we hold the lock, so nobody else owns them).
    for old in "$OUT/.$name.tmp."* "$OUT/.$name.old."*; do
        if [[ -e $old ]]; then remove_tree "$old"; fi
    done

    CUR_TMP=$(mktemp -d "$OUT/.$name.tmp.XXXXXX")
    mkdir "$CUR_TMP/root"
    chmod 0755 "$CUR_TMP/root"
    "build_$name" "$CUR_TMP/root"
    run tar --create --file="$CUR_TMP/seed.tar" --numeric-owner --one-file-system \
        --sort=name --directory="$CUR_TMP/root" .

    # Swap into place: drop the stamp first so a half-finished swap is never "cached".
    rm -f "$stamp"
    if [[ -e $final || -L $final ]]; then
        old=$(mktemp -d "$OUT/.$name.old.XXXXXX")
        mv "$final" "$old/"
        remove_tree "$old"
    fi
    mv "$CUR_TMP/root" "$final"
    mv -f "$CUR_TMP/seed.tar" "$tar"
    echo "$SCRIPT_SHA" > "$CUR_TMP/stamp"
    mv -f "$CUR_TMP/stamp" "$stamp"
    remove_tree "$CUR_TMP"
    CUR_TMP=""
    echo "seed $name: built ($(elapsed "$start"))" >&2
}

seed busybox
seed debian
