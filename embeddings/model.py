"""LookGNN: a heterogeneous GraphSAGE over the lookgraph model with a category-aware
complement score.

Every node starts from a learned embedding of its id; products add a projection of their
content (TF-IDF weighted attribute and category-path tokens :math:`w_{pt}`):

.. math::
    \\mathbf{h}^{(0)}_v = \\mathbf{e}_v \\cdot m_v
    \\qquad
    \\mathbf{h}^{(0)}_p = \\mathbf{e}_p \\cdot m_p + \\sum_t w_{pt}\\, \\mathbf{a}_t ,

where :math:`m_p` is 0 for cold items (and, while training, for a random share ``id_dropout``
of all items), so a product's representation is learnt from its attributes, categories and
looks as well as its id: the model is inductive over attributes, and a product nobody has
touched yet is embedded from its content. Each layer sums a
mean-aggregating SAGE convolution per relation (and its reverse) and keeps a residual:

.. math::
    \\mathbf{h}^{(l+1)}_v = \\mathrm{LayerNorm}\\Big(\\mathbf{h}^{(l)}_v + \\sum_{r}
    \\mathbf{W}^{(l)}_{r,1}\\mathbf{h}^{(l)}_v + \\mathbf{W}^{(l)}_{r,2}
    \\operatorname{mean}_{u \\in \\mathcal{N}_r(v)} \\mathbf{h}^{(l)}_u\\Big).

Two scores are read off the final embeddings :math:`\\mathbf{h}`:

.. math::
    s_{\\text{engage}}(u, p) = \\mathbf{h}_u^\\top \\mathbf{h}_p
    \\qquad
    s_{\\text{complement}}(i, j) = \\sum_k h_{ik}\\, h_{jk}\\,
        \\sigma\\big(t_{c(i),k}\\, t_{c(j),k} + b_k\\big)

:math:`\\mathbf{t}_c` is a learnt vector per leaf category. The gate picks, per pair of
categories, the dimensions on which two items must agree, as type-aware outfit models project
item pairs into a subspace per category pair: complementarity is not similarity, and jeans
can score high with boots on the dimensions the (jeans, boots) pair selects while scoring low
with other jeans.
"""

from __future__ import annotations

import torch
from torch import nn
from torch_geometric.nn import HeteroConv, SAGEConv

from .sampling import MeanAdjacency

EdgeType = tuple[str, str, str]


