"""The engine offline: the real engine, served from a training graph, asked what the held-out
interactions were. Two users:

- `lookgraph train` learns the ranker from it: for shoppers asked before what they went on to
  (held out of the graph: `embeddings/splits.py`), for held-out looks and (in shops without
  looks) sessions whose last item is held out, the engine's candidates and their features,
  labelled by whether each is a held-out product (`ranker_groups`);
- `lookgraph evaluate --methods engine` measures what the API would answer (`EngineMethod`).

The training graph (a `GraphExport`, held-out edges already removed) is written into a
temporary embedded store, so candidates come from the same walks, policies and filters as a
request to `lookgraph serve` does. Names, prices, locations and gift flags are not part of an
export: offline, products are named by their ids and no session is a trip or a gift.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..embeddings.export import GraphExport
from ..embeddings.metrics import Query
from ..embeddings.splits import hold_out_futures, hold_out_latest_visits, hold_out_missing, make_split
from ..graph.model import EVENT_TYPES, Attribute, Category, Event, Look, Product, Shopper
from ..graph.sqlite_store import SQLiteGraphStore
from .engine import Ask, Engine
from .policies import PolicyConfig

OFFLINE_SESSION = "offline/"
"""Session ids the offline queries ask with (never a stored session)."""
RANKER_QUERIES = 2_000
"""At most this many held-out queries of each kind (shoppers, looks, sessions) train the ranker:
enough for LambdaRank, and a fixed cost however large the shop."""


def write_export(graph: GraphExport, store: SQLiteGraphStore) -> None:
    """Every node and edge of `graph` as native records in an empty embedded store."""
    ids = graph.ids
    parent = dict(zip(*graph.edges[("category", "child_of", "category")].tolist()))
    names = graph.category_names + ids["category"][len(graph.category_names):]
    attributes: list[list[Attribute]] = [[] for _ in ids["product"]]
    for p, a in graph.edges[("product", "has", "attribute")].T.tolist():
        attributes[p].append(Attribute.from_key(ids["attribute"][a]))
    owner = {s: u for u, s in graph.edges[("shopper", "had", "session")].T.tolist()}
    session_of = {lk: s for lk, s in graph.edges[("look", "found_in", "session")].T.tolist()}
    session, product = graph.edges[("session", "interacted", "product")]
    with store.bulk_load() as writer:
        writer.write("categories", [Category(cid, names[i], ids["category"][parent[i]] if i in parent else None)
                                    for i, cid in enumerate(ids["category"])])
        writer.write("products", [Product(pid, pid, ids["category"][c] if c >= 0 else None, None, tuple(attributes[i]))
                                  for i, (pid, c) in enumerate(zip(ids["product"], graph.product_category.tolist()))])
        writer.write("shoppers", [Shopper(sid) for sid in ids["shopper"]])
        writer.write("events", [
            Event(f"e{n}", ids["session"][s], ids["product"][p], EVENT_TYPES[t], ts,
                  ids["shopper"][owner[s]] if s in owner else None)
            for n, (s, p, t, ts) in enumerate(zip(session.tolist(), product.tolist(), graph.event_type.tolist(),
                                                  graph.event_ts.tolist()))])
        curated = graph.count("look") - len(graph.mined_looks)
        writer.write("looks", [Look(ids["look"][lk], ids["look"][lk], tuple(ids["product"][p] for p in items),
                                    ids["session"][session_of[lk]] if lk in session_of else None)
                               for lk, items in enumerate(graph.look_items()[:curated]) if len(items)])
        writer.write("looks", graph.mined_looks)


class _Clock:
    """The offline engine's clock: a shopper's query is asked at the moment it happened; a
    session's or a look's, which say nothing of when, at `latest`, the moment after the training
    graph's last event (as the API would answer them now; before, they were asked at whatever
    moment the last shopper's query had left it, and time-bound features such as `trend` with
    it)."""

    def __init__(self, now: float):
        self.now = self.latest = now

    def __call__(self) -> float:
        return self.now


@contextmanager
def offline_engine(graph: GraphExport, vectors, ranker=None, config: PolicyConfig | None = None) -> Iterator[Engine]:
    """An engine over `graph` in a temporary embedded store, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="lookgraph-offline-") as folder:
        store = SQLiteGraphStore(Path(folder) / "offline.sqlite", synchronous="OFF")
        try:
            store.ensure_schema()
            write_export(graph, store)
            latest = float(graph.event_ts.max()) + 1.0 if len(graph.event_ts) else 0.0
            engine = Engine(store, store.traversal(vectors), vectors, config or PolicyConfig(), _Clock(latest), ranker)
            engine.future_slack = 0.0  # a query asked at t sees nothing of what happened after t
            yield engine
        finally:
            store.close()


