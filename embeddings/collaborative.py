"""Item-to-item collaborative filtering: what shoppers whose history resembles yours went on to.

Two models over the shopper x product matrix X (1 where a shopper engaged with a product):

- EASE (Steck, WWW 2019): the item-item weights B minimising ||X - XB||^2 + lambda ||B||^2 with
  diag(B) = 0, in closed form from P = (X^T X + lambda I)^-1: B_ij = -P_ij / P_jj. Exact and
  strong, but P is dense: products^2 floats (2,000 products: 16 MB; 100,000: 80 GB).
- ItemKNN (Sarwar et al., WWW 2001, as RecBole computes it): the cosine similarity of two
  products' shopper columns, each product keeping its `k` most similar: sparse, so it scales
  with the catalogue.

`fit_collaborative` picks EASE up to `EASE_MAX_PRODUCTS` products and ItemKNN above. Either way
the result is an `ItemNeighbours` index, each product's strongest neighbours with their
weights, and a shopper's score for product j is sum over their history i of w_i * W[i, j]: the
same few array operations in the harness and in the served engine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

EASE_MAX_PRODUCTS = 6_000
"""Up to this many products the dense EASE solve (6,000^2 floats: 288 MB while solving, about
10 s on 2 cores) is worth it; above, sparse ItemKNN."""
EASE_LAMBDA = 250.0
"""EASE's L2 weight (RecBole's default; the paper's best on MovieLens-20M is 500)."""
KNN_K = 100
"""ItemKNN's neighbours per product (RecBole's default)."""
KEEP = 500
"""Neighbours each product keeps in the index the engine serves from: the largest weights by
size, negative ones included. EASE's full B on MovieLens-100k gives Recall@20 0.396; 500 of
its 1,681 weights per product 0.394, 200 of them 0.390, the 200 largest positive ones 0.377
(`benchmarks/cf_protocol.py`'s split). At EASE's largest catalogue, 6,000 products, the index
is 36 MB; ItemKNN keeps its 100 neighbours."""


@dataclass
class ItemNeighbours:
    """Each product's neighbours, CSR-style: `items[indptr[i]:indptr[i + 1]]` with `weights`
    (W[i, j] for those j), strongest first. `method`: "ease" or "itemknn"."""

    indptr: np.ndarray
    items: np.ndarray
    weights: np.ndarray
    method: str

    def scores(self, history: np.ndarray, weights: np.ndarray | None = None, n: int | None = None) -> np.ndarray:
        """Every product's score for a shopper with `history` (product rows, weighted)."""
        return self.reach(history, n).scores(weights)

    def strongest(self, history: np.ndarray, products: np.ndarray) -> dict[int, tuple[int, float]]:
        """As `Reach.strongest`, for a shopper with `history`."""
        return self.reach(history).strongest(products)

    def reach(self, history: np.ndarray, n: int | None = None) -> Reach:
        """Every history row's neighbour list, one after another: gathered once for a request,
        whose scores and reasons both read it. Sliced row by row: a history of 85 rows over
        lists of 500 is gathered in a quarter of the time fancy indexing of every position takes.
        `n`: the catalogue's size (default: the index's)."""
        n = n if n is not None else len(self.indptr) - 1
        history = np.asarray(history, dtype=np.int64)
        starts, ends = self.indptr[history].tolist(), self.indptr[history + 1].tolist()
        lengths = np.array([e - s for s, e in zip(starts, ends)], dtype=np.int64)
        if not len(history):
            return Reach(n, history, lengths, self.items[:0], self.weights[:0])
        return Reach(n, history, lengths, np.concatenate([self.items[s:e] for s, e in zip(starts, ends)]),
                     np.concatenate([self.weights[s:e] for s, e in zip(starts, ends)]))

    def arrays(self) -> dict[str, np.ndarray]:
        return {"collab_indptr": self.indptr, "collab_items": self.items, "collab_weights": self.weights}

    @classmethod
    def from_arrays(cls, arrays: dict, method: str) -> ItemNeighbours | None:
        if "collab_indptr" not in arrays:
            return None
        return cls(arrays["collab_indptr"], arrays["collab_items"], arrays["collab_weights"], method)


