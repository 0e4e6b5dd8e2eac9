"""Baselines for the evaluation harness, each behind the same two calls as the GNN:

    fit(graph)                       learn from the training graph (a `GraphExport`)
    complete(context) -> scores      every product's score given the other items of a look
    for_shopper(shopper, history)    every product's score for a shopper

Popularity; item co-occurrence in looks and sessions (the wisdom of the crowd); content kNN
on attributes and category path (TF-IDF); ItemKNN and EASE; BPR matrix factorization; and PyG's
LightGCN, the last two trained as RecBole trains them (`benchmarks/cf_protocol.py` holds them
to RecBole's own figures). The collaborative ones learn from the interactions the GNN sees:
shopper-product and look-product.
"""

from __future__ import annotations

import numpy as np
import torch
from torch_geometric.nn import LightGCN
from torch_geometric.nn.conv.gcn_conv import gcn_norm

from .collaborative import ease_weights, interaction_matrix, itemknn_weights
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


class ItemKNN:
    """Item-based kNN as RecBole computes it (cosine, 100 neighbours per item): a shopper's score
    for j sums the similarity of j to each item of their history among j's neighbours."""

    name = "itemknn"

    def fit(self, graph: GraphExport) -> None:
        pairs, n_users = _user_item_pairs(graph)
        self.weights = itemknn_weights(interaction_matrix(pairs[0], pairs[1], n_users, graph.count("product")))

    def complete(self, context: np.ndarray) -> np.ndarray:
        x = np.zeros(self.weights.shape[0], dtype=np.float32)
        x[context] = 1.0
        return np.asarray(self.weights.T @ x).ravel()

    def for_shopper(self, shopper: int, history: np.ndarray) -> np.ndarray:
        return self.complete(history)


class EASE(ItemKNN):
    """EASE (Steck 2019), lambda 250 as RecBole: the dense closed form (products^2 floats)."""

    name = "ease"

    def fit(self, graph: GraphExport) -> None:
        pairs, n_users = _user_item_pairs(graph)
        self.weights = ease_weights(interaction_matrix(pairs[0], pairs[1], n_users, graph.count("product")))


class _FactorModel:
    """Shared by BPR-MF and LightGCN: item-item scores are sums of dot products."""

    def complete(self, context: np.ndarray) -> np.ndarray:
        return self.items @ self.items[context].sum(0)

    def for_shopper(self, shopper: int, history: np.ndarray) -> np.ndarray:
        return self.items @ self.users[shopper]


def holdout(pairs: np.ndarray, n_users: int, seed: int, share: float = 0.1) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """For early stopping: a random `share` of each user's items (users with 5+), held out.
    Returns (the training pairs, {user: held-out items})."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(pairs.shape[1])
    pairs = pairs[:, order]
    by_user = np.argsort(pairs[0], kind="stable")
    counts = np.bincount(pairs[0], minlength=n_users)
    starts = np.cumsum(counts) - counts
    held = np.zeros(pairs.shape[1], dtype=bool)
    for user in np.flatnonzero(counts >= 5):
        rows = by_user[starts[user]: starts[user] + counts[user]]
        held[rows[: int(counts[user] * share)]] = True
    valid = {}
    for user, item in pairs[:, held].T.tolist():
        valid.setdefault(user, []).append(item)
    return pairs[:, ~held], {u: np.array(items) for u, items in valid.items()}


def ndcg_of_lists(scores: np.ndarray, users: np.ndarray, train_pairs: np.ndarray, targets: list[np.ndarray],
                  k: int = 20) -> float:
    """Mean NDCG@k of `scores` [users, items] against each user's `targets`, their training items
    ranked out (RecBole's full-ranking protocol)."""
    scores = scores.copy()
    row_of = {u: r for r, u in enumerate(users.tolist())}
    known = np.isin(train_pairs[0], users)
    scores[[row_of[u] for u in train_pairs[0][known].tolist()], train_pairs[1][known]] = -np.inf
    top = np.argpartition(-scores, k, axis=1)[:, :k]
    top = np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, 1), axis=1), 1)
    discounts = 1 / np.log2(np.arange(2, k + 2))
    total = 0.0
    for row, wanted in enumerate(targets):
        hits = np.isin(top[row], wanted)
        total += (hits * discounts).sum() / discounts[: min(len(wanted), k)].sum()
    return total / max(len(targets), 1)


