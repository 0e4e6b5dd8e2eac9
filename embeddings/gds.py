"""FastRP + kNN through Neo4j Graph Data Science: the baseline a Neo4j user would try first.

FastRP (Chen et al., 2019) embeds each node as a weighted sum of its neighbourhoods' very sparse
random projections, with no training:

    H_0 = R  (n x d, entries in {-sqrt(s), 0, +sqrt(s)}),   H_k = D^-1 A H_{k-1},
    e = sum_k w_k normalise(H_k)

over the whole graph taken as one undirected, untyped graph (shoppers, sessions, products,
categories, attributes, looks). Recommendations are then kNN over those embeddings, as
`gds.knn` ranks them: cosine similarity, here to every product (the evaluation ranks the whole
catalogue) from the sum of the context's unit vectors, or from the shopper's own embedding plus
their history's.

The split's training graph is sent to GDS as rows (`cypher/gds.cypher`), projected into its
in-memory catalogue and dropped afterwards; the stored graph is neither read nor changed, so
held-out edges cannot leak in.
"""

from __future__ import annotations

import uuid

import numpy as np

from .export import EDGE_TYPES, NODE_TYPES, GraphExport


class FastRPKNN:
    name = "fastrp-knn (gds)"

    def __init__(self, store, dimension: int = 64, iteration_weights=(0.0, 1.0, 1.0), seed: int = 0):
        if getattr(store, "name", None) != "neo4j":
            raise ValueError("fastrp-knn runs in Neo4j Graph Data Science: use --store neo4j")
        self.store, self.dimension, self.iteration_weights, self.seed = store, dimension, list(iteration_weights), seed

    def fit(self, graph: GraphExport) -> None:
        offset, start = {}, 0
        for node_type in NODE_TYPES:  # one numbering for every node type
            offset[node_type], start = start, start + graph.count(node_type)
        edges = np.concatenate([np.stack([graph.edges[(s, r, d)][0] + offset[s], graph.edges[(s, r, d)][1] + offset[d]])
                                for s, r, d in EDGE_TYPES], axis=1)
        edges = np.unique(edges, axis=1)  # one relationship per pair: the projection is untyped
        name = f"lookgraph-eval-{uuid.uuid4().hex[:12]}"
        self.store._read("gds.project_edges", graph=name, edges=edges.T.tolist())
        try:
            rows = self.store._read("gds.fastrp_embeddings", graph=name, dimension=self.dimension,
                                    iteration_weights=self.iteration_weights, seed=self.seed)
        finally:
            self.store._read("gds.drop_graph", graph=name)
        vectors = np.zeros((start, self.dimension), dtype=np.float32)
        for row in rows:
            vectors[row["node"]] = row["embedding"]
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        products, shoppers = offset["product"], offset["shopper"]
        self.items = vectors[products : products + graph.count("product")]
        self.users = vectors[shoppers : shoppers + graph.count("shopper")]

    def complete(self, context: np.ndarray) -> np.ndarray:
        return self.items @ self.items[context].sum(0)

    def for_shopper(self, shopper: int, history: np.ndarray) -> np.ndarray:
        return self.items @ (self.users[shopper] + self.items[history].sum(0))
