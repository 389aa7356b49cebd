#!/usr/bin/env bash
# Build and run the embedded FerretDB launcher (scripts/ferretdb), a MongoDB
# wire-compatible server on SQLite used by the tests and the demo.
#
#   scripts/ferretdb.sh build                # (re)build only if sources changed
#   scripts/ferretdb.sh start DATADIR PORT   # background server on 127.0.0.1:PORT
#   scripts/ferretdb.sh stop DATADIR
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$ROOT/scripts/ferretdb"
BIN_DIR="$ROOT/.cache/ferretdb"
BIN="$BIN_DIR/ferretdb"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
PYTHON="${PYTHON:-python3}"

die() { echo "ferretdb.sh: $*" >&2; exit 1; }

sha256() { if command -v sha256sum >/dev/null; then sha256sum; else shasum -a 256; fi; }

src_hash() { (cd "$SRC" && cat main.go go.mod go.sum | sha256 | cut -d' ' -f1); }

# True if PID is a live (non-zombie) ferretdb process; guards against killing
# an unrelated process that reused a stale pid.
is_ours() {
    local state
    state="$(ps -o stat=,comm= -p "$1" 2>/dev/null)" || return 1
    [[ "$state" != Z* && "$state" == *ferretdb* ]]
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A real MongoDB ping when pymongo is available, otherwise a TCP connect.
server_ready() {
    if "$PYTHON" -c 'import pymongo' 2>/dev/null; then
        "$PYTHON" - "$1" <<'EOF' 2>/dev/null
import sys, pymongo
c = pymongo.MongoClient("127.0.0.1", int(sys.argv[1]), serverSelectionTimeoutMS=500)
c.admin.command("ping")
EOF
    else
        port_open "$1"
    fi
}

cmd_build() {
    local hash start
    hash="$(src_hash)"
    if [[ -x "$BIN" && -f "$BIN.sha256" && "$(cat "$BIN.sha256")" == "$hash" ]]; then
        echo "ferretdb: up to date ($BIN)"
        return
    fi
    mkdir -p "$BIN_DIR"
    start=$SECONDS
    # Build to a temp name and rename, so concurrent callers never see a
    # half-written binary.
    # No symbol table or DWARF: links faster (a fresh build is most of the demo's first run).
    (cd "$SRC" && "$GO" build -ldflags="-s -w" -o "$BIN.tmp.$$" .)
    mv -f "$BIN.tmp.$$" "$BIN"
    echo "$hash" >"$BIN.sha256.tmp.$$" && mv -f "$BIN.sha256.tmp.$$" "$BIN.sha256"
    echo "ferretdb: built $BIN in $((SECONDS - start))s"
}

cmd_start() {
    [[ $# -eq 2 ]] || die "usage: start DATADIR PORT"
    local dir="$1" port="$2" pid deadline
    mkdir -p "$dir"
    dir="$(cd "$dir" && pwd)"
    if [[ -f "$dir/ferretdb.pid" ]] && is_ours "$(cat "$dir/ferretdb.pid")"; then
        die "already running (pid $(cat "$dir/ferretdb.pid")) for $dir"
    fi
    # Otherwise the readiness probe below could succeed against someone else.
    port_open "$port" && die "port $port is already in use"

    cmd_build
    "$BIN" -listen "127.0.0.1:$port" -dir "$dir" </dev/null >>"$dir/ferretdb.log" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/ferretdb.pid"

    deadline=$((SECONDS + 30))
    while ((SECONDS < deadline)); do
        # kill -0, not is_ours: right after the fork the child may not have
        # exec'd the binary yet, so its name can still be "bash".
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$dir/ferretdb.log" >&2
            rm -f "$dir/ferretdb.pid"
            die "server exited during startup"
        fi
        if server_ready "$port"; then
            echo "ferretdb: listening on 127.0.0.1:$port (pid $pid, data $dir)"
            return
        fi
        sleep 0.5
    done
    tail -n 20 "$dir/ferretdb.log" >&2
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$dir/ferretdb.pid"
    die "server not ready on port $port after 30s"
}

cmd_stop() {
    [[ $# -eq 1 ]] || die "usage: stop DATADIR"
    local pidfile="$1/ferretdb.pid" pid
    if [[ ! -f "$pidfile" ]]; then
        echo "ferretdb: not running (no $pidfile)"
        return
    fi
    pid="$(cat "$pidfile")"
    if is_ours "$pid"; then
        kill -TERM "$pid"
        for _ in $(seq 100); do
            is_ours "$pid" || break
            sleep 0.1
        done
        if is_ours "$pid"; then
            echo "ferretdb: pid $pid ignored SIGTERM for 10s, killing" >&2
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$pidfile"
    echo "ferretdb: stopped (pid $pid)"
}

case "${1:-}" in
    build) shift; cmd_build "$@" ;;
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    *) die "usage: $0 {build|start DATADIR PORT|stop DATADIR}" ;;
esac