def _bpr_epochs(model, users_items, pairs: np.ndarray, n_users: int, n_items: int, valid: dict[int, np.ndarray],
                max_epochs: int, seed: int, batch: int = 2048, patience: int = 10, lr: float = 1e-3) -> int:
    """BPR training as RecBole runs it: Adam at `lr`, batches of `batch` (user, positive) pairs
    each with a uniform negative the user never had, `model.loss(users, positives, negatives)`;
    after each epoch NDCG@20 on `valid`, stopping when more than `patience` epochs in a row scored
    below the best (an epoch that ties the best counts as one, as RecBole's does: on a catalogue
    where validation scores 0.0 for many epochs, training goes on instead of keeping the first),
    and the best epoch's parameters kept. Returns the epochs run."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    positives = np.unique(pairs[0].astype(np.int64) * n_items + pairs[1])
    edge = torch.from_numpy(pairs)
    valid_users = np.array(sorted(valid), dtype=np.int64)
    best, best_state, waited, epoch = -1.0, None, 0, 0
    for epoch in range(1, max_epochs + 1):
        model.train()
        for chunk in torch.randperm(pairs.shape[1], generator=generator).split(batch):
            users, items = edge[:, chunk]
            negatives = torch.randint(0, n_items, (len(chunk),), generator=generator)
            for _ in range(10):  # resample the negatives the user had (RecBole's sampler excludes them)
                keys = users.numpy().astype(np.int64) * n_items + negatives.numpy()
                clash = positives[np.minimum(np.searchsorted(positives, keys), len(positives) - 1)] == keys
                if not clash.any():
                    break
                negatives[torch.from_numpy(clash)] = torch.randint(0, n_items, (int(clash.sum()),), generator=generator)
            loss = model.loss(users, items, negatives)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if not len(valid_users):
            continue
        model.eval()
        with torch.no_grad():
            user_vectors, item_vectors = users_items()
            scores = (user_vectors[valid_users] @ item_vectors.T).numpy()
        ndcg = ndcg_of_lists(scores, valid_users, pairs, [valid[u] for u in valid_users.tolist()])
        if ndcg >= best:  # RecBole 1.2.1's `early_stopping`: a tie is kept, the later epoch saved
            best, waited = ndcg, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            waited += 1
            if waited > patience:
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    return epoch


class _BPRModel(torch.nn.Module):
    """Matrix factorisation trained with BPR, as RecBole's BPR: Xavier-normal embeddings, no L2."""

    def __init__(self, n_users: int, n_items: int, dim: int):
        super().__init__()
        self.users, self.items = torch.nn.Embedding(n_users, dim), torch.nn.Embedding(n_items, dim)
        torch.nn.init.xavier_normal_(self.users.weight)
        torch.nn.init.xavier_normal_(self.items.weight)

    def loss(self, u, i, j):
        eu = self.users(u)
        return -torch.nn.functional.logsigmoid((eu * self.items(i)).sum(-1) - (eu * self.items(j)).sum(-1)).mean()

    def embeddings(self):
        return self.users.weight, self.items.weight


class _LightGCNModel(torch.nn.Module):
    """PyG's `LightGCN` on the user-item graph, trained as RecBole's LightGCN: BPR loss plus
    `reg` times the L2 norms of the batch's layer-0 embeddings divided by the batch size. The
    symmetric normalisation is computed once and propagated as a sparse CSR product (25x faster
    than normalising the edge list at every step, the same embeddings)."""

    def __init__(self, n_users: int, n_items: int, dim: int, layers: int, edge_index: torch.Tensor, reg: float):
        super().__init__()
        n = n_users + n_items
        self.n_users, self.reg = n_users, reg
        edge_index, weight = gcn_norm(edge_index, None, n, add_self_loops=False)
        self.adjacency = torch.sparse_coo_tensor(edge_index.flip(0), weight, (n, n)).coalesce().to_sparse_csr()
        self.model = LightGCN(n, dim, layers, normalize=False)

    def embeddings(self):
        out = self.model.get_embedding(self.adjacency)
        return out[: self.n_users], out[self.n_users:]

    def loss(self, u, i, j):
        users, items = self.embeddings()
        eu = users[u]
        bpr = -torch.nn.functional.logsigmoid((eu * items[i]).sum(-1) - (eu * items[j]).sum(-1)).mean()
        ego = self.model.embedding.weight
        reg = (ego[u].norm() + ego[i + self.n_users].norm() + ego[j + self.n_users].norm()) / len(u)
        return bpr + self.reg * reg


class BPRMF(_FactorModel):
    """BPR-MF as RecBole trains it (64 dimensions, Adam at 0.001, batches of 2,048, up to 300
    epochs, early stopping after 10 epochs without a better validation NDCG@20 on a tenth of
    each shopper's items, the best epoch kept)."""

    name = "bpr-mf"

    patience = 10
    """Epochs without a better validation NDCG@20 before training stops (RecBole's `stopping_step`)."""

    def __init__(self, dim: int = 64, epochs: int = 300, seed: int = 0):
        self.dim, self.epochs, self.seed = dim, epochs, seed

    def fit(self, graph: GraphExport, valid: dict[int, np.ndarray] | None = None) -> None:
        torch.manual_seed(self.seed)
        pairs, n_users = _user_item_pairs(graph)
        if valid is None:
            pairs, valid = holdout(pairs, n_users, self.seed)
        model = self.build(pairs, n_users, graph.count("product"))
        self.epochs_run = _bpr_epochs(model, model.embeddings, pairs, n_users, graph.count("product"), valid,
                                      self.epochs, self.seed, patience=self.patience)
        with torch.no_grad():
            users, items = model.embeddings()
        self.users, self.items = users.detach().numpy().copy(), items.detach().numpy().copy()

    def build(self, pairs: np.ndarray, n_users: int, n_items: int) -> torch.nn.Module:
        return _BPRModel(n_users, n_items, self.dim)


class LightGCNBaseline(BPRMF):
    """PyG's `LightGCN` (2 layers, 64 dimensions) trained as RecBole trains LightGCN (L2 1e-5,
    otherwise as `BPRMF`), except that it stops after 50 epochs without a better validation
    score, as its paper's protocol does (He et al., SIGIR 2020), not after RecBole's 10: with 10,
    on MovieLens-100k with every shopper asked (seed 2), it stopped after 11 epochs with its
    first the best, below popularity."""

    name = "lightgcn"
    patience = 50

    def __init__(self, dim: int = 64, layers: int = 2, epochs: int = 300, seed: int = 0, reg: float = 1e-5):
        super().__init__(dim, epochs, seed)
        self.layers, self.reg = layers, reg

    def build(self, pairs: np.ndarray, n_users: int, n_items: int) -> torch.nn.Module:
        edge = torch.from_numpy(pairs)
        edge_index = torch.cat([torch.stack([edge[0], edge[1] + n_users]), torch.stack([edge[1] + n_users, edge[0]])], 1)
        return _LightGCNModel(n_users, n_items, self.dim, self.layers, edge_index, self.reg)
