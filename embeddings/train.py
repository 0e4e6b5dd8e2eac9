"""Train LookGNN on an exported graph: read this file top to bottom.

1. Positives. Complementarity: pairs of products that belong together (in a look, or bought
   or browsed in one session). Engagement: shopper-product pairs of positive interactions,
   drawn by strength (a purchase 3, a cart 2, a view 1) and recency (halved every
   `engagement_half_life_days` before the graph's last event): the shopper's preference.
2. Negatives. For each complement pair, a random product, or (for half of them) a product
   from the anchor's own leaf category: that is what teaches "complement, not similar".
3. Propagation. A graph that fits (`full_graph_size`) is propagated whole at every step, as
   LightGCN does (`FullGraph`), in large batches of pairs; a bigger one in mini-batches whose
   products and shoppers seed a sampled 2-hop neighbourhood (`NeighbourSampler`).
4. Loss. BPR on both signals: softplus(negative score - positive score).
5. Early stopping on validation NDCG@10 of complete-the-look, or, in a shop without looks, on
   the held-out latest product of some shoppers (NDCG@20), keeping the best weights. Given a
   model learnt before (`start`: `lookgraph train` learns again on every interaction once the
   ranker is learnt), a fixed number of epochs more, with nothing held out to stop on.
6. Inference. Every product, shopper, look and category is embedded in batches the same way.
7. The weight of exact content match next to the GNN score is chosen on the validation looks.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import psutil
import torch
from tqdm import tqdm

from .baselines import (
    content_tokens,
    group_pairs,
    item_groups,
    pairs_by_group,
    shopper_products,
)
from .export import GraphExport
from .metrics import Query, ndcg_at, rank_of
from .model import LookGNN
from .sampling import FullGraph, NeighbourSampler
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
    engagement_half_life_days: float = 90.0
    min_ranker_queries: int = 100
    ranker_split: str = "time"
    """What the ranker learns from: "time" (what shoppers went on to after a moment, every
    feature cut at it: `splits.hold_out_futures`), or "random" (a random fifth of shoppers'
    products, for catalogues where the order of engagement says nothing: `hold_out_missing`)."""
    """A ranker is learnt only from at least this many held-out queries whose answer the
    engine's candidates hold; with fewer, the hand-set evidence weights rank."""
    same_category_negatives: float = 0.5
    max_pairs_per_group: int = 60
    max_steps_per_epoch: int = 400
    """On big graphs an epoch is this many batches of pairs drawn at random, not all pairs."""
    full_graph_size: int = 300_000
    """Graphs of at most this many nodes and edges together are propagated whole at every step."""
    full_graph_batch_size: int = 4096
    seed: int = 7
    device: str = "auto"
    threads: int = 0
    """Torch's CPU threads; 0: the cores idle now (`default_threads`). Torch's default, every
    core, slowed training many-fold on a machine doing other work too."""
    max_minutes: float | None = None
    """Stop after the epoch that passes this many minutes of training (keeping the best weights
    so far); None: only early stopping ends training."""
    refresh_epochs: int = 2
    """Epochs `lookgraph train` learns on, from the early-stopped weights, over every interaction
    (what was held out for the ranker and early stopping included) before serving; within
    `max_minutes`."""


