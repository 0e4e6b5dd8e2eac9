#!/usr/bin/env bash
# A local Neo4j Community server (the 5.26 LTS line, from Maven Central) for development and tests.
#
#   scripts/neo4j.sh start [--home DIR] [--port N]   build if needed, start, wait for Bolt, print NEO4J_URI
#   scripts/neo4j.sh browser [--home DIR] [--port N] start if needed, print (and open) the Neo4j Browser's address
#   scripts/neo4j.sh stop | status [--home DIR]
#   scripts/neo4j.sh admin [--home DIR] ARGS...     neo4j-admin of the same release (e.g. database import full)
#   scripts/neo4j.sh build                          fetch the jars (cached in ~/.m2) and compile the launcher
#
# The server carries Graph Data Science (open GDS 2.13: projections, FastRP, kNN) and the Neo4j
# Browser, on HTTP at the Bolt port minus 213 (7474 beside 7687) or LOOKGRAPH_NEO4J_HTTP_PORT, styled
# by lookgraph (tools/neo4j/src/main/resources/browser/lookgraph.grass: a shopper by id, a product by name).
# Defaults: home .neo4j/ (data, logs, server.log, server.pid), port 7687, or LOOKGRAPH_NEO4J_HOME and
# LOOKGRAPH_NEO4J_PORT. Memory: LOOKGRAPH_NEO4J_HEAP (default 2g), LOOKGRAPH_NEO4J_PAGECACHE_MB
# (default 512). It listens on 127.0.0.1 only, without authentication: for production use the
# docker-compose.yml server, which has a password. Needs Java 17+ and Maven.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tool="$root/tools/neo4j"
home="${LOOKGRAPH_NEO4J_HOME:-$root/.neo4j}"
port="${LOOKGRAPH_NEO4J_PORT:-7687}"

die() { echo "neo4j.sh: $*" >&2; exit 1; }

need_java() {
    command -v java >/dev/null 2>&1 || die "java not found: install Java 17 or newer (e.g. apt-get install openjdk-17-jre-headless)"
    command -v mvn >/dev/null 2>&1 || die "mvn not found: install Maven (e.g. apt-get install maven)"
    local major
    major=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
    [ "${major%%.*}" -ge 17 ] 2>/dev/null || die "Neo4j 5.26 needs Java 17 or newer; 'java' here is ${major:-unknown}"
}

build() {
    need_java
    local classpath="$tool/target/classpath.txt"
    if [ ! -s "$classpath" ] || [ "$tool/pom.xml" -nt "$classpath" ] \
        || [ -n "$(find "$tool/src" -newer "$classpath" -print -quit)" ]; then
        echo "building the Neo4j launcher (Maven fetches Neo4j once, then uses ~/.m2)" >&2
        mvn -q -B -f "$tool/pom.xml" package >&2 || die "the Maven build of tools/neo4j failed (see above)"
    fi
}

classpath() { echo "$tool/target/lookgraph-neo4j-server-1.jar:$(cat "$tool/target/classpath.txt")"; }

# As Neo4j's own launcher: a fixed heap, and the module openings its page cache and Bolt server use
# (without them the page cache falls back to a slower path and says so in the debug log).
jvm_options() {
    local heap="${LOOKGRAPH_NEO4J_HEAP:-2g}"
    echo "-Xms$heap -Xmx$heap -XX:+UseG1GC --add-opens=java.base/java.nio=ALL-UNNAMED" \
         "--add-opens=java.base/java.io=ALL-UNNAMED --add-opens=java.base/sun.nio.ch=ALL-UNNAMED" \
         "--add-opens=java.base/java.lang=ALL-UNNAMED --enable-native-access=ALL-UNNAMED"
}

bolt_answers() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

running_pid() {
    local pid
    [ -f "$home/server.pid" ] || return 1
    pid=$(cat "$home/server.pid")
    kill -0 "$pid" 2>/dev/null && echo "$pid"
}

