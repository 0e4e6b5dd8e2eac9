"""Explanations: the path behind every recommendation, as nodes and as a sentence.

Contract: a builder takes the cards of the products it names (id -> `ProductCard`) and the
reason's arguments, and returns a `Path` whose nodes are graph nodes (Product, Look,
Attribute, Category, Shopper, or the Crowd's sessions) joined by the relationships of the
graph model. Paths are built only for the items returned, the strongest reason first.
`explain` is the pipeline's last stage: each item of the list with its paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..graph.traversal import ATTRIBUTE, LOOK, ProductCard
from .merchandising import RuleSentences

VERBS = {"view": "viewed", "cart": "put in your bag", "purchase": "bought", "context": "are looking at"}
EXPLAINED_FIRST = ("returning", "restock", "look", "attribute", "crowd", "collaborative", "content", "embedding",
                   "personal", "trip", "trending", "popular")
"""Which reasons an item's paths show first: what the shopper did, then a look, then the other
graph paths, then the model's; by evidence within one source."""
FIRST = {source: rank for rank, source in enumerate(EXPLAINED_FIRST)}
PATHS_SHOWN = 2


@dataclass
class Step:
    label: str
    id: str
    name: str


@dataclass
class Path:
    nodes: list[Step]
    relationships: list[str]
    sentence: str


@dataclass
class Recommendation:
    product_id: str
    name: str
    category: str | None
    score: float
    paths: list[Path]
    exploration: bool = False
    reason: str = ""
    """The first path's sentence."""
    rules: list[str] = field(default_factory=list)
    """The business rules that moved it (boosts, buries), each as a sentence."""
    source: str = ""
    """The candidate source whose reason is said first (`EXPLAINED_FIRST`): look, crowd..."""


@dataclass
class Answer:
    """What a recommendation route returns: the items, and why the list is shorter than asked
    when it is (None when it is full)."""

    items: list[Recommendation]
    short_because: str | None = None
    recommendation_id: str = ""
    """The list's id (`impressions.py`), given when it is served."""
    variant: str | None = None
    """"<experiment id>/<variant>" when the list was served inside an experiment (`experiments.py`)."""
    model: str | None = None
    """The trained model's version it was served from (the variant's, inside an experiment); None: graph walks alone."""


def _step(cards: dict[str, ProductCard], pid: str) -> Step:
    return Step("Product", pid, cards[pid].name if pid in cards else pid)


def _name(cards: dict[str, ProductCard], pid: str) -> str:
    return cards[pid].name if pid in cards else pid


def look_path(cards, a: str, look_id: str, look_name: str, mined: bool, q: str, verb: str) -> Path:
    sentence = (f"often bought together with the {_name(cards, a)} you {verb}" if mined
                else f"goes with the {_name(cards, a)} you {verb} in the look '{look_name}'")
    return Path([_step(cards, a), Step("Look", look_id, look_name), _step(cards, q)], ["INCLUDES", "INCLUDES"], sentence)


def substitute_path(cards, look_id: str, look_name: str, missing: str, status: str, q: str) -> Path:
    """An item of a look that cannot be shown (`status`: out of stock, discontinued), stood in
    for by the nearest available product of its leaf category."""
    return Path([Step("Look", look_id, look_name), _step(cards, missing), _step(cards, q)], ["INCLUDES", "SAME_CATEGORY"],
                f"stands in for the {_name(cards, missing)} ({status.replace('_', ' ')}) in the look '{look_name}'")


def pinned_path(cards, look_id: str, look_name: str, rule: str, q: str) -> Path:
    return Path([Step("Rule", rule, rule), Step("Look", look_id, look_name), _step(cards, q)], ["PINS", "INCLUDES"],
                f"from the look '{look_name}', pinned to this page by rule {rule!r}")


def attribute_path(cards, a: str, key: str, q: str, verb: str) -> Path:
    kind, _, value = key.partition(":")
    return Path([_step(cards, a), Step("Attribute", key, value), _step(cards, q)],
                ["HAS_ATTRIBUTE", "HAS_ATTRIBUTE"], f"matches the {value} {kind} of the {_name(cards, a)} you {verb}")


def crowd_path(cards, a: str, q: str, count: int) -> Path:
    sessions = f"{count} shopping session{'s' if count != 1 else ''}"
    return Path([_step(cards, a), Step("Crowd", f"sessions with {a}", sessions), _step(cards, q)],
                ["INTERACTED", "INTERACTED"],
                f"shoppers who looked at the {_name(cards, a)} also looked at this ({sessions})")


def collaborative_path(cards, shopper_id: str | None, a: str, q: str, verb: str) -> Path:
    """Shoppers whose history resembles this one's went on to `q`; `a` is the item of the
    shopper's history that gives `q` most of its score."""
    return Path([Step("Shopper", shopper_id or "", shopper_id or "this visit"), _step(cards, a),
                 Step("Crowd", f"shoppers with {a}", "shoppers whose history resembles yours"), _step(cards, q)],
                ["INTERACTED", "INTERACTED", "INTERACTED"],
                f"shoppers whose history resembles yours, who also {verb} the {_name(cards, a)}, went on to this")


def embedding_path(cards, a: str, q: str) -> Path:
    return Path([_step(cards, a), _step(cards, q)], ["COMPLEMENTS"],
                f"LookGNN finds it completes looks with the {_name(cards, a)}")


