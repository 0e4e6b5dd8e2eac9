"""The arrange stage: from ranked candidates to the list shown, slot by slot.

In order: the ranking, with what must not lead it moved down (under the hand-set weights,
departments the shopper never shopped; on a product page, more than `SAME_LEAF_SHARE` of the
categories already in view); the looks pinned to a category page, first; due restocks and what
the shopper left in their bag, next ("still in your bag"); then the ranking (under the hand-set
weights, the best of each leaf category first); exploration slots; and, when the sources left
the list short, best sellers that pass the same filter, each saying why.
"""

from __future__ import annotations

import itertools

import numpy as np

from ..graph.store import UnknownNode
from ..graph.traversal import ProductCard
from . import explanations as explain
from . import policies
from .candidates import Offers
from .filters import Admission

SAME_LEAF_SHARE = 0.2
"""On a product page (without `same_category`), at most this share of the list may share a
leaf category with the items in view (or have none): complete the look, not more of the same."""


def arrange(engine, request, offers: Offers, admission: Admission, scores: np.ndarray
            ) -> tuple[list[tuple[int, bool]], str | None, dict[int, float]]:
    """(the list as (offer row, exploring), why it is short or None, each row's score)."""
    state, ask, cards, keep = request.state, request.ask, request.cards, admission.keep
    department = engine.graph.categories.department
    ranked = np.array(keep, dtype=np.int64)[np.argsort(-scores, kind="stable")].tolist()
    score_of = dict(zip(keep, scores.tolist()))
    if engine.strict_across and not (state.current and state.current.gift):
        # Under the hand-set weights, who an item is for is a rule (a learned ranker reads it
        # from `department_affinity`): items of a department the shopper never shopped, and
        # that neither the item in view nor this session is in, go last.
        mine = {department(cards[pid].category)
                for pid in [*(e.product_id for e in state.profile_events), *request.anchors] if pid in cards} - {None}
        if mine:
            ranked = _cap(ranked, [department(offers.cards[i].category) not in mine for i in ranked], 0)
    if request.page and not ask.same_category and not engine.strict_across:
        # An item of no known category cannot be shown to complete the look: capped too.
        in_view = {cards[a].category for a in request.anchors} | {None}
        ranked = _cap(ranked, [offers.cards[i].category in in_view for i in ranked], int(ask.k * SAME_LEAF_SHARE))

    pinned = _pinned(engine, request, offers, admission)
    due = request.due
    first = pinned + [i for i in ranked if offers.cards[i].id in due and i not in pinned][: max(1, ask.k // 4)]
    placed = set(first)
    rest = [i for i in ranked if i not in placed]
    explore = round(ask.k * engine.config.explore_share) if ask.explore else 0
    request.explore_slots = explore  # kept with the list: what the exploration slots earn is counted by slot
    chosen = first + (_fill_categories(rest, offers.cards, ask.k - explore - len(first))
                      if engine.strict_across else rest[: ask.k - explore - len(first)])
    picks = [(i, False) for i in chosen]
    if explore:
        picks += _explore(engine, request, offers, ranked, chosen, explore, admission, score_of)
        taken = {i for i, _ in picks}
        picks += itertools.islice(((i, False) for i in ranked if i not in taken), ask.k - len(picks))
    picks = picks[: ask.k]
    short_because = None
    if len(picks) < ask.k:
        picks, short_because = _fill(engine, request, offers, picks, admission, score_of)
    return picks, short_because, score_of


def _pinned(engine, request, offers: Offers, admission: Admission) -> list[int]:
    """On a category page (`ask.categories`), the shown items of the looks pinned to it, first."""
    ask = request.ask
    if not ask.categories:
        return []
    picks: list[int] = []
    for rule in engine.merch.pins(ask.categories, request.state.shopper_id, request.now, engine.variant):
        try:
            look = engine.store.get("looks", rule.look_id)
        except UnknownNode:
            continue
        for card in engine.graph.cards(look.product_ids).values():
            if admission.allowed(card) and card.id not in {offers.cards[i].id for i in picks}:
                picks.append(offers.add(card, "look", 0.0, explain.pinned_path,
                                        (look.id, look.name, rule.name or rule.id, card.id)))
    return picks[: ask.k]


def _explore(engine, request, offers: Offers, ranked: list[int], chosen: list[int], slots: int,
             admission: Admission, score_of: dict) -> list[tuple[int, bool]]:
    """Exploration slots. On a product page: the best candidates (all of them complete the
    item in view) from category groups the list does not show yet. In a feed: Thompson
    sampling over category groups the shopper does not usually buy, each slot explored only
    when a group's draw beats the ranking's own item (`policies.exploration_draws`)."""
    tree, state, picks = engine.graph.categories, request.state, []
    taken = set(chosen)
    if request.page:
        groups = {tree.group(offers.cards[i].category) for i in chosen}
        for i in ranked:
            group = tree.group(offers.cards[i].category)
            if i not in taken and group not in groups:
                picks.append((i, True))
                groups.add(group)
                taken.add(i)
                if len(picks) == slots:
                    break
        return picks
    trending = engine.graph.trending()
    # Near: the departments of the profile, and of the session once it says enough (one view
    # of a new department is no reason to explore it).
    groups = set(state.profile_groups) | (state.touched_groups if request.session_share >= 1
                                          or not state.profile_groups else set())
    departments = {tree.department(g) for g in groups}
    near = (lambda group: tree.department(group) in departments) if departments else None  # noqa: E731
    for group in policies.explore_groups(state, trending, slots, int(request.now // policies.DAY),
                                         request.shown_groups, near, engine.exploration_arms()):
        for card in trending.by_group.get(group, []):
            if card.id not in offers.position or offers.position[card.id] not in taken:
                if not admission.allowed(card):
                    continue
                i = offers.add(card, "trending", 0.0, explain.trending_path,
                               (group, tree.names.get(group, group), card.id, True))
                score_of.setdefault(i, 0.0)
                picks.append((i, True))
                taken.add(i)
                break
    return picks


def _fill(engine, request, offers: Offers, picks: list, admission: Admission, score_of: dict
          ) -> tuple[list, str | None]:
    """A list the sources left short, filled from best sellers that pass the same filter, the
    shopper's usual category groups first; says why when even that falls short."""
    ask, state = request.ask, request.state
    why = f"the shopper's own paths found {len(picks)} of the {ask.k} items asked for"
    taken = {offers.cards[i].id for i, _ in picks}
    pool: list[ProductCard] = []
    popular = engine.model.popular if engine.model else None
    if popular is not None:
        ids = engine.vectors.ids["product"]
        pool = list(engine.graph.cards([ids[r] for r in popular[: 20 * ask.k + 200]]).values())
    trending = engine.graph.trending()
    usual = [g for g, _ in state.profile_groups.most_common()]
    for group in [*usual, *sorted(g for g in trending.by_group if g not in usual)]:
        pool += trending.by_group.get(group, [])
    if popular is not None and usual:  # best sellers of the shopper's usual groups first
        rank = {g: n for n, g in enumerate(usual)}
        pool.sort(key=lambda c: rank.get(engine.graph.categories.group(c.category), len(rank)))
    for card in pool:
        if len(picks) >= ask.k:
            break
        if card.id in taken or not admission.allowed(card):
            continue
        name = engine.graph.categories.names.get(card.category, card.category) if card.category else None
        i = offers.add(card, "popular", 1.0, explain.popular_path, (card.category, name, card.id, why))
        score_of.setdefault(i, 0.0)
        picks.append((i, False))
        taken.add(card.id)
    if len(picks) >= ask.k:
        return picks, None
    rules = ["what the shopper already has or dismissed"]
    if ask.categories:
        rules.append(f"category {', '.join(ask.categories)}")
    if not ask.same_category:
        rules.append("other categories than the item in view" if ask.product_id else "complementary categories")
    return picks, f"only {len(picks)} products pass the filters ({'; '.join(rules)})"


def _cap(ranked: list[int], capped: list[bool], most: int) -> list[int]:
    """`ranked` with the capped items past the first `most` moved to the end (order kept)."""
    head, tail = [], []
    for i, is_capped in zip(ranked, capped):
        (tail if is_capped and (most := most - 1) < 0 else head).append(i)
    return head + tail


def _fill_categories(ranked: list[int], cards: list[ProductCard], k: int) -> list[int]:
    """Best item of each leaf category first, in rank order; then the rest."""
    if k <= 0:
        return []
    first, seen = [], set()
    for i in ranked:
        if cards[i].category not in seen:
            seen.add(cards[i].category)
            first.append(i)
            if len(first) == k:
                return first
    chosen = set(first)
    return first + [i for i in ranked if i not in chosen][: k - len(first)]
