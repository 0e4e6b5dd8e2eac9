"""What merchandisers steer, as the engine applies it: availability and business rules.

Contract: `Merchandising` is read from the store at start (products not plainly in stock, every
rule and the products each rule is about) and told of every change in the store's change log
(`product_changed`, `availability_changed`, `rules_changed`: `freshness.py`), so a change holds
from the next request on, in every process, without retraining, on both stores. The engine asks
it four questions per request: may this product be shown here (`shown`), which products does a
rule keep out (`excludes`), how far do boosts and buries move each candidate and which rules did
it (`adjust`), and which looks are pinned to a category page (`pins`).

Rules at scale: what a request costs must not grow with the number of rules. Rules are kept
indexed. A rule for everyone and for all time (the usual kind) is folded into per-product
figures when it is written: each product's summed boost and bury and its rules ordered by how
far they move it, and the set of products excluded; a request reads those for its candidates
only. A rule for one shopper, with a validity window, or for one experiment's variant, is kept apart,
by product, and checked per request among the candidates it is about. A rule written costs its own products' count (one
store query) and its members' updates, never a recount of the other rules; a product written
is checked against the rules of its category and above and the rules it belonged to.
"""

from __future__ import annotations

import bisect
import copy
import threading
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from ..graph.model import Product, Rule
from ..graph.store import GraphStore
from ..graph.traversal import CategoryTree


RULES_NAMED = 3
"""Rules named on one recommended item (the ones that move it most); the rest are counted."""


def _standing(rule: Rule) -> bool:
    """For everyone, for all time: folded into the per-product figures."""
    return rule.shopper_id is None and rule.starts_at is None and rule.ends_at is None and rule.variant is None