@dataclass
class Reach:
    """A history's neighbour lists, one after another (`ItemNeighbours.reach`): the neighbours
    (`items`), their weights, and each history row's list length, in a catalogue of `n` products."""

    n: int
    history: np.ndarray
    lengths: np.ndarray
    items: np.ndarray
    weights: np.ndarray

    def scores(self, weights: np.ndarray | None = None) -> np.ndarray:
        """Every product's score: sum over the history of w_i * W[i, j] (w_i = 1 without `weights`)."""
        values = self.weights.astype(np.float64)
        if weights is not None:
            values = values * np.repeat(weights, self.lengths)
        return np.bincount(self.items, weights=values, minlength=self.n)[: self.n]

    def strongest(self, products: np.ndarray) -> dict[int, tuple[int, float]]:
        """For each of `products`: the history row that gives it the largest positive weight,
        and that weight (the earliest such row on a tie); a product no row weighs up is left
        out. All at once: a shopper of 100 ratings asked about 100 products used to cost 10,000
        scans of a neighbour list, 80% of a feed on MovieLens."""
        if not len(self.items):
            return {}
        asked = np.zeros(self.n, dtype=bool)
        asked[products] = True
        keep = np.flatnonzero(asked[self.items] & (self.weights > 0))  # a lookup, not np.isin's sort
        items, weights = self.items[keep], self.weights[keep]
        best = np.full(self.n, -np.inf, dtype=weights.dtype)
        np.maximum.at(best, items, weights)
        heaviest = np.flatnonzero(weights == best[items])  # in history order: the earliest row first
        _, first = np.unique(items[heaviest], return_index=True)
        at = heaviest[first]
        items, weights = items[at], weights[at]
        sources = self.history[np.searchsorted(np.cumsum(self.lengths), keep[at], side="right")]
        return {int(i): (int(s), float(w)) for i, s, w in zip(items.tolist(), sources.tolist(), weights.tolist())}


def interaction_matrix(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> sp.csr_matrix:
    """The binary users x items matrix of the (user, item) pairs."""
    matrix = sp.csr_matrix((np.ones(len(users), dtype=np.float32), (users, items)), shape=(n_users, n_items))
    matrix.data[:] = 1.0  # a pair given twice is still one engagement
    return matrix


def ease_weights(matrix: sp.csr_matrix, lam: float = EASE_LAMBDA) -> np.ndarray:
    """EASE's dense item-item B (diagonal 0)."""
    gram = (matrix.T @ matrix).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += lam
    precision = np.linalg.inv(gram)
    weights = -precision / np.diag(precision)[None, :]
    weights[np.diag_indices_from(weights)] = 0.0
    return weights.astype(np.float32)


def itemknn_weights(matrix: sp.csr_matrix, k: int = KNN_K, shrink: float = 0.0) -> sp.csr_matrix:
    """ItemKNN's sparse item-item W: W[i, j] = cos(i, j) for the `k` items i most similar to j."""
    columns = matrix.tocsc().astype(np.float32)
    norms = np.sqrt(np.asarray(columns.power(2).sum(0)).ravel())
    similarity = (columns.T @ columns).tocsc()
    similarity.setdiag(0.0)
    similarity.eliminate_zeros()
    rows, cols, values = [], [], []
    for j in range(similarity.shape[1]):
        start, end = similarity.indptr[j], similarity.indptr[j + 1]
        if start == end:
            continue
        candidates = similarity.indices[start:end]
        cosine = similarity.data[start:end] / (norms[candidates] * norms[j] + shrink + 1e-6)
        top = np.argsort(-cosine, kind="stable")[:k]
        rows.append(candidates[top])
        cols.append(np.full(len(top), j))
        values.append(cosine[top])
    if not rows:
        return sp.csr_matrix(similarity.shape, dtype=np.float32)
    return sp.csr_matrix((np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))), shape=similarity.shape)


def neighbours_of(weights, keep: int = KEEP, method: str = "") -> ItemNeighbours:
    """Each row's `keep` weights largest in size (negative ones too), strongest first, from a
    dense or sparse W."""
    dense = isinstance(weights, np.ndarray)
    csr = None if dense else weights.tocsr()
    indptr, items, values = [0], [], []
    for i in range(weights.shape[0]):
        if dense:
            row = weights[i]
            cols = np.argpartition(-np.abs(row), keep)[:keep] if len(row) > keep else np.arange(len(row))
            vals = row[cols]
        else:
            span = slice(csr.indptr[i], csr.indptr[i + 1])
            cols, vals = csr.indices[span], csr.data[span]
            if len(cols) > keep:
                top = np.argpartition(-np.abs(vals), keep)[:keep]
                cols, vals = cols[top], vals[top]
        cols, vals = cols[vals != 0], vals[vals != 0]
        order = np.argsort(-vals, kind="stable")
        items.append(cols[order])
        values.append(vals[order])
        indptr.append(indptr[-1] + len(order))
    return ItemNeighbours(np.array(indptr, dtype=np.int64),
                          np.concatenate(items).astype(np.int64) if items else np.zeros(0, dtype=np.int64),
                          np.concatenate(values).astype(np.float32) if values else np.zeros(0, dtype=np.float32), method)


def fit_collaborative(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int,
                      method: str | None = None) -> ItemNeighbours:
    """EASE or ItemKNN (by catalogue size, unless `method` says) on the (user, item) pairs."""
    matrix = interaction_matrix(users, items, n_users, n_items)
    method = method or ("ease" if n_items <= EASE_MAX_PRODUCTS else "itemknn")
    weights = ease_weights(matrix) if method == "ease" else itemknn_weights(matrix)
    return neighbours_of(weights, method=method)
