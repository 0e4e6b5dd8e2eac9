#!/usr/bin/env bash
# Install lookgraph and run it end to end on the embedded store with a seeded demo store.
source "$(dirname "$0")/setup.sh"
export LOOKGRAPH_HOME=${LOOKGRAPH_HOME:-.lookgraph}
lookgraph demo-data "$LOOKGRAPH_HOME/demo" --products 2000 --shoppers 300 --events 20000 --seed 7
lookgraph load "$LOOKGRAPH_HOME/demo" --format native
lookgraph stats
