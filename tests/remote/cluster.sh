#!/usr/bin/env bash
# A private REAPI cluster for the remote-execution tests: BuildGrid 0.4.x
# (tests/remote/server.yml) on 127.0.0.1 and the PostgreSQL its scheduler
# needs, all under one directory. See tests/remote/README.md.
#
#   cluster.sh install DIR       venv with BuildGrid in DIR/venv (skipped when there)
#   cluster.sh start DIR PORT    PostgreSQL + BuildGrid; prints grpc://127.0.0.1:PORT
#   cluster.sh stop DIR          stops both; nothing is left running
#   cluster.sh status DIR        exit 0 when the server answers, 3 when stopped
#
# PostgreSQL's binaries are taken from $PG_BINDIR, else from PATH, else from
# the newest /usr/lib/postgresql/*/bin (Debian's `postgresql` package).
# initdb refuses root: as root, the database runs as user `postgres`.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
config="$here/server.yml"
instance=main
buildgrid_spec='buildgrid>=0.4,<0.5'
wait_seconds=60

die() { echo "cluster.sh: $*" >&2; exit 1; }
say() { echo "cluster.sh: $*" >&2; }

usage() {
    sed -n '6,10p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# The absolute path of DIR, created if missing.
absdir() {
    mkdir -p "$1" || die "cannot create $1"
    (cd "$1" && pwd)
}

# The last lines of a log file, indented, for error messages.
tail_of() {
    if [ -s "$1" ]; then
        echo "--- last lines of $1:" >&2
        tail -n "${2:-30}" "$1" | sed 's/^/    /' >&2
    else
        echo "--- $1 is empty or missing" >&2
    fi
}

venv_ok() {
    [ -x "$1/venv/bin/bgd" ] &&
        "$1/venv/bin/python" - 2>/dev/null <<'EOF'
import importlib.metadata as m, psycopg2  # noqa: F401
v = m.version("buildgrid").split(".")
raise SystemExit(0 if v[:2] == ["0", "4"] else 1)
EOF
}

cmd_install() {
    local dir
    dir=$(absdir "$1")
    if venv_ok "$dir"; then
        say "BuildGrid $("$dir/venv/bin/python" -c 'import importlib.metadata as m; print(m.version("buildgrid"))') already installed in $dir/venv"
        return 0
    fi
    command -v python3 >/dev/null || die "python3 not found (Debian: apt-get install python3-venv)"
    say "creating $dir/venv (log: $dir/install.log)"
    if ! {
        python3 -m venv --clear "$dir/venv" &&
            "$dir/venv/bin/pip" install --disable-pip-version-check "$buildgrid_spec" psycopg2-binary
    } >"$dir/install.log" 2>&1; then
        tail_of "$dir/install.log"
        die "could not install BuildGrid into $dir/venv (python3 -m venv needs Debian's python3-venv)"
    fi
    venv_ok "$dir" || { tail_of "$dir/install.log"; die "$dir/venv has no working BuildGrid 0.4 after install"; }
    say "installed BuildGrid $("$dir/venv/bin/python" -c 'import importlib.metadata as m; print(m.version("buildgrid"))') in $dir/venv"
}

pg_bindir() {
    if [ -n "${PG_BINDIR:-}" ]; then
        [ -x "$PG_BINDIR/initdb" ] || die "PG_BINDIR=$PG_BINDIR has no initdb"
        echo "$PG_BINDIR"
    elif command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        dirname "$(readlink -f "$(command -v pg_ctl)")"
    else
        local d
        d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
        [ -n "$d" ] && [ -x "$d/initdb" ] ||
            die "PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql, or set PG_BINDIR"
        echo "$d"
    fi
}

# Runs a PostgreSQL server command as the owner of the cluster.
as_pg() {
    if [ "$(id -u)" = 0 ]; then
        (cd / && runuser -u postgres -- "$@")
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Whether something listens on the port. SO_REUSEADDR, as gRPC servers
# bind: connections of a server just stopped (TIME_WAIT) do not count.
port_in_use() {
    python3 - "$1" <<'EOF'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(0)
sys.exit(1)
EOF
}

# The pid in DIR/server.pid when that process is alive and is a bgd server.
server_pid() {
    local pid
    [ -f "$1/server.pid" ] || return 1
    pid=$(cat "$1/server.pid")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'bgd server start' || return 1
    echo "$pid"
}

# DIR/pg, resolved: where user postgres cannot reach DIR (a clone under
# /root, say), DIR/pg is a link to a directory under /tmp.
pg_home() {
    readlink -f "$1/pg"
}

pg_running() {
    local pg
    pg=$(pg_home "$1")
    [ -f "$pg/data/PG_VERSION" ] && as_pg "$(pg_bindir)/pg_ctl" -D "$pg/data" status >/dev/null 2>&1
}

# The server answers, and its scheduler reaches its database (capabilities
# alone answers before, and without, a working database).
answers() {
    "$1/venv/bin/bgd" capabilities --remote "http://127.0.0.1:$2" --instance-name "$instance" >/dev/null 2>&1 &&
        "$1/venv/bin/bgd" operation --remote "http://127.0.0.1:$2" --instance-name "$instance" list >/dev/null 2>&1
}

start_pg() {
    local dir=$1 bin pgport
    bin=$(pg_bindir)
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || die "running as root, but there is no user postgres to own the database (apt-get install postgresql)"
    fi
    if [ ! -e "$dir/pg" ]; then
        if [ "$(id -u)" = 0 ] && ! as_pg test -x "$dir"; then
            ln -s "$(mktemp -d /tmp/bootstrap-remote-pg.XXXXXX)" "$dir/pg"
            say "user postgres cannot reach $dir: its database lives in $(pg_home "$dir")"
        else
            mkdir "$dir/pg"
        fi
    fi
    local pg
    pg=$(pg_home "$dir")
    [ -d "$pg" ] || die "$dir/pg points to $pg, which is gone: remove $dir/pg and start again"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$pg"; fi
    as_pg test -w "$pg" -a -x "$pg" ||
        die "user postgres cannot write $pg: every directory above it must be searchable by postgres"

    if [ ! -f "$pg/data/PG_VERSION" ]; then
        say "initdb $pg/data"
        if ! as_pg "$bin/initdb" -D "$pg/data" -U bgd -A trust -E UTF8 --locale=C --no-sync \
            >"$pg/initdb.log" 2>&1; then
            tail_of "$pg/initdb.log"
            die "initdb failed"
        fi
        # TCP on 127.0.0.1 only, no Unix socket (DIR may be too long a path
        # for one); a throwaway database need not survive a crash.
        as_pg tee -a "$pg/data/postgresql.conf" >/dev/null <<'EOF'

# cluster.sh
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
EOF
    fi

    if pg_running "$dir"; then
        pgport=$(cat "$pg/port")
        say "PostgreSQL already running on 127.0.0.1:$pgport"
    else
        pgport=$(free_port)
        echo "$pgport" >"$pg/port"
        if ! as_pg "$bin/pg_ctl" -D "$pg/data" -l "$pg/pg.log" -w -t "$wait_seconds" \
            -o "-p $pgport" start >"$pg/pg_ctl.log" 2>&1; then
            tail_of "$pg/pg_ctl.log" 10
            tail_of "$pg/pg.log"
            die "PostgreSQL did not start"
        fi
        say "PostgreSQL running on 127.0.0.1:$pgport"
    fi

    # A fresh database each time the server starts: the CAS lives in the
    # server's memory, so jobs queued by an earlier server would point at
    # blobs that are gone.
    local dropdb=dropdb createdb=createdb
    if [ -x "$bin/createdb" ]; then dropdb=$bin/dropdb; createdb=$bin/createdb; fi
    PGOPTIONS='-c client_min_messages=warning' "$dropdb" -h 127.0.0.1 -p "$pgport" -U bgd --if-exists --force bgd >&2 || die "dropdb bgd failed"
    "$createdb" -h 127.0.0.1 -p "$pgport" -U bgd bgd >&2 || die "createdb bgd failed"
    echo "$pgport"
}

cmd_start() {
    local dir port pid pgport conn
    dir=$(absdir "$1")
    port=$2
    [[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -gt 0 ] && [ "$port" -lt 65536 ] || die "bad port: $port"
    venv_ok "$dir" || die "no BuildGrid in $dir/venv: run '$0 install $dir' first"

    if pid=$(server_pid "$dir"); then
        local running
        running=$(cat "$dir/port" 2>/dev/null || echo "?")
        [ "$running" = "$port" ] ||
            die "a server from $dir is already running on port $running (pid $pid); stop it first"
        if answers "$dir" "$port"; then
            say "already running (pid $pid)"
            echo "grpc://127.0.0.1:$port"
            return 0
        fi
        die "server pid $pid from $dir is running but does not answer on port $port; '$0 stop $dir' and start again"
    fi
    port_in_use "$port" && die "port $port on 127.0.0.1 is already in use by another process"

    pgport=$(start_pg "$dir")
    conn="postgresql+psycopg2://bgd@127.0.0.1:$pgport/bgd"
    if ! "$dir/venv/bin/bgd" migrate apply "$conn" >"$dir/migrate.log" 2>&1; then
        tail_of "$dir/migrate.log"
        die "bgd migrate apply $conn failed"
    fi
    if ! BGD_PORT=$port BGD_PG_PORT=$pgport "$dir/venv/bin/bgd" server lint "$config" >"$dir/lint.log" 2>&1; then
        tail_of "$dir/lint.log" 15
        die "$config does not pass bgd server lint"
    fi

    echo "$port" >"$dir/port"
    # Its own session: a Ctrl-C in the starting terminal does not reach it.
    BGD_PORT=$port BGD_PG_PORT=$pgport \
        setsid "$dir/venv/bin/bgd" server start -v "$config" >"$dir/server.log" 2>&1 </dev/null &
    echo $! >"$dir/server.pid"

    local deadline=$((SECONDS + wait_seconds))
    until answers "$dir" "$port"; do
        if ! kill -0 "$(cat "$dir/server.pid")" 2>/dev/null; then
            tail_of "$dir/server.log"
            cmd_stop "$dir"
            die "the BuildGrid server exited during start-up (log: $dir/server.log)"
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail_of "$dir/server.log"
            cmd_stop "$dir"
            die "the BuildGrid server did not answer on 127.0.0.1:$port within ${wait_seconds}s (log: $dir/server.log)"
        fi
        sleep 1
    done
    say "BuildGrid running (pid $(cat "$dir/server.pid"), log $dir/server.log, instance '$instance')"
    echo "grpc://127.0.0.1:$port"
}

cmd_stop() {
    local dir=$1 pid
    [ -d "$dir" ] || die "no cluster directory $dir"
    dir=$(cd "$dir" && pwd)
    if pid=$(server_pid "$dir"); then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        if kill -0 "$pid" 2>/dev/null; then
            say "server pid $pid ignored SIGTERM for 20s: killing it"
            kill -KILL "$pid" 2>/dev/null || true
            for _ in $(seq 25); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        fi
        say "BuildGrid server (pid $pid) stopped"
    else
        say "BuildGrid server not running"
    fi
    rm -f "$dir/server.pid"
    if pg_running "$dir"; then
        local pg
        pg=$(pg_home "$dir")
        as_pg "$(pg_bindir)/pg_ctl" -D "$pg/data" -m fast -w -t "$wait_seconds" stop >/dev/null ||
            { tail_of "$pg/pg.log"; die "PostgreSQL in $pg/data did not stop"; }
        say "PostgreSQL stopped"
    else
        say "PostgreSQL not running"
    fi
}

cmd_status() {
    local dir=$1 pid port rc=0
    [ -d "$dir" ] || { echo "no cluster in $dir"; return 3; }
    dir=$(cd "$dir" && pwd)
    if pid=$(server_pid "$dir"); then
        port=$(cat "$dir/port")
        if answers "$dir" "$port"; then
            echo "BuildGrid: running, pid $pid, grpc://127.0.0.1:$port instance $instance"
        else
            echo "BuildGrid: pid $pid alive but not answering on 127.0.0.1:$port"
            rc=1
        fi
    else
        echo "BuildGrid: stopped"
        rc=3
    fi
    if pg_running "$dir"; then
        echo "PostgreSQL: running on 127.0.0.1:$(cat "$dir/pg/port"), data $(pg_home "$dir")/data"
    else
        echo "PostgreSQL: stopped"
        [ "$rc" = 0 ] && rc=1
    fi
    return "$rc"
}

[ $# -ge 1 ] || usage
case "$1" in
install) [ $# = 2 ] || usage; cmd_install "$2" ;;
start) [ $# = 3 ] || usage; cmd_start "$2" "$3" ;;
stop) [ $# = 2 ] || usage; cmd_stop "$2" ;;
status) [ $# = 2 ] || usage; cmd_status "$2" ;;
*) usage ;;
esac
