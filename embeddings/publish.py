"""`lookgraph train`: export the store, train LookGNN, save the artifact, write vectors back.

A share of the looks (grouped by the session they were found in) is held out of training to
drive early stopping and to choose the content weight; stores without looks train for the
configured number of epochs.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from ..graph.neo4j_store import VECTOR_INDEX_CONFIG
from ..graph.store import GraphStore
from .evaluate import make_split
from .export import export_graph
from .train import TrainConfig, TrainResult, config_dict, train

NEO4J_VECTOR_DIMENSIONS = VECTOR_INDEX_CONFIG["vector.dimensions"]
"""What `cypher/schema.cypher` declares for the `product_embedding` vector index."""


def train_and_publish(store: GraphStore, home: Path, config: TrainConfig, validation_share: float = 0.1,
                      progress: bool = False) -> tuple[Path, TrainResult]:
    if store.name == "neo4j" and config.dim != NEO4J_VECTOR_DIMENSIONS:
        raise ValueError(f"--dim must be {NEO4J_VECTOR_DIMENSIONS} on Neo4j: the product_embedding vector index "
                         "in cypher/schema.cypher is declared with that many dimensions")
    graph = export_graph(store)
    if not graph.count("product"):
        raise ValueError("the store has no products; load data first (`lookgraph load`)")
    split = make_split(graph, config.seed, test_share=0.0, validation_share=validation_share, shopper_share=0.0)
    result = train(split.train, config, split.validation, progress=progress)

    version = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + graph.fingerprint[:8]
    vectors = result.vectors
    epochs = result.history
    vectors.meta |= {
        "version": version,
        "fingerprint": graph.fingerprint,
        "config": config_dict(config),
        "nodes": {t: graph.count(t) for t in graph.ids},
        "validation_looks": len(split.validation),
        "metrics": {"val_ndcg@10": max((e.get("val_ndcg@10", 0.0) for e in epochs), default=0.0),
                    "epochs": len(epochs),
                    "seconds_per_epoch": float(np.mean([e["seconds"] for e in epochs])) if epochs else 0.0,
                    "train_seconds": result.seconds},
        "history": epochs,
    }
    folder = vectors.save(home / "models" / version)
    torch.save(result.model.state_dict(), folder / "checkpoint.pt")
    (home / "models" / "LATEST").write_text(version + "\n")

    started = time.perf_counter()
    for node_type, label in (("product", "Product"), ("shopper", "Shopper"), ("look", "Look")):
        store.write_embeddings(label, vectors.ids[node_type], vectors.arrays[node_type], version)
    vectors.meta["metrics"]["write_back_seconds"] = time.perf_counter() - started
    (folder / "model.json").write_text(json.dumps(vectors.meta, indent=2) + "\n")
    return folder, result