def ask_shopper(engine: Engine, graph: GraphExport, shopper: int, when: float | None, k: int) -> list[str]:
    """What the API would answer the shopper (their feed, `GET /shoppers/{id}/recommendations`)."""
    if when is not None:
        engine.clock.now = when
    return [r.product_id for r in engine.for_shopper(graph.ids["shopper"][shopper], Ask(k=k, explore=False)).items]


def ask_session(engine: Engine, graph: GraphExport, context: np.ndarray, k: int, n: int) -> list[str]:
    """What the API would answer an anonymous visitor with these items (`POST /sessions/...`)."""
    items = tuple(graph.ids["product"][p] for p in context.tolist())
    engine.clock.now = engine.clock.latest
    return [r.product_id for r in engine.for_session(f"{OFFLINE_SESSION}{n}", Ask(k=k, items=items, explore=False)).items]


def ask_look(engine: Engine, graph: GraphExport, context: np.ndarray, k: int) -> list[str]:
    """What the API would answer for completing a look with these items in it
    (`GET /products/{first}/complete-the-look?item=...`)."""
    first, *rest = (graph.ids["product"][p] for p in context.tolist())
    engine.clock.now = engine.clock.latest
    return [r.product_id for r in engine.complete_the_look(first, Ask(k=k, items=tuple(rest))).items]


def ranker_groups(engine: Engine, graph: GraphExport, futures: list[tuple[int, np.ndarray, float]],
                  looks: list[Query], sessions: list[Query]) -> list[tuple[np.ndarray, ...]]:
    """(features, relevance[, weights, anonymous]) of the engine's candidates for each held-out
    query: shoppers' feeds asked before their held-out future (every product of it relevant),
    looks completed around their other items, anonymous visitors with a session's items."""
    groups = []
    for shopper, later, when in futures:
        engine.clock.now = when
        ids, x = engine.candidate_features(graph.ids["shopper"][shopper], Ask(k=20, explore=False))
        wanted = {graph.ids["product"][p] for p in later.tolist()}
        groups.append((x, np.array([pid in wanted for pid in ids], dtype=np.float64)))
    engine.clock.now = engine.clock.latest  # looks and sessions: asked now, as `ask_look` and `ask_session` are
    for query in looks:
        first, *rest = (graph.ids["product"][p] for p in query.context.tolist())
        ids, x = engine.candidate_features(None, Ask(k=20, product_id=first, items=tuple(rest)), look=True)
        groups.append((x, np.array([pid == graph.ids["product"][query.target] for pid in ids], dtype=np.float64)))
    for n, query in enumerate(sessions):
        items = tuple(graph.ids["product"][p] for p in query.context.tolist())
        ids, x = engine.candidate_features(None, Ask(k=20, items=items, explore=False, session_id=f"{OFFLINE_SESSION}{n}"))
        groups.append((x, np.array([pid == graph.ids["product"][query.target] for pid in ids], dtype=np.float64),
                       np.ones(len(ids)), True))  # an anonymous visitor: the ranker's "session" kind
    return groups