def personal_path(cards, shopper_id: str | None, a: str, q: str, verb: str) -> Path:
    """The shopper's own taste, learnt from what they engaged with; `a` is the item of their
    history the candidate is closest to."""
    return Path([Step("Shopper", shopper_id or "", shopper_id or "this visit"), _step(cards, a), _step(cards, q)],
                ["INTERACTED", "COMPLEMENTS"], f"for your taste: close to the {_name(cards, a)} you {verb}")


def restock_path(cards, shopper_id: str | None, pid: str, days: float, cycle: float) -> Path:
    return Path([Step("Shopper", shopper_id or "", shopper_id or ""), _step(cards, pid)], ["INTERACTED"],
                f"time to restock: you buy this about every {cycle:.0f} days, last {days:.0f} days ago")


def returning_path(cards, shopper_id: str | None, pid: str, how: str, times: int, days: float) -> Path:
    when = "today" if days < 1 else f"{days:.0f} day{'s' if days >= 1.5 else ''} ago"
    sentence = (f"still in your bag from {when}" if how == "cart"
                else f"you came back to this {times} times, last {when}")
    return Path([Step("Shopper", shopper_id or "", shopper_id or ""), _step(cards, pid)], ["INTERACTED"], sentence)


def trip_path(cards, trip: str, pid: str) -> Path:
    return Path([Step("Crowd", f"sessions in {trip}", f"shoppers in {trip}"), _step(cards, pid)],
                ["INTERACTED"], f"popular with shoppers in {trip} right now")


def trending_path(cards, group: str, group_name: str, pid: str, explore: bool = False) -> Path:
    sentence = f"something different: trending in {group_name}" if explore else f"trending in {group_name}"
    return Path([Step("Category", group, group_name), _step(cards, pid)], ["IN_CATEGORY"], sentence)


def popular_path(cards, category: str | None, category_name: str | None, pid: str, why: str | None = None) -> Path:
    """A best seller; `why`, when it filled a list the other sources left short, says why."""
    where = f" in {category_name}" if category_name else ""
    nodes = [Step("Category", category, category_name or category)] if category else []
    return Path([*nodes, _step(cards, pid)], ["IN_CATEGORY"] if category else [],
                f"a best seller{where}" + (f" ({why})" if why else ""))


def explain(request, offers, picks: list[tuple[int, bool]], score_of: dict[int, float],
            ruled: RuleSentences, short_because: str | None) -> Answer:
    """The answer: each picked candidate with its score, its first `PATHS_SHOWN` distinct
    paths (the reasons in `EXPLAINED_FIRST` order; a pin said first), and the rules that
    moved it."""
    cards = request.cards
    cards.update((offers.cards[i].id, offers.cards[i]) for i, _ in picks)
    walks, anchors = offers.walks, request.anchors
    ids = list(anchors)
    reasons: dict[int, list] = {i: [] for i, _ in picks}
    rows = np.flatnonzero(np.isin(walks.candidate, list(reasons)))
    for i, anchor, way, via, e in zip(*(column[rows].tolist() for column in
                                       (walks.candidate, walks.anchor, walks.way, walks.via, offers.walk_evidence))):
        a, pid = ids[anchor], offers.cards[i].id
        if way == LOOK:
            look = walks.looks[via]
            reasons[i].append((FIRST["look"], e, look_path, (a, look.look_id, look.look_name, look.mined, pid, anchors[a][1])))
        elif way == ATTRIBUTE:
            reasons[i].append((FIRST["attribute"], e, attribute_path, (a, walks.attributes[via], pid, anchors[a][1])))
        else:
            reasons[i].append((FIRST["crowd"], e, crowd_path, (a, pid, via)))
    for k in np.flatnonzero(np.isin(offers.rows_offered(), list(reasons))).tolist():
        i, source, e, build, args = offers.others[k]
        reasons[i].append((FIRST[source], e, build, args))
    return Answer([_recommendation(cards, offers.cards[i], score_of.get(i, 0.0), reasons[i], exploring,
                                   ruled.get(offers.cards[i].id, []))
                   for i, exploring in picks], short_because)


def _recommendation(cards, card: ProductCard, score: float, reasons: list, exploring: bool,
                    rules: list[str]) -> Recommendation:
    ordered = sorted(reasons, key=lambda r: (r[0], -r[1]))
    pinned = [r for r in ordered if r[2] is pinned_path]  # a pin is why it leads the page: said first
    paths, drawn = [], set()
    for _, _, build, args in pinned + [r for r in ordered if r not in pinned]:
        path = build(cards, *args)
        key = (tuple((step.label, step.id) for step in path.nodes), tuple(path.relationships))
        if key not in drawn:  # two reasons can draw the same path (two walks, one look): said once
            drawn.add(key)
            paths.append(path)
            if len(paths) == PATHS_SHOWN:
                break
    rules = rules + [f"pinned by rule {args[2]!r}" for _, _, _, args in pinned[:1]]
    first = (pinned + ordered)[:1]
    return Recommendation(card.id, card.name, card.category, round(float(score), 4), paths, exploring,
                          paths[0].sentence if paths else "", rules, EXPLAINED_FIRST[first[0][0]] if first else "")
