#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: venv, Debian packages the tests drive, FerretDB
# (built from the Go module proxy), ruff, then pytest. Extra arguments go to pytest.
# Set SITELOG_TEST_MONGO_URI to run against a real MongoDB instead of FerretDB.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib/bootstrap.sh"
cd "$ROOT"

ensure_venv dev
# Real peers the tests drive: a browser (HTML report, video progress), ffmpeg (test videos),
# nginx (access-log tailing), systemd-analyze (the deploy examples).
ensure_debs chromium fonts-dejavu-core ffmpeg nginx-light systemd
[[ -n "${SITELOG_TEST_MONGO_URI:-}" ]] || scripts/ferretdb.sh build

log "ruff"
"$VENV/bin/ruff" check .
log "pytest"
exec "$PY" -m pytest "$@"
