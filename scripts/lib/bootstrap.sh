# Sourced by scripts/demo.sh and scripts/test.sh: make the project's venv and install what a fresh
# machine lacks. Everything the project needs is installed here, never by hand.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${SITELOG_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"

log() { printf '\033[1m[sitelog]\033[0m %s\n' "$*" >&2; }

# The venv with sitelog installed editable plus the given extras; reinstalled when pyproject.toml
# or the extras change.
ensure_venv() {
    local extras="$1" stamp hash
    stamp="$VENV/.sitelog-installed"
    hash="$(cat "$ROOT/pyproject.toml" <(echo "$extras") | sha256sum | cut -d' ' -f1)"
    if [[ ! -x "$PY" ]]; then
        log "creating $VENV"
        python3 -m venv "$VENV"
    fi
    if [[ "$(cat "$stamp" 2>/dev/null)" != "$hash" ]]; then
        log "installing sitelog[$extras] into $VENV"
        # pip's and the build backend's chatter (setuptools' notes on editable installs) goes to
        # a log, shown only when the install fails.
        if ! { "$PY" -m pip install -q --upgrade pip && "$PY" -m pip install -q -e "$ROOT[$extras]"; } \
                >"$VENV/pip-install.log" 2>&1; then
            tail -n 40 "$VENV/pip-install.log" >&2
            log "installing sitelog failed; the whole log is $VENV/pip-install.log"
            return 1
        fi
        echo "$hash" > "$stamp"
    fi
}

# Debian packages (only those missing); `apt-get update` once per machine boot at most.
ensure_debs() {
    local missing=() pkg
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [[ ${#missing[@]} -eq 0 ]] && return 0
    log "installing Debian packages: ${missing[*]}"
    local sudo=""
    [[ "$(id -u)" -ne 0 ]] && sudo="sudo"
    if [[ ! -f /tmp/.sitelog-apt-updated ]]; then
        $sudo apt-get update -qq && touch /tmp/.sitelog-apt-updated
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
