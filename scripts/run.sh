#!/usr/bin/env bash
# Install lookgraph and run it end to end on the embedded store: generate and load a seeded demo
# store, train LookGNN and the ranker, serve the API, and show example recommendations with their explanations.
source "$(dirname "$0")/setup.sh"
export LOOKGRAPH_HOME=${LOOKGRAPH_HOME:-.lookgraph}
demo_key=${LOOKGRAPH_EXAMPLE_KEY:-demo-key-$(python -c 'import secrets; print(secrets.token_hex(12))')}
export LOOKGRAPH_API_KEYS=${LOOKGRAPH_API_KEYS:-"$demo_key:events,read"}
export LOOKGRAPH_EXAMPLE_KEY=$demo_key
port=${LOOKGRAPH_PORT:-8765}

lookgraph demo-data "$LOOKGRAPH_HOME/demo" --products 2000 --shoppers 300 --events 20000 --seed 7
lookgraph load "$LOOKGRAPH_HOME/demo" --format native
lookgraph stats --top 5
lookgraph train --epochs 10

lookgraph serve --port "$port" &
server=$!
trap 'kill $server 2>/dev/null' EXIT
python scripts/example_requests.py --url "http://127.0.0.1:$port" --wait 60
echo "API was on http://127.0.0.1:$port (OpenAPI docs at /docs)"
