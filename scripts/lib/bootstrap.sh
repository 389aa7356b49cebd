# Sourced by scripts/demo.sh and scripts/test.sh: make the project's venv and install what a fresh
# machine lacks. Everything the project needs is installed here, never by hand.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${SITELOG_VENV:-$ROOT/.venv}"
PY="$VENV/bin/python"

log() { printf '\033[1m[sitelog]\033[0m %s\n' "$*" >&2; }

# The sources setup.py compiles (pyproject's [tool.sitelog] compiled), as paths in the tree.
compiled_sources() {
    python3 - "$ROOT" <<'PY'
import sys, tomllib
from pathlib import Path
root = Path(sys.argv[1])
conf = tomllib.loads((root / "pyproject.toml").read_text())
dirs = conf["tool"]["setuptools"]["package-dir"]
for module in conf["tool"]["sitelog"]["compiled"]:
    package = max((p for p in dirs if module.startswith(p + ".")), key=len)
    print(root / dirs[package] / Path(*module[len(package) + 1:].split(".")).with_suffix(".py"))
PY
}

# The venv with sitelog installed editable plus the given extras; reinstalled when pyproject,
# setup.py or a compiled module's source changes (an editable install runs compiled copies).
ensure_venv() {
    local extras="$1" stamp hash
    stamp="$VENV/.sitelog-installed"
    hash="$(cat "$ROOT/pyproject.toml" "$ROOT/setup.py" $(compiled_sources) <(echo "$extras") \
            | sha256sum | cut -d' ' -f1)"
    if [[ ! -x "$PY" ]]; then
        log "creating $VENV"
        python3 -m venv "$VENV"
    fi
    if [[ "$(cat "$stamp" 2>/dev/null)" != "$hash" ]]; then
        log "installing sitelog[$extras] into $VENV"
        "$PY" -m pip install -q --upgrade pip
        "$PY" -m pip install -q -e "$ROOT[$extras]"
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