ACROSS_ONLY_SIGNIFICANCE = 0.05
"""Without a learned ranker, feeds leave the anchors' categories out unless keeping them answers
more held-out queries than leaving them out, by a sign test at this level."""


def choose_across_only(engine: Engine, graph: GraphExport, futures: list[tuple[int, np.ndarray, float]],
                       looks: list[Query], sessions: list[Query], k: int = 20) -> dict:
    """How much "more of the same" is worth in this shop, when no ranker could be learnt:
    the held-out queries asked as served (top `k`, no exploration) with the anchors' categories
    left out (complements only, the mission's default) and with them kept. Keeping them is
    chosen only when it answers significantly more queries (a one-sided sign test over the
    queries one way answers and the other does not): a shop whose shoppers browse within a
    category (Diginetica) gets the category, a fashion shop keeps completing the look.
    Returns {"chosen": across only?, "queries", "hits": per way, "p"}; `chosen` goes into the
    artifact's metadata (`Engine.install` reads it)."""
    def hits(strict: bool) -> np.ndarray:
        engine.strict_across = strict
        found = []
        for shopper, later, when in futures:
            wanted = {graph.ids["product"][p] for p in later.tolist()}
            found.append(bool(wanted & set(ask_shopper(engine, graph, shopper, when, k))))
        for query in looks:
            found.append(graph.ids["product"][query.target] in ask_look(engine, graph, query.context, k))
        for n, query in enumerate(sessions):
            found.append(graph.ids["product"][query.target] in ask_session(engine, graph, query.context, k, n))
        return np.array(found, dtype=bool)

    across, same = hits(True), hits(False)
    engine.strict_across = False
    wins, losses = int((same & ~across).sum()), int((across & ~same).sum())
    n = wins + losses
    p = sum(math.comb(n, i) for i in range(wins, n + 1)) / 2**n if n else 1.0
    return {"chosen": bool(p >= ACROSS_ONLY_SIGNIFICANCE), "queries": len(across),
            "hits": {"across only": int(across.sum()), "more of the same": int(same.sum())}, "p": round(p, 6)}


def add_collaborative(vectors, graph: GraphExport, say) -> None:
    """The item-to-item collaborative index (`embeddings/collaborative.py`: EASE for a catalogue
    up to `EASE_MAX_PRODUCTS`, ItemKNN above) on the graph's shoppers and looks, into the artifact."""
    import time

    from ..embeddings.baselines import _user_item_pairs
    from ..embeddings.collaborative import fit_collaborative

    started = time.perf_counter()
    pairs, n_users = _user_item_pairs(graph)
    index = fit_collaborative(pairs[0], pairs[1], n_users, graph.count("product"))
    vectors.arrays |= index.arrays()
    vectors.meta["collaborative"] = index.method
    say(f"collaborative: {index.method} over {n_users:,} shoppers and looks, {len(index.items):,} neighbours "
        f"in {time.perf_counter() - started:.1f} s")


