"""Train LookGNN on an exported graph: read this file top to bottom.

1. Positives. Complementarity: pairs of products that belong together (in a look, or bought
   or browsed in one session). Engagement: shopper-product pairs of positive interactions.
2. Negatives. For each complement pair, a random product, or (for half of them) a product
   from the anchor's own leaf category: that is what teaches "complement, not similar".
3. Mini-batches. The batch's products and shoppers are the seeds of a sampled 2-hop
   neighbourhood (`NeighbourSampler`); LookGNN runs on that subgraph only.
4. Loss. BPR on both signals: softplus(negative score - positive score).
5. Early stopping on validation NDCG@10 of complete-the-look, keeping the best weights.
6. Inference. Every product, shopper, look and category is embedded in batches the same way.
7. The weight of exact content match next to the GNN score is chosen on the validation looks.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from .baselines import content_tokens, item_groups, shopper_products
from .export import GraphExport
from .metrics import Query, ndcg_at, rank_of
from .model import LookGNN
from .sampling import NeighbourSampler
from .vectors import LookVectors

CONTENT_WEIGHTS = (0.0, 0.25, 0.5, 1.0, 2.0)

log = logging.getLogger("lookgraph.train")


@dataclass
class TrainConfig:
    dim: int = 64
    layers: int = 2
    fanouts: tuple[int, ...] = (10, 5)
    batch_size: int = 512
    lr: float = 0.005
    epochs: int = 30
    patience: int = 3
    id_dropout: float = 0.3
    engagement_weight: float = 0.5
    same_category_negatives: float = 0.5
    max_pairs_per_group: int = 60
    max_steps_per_epoch: int = 400
    """On big graphs an epoch is this many batches of pairs drawn at random, not all pairs."""
    seed: int = 7
    device: str = "auto"


@dataclass
class TrainResult:
    config: TrainConfig
    model: LookGNN
    vectors: LookVectors | None = None
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def complement_pairs(graph: GraphExport, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Ordered pairs (a, b) of products that belong together, [2, N]; at most `cap` per group."""
    pairs = []
    for items in item_groups(graph):
        a, b = np.meshgrid(items, items)
        off = a != b
        both = np.stack([a[off], b[off]])
        if both.shape[1] > cap:
            both = both[:, rng.choice(both.shape[1], cap, replace=False)]
        pairs.append(both)
    return np.concatenate(pairs, axis=1) if pairs else np.zeros((2, 0), dtype=np.int64)


def validation_ndcg(vectors: LookVectors, queries: list[Query], content_weight: float | None = None) -> float:
    ranks = np.array([rank_of(vectors.complete(q.context, content_weight=content_weight), q.target, q.context)
                      for q in queries])
    return ndcg_at(ranks, 10)