start() {
    build
    if pid=$(running_pid); then
        echo "export NEO4J_URI=bolt://127.0.0.1:$(cat "$home/server.port")"
        echo "export LOOKGRAPH_NEO4J_BROWSER=http://127.0.0.1:$(cat "$home/server.http_port" 2>/dev/null || http_port)/browser/"
        echo "Neo4j already running (pid $pid, home $home)" >&2
        return
    fi
    ! bolt_answers || die "port $port is in use (another Neo4j?): choose another with --port or LOOKGRAPH_NEO4J_PORT"
    ! (exec 3<>"/dev/tcp/127.0.0.1/$(http_port)") 2>/dev/null \
        || die "port $(http_port) (the Browser's) is in use: choose another with LOOKGRAPH_NEO4J_HTTP_PORT"
    mkdir -p "$home"
    echo "$port" > "$home/server.port"
    local http
    http=$(http_port)
    echo "$http" > "$home/server.http_port"
    # setsid: the server outlives this script and is stopped only by `stop` (or its own pid).
    setsid java $(jvm_options) "-Dlookgraph.plugins=$tool/target/plugins" -cp "$(classpath)" \
        lookgraph.neo4j.Server "$home" "$port" "${LOOKGRAPH_NEO4J_PAGECACHE_MB:-512}" "$http" \
        "style http://127.0.0.1:$http/browser/lookgraph.grass" \
        > "$home/server.log" 2>&1 < /dev/null &
    echo $! > "$home/server.pid"
    for _ in $(seq 240); do
        if grep -q "lookgraph-neo4j ready" "$home/server.log" 2>/dev/null && bolt_answers; then
            echo "export NEO4J_URI=bolt://127.0.0.1:$port"
            echo "export LOOKGRAPH_NEO4J_BROWSER=http://127.0.0.1:$http/browser/"
            echo "Neo4j $(neo4j_version) ready on bolt://127.0.0.1:$port, the Browser on http://127.0.0.1:$http/browser/" \
                 "(home $home, log $home/server.log)" >&2
            return
        fi
        running_pid >/dev/null || { tail -20 "$home/server.log" >&2; die "Neo4j exited while starting (log above)"; }
        sleep 0.5
    done
    stop
    die "Neo4j did not answer within 120 s (log: $home/server.log)"
}

http_port() { echo "${LOOKGRAPH_NEO4J_HTTP_PORT:-$((port - 213))}"; }

browser() {
    start >/dev/null
    local bolt http url
    bolt=$(cat "$home/server.port")
    http=$(cat "$home/server.http_port")
    url="http://127.0.0.1:$http/browser/?dbms=bolt://127.0.0.1:$bolt&preselectAuthMethod=NO_AUTH"
    curl -fsS -o /dev/null "http://127.0.0.1:$http/browser/" 2>/dev/null \
        || die "the Neo4j Browser does not answer at http://127.0.0.1:$http/browser/ (log: $home/server.log)"
    echo "$url"
    echo "the Neo4j Browser: $url (no password: the server listens on 127.0.0.1 only);" \
         "the favourites to import are in cypher/explore/" >&2
    if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && command -v xdg-open >/dev/null 2>&1; then
        xdg-open "$url" >/dev/null 2>&1 || true
    fi
}

stop() {
    local pid
    if ! pid=$(running_pid); then
        rm -f "$home/server.pid"
        echo "Neo4j is not running (home $home)" >&2
        return
    fi
    kill -TERM "$pid"  # the launcher's shutdown hook closes the store cleanly
    for _ in $(seq 120); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$home/server.pid"; echo "Neo4j stopped" >&2; return; }
        sleep 0.5
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$home/server.pid"
    echo "Neo4j did not stop within 60 s and was killed" >&2
}

status() {
    if pid=$(running_pid); then
        echo "running: pid $pid, bolt://127.0.0.1:$(cat "$home/server.port"), home $home"
    else
        echo "not running (home $home)"
        return 3
    fi
}

neo4j_version() { sed -n 's:.*<neo4j.version>\(.*\)</neo4j.version>.*:\1:p' "$tool/pom.xml"; }

admin() {
    build
    mkdir -p "$home/conf"
    touch "$home/conf/neo4j.conf"
    NEO4J_HOME="$home" NEO4J_CONF="$home/conf" java $(jvm_options) -cp "$(classpath)" \
        org.neo4j.cli.AdminTool "$@"
}

command="${1:-}"
[ $# -gt 0 ] && shift
while [ $# -gt 0 ]; do
    case "$1" in
        --home) home="$(mkdir -p "$2" && cd "$2" && pwd)"; shift 2 ;;
        --port) port="$2"; shift 2 ;;
        *) break ;;
    esac
done
case "$command" in
    start) start ;;
    browser) browser ;;
    stop) stop ;;
    status) status ;;
    build) build ;;
    admin) admin "$@" ;;
    version) neo4j_version ;;
    *) die "usage: scripts/neo4j.sh start|browser|stop|status|build|version [--home DIR] [--port N] | admin [--home DIR] ARGS..." ;;
esac