class Merchandising:
    def __init__(self, store: GraphStore, tree: CategoryTree):
        self.store, self.tree = store, tree
        self._lock = threading.Lock()
        self._unavailable: dict[str, tuple[str, frozenset[str]]] = {
            pid: (status, frozenset(where)) for pid, (status, where) in store.unavailable_products().items()}
        self._rules: dict[str, tuple[Rule, frozenset[str]]] = {}
        self._by_category: dict[str | None, set[str]] = defaultdict(set)
        """Rule ids by their category (None: any category), pins left out."""
        self._member_of: dict[str, set[str]] = defaultdict(set)
        self._shift: dict[str, float] = defaultdict(float)
        """Standing boosts minus buries, per product, in the rules' weights."""
        self._moving: dict[str, list[tuple[float, str, float, str]]] = defaultdict(list)
        """Standing boosts and buries per product as (-weight, name, sign, rule id), sorted."""
        self._excluded: dict[str, int] = defaultdict(int)
        """How many standing exclusions keep each product out."""
        self._dynamic: dict[str, set[str]] = defaultdict(set)
        """Rules for one shopper or with a window (boost, bury, exclude), by product."""
        self._dynamic_excludes: set[str] = set()
        self._pins: dict[str, Rule] = {}
        self.changes = 0
        """Counts the rule and product changes applied: an experiment's variant that keeps its
        own copy of the rules (`without_rules`) makes it again when this moves."""
        self.rules_changed()

    # -- changes ---------------------------------------------------------------------------
    def product_changed(self, product: Product) -> None:
        """A product was written (created, replaced, patched, withdrawn): its availability and
        which rules are about it hold from the next request on."""
        self.availability_changed(product)
        with self._lock:
            self.changes += 1
            candidates = set(self._member_of.get(product.id, ())) | self._by_category.get(None, set())
            category = product.category_id
            while category is not None:
                candidates |= self._by_category.get(category, set())
                category = self.tree.parent.get(category)
            for rule_id in candidates:
                rule, members = self._rules[rule_id]
                inside = self._about(rule, product)
                if inside != (product.id in members):
                    self._unindex(rule, members)
                    members = members | {product.id} if inside else members - {product.id}
                    self._index(rule, members)

    def availability_changed(self, product: Product) -> None:
        """Only the product's stock changed: which rules are about it did not."""
        with self._lock:
            if product.availability == "in_stock" and not product.unavailable_in:
                self._unavailable.pop(product.id, None)
            else:
                self._unavailable[product.id] = (product.availability, frozenset(product.unavailable_in))

    def rules_changed(self, rule_ids: Sequence[str] | None = None) -> None:
        """Read the rules `rule_ids` again (every rule when None) and count their products: a
        rule written costs that rule's count, not the others'."""
        self.changes += 1
        if rule_ids is None:
            found = {rule.id: rule for rule in self.store.rules()}
            counted = {rid: (rule, frozenset(self._members(rule))) for rid, rule in found.items()}
            with self._lock:
                for rule, members in list(self._rules.values()):
                    self._unindex(rule, members)
                for rule, members in counted.values():
                    self._index(rule, members)
            return
        found = {rule.id: rule for rule in self.store.rules(list(dict.fromkeys(rule_ids)))}
        counted = {rid: (rule, frozenset(self._members(rule))) for rid, rule in found.items()}
        with self._lock:
            for rule_id in dict.fromkeys(rule_ids):
                if rule_id in self._rules:
                    self._unindex(*self._rules[rule_id])
                if rule_id in counted:
                    self._index(*counted[rule_id])

    def _index(self, rule: Rule, members: frozenset[str]) -> None:
        self._rules[rule.id] = (rule, members)
        if rule.action == "pin":
            self._pins[rule.id] = rule
            return
        self._by_category[rule.category].add(rule.id)
        for pid in members:
            self._member_of[pid].add(rule.id)
            if not _standing(rule):
                self._dynamic[pid].add(rule.id)
            elif rule.action == "exclude":
                self._excluded[pid] += 1
            else:
                sign = 1.0 if rule.action == "boost" else -1.0
                self._shift[pid] += sign * rule.weight
                bisect.insort(self._moving[pid], (-rule.weight, rule.name or rule.id, sign, rule.id))
        if not _standing(rule) and rule.action == "exclude":
            self._dynamic_excludes.add(rule.id)

    def _unindex(self, rule: Rule, members: frozenset[str]) -> None:
        self._rules.pop(rule.id, None)
        if rule.action == "pin":
            self._pins.pop(rule.id, None)
            return
        self._by_category[rule.category].discard(rule.id)
        self._dynamic_excludes.discard(rule.id)
        for pid in members:
            self._member_of[pid].discard(rule.id)
            if not _standing(rule):
                self._dynamic[pid].discard(rule.id)
            elif rule.action == "exclude":
                self._excluded[pid] -= 1
                if not self._excluded[pid]:
                    del self._excluded[pid]
            else:
                sign = 1.0 if rule.action == "boost" else -1.0
                self._shift[pid] -= sign * rule.weight
                self._moving[pid].remove((-rule.weight, rule.name or rule.id, sign, rule.id))

    def without_rules(self, variant: str | None = None) -> Merchandising:
        """The same availability (kept current with this one), and of the rules only those of
        `variant` ("<experiment>/<variant>"): an experiment's variant with `rules` off."""
        bare = copy.copy(self)
        bare._rules, bare._pins, bare._dynamic_excludes = {}, {}, set()
        bare._member_of, bare._shift, bare._moving = defaultdict(set), defaultdict(float), defaultdict(list)
        bare._excluded, bare._dynamic, bare._by_category = defaultdict(int), defaultdict(set), defaultdict(set)
        with self._lock:
            for rule, members in self._rules.values():
                if variant is not None and rule.variant == variant:
                    bare._index(rule, members)
        return bare

    def _categories(self, rule: Rule) -> list[str] | None:
        if rule.category is None:
            return None
        return [c for c in self.tree.names if self.tree.within(c, [rule.category])]

    def _members(self, rule: Rule) -> set[str]:
        if rule.action == "pin":
            return set()
        return self.store.products_matching(self._categories(rule), rule.attribute, rule.price_min, rule.price_max)

    def _about(self, rule: Rule, product: Product) -> bool:
        if rule.action == "pin":
            return False
        return ((rule.category is None or self.tree.within(product.category_id, [rule.category]))
                and (rule.attribute is None or any(a.key == rule.attribute for a in product.attributes))
                and (rule.price_min is None or (product.price is not None and product.price >= rule.price_min))
                and (rule.price_max is None or (product.price is not None and product.price <= rule.price_max)))

    # -- questions per request ---------------------------------------------------------------
    def shown(self, product_id: str, location: str | None) -> bool:
        """In stock (and, where the shopper is, not out of stock there)."""
        found = self._unavailable.get(product_id)
        return found is None or (found[0] == "in_stock" and location not in found[1])

    def availability(self, product_id: str, location: str | None = None) -> str:
        found = self._unavailable.get(product_id)
        if found is None:
            return "in_stock"
        return found[0] if found[0] != "in_stock" else ("out_of_stock" if location in found[1] else "in_stock")

    def _applies(self, rule: Rule, shopper_id: str | None, now: float, variant: str | None) -> bool:
        return rule.active(now) and rule.shopper_id in (None, shopper_id) and rule.variant in (None, variant)

    def excludes(self, shopper_id: str | None, now: float, variant: str | None = None) -> _Excluded:
        """The products the exclusion rules for this shopper (and everyone, and the list's
        experiment variant) keep out now."""
        extra: set[str] = set()
        for rule_id in list(self._dynamic_excludes):
            found = self._rules.get(rule_id)
            if found is not None and self._applies(found[0], shopper_id, now, variant):
                extra |= found[1]
        return _Excluded(self._excluded, frozenset(extra))

    def adjust(self, product_ids: Sequence[str], shopper_id: str | None, now: float,
               variant: str | None = None) -> tuple[np.ndarray, RuleSentences]:
        """Per product: how many standard deviations of the list's scores the boosts and buries
        move it, and which rules did (`RuleSentences`: the `RULES_NAMED` that move it most,
        then how many more)."""
        shift, named = np.zeros(len(product_ids)), RuleSentences()
        for i, pid in enumerate(product_ids):
            moving = self._moving.get(pid) or ()
            dynamic = self._dynamic.get(pid)
            if not moving and not dynamic:
                continue
            total, extra = self._shift.get(pid, 0.0), []
            for rule_id in list(dynamic or ()):
                found = self._rules.get(rule_id)
                if found is None or found[0].action == "exclude" or not self._applies(found[0], shopper_id, now, variant):
                    continue
                rule = found[0]
                sign = 1.0 if rule.action == "boost" else -1.0
                total += sign * rule.weight
                extra.append((-rule.weight, rule.name or rule.id, sign, rule.id))
            count = len(moving) + len(extra)
            if not count:
                continue
            # The standing ones are kept in order: the first few of them and the others in force now.
            first = sorted([*moving[:RULES_NAMED], *extra])[:RULES_NAMED] if extra else moving[:RULES_NAMED]
            shift[i] = total
            named.moved[pid] = (first, count)
        return shift, named

    def pins(self, categories: Sequence[str], shopper_id: str | None, now: float, variant: str | None = None) -> list[Rule]:
        """Pin rules for a page of `categories` (a rule's category among them or above them)."""
        return [rule for rule in list(self._pins.values()) if self._applies(rule, shopper_id, now, variant)
                and (rule.category is None or any(self.tree.within(c, [rule.category]) for c in categories))]

    def members(self, rule_id: str) -> frozenset[str]:
        """The products a rule is about now (none for a pin, or an unknown rule)."""
        found = self._rules.get(rule_id)
        return found[1] if found else frozenset()


