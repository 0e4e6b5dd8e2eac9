# Sourced by run.sh and test.sh: create .venv with Python 3.11+ if missing, install lookgraph.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || { echo "lookgraph needs Python 3.11 or newer (set PYTHON=...)" >&2; exit 1; }
    "$PYTHON" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${LOOKGRAPH_EXTRAS:-}"
export PATH="$PWD/.venv/bin:$PATH"
