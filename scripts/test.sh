#!/usr/bin/env bash
# Install lookgraph with its test dependencies and run the whole test suite.
# Where npm exists, also install Neo4j's Cypher parser so every cypher/*.cypher is linted.
LOOKGRAPH_EXTRAS="[test]" source "$(dirname "$0")/setup.sh"
if command -v npm >/dev/null 2>&1; then
    npm ci --prefix tools/cypher-lint --no-audit --no-fund --silent
    python tools/lint_cypher.py
else
    echo "npm not found: skipping the Cypher lint (its tests skip too)" >&2
fi
python -m pytest -q "$@"
