"""What merchandisers steer, as the engine applies it: availability and business rules.

Contract: `Merchandising` is read from the store at start (products not plainly in stock, every
rule and the products each rule is about) and told of every change in the store's change log
(`product_changed`, `rules_changed`: `freshness.py`), so a change holds from the next request
on, in every process, without retraining, on both stores. The engine asks it four questions per request: may this product be
shown here (`shown`), which products does a rule keep out (`excludes`), how far do boosts and
buries move each candidate and which rules did it (`adjust`), and which looks are pinned to
a category page (`pins`).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence

import numpy as np

from ..graph.model import Product, Rule
from ..graph.store import GraphStore
from ..graph.traversal import CategoryTree


RULES_NAMED = 3
"""Rules named on one recommended item (the ones that move it most); the rest are counted."""


class Merchandising:
    def __init__(self, store: GraphStore, tree: CategoryTree):
        self.store, self.tree = store, tree
        self._lock = threading.Lock()
        self._unavailable: dict[str, tuple[str, frozenset[str]]] = {
            pid: (status, frozenset(where)) for pid, (status, where) in store.unavailable_products().items()}
        self._rules: dict[str, tuple[Rule, frozenset[str]]] = {}
        self.rules_changed()

    # -- changes ---------------------------------------------------------------------------
    def product_changed(self, product: Product) -> None:
        """A product was written (created, replaced, patched, withdrawn): its availability and
        which rules are about it hold from the next request on."""
        with self._lock:
            if product.availability == "in_stock" and not product.unavailable_in:
                self._unavailable.pop(product.id, None)
            else:
                self._unavailable[product.id] = (product.availability, frozenset(product.unavailable_in))
            for rule_id, (rule, members) in list(self._rules.items()):
                inside = self._about(rule, product)
                if inside != (product.id in members):
                    self._rules[rule_id] = (rule, members | {product.id} if inside else members - {product.id})

    def rules_changed(self, rule_ids: Sequence[str] | None = None) -> None:
        """Read the rules again; the products each is about are counted again only for
        `rule_ids` (every rule when None): a rule written costs one rule's count, not all of them."""
        rules = {rule.id: rule for rule in self.store.rules()}
        with self._lock:
            kept = dict(self._rules)
        recount = set(rules) if rule_ids is None else set(rule_ids) | (set(rules) - set(kept))
        fresh = {rid: (rule, frozenset(self._members(rule)) if rid in recount or kept[rid][0] != rule else kept[rid][1])
                 for rid, rule in rules.items()}
        with self._lock:
            self._rules = fresh

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

    def without_rules(self) -> Merchandising:
        """The same availability (kept current with this one), no rules: an experiment's
        variant with `rules` off."""
        bare = copy.copy(self)
        bare._rules = {}
        return bare

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

    def _applying(self, shopper_id: str | None, now: float, actions: tuple[str, ...]):
        return [(rule, members) for rule, members in self._rules.values()
                if rule.action in actions and rule.active(now) and rule.shopper_id in (None, shopper_id)]

    def excludes(self, shopper_id: str | None, now: float) -> frozenset[str]:
        """The products the exclusion rules for this shopper (and everyone) keep out now."""
        out: frozenset[str] = frozenset()
        for _, members in self._applying(shopper_id, now, ("exclude",)):
            out = out | members
        return out

    def adjust(self, product_ids: Sequence[str], shopper_id: str | None, now: float) -> tuple[np.ndarray, dict[str, list[str]]]:
        """Per product: how many standard deviations of the list's scores the boosts and buries
        move it, and which rules did (their sentences, for the explanations: the
        `RULES_NAMED` that move it most, then how many more)."""
        shift, moved = np.zeros(len(product_ids)), {}
        position = {pid: i for i, pid in enumerate(product_ids)}
        for rule, members in self._applying(shopper_id, now, ("boost", "bury")):
            sign = 1.0 if rule.action == "boost" else -1.0
            for pid in members.intersection(position):  # in C, over the list's few hundred candidates
                shift[position[pid]] += sign * rule.weight
                moved.setdefault(pid, []).append((-rule.weight, rule.name or rule.id, sign))
        named = {}
        for pid, rules in moved.items():
            rules.sort()
            named[pid] = [f"{'boosted' if sign > 0 else 'buried'} by rule {name!r} ({sign * -weight:+g})"
                          for weight, name, sign in rules[:RULES_NAMED]]
            if len(rules) > RULES_NAMED:
                named[pid].append(f"and {len(rules) - RULES_NAMED} more rules")
        return shift, named

    def pins(self, categories: Sequence[str], shopper_id: str | None, now: float) -> list[Rule]:
        """Pin rules for a page of `categories` (a rule's category among them or above them)."""
        return [rule for rule, _ in self._applying(shopper_id, now, ("pin",))
                if rule.category is None or any(self.tree.within(c, [rule.category]) for c in categories)]

    def members(self, rule_id: str) -> frozenset[str]:
        """The products a rule is about now (none for a pin, or an unknown rule)."""
        found = self._rules.get(rule_id)
        return found[1] if found else frozenset()
