"""The filter stage: which candidates may be shown to this shopper, here, now.

One predicate, `Admission.allowed`, used for the gathered candidates and again for anything
the later stages add (exploration, best sellers to fill a short list): nothing dismissed,
nothing a rule keeps out or that is not shown where the shopper is, nothing the shopper
already had (but what is due back: restocks, what they left in their bag), no category of a
one-time purchase they made, and, under the hand-set weights, none of the anchors' own
categories (complete the look, not more of the same) unless, in a feed, shoppers keep coming
back to that category for another product (`MORE_OF_THE_SAME_RATE`: a habitual t-shirt buyer is
shown t-shirts; a learned ranker weighs this itself). The ask's categories bound the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..graph.traversal import ProductCard
from . import policies
from .candidates import Offers


MORE_OF_THE_SAME_RATE = 0.5
"""Under the hand-set weights, a feed keeps the anchors' leaf categories in which at least this
share of shoppers engaged with a second product (the artifact's `leaf_return_rate`; without one,
the share of buyers who bought another product of it)."""


@dataclass
class Admission:
    keep: list[int]
    """The gathered candidates allowed, by their row in the offers."""
    allowed: Callable[[ProductCard], bool]


def admit(engine, request, offers: Offers) -> Admission:
    state, ask, cards = request.state, request.ask, request.cards
    tree = engine.graph.categories
    due = request.due
    blocked = policies.owned_categories(state, cards, engine.graph.repurchase(), engine.config, request.now)
    excluded = set() if ask.same_category or not engine.strict_across else \
        {cards[a].category for a in request.anchors} - {None}
    if excluded and not request.page:
        excluded = {leaf for leaf in excluded if _return_rate(engine, leaf) < MORE_OF_THE_SAME_RATE}
    gone = state.dismissed | request.kept_out

    def allowed(card: ProductCard) -> bool:
        if card.id in gone or not engine.merch.shown(card.id, request.location):
            return False
        if card.id not in due and (card.id in request.out or card.category in blocked or card.category in excluded):
            return False
        return not ask.categories or tree.within(card.category, ask.categories)

    return Admission([i for i, card in enumerate(offers.cards) if allowed(card)], allowed)


def _return_rate(engine, leaf: str) -> float:
    """How often shoppers come back to a leaf category for another product."""
    if engine.model is not None and leaf in engine.model.leaf_return:
        return float(engine.model.leaf_return[leaf])
    found = engine.graph.repurchase().get(leaf)
    return found.return_rate if found is not None else 0.0
