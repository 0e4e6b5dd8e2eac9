"""The API served as `lookgraph serve` serves it, with an engine that costs nothing: every
shopper gets the same answer, read from a file. What `api_latency.py` measures against it is
the ceiling of one server process on this machine: the HTTP layer, key check, query
validation, metrics and JSON writing, and the load generator beside it.

    python benchmarks/canned_server.py ANSWER.json PORT

ANSWER.json: one answer of `GET /shoppers/{id}/recommendations` (`{"items": [...], ...}`).
Needs LOOKGRAPH_API_KEYS, as the real server does.
"""

from __future__ import annotations

import gc
import json
import sys
import tempfile
from pathlib import Path

import uvicorn
from threadpoolctl import threadpool_limits

from lookgraph.api.app import create_app
from lookgraph.recommend.explanations import Path as ReasonPath
from lookgraph.recommend.explanations import Answer, Recommendation, Step
from lookgraph.graph.sqlite_store import SQLiteGraphStore


def recommendations(answer: dict) -> list[Recommendation]:
    """The engine's dataclasses back from an answer's JSON."""
    return [Recommendation(item["product_id"], item["name"], item["category"], item["score"],
                           [ReasonPath([Step(**node) for node in path["nodes"]], path["relationships"], path["sentence"])
                            for path in item["paths"]],
                           item["exploration"], item["reason"])
            for item in answer["items"]]


def main() -> None:
    answer, port = recommendations(json.loads(Path(sys.argv[1]).read_text())), int(sys.argv[2])
    with tempfile.TemporaryDirectory() as empty:  # an empty store: no index to build
        app = create_app(store=SQLiteGraphStore(Path(empty) / "graph.db"), vectors=None)
        app.state.engine.for_shopper = lambda shopper_id, ask: Answer(answer[: ask.k], recommendation_id="canned")
        threadpool_limits(1)
        gc.freeze()
        uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
