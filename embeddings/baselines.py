"""Baselines for the evaluation harness, each behind the same two calls as the GNN:

    fit(graph)                       learn from the training graph (a `GraphExport`)
    complete(context) -> scores      every product's score given the other items of a look
    for_shopper(shopper, history)    every product's score for a shopper

Popularity; item co-occurrence in looks and sessions (the wisdom of the crowd); content kNN
on attributes and category path (TF-IDF); BPR matrix factorization; and PyG's LightGCN. The
latter two learn from the same interactions the GNN sees: shopper-product and look-product.
"""

from __future__ import annotations

import numpy as np
import torch
from torch_geometric.nn import LightGCN

from .export import GraphExport

POSITIVE_EVENTS = (0, 1, 2)  # view, cart, purchase (indexes into EVENT_TYPES); not dismiss


def shopper_products(graph: GraphExport) -> np.ndarray:
    """Distinct (shopper, product) pairs of positive interactions, [2, N]."""
    session, product = graph.edges[("session", "interacted", "product")]
    keep = np.isin(graph.event_type, POSITIVE_EVENTS)
    owner = np.full(graph.count("session"), -1)
    s, sess = graph.edges[("shopper", "had", "session")]
    owner[sess] = s
    shopper = owner[session[keep]]
    known = shopper >= 0
    return np.unique(np.stack([shopper[known], product[keep][known]]), axis=1)


def item_groups(graph: GraphExport, max_size: int = 50) -> list[np.ndarray]:
    """Items that belong together: each look, and each session's distinct positive items. A
    session longer than `max_size` items (a binge, a dense catalogue's day) is cut, in time
    order, into windows of at most that many: what is near in time goes together, and
    dropping such sessions would drop most of a dense shop's co-engagement."""
    return [items for items in graph.look_items() if len(items) > 1] + session_windows(graph, POSITIVE_EVENTS, max_size)