def fit_artifact(graph: GraphExport, config, progress: bool = False, log_line=None, mine: bool = True,
                 validation: list[Query] | None = None, logged: list | None = None):
    """What `lookgraph train` learns from a graph, in one call (also the `engine` method of
    `lookgraph evaluate`, so the evaluation measures what training publishes):

    1. a split of the graph's own: everything from the moment before which four fifths of the
       engagement happened, asked for up to `RANKER_QUERIES` shoppers just before it
       (`hold_out_futures`; where fewer than `min_ranker_queries` shoppers span that moment,
       each shopper's latest visits, `hold_out_latest_visits`; `config.ranker_split =
       "random"`: a random fifth of their products, `hold_out_missing`); a share of looks (validation) and, in a shop without looks, of
       sessions; the latest product of a share of shoppers (LookGNN's early stopping);
    2. looks mined from the rest's baskets (`mining.py`), added to its curated ones;
    3. LookGNN on the rest, early stopping on the looks or else on those shoppers, and the
       item-to-item collaborative index (EASE or ItemKNN, by catalogue size);
    4. the engine served from the rest, asked for those shoppers (their feed, at the query's
       moment) and for the held-out looks and sessions (an anonymous
       visitor with the other items): its candidates' features, labelled by the held-out
       products, train the LambdaRank ranker (cross-fitted: `ranker.fit_ranker`); where too few queries have their answer among the candidates, no ranker, and
       the same queries decide whether the hand-set weights may show more of the anchors'
       categories (`choose_across_only`);
    5. the counts and the collaborative index recounted from the whole graph, and LookGNN learnt
       on over it for `refresh_epochs` more epochs (`learn_again`), to be served.

    `validation`: looks already held out of `graph` (the evaluation's), used instead of holding
    out more. `logged`: feeds the API served and what shoppers took from them (`logged.py`): the
    first four fifths are more queries for the ranker, weighed against position bias; on the
    last fifth the ranker learnt with them and the one learnt without are both estimated
    (item-position inverse propensity), and the former is served. Returns (TrainResult,
    LearnedRanker or None, the split, the mined looks)."""
    from ..embeddings.export import with_looks
    from ..embeddings.train import crowd_statistics, train
    from .mining import mine_looks
    from .ranker import fit_ranker, single_feature

    say = log_line or (lambda line: None)
    has_looks = graph.edges[("look", "includes", "product")].shape[1] > 0
    full = graph
    if config.ranker_split not in ("time", "random"):
        raise ValueError(f"ranker_split: {config.ranker_split!r} is neither 'time' nor 'random'")
    hold_out = hold_out_futures if config.ranker_split == "time" else hold_out_missing
    graph, futures = hold_out(full, config.seed, RANKER_QUERIES)
    split_used = "one moment for everyone" if config.ranker_split == "time" else "a random fifth of each shopper's products"
    if config.ranker_split == "time" and len(futures) < config.min_ranker_queries:
        # Any shopper with a history and a later visit asks a question (two products will do):
        # such shops are sparse, and a ranker needs a hundred answerable queries.
        graph, futures = hold_out_latest_visits(full, config.seed, RANKER_QUERIES, least=2)
        split_used = "each shopper's latest visits (too few shoppers span one moment; the crowd's counts hold later events)"
        say(f"ranker: too few shoppers span one moment in time; learning from {split_used}")
    split = make_split(graph, config.seed, test_share=0.0 if has_looks else 0.1,
                       validation_share=0.1 if has_looks and not validation else 0.0, shopper_share=0.5)
    if validation:
        split.validation = list(validation)
    if split_used != "one moment for everyone":
        # Where the queries are already per shopper (their latest visits, or a random fifth),
        # the latest product of each shopper held out for LookGNN's early stopping is one more
        # feed query, asked just before it: BundleRec's shoppers come in spells of a few products.
        latest = [(s, np.array([q.target]), t) for (s, q), t in zip(split.shoppers, split.shopper_times)]
        futures = futures + latest[: max(0, RANKER_QUERIES - len(futures))]
    mined = mine_looks(split.train) if mine else []
    say(f"mined {len(mined):,} looks from baskets")
    split.train = with_looks(split.train, mined)
    result = train(split.train, config, split.validation, progress=progress, shoppers=split.shoppers, log_line=log_line)
    add_collaborative(result.vectors, split.train, say)
    ranker, answerable = None, 0
    if futures or split.sessions or split.validation:
        rng = np.random.default_rng(config.seed)
        pick = lambda items: [items[i] for i in sorted(rng.permutation(len(items))[:RANKER_QUERIES])]  # noqa: E731
        looks, sessions = pick(split.validation), pick(split.sessions)
        say(f"ranker: asking the engine for {len(futures)} shoppers before their held-out future "
            f"({sum(len(f[1]) for f in futures):,} products), {len(looks)} looks and {len(sessions)} sessions")
        with offline_engine(split.train, result.vectors) as engine:
            engine.strict_across = False  # as the learned ranker will be served
            groups = ranker_groups(engine, split.train, futures, looks, sessions)
            learnt_from_logs = logged_training(engine, split.train, logged or [], say)
            answerable = sum(bool(g[1].any()) for g in groups)
            if answerable < config.min_ranker_queries:
                say(f"ranker: not trained: the engine's candidates held the answer of {answerable} held-out queries, "
                    f"fewer than the {config.min_ranker_queries} a ranker is learnt from; the hand-set evidence weights rank")
                across = choose_across_only(engine, split.train, futures, looks, sessions)
                result.vectors.meta["across_only"] = across
                say(f"hand-set weights: {across['hits']['across only']} of {across['queries']} held-out answers in the "
                    f"top 20 with the anchors' categories left out, {across['hits']['more of the same']} with them kept: "
                    + ("complements only" if across["chosen"] else "more of the same allowed in feeds"))
                # With the categories kept both ways, one feature may still rank better than the
                # hand-set weights: chosen on half the answerable queries, tested on the other half.
                ranker = None if across["chosen"] else single_feature(groups, config.seed)
                if ranker is not None:
                    found = ranker.report["over_hand_set"]
                    say(f"ranker: {ranker.report['base']} alone answers {found['answered']} of "
                        f"{ranker.report['valid_queries']} held-out queries in the top 20 against the hand-set "
                        f"weights' {found['hand_set_answered']} (sign test p {found['p']}): it ranks")
        if answerable >= config.min_ranker_queries:
            ranker = fit_ranker(groups, seed=config.seed)
            if learnt_from_logs is not None:
                ranker = with_logged(ranker, groups, learnt_from_logs, config.seed, say)
            report = ranker.describe()
            report["candidate_recall"] = round(answerable / len(groups), 4)
            report["split"] = split_used
            say(f"ranker: {report['folds']} fold(s) of {report['trees']} trees from nothing and {report['boosted_trees']} "
                f"over the base features {report['base']}; each kind ranked by {report['way']}; NDCG@20 "
                f"{report['valid_ndcg@20']} on {report['valid_queries']} queries the trees never saw, the held-out "
                f"product among the candidates for {report['candidate_recall']:.0%} of the queries")
    # Served with the counts, the item-to-item index and LookGNN of every interaction: the
    # ranker learnt them without the held-out futures, as it must, but a shopper's latest visits
    # are what their next feed most depends on.
    served = with_looks(full, mined)
    again = learn_again(result, served, config, progress, log_line)
    if again is result:  # (vectors learnt on over `served` count its statistics already)
        result.vectors.arrays |= crowd_statistics(served)
    result = again
    add_collaborative(result.vectors, served, say)
    return result, ranker, split, mined


