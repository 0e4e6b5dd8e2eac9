"""Fixed-fanout neighbour sampling for mini-batch GNN training and inference.

PyG's `NeighborLoader`/`LinkNeighborLoader` delegate sampling to `pyg-lib` or `torch-sparse`,
and PyPI carries wheels of neither, so lookgraph samples with numpy over CSR arrays instead.
The semantics are PyG's: starting from the seed nodes, each hop keeps up to `fanout[h]`
in-neighbours per node and relation (sampled with replacement when a node has more); the
subgraph holds every node reached within `len(fanouts)` hops, relabelled to local positions.
Memory per batch depends on the batch and the fanouts, not on the size of the graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

EdgeType = tuple[str, str, str]


@dataclass
class Subgraph:
    node_ids: dict[str, torch.Tensor]
    """Global positions of the subgraph's nodes, per type (seeds first)."""
    edge_index: dict[EdgeType, torch.Tensor]
    """Local [2, E] edges per relation, source -> destination."""
    seeds: dict[str, torch.Tensor]
    """Local position of each seed given to `sample`, in the order given."""
    hops: dict[str, list[int]] | None = None
    """Per type, how many of its nodes lie within 0, 1, ... hops of the seeds (nodes come in
    hop order), so that a layer updates only the nodes later layers read; None: every node."""


class NeighbourSampler:
    def __init__(self, edge_index: dict[EdgeType, np.ndarray], num_nodes: dict[str, int],
                 fanouts: tuple[int, ...], seed: int = 0):
        self.fanouts = fanouts
        self.num_nodes = num_nodes
        self.rng = np.random.default_rng(seed)
        self.csr: dict[EdgeType, tuple[np.ndarray, np.ndarray]] = {}
        for edge_type, index in edge_index.items():
            src, dst = np.asarray(index[0]), np.asarray(index[1])
            order = np.argsort(dst, kind="stable")
            indptr = np.zeros(num_nodes[edge_type[2]] + 1, dtype=np.int64)
            np.cumsum(np.bincount(dst, minlength=num_nodes[edge_type[2]]), out=indptr[1:])
            self.csr[edge_type] = (indptr, src[order])
        self._local = {t: np.full(n, -1, dtype=np.int64) for t, n in num_nodes.items()}

    def _neighbours(self, edge_type: EdgeType, nodes: np.ndarray, fanout: int) -> tuple[np.ndarray, np.ndarray]:
        """(sources, index into `nodes` of their destination) for up to `fanout` per node."""
        indptr, sources = self.csr[edge_type]
        start = indptr[nodes]
        degree = indptr[nodes + 1] - start
        take = np.minimum(degree, fanout)
        owner = np.repeat(np.arange(len(nodes)), take)
        if owner.size == 0:
            return owner, owner
        rank = np.arange(owner.size) - np.repeat(np.cumsum(take) - take, take)
        deg = degree[owner]
        offset = np.where(deg > fanout, (self.rng.random(owner.size) * deg).astype(np.int64), rank)
        return sources[start[owner] + offset], owner

    def sample(self, seeds: dict[str, np.ndarray]) -> Subgraph:
        nodes: dict[str, list[np.ndarray]] = {t: [] for t in self.num_nodes}
        count = dict.fromkeys(self.num_nodes, 0)

        def localise(node_type: str, ids: np.ndarray) -> np.ndarray:
            table = self._local[node_type]
            new = np.unique(ids[table[ids] < 0])
            table[new] = np.arange(count[node_type], count[node_type] + len(new))
            count[node_type] += len(new)
            nodes[node_type].append(new)
            return table[ids]

        seed_local = {t: localise(t, np.asarray(ids, dtype=np.int64)) for t, ids in seeds.items()}
        hops = {t: [n] for t, n in count.items()}
        frontier = {t: np.unique(np.asarray(ids, dtype=np.int64)) for t, ids in seeds.items()}
        edges: dict[EdgeType, list[np.ndarray]] = {e: [] for e in self.csr}
        for fanout in self.fanouts:
            reached: dict[str, list[np.ndarray]] = {}
            for edge_type in self.csr:
                src_type, _, dst_type = edge_type
                if dst_type not in frontier or not len(frontier[dst_type]):
                    continue
                dst_nodes = frontier[dst_type]
                src, owner = self._neighbours(edge_type, dst_nodes, fanout)
                if not len(src):
                    continue
                src_local = localise(src_type, src)
                edges[edge_type].append(np.stack([src_local, self._local[dst_type][dst_nodes[owner]]]))
                fresh = nodes[src_type][-1]
                if len(fresh):
                    reached.setdefault(src_type, []).append(fresh)
            frontier = {t: np.concatenate(parts) for t, parts in reached.items()}
            for t, n in count.items():
                hops[t].append(n)

        node_ids = {t: np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64) for t, parts in nodes.items()}
        for t, ids in node_ids.items():
            self._local[t][ids] = -1  # reset for the next batch
        return Subgraph(
            node_ids={t: torch.from_numpy(ids) for t, ids in node_ids.items()},
            edge_index={e: torch.from_numpy(np.concatenate(parts, axis=1)) if parts else torch.zeros(2, 0, dtype=torch.long)
                        for e, parts in edges.items()},
            seeds={t: torch.from_numpy(local) for t, local in seed_local.items()},
            hops=hops,
        )


class FullGraph:
    """The whole graph as one 'sample', for graphs that fit in memory: every step propagates
    over every edge, as LightGCN does, instead of a sampled neighbourhood per batch. Same
    `sample(seeds)` contract as `NeighbourSampler`; positions are the global ones."""

    def __init__(self, edge_index: dict[EdgeType, np.ndarray], num_nodes: dict[str, int]):
        self.num_nodes = num_nodes
        self.node_ids = {t: torch.arange(n) for t, n in num_nodes.items()}
        self.edge_index = {e: torch.from_numpy(np.ascontiguousarray(index)).long() for e, index in edge_index.items()}

    def sample(self, seeds: dict[str, np.ndarray]) -> Subgraph:
        return Subgraph(self.node_ids, self.edge_index,
                        {t: torch.from_numpy(np.asarray(ids, dtype=np.int64)) for t, ids in seeds.items()})