class LookGNN(nn.Module):
    def __init__(self, num_nodes: dict[str, int], edge_types: list[EdgeType], num_categories: int,
                 content: tuple, dim: int = 64, layers: int = 2, id_dropout: float = 0.3, sparse: bool = False):
        """`content` is `baselines.content_tokens(graph)`: (indptr, tokens, weights, vocabulary).
        `sparse`: the id embeddings get sparse gradients (a mini-batch touches few rows of them)."""
        super().__init__()
        self.id_dropout = id_dropout
        indptr, tokens, weights, vocabulary = content
        self.register_buffer("content_indptr", torch.as_tensor(indptr))
        self.register_buffer("content_tokens", torch.as_tensor(tokens))
        self.register_buffer("content_weights", torch.as_tensor(weights))
        self.token = nn.EmbeddingBag(max(vocabulary, 1), dim, mode="sum")
        nn.init.normal_(self.token.weight, std=0.1)
        self.embedding = nn.ModuleDict({t: nn.Embedding(max(n, 1), dim, sparse=sparse) for t, n in num_nodes.items()})
        for table in self.embedding.values():
            nn.init.normal_(table.weight, std=0.1)
        self.convs = nn.ModuleList(
            HeteroConv({e: SAGEConv((dim, dim), dim, aggr="mean") for e in edge_types}, aggr="sum")
            for _ in range(layers)
        )
        self.norms = nn.ModuleList(nn.ModuleDict({t: nn.LayerNorm(dim) for t in num_nodes}) for _ in range(layers))
        # Leaf category type vectors; the extra last row stands for "no category".
        self.category_type = nn.Embedding(num_categories + 1, dim)
        nn.init.normal_(self.category_type.weight, std=1.0)
        self.gate_bias = nn.Parameter(torch.zeros(dim))
        self.register_buffer("cold", torch.zeros(max(num_nodes["product"], 1), dtype=torch.bool))

    def forward(self, node_ids: dict[str, torch.Tensor], edge_index: dict[EdgeType, torch.Tensor],
                hops: dict[str, list[int]] | None = None) -> dict[str, torch.Tensor]:
        """Embed a (sub)graph. `hops` (a sampled subgraph's, nodes in hop order): layer l updates
        only the nodes within L-1-l hops of the seeds, the only ones later layers read (PyG's
        `trim_to_layer`): the seeds' output is the same at a fraction of the cost, and only the
        nodes within L-1 hops (the seeds when L is 1) are returned updated."""
        h = {t: self.embedding[t](ids) for t, ids in node_ids.items() if len(ids)}
        if "product" in h:
            keep = ~self.cold[node_ids["product"]]
            if self.training and self.id_dropout:
                keep &= torch.rand(keep.shape, device=keep.device) >= self.id_dropout
            h["product"] = h["product"] * keep.unsqueeze(1) + self.content(node_ids["product"])
        edges = {e: index for e, index in edge_index.items() if _edges(index) and e[0] in h and e[2] in h}
        for depth, (conv, norms) in enumerate(zip(self.convs, self.norms)):
            updated = h
            if hops is not None:
                reach = len(self.convs) - 1 - depth
                updated = {t: x[: hops[t][reach]] for t, x in h.items()}
                edges = {e: index[:, index[1] < hops[e[2]][reach]] for e, index in edges.items()}
            out: dict[str, torch.Tensor] = {}
            for edge_type, index in edges.items():  # HeteroConv's sum over relations, bipartite
                if _edges(index):
                    y = _convolve(conv.convs[edge_type], h[edge_type[0]], updated[edge_type[2]], index)
                    out[edge_type[2]] = out[edge_type[2]] + y if edge_type[2] in out else y
            h = {t: norms[t](x + out[t]) if t in out else x for t, x in updated.items()}
        return h

    def content(self, products: torch.Tensor) -> torch.Tensor:
        """Sum of each product's token embeddings, weighted by TF-IDF."""
        start, end = self.content_indptr[products], self.content_indptr[products + 1]
        lengths = end - start
        offsets = torch.cumsum(lengths, 0) - lengths
        positions = torch.repeat_interleave(start - offsets, lengths) + torch.arange(int(lengths.sum()), device=products.device)
        return self.token(self.content_tokens[positions], offsets, per_sample_weights=self.content_weights[positions])

    def engagement(self, shopper: torch.Tensor, product: torch.Tensor) -> torch.Tensor:
        return (shopper * product).sum(-1)

    def gate(self, category_a: torch.Tensor, category_b: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.category_type(category_a) * self.category_type(category_b) + self.gate_bias)

    def complement(self, item_a: torch.Tensor, category_a: torch.Tensor,
                   item_b: torch.Tensor, category_b: torch.Tensor) -> torch.Tensor:
        return (item_a * item_b * self.gate(category_a, category_b)).sum(-1)


def _convolve(conv: SAGEConv, source: torch.Tensor, destination: torch.Tensor, index) -> torch.Tensor:
    """`conv` over one relation given as an edge index, or as a whole graph's `MeanAdjacency`
    (then SAGEConv's own formula, :math:`W_2\\,\\mathrm{mean}(h_u) + W_1 h_v`, over the
    precomputed mean: the same numbers, a few times faster)."""
    if isinstance(index, MeanAdjacency):
        return conv.lin_l(index(source)) + conv.lin_r(destination)
    return conv((source, destination), index)


def _edges(index) -> int:
    """How many edges a relation has, given as a [2, E] index or a `MeanAdjacency`."""
    return index.edges if isinstance(index, MeanAdjacency) else index.shape[1]