class RuleSentences:
    """Which rules moved each product, as the explanations say it: put into words only for the
    products a list shows (a request has ten times as many candidates)."""

    def __init__(self):
        self.moved: dict[str, tuple[list, int]] = {}

    def get(self, product_id: str, default=None) -> list[str] | None:
        found = self.moved.get(product_id)
        if found is None:
            return default
        first, count = found
        said = [f"{'boosted' if sign > 0 else 'buried'} by rule {name!r} ({sign * -weight:+g})"
                for weight, name, sign, _ in first]
        return said + ([f"and {count - RULES_NAMED} more rules"] if count > RULES_NAMED else [])


class _Excluded:
    """What the exclusion rules keep out, asked product by product (`in`): the standing ones'
    count, and the windowed or per-shopper ones in force now."""

    def __init__(self, standing: dict[str, int], extra: frozenset[str]):
        self.standing, self.extra = standing, extra

    def __contains__(self, product_id: str) -> bool:
        return self.standing.get(product_id, 0) > 0 or product_id in self.extra

    def __bool__(self) -> bool:
        return bool(self.standing) or bool(self.extra)

    def __or__(self, other) -> _Excluded:
        """With more products kept out (`dismissed | kept_out`): a set is added to the extra ones."""
        return _Excluded(self.standing, self.extra | frozenset(other))

    __ror__ = __or__
