"""`lookgraph train`: export the store, train LookGNN and the ranker
(`recommend.offline.fit_artifact`), save the artifact, write vectors back.
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
from .export import export_graph
from .train import TrainConfig, TrainResult, config_dict

NEO4J_VECTOR_DIMENSIONS = VECTOR_INDEX_CONFIG["vector.dimensions"]
"""What `cypher/schema.cypher` declares for the `product_embedding` vector index."""


def train_and_publish(store: GraphStore, home: Path, config: TrainConfig, progress: bool = False,
                      log_line=None, mine: bool = True, impressions_days: float = 0.0) -> tuple[Path, TrainResult]:
    if store.name == "neo4j" and config.dim != NEO4J_VECTOR_DIMENSIONS:
        raise ValueError(f"--dim must be {NEO4J_VECTOR_DIMENSIONS} on Neo4j: the product_embedding vector index "
                         "in cypher/schema.cypher is declared with that many dimensions")
    graph = export_graph(store)
    if not graph.count("product"):
        raise ValueError("the store has no products; load data first (`lookgraph load`)")
    from ..recommend.logged import logged_feeds
    from ..recommend.offline import fit_artifact

    logged = logged_feeds(store, impressions_days, time.time()) if impressions_days > 0 else None
    result, ranker, split, mined = fit_artifact(graph, config, progress=progress, log_line=log_line, mine=mine,
                                                logged=logged)

    version = first = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + graph.fingerprint[:8]
    for n in range(2, 1_000):  # two trainings of the same data in one second: each keeps its own folder
        if not (home / "models" / version).exists():
            break
        version = f"{first}-{n}"
    vectors = result.vectors
    epochs = result.history
    stopped = [e for e in epochs if not e.get("every_interaction")]  # early stopping's, then learnt on
    vectors.meta |= {
        "version": version,
        "fingerprint": graph.fingerprint,
        "config": config_dict(config),
        "nodes": {t: graph.count(t) for t in graph.ids},
        "validation_looks": len(split.validation),
        "validation_shoppers": len(split.shoppers),
        "mined_looks": len(mined),
        "ranker": ranker.describe() if ranker else None,
        "metrics": {"val_ndcg@10": max((e.get("val_ndcg@10", 0.0) for e in epochs), default=0.0),
                    "val_shopper_ndcg@20": max((e.get("val_shopper_ndcg@20", 0.0) for e in epochs), default=0.0),
                    "epochs": len(stopped), "epochs_on_every_interaction": len(epochs) - len(stopped),
                    "seconds_per_epoch": float(np.mean([e["seconds"] for e in epochs])) if epochs else 0.0,
                    "train_seconds": result.seconds, "threads": result.threads},
        "history": epochs,
    }
    folder = vectors.save(home / "models" / version)
    torch.save(result.model.state_dict(), folder / "checkpoint.pt")
    if ranker is not None:
        ranker.save(folder)
    (home / "models" / "LATEST").write_text(version + "\n")

    started = time.perf_counter()
    store.replace_mined_looks(mined)  # before the vectors: mined looks get theirs too
    for node_type, label in (("product", "Product"), ("shopper", "Shopper"), ("look", "Look")):
        store.write_embeddings(label, vectors.ids[node_type], vectors.arrays[node_type], version)
    vectors.meta["metrics"]["write_back_seconds"] = time.perf_counter() - started
    (folder / "model.json").write_text(json.dumps(vectors.meta, indent=2) + "\n")
    return folder, result