def session_windows(graph: GraphExport, event_types, size: int) -> list[np.ndarray]:
    """Each session's distinct products engaged with by `event_types` (indexes into
    `EVENT_TYPES`), cut in the order first engaged into windows of at most `size`; windows of
    two or more items, each sorted."""
    session, product = graph.edges[("session", "interacted", "product")]
    keep = np.isin(graph.event_type, event_types)
    session, product, ts = session[keep], product[keep], graph.event_ts[keep]
    order = np.lexsort((ts, session))
    session, product = session[order], product[order]
    # Each session's first engagement with each product, in time order (vectorised: a shop
    # has hundreds of thousands of sessions).
    _, first = np.unique(session * graph.count("product") + product, return_index=True)
    first = np.sort(first)
    session, product = session[first], product[first]
    session_start = np.flatnonzero(np.r_[True, np.diff(session) != 0])
    rank = np.arange(len(session)) - np.repeat(session_start, np.diff(np.r_[session_start, len(session)]))
    window = np.cumsum(np.r_[True, (np.diff(session) != 0) | (np.diff(rank // size) != 0)]) if len(session) else rank
    order = np.lexsort((product, window))
    product, window = product[order], window[order]
    bounds = np.flatnonzero(np.diff(window)) + 1
    return [items for items in np.split(product, bounds) if len(items) > 1]


def group_pairs(groups: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Every ordered pair (a, b), a != b, of items sharing a group, as two arrays."""
    first, second, _ = pairs_by_group(groups)
    return first, second


def pairs_by_group(groups: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, group) for every ordered pair a != b within each group, grouped in order."""
    if not groups:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    sizes = np.array([len(items) for items in groups], dtype=np.int64)
    items = np.concatenate(groups).astype(np.int64)
    starts = np.cumsum(sizes) - sizes
    group_of_item = np.repeat(np.arange(len(groups)), sizes)
    repeats = sizes[group_of_item]  # each item pairs with every item of its group
    first = np.repeat(items, repeats)
    group = np.repeat(group_of_item, repeats)
    offset = np.arange(len(first)) - np.repeat(np.cumsum(repeats) - repeats, repeats)
    second = items[starts[group] + offset]
    distinct = first != second
    return first[distinct], second[distinct], group[distinct]


def content_tokens(graph: GraphExport) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Each product's content as TF-IDF weighted tokens, CSR-style: (indptr, tokens, weights,
    vocabulary size). Tokens are the product's attributes, its leaf category and every
    ancestor of it; each product's weights have unit L2 norm."""
    n_products, n_attributes, n_categories = graph.count("product"), graph.count("attribute"), graph.count("category")
    rows, cols = [graph.edges[("product", "has", "attribute")][0]], [graph.edges[("product", "has", "attribute")][1]]
    parent = np.full(n_categories, -1)
    child, par = graph.edges[("category", "child_of", "category")]
    parent[child] = par
    level = graph.product_category.copy()
    products = np.arange(n_products)
    for _ in range(32):  # walk up the tree; 32 levels is far deeper than any catalogue
        known = level >= 0
        if not known.any():
            break
        rows.append(products[known])
        cols.append(n_attributes + level[known])
        level = np.where(known, parent[np.maximum(level, 0)], -1)
    row, col = np.concatenate(rows), np.concatenate(cols)
    order = np.lexsort((col, row))
    row, col = row[order], col[order]
    df = np.bincount(col, minlength=n_attributes + n_categories)
    idf = np.log((1 + n_products) / (1 + df)) + 1
    norms = np.sqrt(np.bincount(row, weights=idf[col] ** 2, minlength=n_products))
    weights = (idf[col] / np.maximum(norms[row], 1e-12)).astype(np.float32)
    indptr = np.zeros(n_products + 1, dtype=np.int64)
    np.cumsum(np.bincount(row, minlength=n_products), out=indptr[1:])
    return indptr, col.astype(np.int64), weights, n_attributes + n_categories


def content_matrix(graph: GraphExport) -> torch.Tensor:
    """Products x tokens TF-IDF matrix (sparse CSR) of `content_tokens`."""
    indptr, tokens, weights, vocabulary = content_tokens(graph)
    return torch.sparse_csr_tensor(torch.from_numpy(indptr), torch.from_numpy(tokens), torch.from_numpy(weights),
                                   (graph.count("product"), vocabulary))


class Popularity:
    name = "popularity"

    def fit(self, graph: GraphExport) -> None:
        product = graph.edges[("session", "interacted", "product")][1]
        keep = np.isin(graph.event_type, POSITIVE_EVENTS)
        counts = np.bincount(product[keep], minlength=graph.count("product")).astype(np.float32)
        counts += np.bincount(graph.edges[("look", "includes", "product")][1], minlength=graph.count("product"))
        self.scores = counts

    def complete(self, context: np.ndarray) -> np.ndarray:
        return self.scores.copy()

    def for_shopper(self, shopper: int, history: np.ndarray) -> np.ndarray:
        return self.scores.copy()


class CoOccurrence:
    """Items seen together in looks and sessions: score(j | C) = sum over i in C of count(i, j)."""

    name = "co-occurrence"

    def fit(self, graph: GraphExport) -> None:
        n = graph.count("product")
        row, col = group_pairs(item_groups(graph))
        self.matrix = torch.sparse_coo_tensor(np.stack([row, col]), torch.ones(len(row)), (n, n)).coalesce().to_sparse_csr()
        self.fallback = Popularity()
        self.fallback.fit(graph)

    def complete(self, context: np.ndarray) -> np.ndarray:
        query = torch.zeros(self.matrix.shape[0], 1)
        query[torch.from_numpy(context)] = 1.0
        scores = (self.matrix @ query).squeeze(1).numpy()
        # Ties (most items never co-occur) are broken by popularity, as a shop would.
        return scores + 1e-6 * self.fallback.scores / max(self.fallback.scores.max(), 1.0)

    def for_shopper(self, shopper: int, history: np.ndarray) -> np.ndarray:
        return self.complete(history)


class ContentKNN:
    """Cosine similarity of attribute + category-path TF-IDF vectors, summed over the context."""

    name = "content-knn"

    def fit(self, graph: GraphExport) -> None:
        self.matrix = content_matrix(graph)

    def complete(self, context: np.ndarray) -> np.ndarray:
        dense_rows = torch.index_select(self.matrix.to_sparse_coo(), 0, torch.from_numpy(context)).to_dense()
        return (self.matrix @ dense_rows.sum(0, keepdim=True).T).squeeze(1).numpy()

    def for_shopper(self, shopper: int, history: np.ndarray) -> np.ndarray:
        if not len(history):
            return np.zeros(self.matrix.shape[0], dtype=np.float32)
        return self.complete(history)


def _user_item_pairs(graph: GraphExport) -> tuple[np.ndarray, int]:
    """Shoppers and training looks as 'users' of products: [2, N] with looks offset after shoppers."""
    pairs = shopper_products(graph)
    look, product = graph.edges[("look", "includes", "product")]
    looks = np.stack([look + graph.count("shopper"), product])
    return np.concatenate([pairs, looks], axis=1), graph.count("shopper") + graph.count("look")


class _FactorModel:
    """Shared by BPR-MF and LightGCN: item-item scores are sums of dot products."""

    def complete(self, context: np.ndarray) -> np.ndarray:
        return self.items @ self.items[context].sum(0)

    def for_shopper(self, shopper: int, history: np.ndarray) -> np.ndarray:
        return self.items @ self.users[shopper]


def _bpr_epochs(parameters, score, pairs: torch.Tensor, n_items: int, epochs: int, seed: int, batch: int = 2048):
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(parameters, lr=0.01)
    for _ in range(epochs):
        for chunk in torch.randperm(pairs.shape[1], generator=generator).split(batch):
            users, items = pairs[:, chunk]
            negatives = torch.randint(0, n_items, (len(chunk),), generator=generator)
            pos, neg, reg = score(users, items, negatives)
            loss = torch.nn.functional.softplus(neg - pos).mean() + 1e-4 * reg
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()


class BPRMF(_FactorModel):
    name = "bpr-mf"

    def __init__(self, dim: int = 64, epochs: int = 60, seed: int = 0):
        self.dim, self.epochs, self.seed = dim, epochs, seed

    def fit(self, graph: GraphExport) -> None:
        torch.manual_seed(self.seed)
        pairs, n_users = _user_item_pairs(graph)
        users = torch.nn.Embedding(n_users, self.dim)
        items = torch.nn.Embedding(graph.count("product"), self.dim)
        torch.nn.init.normal_(users.weight, std=0.1)
        torch.nn.init.normal_(items.weight, std=0.1)

        def score(u, i, j):
            eu, ei, ej = users(u), items(i), items(j)
            return (eu * ei).sum(-1), (eu * ej).sum(-1), eu.pow(2).sum() + ei.pow(2).sum() + ej.pow(2).sum()

        _bpr_epochs([*users.parameters(), *items.parameters()], score, torch.from_numpy(pairs),
                    graph.count("product"), self.epochs, self.seed)
        self.users, self.items = users.weight.detach().numpy(), items.weight.detach().numpy()


class LightGCNBaseline(_FactorModel):
    """PyG's `LightGCN` on the user-item graph (shoppers and looks as users)."""

    name = "lightgcn"

    def __init__(self, dim: int = 64, layers: int = 3, epochs: int = 60, seed: int = 0):
        self.dim, self.layers, self.epochs, self.seed = dim, layers, epochs, seed

    def fit(self, graph: GraphExport) -> None:
        torch.manual_seed(self.seed)
        pairs, n_users = _user_item_pairs(graph)
        n_items = graph.count("product")
        edge = torch.from_numpy(pairs)
        edge_index = torch.cat([torch.stack([edge[0], edge[1] + n_users]), torch.stack([edge[1] + n_users, edge[0]])], 1)
        model = LightGCN(n_users + n_items, self.dim, self.layers)

        def score(u, i, j):
            out = model.get_embedding(edge_index)
            eu, ei, ej = out[u], out[i + n_users], out[j + n_users]
            reg = model.embedding.weight[u].pow(2).sum() + model.embedding.weight[i + n_users].pow(2).sum()
            return (eu * ei).sum(-1), (eu * ej).sum(-1), reg

        _bpr_epochs(model.parameters(), score, edge, n_items, self.epochs, self.seed, batch=8192)
        with torch.no_grad():
            out = model.get_embedding(edge_index).numpy()
        self.users, self.items = out[:n_users], out[n_users:]