def default_threads() -> int:
    """The cores idle now (sampled over a quarter of a second; the load average lags by a
    minute), 1 to 4: every core of an idle machine, without oversubscribing a busy one."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    busy = psutil.cpu_percent(interval=0.25) / 100 * (os.cpu_count() or cores)
    return max(1, min(4, cores - round(busy)))


@dataclass
class TrainResult:
    config: TrainConfig
    model: LookGNN
    vectors: LookVectors | None = None
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    threads: int = 1


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def complement_pairs(graph: GraphExport, cap: int, rng: np.random.Generator) -> np.ndarray:
    """Ordered pairs (a, b) of products that belong together, [2, N]: every pair of a group with
    at most `cap` of them, else `cap` drawn at random (a window of 50 items has 2,450; drawing
    them beats listing them)."""
    groups = item_groups(graph)
    sizes = np.array([len(items) for items in groups], dtype=np.int64)
    small = sizes * (sizes - 1) <= cap
    first, second, _ = pairs_by_group([items for items, few in zip(groups, small) if few])
    big = [items for items, few in zip(groups, small) if not few]
    if big:
        n = np.repeat(np.array([len(items) for items in big]), cap)
        start = np.repeat(np.cumsum([0] + [len(items) for items in big[:-1]]), cap)
        items = np.concatenate(big).astype(np.int64)
        i = (rng.random(len(n)) * n).astype(np.int64)
        j = (i + 1 + (rng.random(len(n)) * (n - 1)).astype(np.int64)) % n  # any other item of the group
        first, second = np.concatenate([first, items[start + i]]), np.concatenate([second, items[start + j]])
    return np.stack([first, second])


def engagement_weights(graph: GraphExport, pairs: np.ndarray, half_life_days: float) -> np.ndarray:
    """How often to draw each (shopper, product) pair of `pairs`: its strongest event's weight
    (purchase 3, cart 2, view 1) times 2^(-age / half life), age counted back from the graph's
    last event; normalised to sum to 1."""
    if not pairs.shape[1]:
        return np.zeros(0)
    session, product = graph.edges[("session", "interacted", "product")]
    owner = np.full(graph.count("session"), -1)
    had = graph.edges[("shopper", "had", "session")]
    owner[had[1]] = had[0]
    positive = np.isin(graph.event_type, (0, 1, 2)) & (owner[session] >= 0)
    key = owner[session[positive]] * graph.count("product") + product[positive]
    age_days = (graph.event_ts.max() - graph.event_ts[positive]) / 86_400
    weight = (graph.event_type[positive].astype(np.float64) + 1) * np.exp2(-age_days / half_life_days)
    pair_key = pairs[0] * graph.count("product") + pairs[1]
    best = np.zeros(len(pair_key))
    np.maximum.at(best, np.searchsorted(pair_key, key), weight)  # `pairs` come sorted (np.unique)
    best = np.maximum(best, 1e-6)
    return best / best.sum()


def shopper_ndcg(vectors: LookVectors, queries: list[tuple[int, Query]]) -> float:
    ranks = np.array([rank_of(vectors.for_shopper(s, q.context), q.target, q.context) for s, q in queries])
    return ndcg_at(ranks, 20)


def validation_ndcg(vectors: LookVectors, queries: list[Query], content_weight: float | None = None) -> float:
    ranks = np.array([rank_of(vectors.complete(q.context, content_weight=content_weight), q.target, q.context)
                      for q in queries])
    return ndcg_at(ranks, 10)


def train(graph: GraphExport, config: TrainConfig | None = None, validation: list[Query] | None = None,
          progress: bool = False, shoppers: list[tuple[int, Query]] | None = None, log_line=None,
          start: LookGNN | None = None) -> TrainResult:
    """Train on `graph`; `validation` queries (complete-the-look) drive early stopping, or
    without them `shoppers` (held-out latest products). `start`: a model learnt on a graph of
    the same nodes, learnt on for `config.epochs` epochs without early stopping. `progress`:
    tqdm bars on a terminal; `log_line`: called with one line per epoch (every output, not only
    terminals)."""
    config = config or TrainConfig()
    started = time.perf_counter()
    threads = config.threads or default_threads()
    torch.set_num_threads(threads)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    device = _device(config.device)

    # -- 1. positives ----------------------------------------------------------------------
    complements = complement_pairs(graph, config.max_pairs_per_group, rng)
    engagements = shopper_products(graph)
    engagement_p = engagement_weights(graph, engagements, config.engagement_half_life_days)
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
    full = sum(index.shape[1] for index in graph.edges.values()) + sum(num_nodes.values()) <= config.full_graph_size
    sampler = FullGraph(edges, num_nodes) if full else NeighbourSampler(edges, num_nodes, config.fanouts, config.seed)
    batch_size = config.full_graph_batch_size if full else config.batch_size
    # A mini-batch touches few rows of the id embeddings: sparse gradients and a lazy Adam for
    # them, so that a step costs what its batch costs, not what the graph's tables cost.
    model = LookGNN(num_nodes, list(edges), n_categories, content_tokens(graph), config.dim, config.layers,
                    config.id_dropout, sparse=not full).to(device)
    if start is not None:
        model.load_state_dict(start.state_dict())
        validation = shoppers = None
    engaged = np.zeros(n_products, dtype=bool)
    engaged[graph.edges[("session", "interacted", "product")][1]] = True
    engaged[graph.edges[("look", "includes", "product")][1]] = True
    model.cold.copy_(torch.from_numpy(~engaged))  # never-seen products start from attributes alone
    tables = list(model.embedding.parameters())
    dense = [p for p in model.parameters() if all(p is not t for t in tables)]
    optimizers = [torch.optim.Adam(dense, lr=config.lr),
                  (torch.optim.Adam if full else torch.optim.SparseAdam)(tables, lr=config.lr)]
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
    shoppers = [] if validation else (shoppers or [])[:400]
    result = TrainResult(config, model, threads=threads)
    best_score, best_state, stale = -1.0, None, 0
    steps = max(1, min(config.max_steps_per_epoch, int(np.ceil(max(complements.shape[1], engagements.shape[1]) / batch_size))))
    for epoch in range(1, config.epochs + 1):
        # -- 2-4. one epoch of mini-batches --------------------------------------------------
        model.train()
        tick = time.perf_counter()
        order = rng.permutation(complements.shape[1])
        engagement_order = (rng.choice(engagements.shape[1], engagements.shape[1], p=engagement_p)
                            if engagements.shape[1] else order[:0])
        total = 0.0
        for step in tqdm(range(steps), desc=f"epoch {epoch}", disable=not progress, leave=False):
            chunk = order[step * batch_size : (step + 1) * batch_size]
            anchor, positive = complements[:, chunk]
            negative = negatives_for(anchor)
            e_chunk = engagement_order[(step * batch_size) % max(len(engagement_order), 1):][: batch_size]
            shopper, engaged_product = engagements[:, e_chunk]
            engaged_negative = rng.integers(0, n_products, len(shopper))
            seeds = {"product": np.concatenate([anchor, positive, negative, engaged_product, engaged_negative]),
                     "shopper": shopper}
            sub = sampler.sample(seeds)
            h = model({t: ids.to(device) for t, ids in sub.node_ids.items()},
                      {e: ix.to(device) for e, ix in sub.edge_index.items()}, sub.hops)
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
            for optimizer in optimizers:
                optimizer.zero_grad()
            loss.backward()
            for optimizer in optimizers:
                optimizer.step()
            total += loss.item()
        record = {"epoch": epoch, "loss": total / steps, "seconds": round(time.perf_counter() - tick, 2)}
        if full:
            record["full_graph"] = True

        # -- 5. early stopping -----------------------------------------------------------------
        if validation:
            vectors = _vectors(model, sampler, graph, device, product_category, content, types=("product",))
            record["val_ndcg@10"] = score = validation_ndcg(vectors, validation, content_weight=0.0)
        elif shoppers:
            vectors = _vectors(model, sampler, graph, device, product_category, content, types=("product", "shopper"))
            record["val_shopper_ndcg@20"] = score = shopper_ndcg(vectors, shoppers)
        if validation or shoppers:
            if score > best_score:
                best_score, best_state, stale = score, copy.deepcopy(model.state_dict()), 0
            else:
                stale += 1
        result.history.append(record)
        log.info("epoch %d: %s", epoch, record)
        line = f"epoch {epoch:3d}/{config.epochs}  " + "  ".join(
            f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items() if k not in ("epoch", "full_graph"))
        if log_line is not None:
            log_line(line)
        if (validation or shoppers) and stale >= config.patience:
            break
        if config.max_minutes is not None and time.perf_counter() - started > config.max_minutes * 60:
            if log_line is not None and epoch < config.epochs:
                log_line(f"stopped after epoch {epoch}: the {config.max_minutes:g}-minute budget is spent "
                         "(the best epoch's weights are kept)")
            break
    if best_state is not None:
        model.load_state_dict(best_state)

    # -- 6. inference ----------------------------------------------------------------------
    result.vectors = _vectors(model, sampler, graph, device, product_category, content, artifact=True)

    # -- 7. how much exact content match to add to the GNN score ---------------------------
    weight = 0.5
    if validation:
        weight = max(CONTENT_WEIGHTS, key=lambda w: validation_ndcg(result.vectors, validation, w))
    result.vectors.meta["content_weight"] = weight
    result.seconds = time.perf_counter() - started
    return result


def _vectors(model, sampler, graph: GraphExport, device, product_category, content,
             types: tuple[str, ...] = ("product", "shopper", "look", "category"), artifact: bool = False) -> LookVectors:
    """The model's vectors of `types`; with `artifact`, also what the ranker's features read
    besides them (the crowd's statistics: constant over training, so not recounted at every
    epoch's validation, where they cost more than the epoch's embedding)."""
    arrays = embed_all(model, sampler, graph, device, types=types)
    indptr, tokens, weights, vocabulary = content
    arrays |= {"product_category": product_category, "content_indptr": indptr, "content_tokens": tokens,
               "content_weights": weights, "content_vocabulary": np.array(vocabulary)}
    ids = {t: graph.ids[t] for t in types}
    if artifact:
        arrays |= crowd_statistics(graph)
        ids["attribute"] = graph.ids["attribute"]
    return LookVectors(ids, arrays, {"fingerprint": graph.fingerprint})


def crowd_statistics(graph: GraphExport, recent_days: float = 30.0) -> dict[str, np.ndarray]:
    """Per product: positive events (`popularity`) and those of the last `recent_days` of the
    graph (`trend`). Per category: of the shoppers who engaged with a product of it, the share
    who engaged with another one of it too (`leaf_return_rate`): books and basics high, sofas low."""
    product = graph.edges[("session", "interacted", "product")][1]
    positive = np.isin(graph.event_type, (0, 1, 2))
    n = graph.count("product")
    popularity = np.bincount(product[positive], minlength=n).astype(np.float32)
    recent = positive & (graph.event_ts >= (graph.event_ts.max() if len(graph.event_ts) else 0) - recent_days * 86_400)
    trend = np.bincount(product[recent], minlength=n).astype(np.float32)
    pairs = shopper_products(graph)
    leaf = graph.product_category[pairs[1]]
    known = leaf >= 0
    per_shopper_leaf = np.unique(pairs[0][known] * graph.count("category") + leaf[known], return_counts=True)
    leaves = per_shopper_leaf[0] % max(graph.count("category"), 1)
    engaged = np.bincount(leaves, minlength=graph.count("category"))
    returned = np.bincount(leaves[per_shopper_leaf[1] >= 2], minlength=graph.count("category"))
    rate = np.where(engaged > 0, returned / np.maximum(engaged, 1), 0.0).astype(np.float32)
    return {"popularity": popularity, "trend": trend, "leaf_return_rate": rate, **co_engagement(graph)}


def co_engagement(graph: GraphExport, per_product: int = 50) -> dict[str, np.ndarray]:
    """The crowd's co-engagement as CSR over product rows: each product's `per_product` most
    frequent companions in looks and sessions (long sessions in windows, `item_groups`), with
    how many groups they share (`crowd_indptr`, `crowd_items`, `crowd_counts`). Unlike the
    crowd walk of a request, it keeps the sessions too long to walk."""
    n = graph.count("product")
    first, second = group_pairs(item_groups(graph))
    indptr = np.zeros(n + 1, dtype=np.int64)
    keys, counts = np.unique(first * n + second, return_counts=True)
    src, dst = keys // n, keys % n
    order = np.lexsort((dst, -counts, src))
    src, dst, counts = src[order], dst[order], counts[order]
    first = np.searchsorted(src, src)  # each row's first position among its product's rows
    keep = np.arange(len(src)) - first < per_product
    src, dst, counts = src[keep], dst[keep], counts[keep]
    np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
    return {"crowd_indptr": indptr, "crowd_items": dst.astype(np.int32), "crowd_counts": counts.astype(np.int32)}


@torch.no_grad()
def embed_all(model: LookGNN, sampler: NeighbourSampler, graph: GraphExport, device: torch.device,
              batch_size: int = 4096, types: tuple[str, ...] = ("product", "shopper", "look", "category")) -> dict[str, np.ndarray]:
    model.eval()
    out: dict[str, np.ndarray] = {}
    if isinstance(sampler, FullGraph):  # one propagation embeds every node
        sub = sampler.sample({})
        h = model({t: ids.to(device) for t, ids in sub.node_ids.items()}, {e: ix.to(device) for e, ix in sub.edge_index.items()})
        out = {t: h[t].cpu().numpy() if t in h else np.zeros((0, model.gate_bias.numel()), dtype=np.float32) for t in types}
        types = ()
    for node_type in types:
        n = graph.count(node_type)
        rows = []
        for start in range(0, n, batch_size):
            seeds = np.arange(start, min(n, start + batch_size))
            sub = sampler.sample({node_type: seeds})
            h = model({t: ids.to(device) for t, ids in sub.node_ids.items()},
                      {e: ix.to(device) for e, ix in sub.edge_index.items()}, sub.hops)
            rows.append(h[node_type][sub.seeds[node_type].to(device)].cpu().numpy())
        out[node_type] = np.concatenate(rows) if rows else np.zeros((0, model.gate_bias.numel()), dtype=np.float32)
    out["category_type"] = model.category_type.weight.detach().cpu().numpy()
    out["gate_bias"] = model.gate_bias.detach().cpu().numpy()
    return out


def config_dict(config: TrainConfig) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(config).items()}