def learn_again(result, served: GraphExport, config, progress: bool, log_line):
    """LookGNN learnt on over `served` (every interaction) for `config.refresh_epochs` epochs
    from the early-stopped weights, within what is left of `max_minutes`; what held-out queries
    chose (the content weight, `across_only`) is kept. Returns `result` itself when there is no epoch to spend."""
    from dataclasses import replace

    from ..embeddings.train import train

    left = None if config.max_minutes is None else config.max_minutes - result.seconds / 60
    if config.refresh_epochs <= 0 or (left is not None and left <= 0):
        return result
    again = train(served, replace(config, epochs=config.refresh_epochs, max_minutes=left), progress=progress,
                  log_line=log_line and (lambda line: log_line("every interaction: " + line)), start=result.model)
    # What was chosen on held-out queries (the content weight, `across_only`) stays chosen.
    again.vectors.meta = {**result.vectors.meta, **{k: v for k, v in again.vectors.meta.items() if k != "content_weight"}}
    again.history = result.history + [{**record, "every_interaction": True} for record in again.history]
    again.seconds += result.seconds
    return again


def logged_training(engine: Engine, graph: GraphExport, lists: list, say) -> dict | None:
    """The logged feeds as the ranker sees them (`logged.py`): the first four fifths by time to
    learn from, the last fifth to estimate on, and the position bias; None without any."""
    from .logged import HELD_OUT_SHARE, examination, logged_queries

    if not lists:
        return None
    cut = int(len(lists) * (1 - HELD_OUT_SHARE))
    exam = examination(lists[:cut])
    known = set(graph.ids["shopper"])
    learn, held_out = logged_queries(engine, lists[:cut], known), logged_queries(engine, lists[cut:], known)
    say(f"ranker: {len(learn):,} logged feeds to learn from, {len(held_out):,} held out to estimate on; "
        f"examination by slot {', '.join(f'{p:.2f}' for p in exam[:10])}")
    return {"learn": learn, "held_out": held_out, "examination": exam}


