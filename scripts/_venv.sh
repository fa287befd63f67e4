# Sourced by the other scripts: make sure .venv exists and holds the pinned packages.
#   source scripts/_venv.sh [runtime]  the runtime set (requirements.lock) — ./scripts/run
#   source scripts/_venv.sh dev        runtime + dev tools (requirements-dev.lock) — ./scripts/test
# Idempotent and fast when nothing changed: a stamp per set holds the hash of the lock files it
# was installed from (the dev stamp covers both files, since the dev lock includes the runtime one).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
_venv_install() {  # $1 = set name, $2.. = lock files (the first is the one pip installs)
    local name="$1"; shift
    local stamp=".venv/.lock-$name.sha256" want
    want="$(cat "$@" | sha256sum | cut -d' ' -f1)"
    if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
        { .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
          .venv/bin/python -m pip install -q --disable-pip-version-check -r "$1"
        } 2>&1 | { grep -v "WARNING: Location" || true; }
        echo "$want" > "$stamp"
    fi
}
if [ "${1:-}" = dev ]; then
    _venv_install dev requirements-dev.lock requirements.lock
else
    _venv_install runtime requirements.lock
fi
export PATH="$ROOT/.venv/bin:$PATH"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
