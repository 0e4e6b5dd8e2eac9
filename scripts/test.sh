#!/usr/bin/env bash
# Install lookgraph with its test dependencies and run the whole test suite, on both stores.
# - Where npm exists, Neo4j's Cypher parser lints every cypher/*.cypher.
# - Where Java 17+ and Maven exist and NEO4J_URI is not set, a local Neo4j Community server
#   (scripts/neo4j.sh, a fresh database in .neo4j-test/) runs beside the tests and every Neo4j
#   test executes against it; without them the Neo4j half is skipped, and this says so.
LOOKGRAPH_EXTRAS="[test]" source "$(dirname "$0")/setup.sh"
if command -v npm >/dev/null 2>&1; then
    npm ci --prefix tools/cypher-lint --no-audit --no-fund --silent
    python tools/lint_cypher.py
else
    echo "npm not found: skipping the Cypher lint (its tests skip too)" >&2
fi

if [ -n "${NEO4J_URI:-}" ]; then
    echo "Neo4j tests run against NEO4J_URI=$NEO4J_URI (its database is emptied by the tests)" >&2
    export LOOKGRAPH_REQUIRE_NEO4J=1
elif command -v java >/dev/null 2>&1 && command -v mvn >/dev/null 2>&1; then
    export LOOKGRAPH_NEO4J_HOME="$PWD/.neo4j-test" LOOKGRAPH_NEO4J_PORT="${LOOKGRAPH_TEST_NEO4J_PORT:-17687}"
    bash scripts/neo4j.sh stop >/dev/null 2>&1 || true
    rm -rf "$LOOKGRAPH_NEO4J_HOME"
    trap 'bash scripts/neo4j.sh stop' EXIT
    eval "$(bash scripts/neo4j.sh start)"
    export NEO4J_URI LOOKGRAPH_REQUIRE_NEO4J=1
else
    neo4j_skipped="Java 17+ and Maven not found: the Neo4j half of the tests is SKIPPED (install them, or set NEO4J_URI to a Neo4j 5 server you can empty)"
    echo "$neo4j_skipped" >&2
fi
# The console's browser tests need Debian's Chromium and its driver: installed here where this
# runs as root with apt-get (as CI does); elsewhere those tests skip and say why.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing Debian's chromium and chromium-driver for the console's browser tests" >&2
        { apt-get install -y -q chromium chromium-driver >/dev/null 2>&1 \
          || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium chromium-driver >/dev/null 2>&1; }; } \
          || echo "could not install chromium: the console's browser tests skip" >&2
    else
        echo "chromium not found: the console's browser tests skip (apt-get install chromium chromium-driver)" >&2
    fi
fi
python -m pytest -q "$@"
[ -z "${neo4j_skipped:-}" ] || echo "$neo4j_skipped" >&2
