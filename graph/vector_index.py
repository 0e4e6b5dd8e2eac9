"""`VectorIndex`: cosine nearest neighbours over product embeddings, in memory (faiss).

The embedded store's answer to Neo4j's vector index. A scan of every vector costs about
1.5 ms per query at 100k products (one core; it reads 25 MB), more than the rest of a
recommendation's walks together, so above `EXACT_BELOW` rows the index is an inverted file:
k-means splits the unit vectors into about sqrt(n) lists, and a query scans only the
`nlist / 16` lists whose centroids are nearest to it. On the 100k-product demo that finds
96.8% of the exact top 50 in 0.23 ms (`python benchmarks/api_latency.py`, "vector_index").
Below `EXACT_BELOW` rows the scan is cheap and exact.
"""

from __future__ import annotations

import math
import sys

import faiss
import numpy as np

EXACT_BELOW = 20_000
PROBED_SHARE = 16
"""A query scans 1/PROBED_SHARE of the lists."""


class VectorIndex:
    def __init__(self, ids: list[str], vectors: np.ndarray, seed: int = 0):
        self.ids = [sys.intern(i) for i in ids]  # see MemoryTraversal._number_product
        units = _unit(np.asarray(vectors, dtype=np.float32))
        dimension = units.shape[1]
        if len(self.ids) < EXACT_BELOW:
            self._index = faiss.IndexFlatIP(dimension)
        else:
            lists = int(math.sqrt(len(self.ids)))
            self._index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dimension), dimension, lists, faiss.METRIC_INNER_PRODUCT)
            self._index.cp.seed = seed  # the same lists on every start
            self._index.train(units)
            self._index.nprobe = max(1, lists // PROBED_SHARE)
        if len(self.ids):
            self._index.add(units)

    def __len__(self) -> int:
        return len(self.ids)

    def nearest(self, vector: np.ndarray, k: int) -> list[str]:
        """The ids of the `k` vectors nearest `vector` by cosine similarity, nearest first."""
        if not self.ids or k <= 0:
            return []
        query = _unit(np.asarray(vector, dtype=np.float32).reshape(1, -1))
        _, rows = self._index.search(query, min(k, len(self.ids)))
        return [self.ids[r] for r in rows[0].tolist() if r >= 0]


def _unit(rows: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rows / (np.linalg.norm(rows, axis=1, keepdims=True) + 1e-9), dtype=np.float32)
