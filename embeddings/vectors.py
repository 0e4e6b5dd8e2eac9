"""The embedding artifact and the complement scoring every consumer uses.

An artifact is a folder `<home>/models/<version>/`:

    vectors.npz    product, shopper, look, category embeddings; category type vectors; gate bias;
                   each product's leaf-category row; products' TF-IDF content tokens (CSR)
    ids.json       node ids per type, in row order
    model.json     version, model config, data fingerprint, content weight, metrics, training history
    checkpoint.pt  the trained LookGNN's state dict (to resume or fine-tune)

`<home>/models/LATEST` names the newest version. The API and the evaluation harness score
with `LookVectors.complete()`, so what is measured is what is served.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SAME_CATEGORY_CAP = 4
"""At most this many of a top-20 list may share a leaf category with the context."""


def across_categories(scores: np.ndarray, categories: np.ndarray, context: np.ndarray,
                      cap: int | None = SAME_CATEGORY_CAP) -> np.ndarray:
    """Scores re-ordered so that at most `cap` items share a leaf category with the context:
    the rest of those items move below every other product (their order kept)."""
    if cap is None or not len(context):
        return scores
    context_categories = categories[context]
    same = np.isin(categories, context_categories[context_categories >= 0]) & (categories >= 0)
    same[context] = False
    candidates = np.flatnonzero(same)
    if len(candidates) <= cap:
        return scores
    demoted = candidates[np.argsort(-scores[candidates], kind="stable")[cap:]]
    out = scores.astype(np.float64, copy=True)
    out[demoted] -= (np.ptp(scores) + 1.0) * 2  # below everything, in the same relative order
    return out


@dataclass
class LookVectors:
    ids: dict[str, list[str]]
    arrays: dict[str, np.ndarray]
    meta: dict

    # -- scoring -------------------------------------------------------------------------
    @property
    def product_category(self) -> np.ndarray:
        """Leaf category row per product; the last row of `category_type` means none."""
        return self.arrays["product_category"]

    def content_rows(self, products: np.ndarray) -> np.ndarray:
        """Dense TF-IDF rows of some products (only the tokens they use)."""
        indptr, tokens, weights = self.arrays["content_indptr"], self.arrays["content_tokens"], self.arrays["content_weights"]
        out = np.zeros((len(products), int(self.arrays["content_vocabulary"])), dtype=np.float32)
        for row, p in enumerate(products):
            out[row, tokens[indptr[p] : indptr[p + 1]]] = weights[indptr[p] : indptr[p + 1]]
        return out

    def content_scores(self, context: np.ndarray, weights: np.ndarray | None = None,
                       among: np.ndarray | None = None) -> np.ndarray:
        """Cosine similarity of every product's content (or of the rows `among`) to the
        context's, summed over the context (weighted by `weights` when given)."""
        rows = self.content_rows(context)
        query = rows.sum(0) if weights is None else (np.asarray(weights, dtype=np.float32)[:, None] * rows).sum(0)
        indptr, tokens, weights_ = self.arrays["content_indptr"], self.arrays["content_tokens"], self.arrays["content_weights"]
        if among is not None:
            return np.array([float(weights_[indptr[p] : indptr[p + 1]] @ query[tokens[indptr[p] : indptr[p + 1]]])
                             for p in np.asarray(among).tolist()])
        return (self._content_matrix() @ query).astype(np.float64)

    def _content_matrix(self):
        """The products' content tokens as a sparse matrix, built once: one product of it per
        request (a gather, a multiply and a segmented sum over every token took 4x as long)."""
        if "_content_csr" not in self.__dict__:
            import scipy.sparse as sp

            indptr = self.arrays["content_indptr"]
            self.__dict__["_content_csr"] = sp.csr_matrix(
                (self.arrays["content_weights"], self.arrays["content_tokens"], indptr),
                shape=(len(indptr) - 1, int(self.arrays["content_vocabulary"])))
        return self.__dict__["_content_csr"]

    def category_values(self, name: str) -> dict[str, float]:
        """A per-category array of the artifact (e.g. `leaf_return_rate`) by category id."""
        if name not in self.arrays or "category" not in self.ids:
            return {}
        return dict(zip(self.ids["category"], self.arrays[name].tolist()))

    def gnn_scores(self, context: np.ndarray, among: np.ndarray | None = None,
                   weights: np.ndarray | None = None) -> np.ndarray:
        """LookGNN's category-gated complement score of every product (or of the rows `among`),
        summed over the context (weighted by `weights` when given):

            score(x) = sum_i w_i (x * sigmoid(t_cat(x) * t_cat(i) + b)) . c_i

        The gate depends on the two categories only, so it is computed once per pair of
        categories present: score(x) = x . H[cat(x)] with H[u] = sum_k sigmoid(t_u * t_k + b) * S_k
        and S_k = sum over the context items i of category k of w_i c_i."""
        items, types, bias = self.arrays["product"], self.arrays["category_type"], self.arrays["gate_bias"]
        categories = self.product_category
        if among is not None:
            items, categories = items[among], categories[among]
        context = np.asarray(context, dtype=np.int64)
        weights = np.ones(len(context), dtype=np.float32) if weights is None else np.asarray(weights, dtype=np.float32)
        context_categories, slot = np.unique(self.product_category[context], return_inverse=True)
        summed = np.zeros((len(context_categories), items.shape[1]), dtype=np.float32)
        np.add.at(summed, slot, weights[:, None] * self.arrays["product"][context])
        item_categories, row = np.unique(categories, return_inverse=True) if among is not None else self._categories()
        gate = 1.0 / (1.0 + np.exp(-(types[item_categories][:, None, :] * types[context_categories][None, :, :] + bias)))
        per_category = np.einsum("ukd,kd->ud", gate, summed)
        if among is not None:
            return np.einsum("nd,nd->n", items, per_category[row])
        # Every product: each category's products, contiguous, times that category's H.
        by_category, order, starts = self._products_by_category()
        sorted_scores = np.empty(len(order), dtype=np.float32)
        for u in range(len(starts) - 1):
            sorted_scores[starts[u] : starts[u + 1]] = by_category[starts[u] : starts[u + 1]] @ per_category[u]
        scores = np.empty_like(sorted_scores)
        scores[order] = sorted_scores
        return scores

    def _categories(self) -> tuple[np.ndarray, np.ndarray]:
        """The distinct categories of the catalogue and each product's index among them, sorted
        once (a sort of every product on every request cost 4 ms at 100k products)."""
        if "_category_index" not in self.__dict__:
            self.__dict__["_category_index"] = np.unique(self.product_category, return_inverse=True)
        return self.__dict__["_category_index"]

    def _products_by_category(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A copy of the product vectors ordered by category (`_categories`' order), that order,
        and where each category starts: scoring every product reads each category's rows as one
        block (gathering each product's H row instead cost 4.8 ms against 1.2 at 100k products,
        for a second copy of the product vectors in memory)."""
        if "_sorted_products" not in self.__dict__:
            categories, row = self._categories()
            order = np.argsort(row, kind="stable")
            starts = np.searchsorted(row[order], np.arange(len(categories) + 1))
            self.__dict__["_sorted_products"] = (self.arrays["product"][order], order, starts)
        return self.__dict__["_sorted_products"]

    def complete(self, context: np.ndarray, cap: int | None = SAME_CATEGORY_CAP,
                 content_weight: float | None = None, weights: np.ndarray | None = None,
                 content: np.ndarray | None = None) -> np.ndarray:
        """Every product's score for completing a look around `context` (product rows, weighted
        by `weights` when given): the standardised GNN complement score plus `content_weight`
        times the standardised content match (`content`: already computed), then the
        cross-category cap. Context items themselves are not excluded."""
        weight = self.meta.get("content_weight", 0.5) if content_weight is None else content_weight
        scores = _standardise(self.gnn_scores(context, weights=weights))
        if weight:
            match = self.content_scores(context, weights) if content is None else content
            scores = scores + weight * _standardise(match)
        categories = np.where(self.product_category < len(self.arrays["category_type"]) - 1, self.product_category, -1)
        return across_categories(scores, categories, context, cap)

    def for_shopper(self, shopper: int | None, history: np.ndarray) -> np.ndarray:
        """Every product's score for a shopper: what completes their history, plus their
        learnt engagement when the shopper was seen in training (`shopper` row or None)."""
        scores = np.zeros(len(self.arrays["product"]))
        if len(history):
            scores += self.complete(history, cap=None)
        if shopper is not None:
            scores += _standardise(self.arrays["product"] @ self.arrays["shopper"][shopper])
        return scores

    # -- files ---------------------------------------------------------------------------
    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / "vectors.npz", **self.arrays)
        (folder / "ids.json").write_text(json.dumps(self.ids))
        (folder / "model.json").write_text(json.dumps(self.meta, indent=2) + "\n")
        return folder

    @classmethod
    def load(cls, folder: Path) -> LookVectors:
        with np.load(folder / "vectors.npz") as data:
            arrays = {k: data[k] for k in data.files}
        return cls(json.loads((folder / "ids.json").read_text()), arrays,
                   json.loads((folder / "model.json").read_text()))


def erase_shopper_from_artifacts(models: Path, shopper_id: str) -> list[Path]:
    """Rewrite every artifact under `models` that holds the shopper, without them: their id
    leaves `ids.json` and their vector row leaves `vectors.npz` and the checkpoint's shopper
    table (rows stay aligned with the ids). Each file is replaced whole (a temporary file,
    then a rename), so a crash leaves the old file or the new one, never half of either.
    Returns the artifact folders rewritten."""
    import torch

    rewritten = []
    for folder in sorted(p for p in models.glob("*") if (p / "ids.json").is_file()):
        ids = json.loads((folder / "ids.json").read_text())
        if shopper_id not in ids.get("shopper", []):
            continue
        row = ids["shopper"].index(shopper_id)
        del ids["shopper"][row]
        with np.load(folder / "vectors.npz") as data:
            arrays = {k: data[k] for k in data.files}
        arrays["shopper"] = np.delete(arrays["shopper"], row, axis=0)
        _replace(folder / "vectors.npz", lambda f: np.savez(f, **arrays))
        _replace(folder / "ids.json", lambda f: f.write(json.dumps(ids).encode()))
        checkpoint = folder / "checkpoint.pt"
        if checkpoint.exists():
            state = torch.load(checkpoint, map_location="cpu", weights_only=True)
            key = "embedding.shopper.weight"
            if key in state and len(state[key]) > row:
                state[key] = torch.cat([state[key][:row], state[key][row + 1 :]])
            _replace(checkpoint, lambda f: torch.save(state, f))
        rewritten.append(folder)
    return rewritten


def _replace(path: Path, write) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)


def _standardise(scores: np.ndarray) -> np.ndarray:
    return (scores - scores.mean()) / (scores.std() + 1e-9)


def latest_artifact(home: Path) -> Path:
    pointer = home / "models" / "LATEST"
    if not pointer.exists():
        raise FileNotFoundError(f"no trained model in {home / 'models'}; run `lookgraph train` first")
    return home / "models" / pointer.read_text().strip()
