# Sourced by the other scripts: make sure .venv exists and matches requirements.lock.
# Idempotent and fast when nothing changed (a stamp holds the lock file's hash).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
STAMP=.venv/.lock-sha256
WANT="$(sha256sum requirements.lock | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ]; then
    { .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
      .venv/bin/python -m pip install -q --disable-pip-version-check -r requirements.lock
    } 2>&1 | { grep -v "WARNING: Location" || true; }
    echo "$WANT" > "$STAMP"
fi
export PATH="$ROOT/.venv/bin:$PATH"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