def with_logged(ranker, groups: list, logs: dict, seed: int, say):
    """The ranker learnt again with the logged feeds added to what every fold learns from (a
    click weighed by 1 / exam(slot)), both estimated on the held-out logged feeds; the one
    learnt with them is returned, its report saying both estimates."""
    from .logged import estimate, training_groups
    from .ranker import fit_ranker

    exam, held_out = logs["examination"], logs["held_out"]
    learnt = fit_ranker(groups, seed=seed, learn_only=training_groups(logs["learn"], exam))
    clicks = float(sum(q.clicked.sum() for q in held_out))
    report = {"learnt_from": len(logs["learn"]), "held_out": len(held_out), "examination": exam.round(4).tolist(),
              "logged_clicks": clicks, "estimated_clicks_with_logs": round(estimate(learnt.score, held_out, exam), 2),
              "estimated_clicks_without_logs": round(estimate(ranker.score, held_out, exam), 2)}
    learnt.report["logged"] = report
    say(f"ranker with logged feeds: on {len(held_out):,} held-out feeds ({clicks:.0f} clicks as logged) the clicks "
        f"estimated with it {report['estimated_clicks_with_logs']}, without {report['estimated_clicks_without_logs']}")
    return learnt


class EngineMethod:
    """`lookgraph evaluate --methods engine`: what `lookgraph train` publishes (LookGNN and the
    ranker, `fit_artifact`), served by the real engine over the split's training graph and
    asked through the same calls as the API's routes: a shopper's feed
    (`GET /shoppers/{id}/recommendations`), a look completed around its other items
    (`GET /products/{id}/complete-the-look?item=...`), an anonymous session's next item
    (`POST /sessions/{id}/recommendations` with the session's items). Lists are the served top k (no exploration
    slots); a target the list does not hold ranks beyond k."""

    name = "engine (served)"
    served = True

    def __init__(self, config, k: int = 20, log=None, logged: list | None = None):
        self.config, self.k, self.log, self.logged = config, k, log, logged

    def fit(self, graph: GraphExport, validation=None) -> None:
        from ..embeddings.export import with_looks

        result, self.ranker, _, mined = fit_artifact(graph, self.config, log_line=self.log, validation=validation,
                                                     logged=self.logged)
        graph = self.graph = with_looks(graph, mined)  # served with the looks training mined, as published
        self.vectors = result.vectors
        self._engine = offline_engine(graph, self.vectors, self.ranker)
        self.engine = self._engine.__enter__()
        self._asked = 0

    def close(self) -> None:
        self._engine.__exit__(None, None, None)

    def _rows(self, ids: list[str]) -> np.ndarray:
        position = self.engine.model.row
        return np.array([position[pid] for pid in ids if pid in position], dtype=np.int64)

    def served_list(self, shopper: int | None, context: np.ndarray, when: float | None, look: bool) -> np.ndarray:
        """Product rows of the served list, best first."""
        if shopper is not None:
            return self._rows(ask_shopper(self.engine, self.graph, shopper, when, self.k))
        if look:
            return self._rows(ask_look(self.engine, self.graph, context, self.k))
        self._asked += 1
        return self._rows(ask_session(self.engine, self.graph, context, self.k, self._asked))