def train(graph: GraphExport, config: TrainConfig | None = None, validation: list[Query] | None = None,
          progress: bool = False) -> TrainResult:
    """Train on `graph`; `validation` queries (complete-the-look) drive early stopping."""
    config = config or TrainConfig()
    started = time.perf_counter()
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    device = _device(config.device)

    # -- 1. positives ----------------------------------------------------------------------
    complements = complement_pairs(graph, config.max_pairs_per_group, rng)
    engagements = shopper_products(graph)
    n_products, n_categories = graph.count("product"), graph.count("category")
    product_category = np.where(graph.product_category >= 0, graph.product_category, n_categories)
    by_category_order = np.argsort(product_category, kind="stable")
    category_start = np.searchsorted(product_category[by_category_order], np.arange(n_categories + 2))

    # -- the model, and the neighbourhoods it learns from ----------------------------------
    num_nodes = {t: graph.count(t) for t in graph.ids}
    edges = {}
    for (src, rel, dst), index in graph.edges.items():
        edges[(src, rel, dst)] = index
        edges[(dst, f"rev_{rel}", src)] = index[::-1]
    sampler = NeighbourSampler(edges, num_nodes, config.fanouts, config.seed)
    model = LookGNN(num_nodes, list(edges), n_categories, content_tokens(graph), config.dim, config.layers,
                    config.id_dropout).to(device)
    engaged = np.zeros(n_products, dtype=bool)
    engaged[graph.edges[("session", "interacted", "product")][1]] = True
    engaged[graph.edges[("look", "includes", "product")][1]] = True
    model.cold.copy_(torch.from_numpy(~engaged))  # never-seen products start from attributes alone
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    category_of = torch.from_numpy(product_category).to(device)

    def negatives_for(anchors: np.ndarray) -> np.ndarray:
        negatives = rng.integers(0, n_products, len(anchors))
        similar = rng.random(len(anchors)) < config.same_category_negatives
        cats = product_category[anchors[similar]]
        start, size = category_start[cats], category_start[cats + 1] - category_start[cats]
        pick = by_category_order[np.minimum(start + (rng.random(len(cats)) * size).astype(np.int64), n_products - 1)]
        negatives[similar] = np.where(size > 1, pick, negatives[similar])
        return negatives

    content = content_tokens(graph)
    validation = (validation or [])[:400]
    result = TrainResult(config, model)
    best_score, best_state, stale = -1.0, None, 0
    steps = max(1, min(config.max_steps_per_epoch, int(np.ceil(complements.shape[1] / config.batch_size))))
    for epoch in range(1, config.epochs + 1):
        # -- 2-4. one epoch of mini-batches --------------------------------------------------
        model.train()
        tick = time.perf_counter()
        order = rng.permutation(complements.shape[1])
        engagement_order = rng.permutation(engagements.shape[1]) if engagements.shape[1] else order[:0]
        total = 0.0
        for step in tqdm(range(steps), desc=f"epoch {epoch}", disable=not progress, leave=False):
            chunk = order[step * config.batch_size : (step + 1) * config.batch_size]
            anchor, positive = complements[:, chunk]
            negative = negatives_for(anchor)
            e_chunk = engagement_order[(step * config.batch_size) % max(len(engagement_order), 1):][: config.batch_size]
            shopper, engaged_product = engagements[:, e_chunk]
            engaged_negative = rng.integers(0, n_products, len(shopper))
            seeds = {"product": np.concatenate([anchor, positive, negative, engaged_product, engaged_negative]),
                     "shopper": shopper}
            sub = sampler.sample(seeds)
            h = model({t: ids.to(device) for t, ids in sub.node_ids.items()},
                      {e: ix.to(device) for e, ix in sub.edge_index.items()})
            seed_products = torch.from_numpy(np.concatenate([anchor, positive, negative])).to(device)
            hp = h["product"][sub.seeds["product"].to(device)]
            b = len(anchor)
            ha, hpos, hneg = hp[:b], hp[b : 2 * b], hp[2 * b : 3 * b]
            ca, cpos, cneg = category_of[seed_products[:b]], category_of[seed_products[b : 2 * b]], category_of[seed_products[2 * b :]]
            loss = torch.nn.functional.softplus(
                model.complement(ha, ca, hneg, cneg) - model.complement(ha, ca, hpos, cpos)).mean()
            if len(shopper):
                hu = h["shopper"][sub.seeds["shopper"].to(device)]
                he, hen = hp[3 * b : 3 * b + len(shopper)], hp[3 * b + len(shopper) :]
                loss = loss + config.engagement_weight * torch.nn.functional.softplus(
                    model.engagement(hu, hen) - model.engagement(hu, he)).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
        record = {"epoch": epoch, "loss": total / steps, "seconds": round(time.perf_counter() - tick, 2)}

        # -- 5. early stopping -----------------------------------------------------------------
        if validation:
            vectors = _vectors(model, sampler, graph, device, product_category, content, types=("product",))
            record["val_ndcg@10"] = score = validation_ndcg(vectors, validation, content_weight=0.0)
            if score > best_score:
                best_score, best_state, stale = score, copy.deepcopy(model.state_dict()), 0
            else:
                stale += 1
        result.history.append(record)
        log.info("epoch %d: %s", epoch, record)
        if progress:
            print(f"epoch {epoch:3d}  " + "  ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
                                                    for k, v in record.items() if k != "epoch"), flush=True)
        if validation and stale >= config.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)

    # -- 6. inference ----------------------------------------------------------------------
    result.vectors = _vectors(model, sampler, graph, device, product_category, content)

    # -- 7. how much exact content match to add to the GNN score ---------------------------
    weight = 0.5
    if validation:
        weight = max(CONTENT_WEIGHTS, key=lambda w: validation_ndcg(result.vectors, validation, w))
    result.vectors.meta["content_weight"] = weight
    result.seconds = time.perf_counter() - started
    return result


def _vectors(model, sampler, graph: GraphExport, device, product_category, content,
             types: tuple[str, ...] = ("product", "shopper", "look", "category")) -> LookVectors:
    arrays = embed_all(model, sampler, graph, device, types=types)
    indptr, tokens, weights, vocabulary = content
    arrays |= {"product_category": product_category, "content_indptr": indptr, "content_tokens": tokens,
               "content_weights": weights, "content_vocabulary": np.array(vocabulary)}
    ids = {t: graph.ids[t] for t in types}
    return LookVectors(ids, arrays, {"fingerprint": graph.fingerprint})


@torch.no_grad()
def embed_all(model: LookGNN, sampler: NeighbourSampler, graph: GraphExport, device: torch.device,
              batch_size: int = 4096, types: tuple[str, ...] = ("product", "shopper", "look", "category")) -> dict[str, np.ndarray]:
    model.eval()
    out: dict[str, np.ndarray] = {}
    for node_type in types:
        n = graph.count(node_type)
        rows = []
        for start in range(0, n, batch_size):
            seeds = np.arange(start, min(n, start + batch_size))
            sub = sampler.sample({node_type: seeds})
            h = model({t: ids.to(device) for t, ids in sub.node_ids.items()},
                      {e: ix.to(device) for e, ix in sub.edge_index.items()})
            rows.append(h[node_type][sub.seeds[node_type].to(device)].cpu().numpy())
        out[node_type] = np.concatenate(rows) if rows else np.zeros((0, model.gate_bias.numel()), dtype=np.float32)
    out["category_type"] = model.category_type.weight.detach().cpu().numpy()
    out["gate_bias"] = model.gate_bias.detach().cpu().numpy()
    return out


def config_dict(config: TrainConfig) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}
