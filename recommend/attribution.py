"""Did the recommendations sell anything? Later events credited to the lists that showed them.

An event (view, cart, purchase) is credited to a served list (`impressions.py`):

- when it was sent back with that list's `recommendation_id` (`POST /events`), or else
- when the same shopper (an anonymous visitor: the same session) was shown the product in a list
  at most `window` seconds before: the latest such list.

Each (list, product, event type) is credited once, however often the shopper views it again.
`report` counts, per list kind, per source, per position and per variant: the lists served,
the items shown, and views, carts, purchases and revenue credited to them, with

    click-through  = views     / items shown
    add-to-cart    = carts     / items shown
    conversion     = purchases / items shown
    revenue / 1000 = revenue   / items shown * 1000

(an item is a slot shown, so a list of 20 is 20 chances), the same per time bucket and list kind.
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from operator import itemgetter

from ..graph.model import Event, Impression
from ..graph.store import UnknownNode

OUTCOMES = {"view": "views", "cart": "carts", "purchase": "purchases"}


@dataclass(frozen=True)
class Credit:
    impression: Impression
    position: int
    """The product's slot in the list (0 first)."""
    event: Event


def attribute(impressions: Iterable[Impression], outcomes: Iterable[tuple[Event, str | None]],
              window: float) -> list[Credit]:
    """Each outcome credited to the list it was sent back with, or to the latest list shown to
    the same shopper (or session) within `window` seconds before it that held the product; at
    most one credit per (list, product, event type)."""
    by_id: dict[str, Impression] = {}
    shown_to: dict[tuple[str, str], list[tuple[float, str]]] = defaultdict(list)
    for impression in sorted(impressions, key=lambda i: (i.at, i.id)):
        by_id[impression.id] = impression
        who = ("shopper", impression.shopper_id) if impression.shopper_id else \
            ("session", impression.session_id) if impression.session_id else None
        if who:
            shown_to[who].append((impression.at, impression.id))
    credits, credited = [], set()
    for event, recommendation_id in outcomes:
        found = by_id.get(recommendation_id) if recommendation_id else None
        position = _position(found, event.product_id) if found else None
        if found is None or position is None:
            found, position = _latest_showing(shown_to, by_id, event, window)
        if found is None or (found.id, event.product_id, event.type) in credited:
            continue
        credited.add((found.id, event.product_id, event.type))
        credits.append(Credit(found, position, event))
    return credits


def _position(impression: Impression, product_id: str) -> int | None:
    try:
        return list(map(itemgetter(0), impression.items)).index(product_id)  # item 0: its product
    except ValueError:
        return None


def _latest_showing(shown_to, by_id, event: Event, window: float) -> tuple[Impression | None, int | None]:
    for who in (("shopper", event.shopper_id), ("session", event.session_id)):
        shown = shown_to.get(who) if who[1] else None
        if not shown:
            continue
        i = bisect.bisect_right(shown, (event.ts, "\uffff"))
        while i:  # the latest shown before it first, back to the window's start
            i -= 1
            at, impression_id = shown[i]
            if event.ts - at > window:
                break
            position = _position(by_id[impression_id], event.product_id)
            if position is not None:
                return by_id[impression_id], position
    return None, None


def report(impressions: list[Impression], credits: list[Credit], price: Callable[[str], float | None],
           bucket: float) -> dict:
    """The figures per list kind, source, position and variant, and per time bucket (`bucket`
    seconds from the epoch) and list kind."""
    groups: dict[str, dict[str, dict]] = {"list": {}, "source": {}, "position": {}, "variant": {}}
    buckets: dict[tuple[float, str], dict] = {}

    def row(table: dict, key) -> dict:
        return table.setdefault(key, {"lists": 0, "shown": 0, "views": 0, "carts": 0, "purchases": 0, "revenue": 0.0})

    sources: Counter = Counter()
    lengths: Counter = Counter()
    for impression in impressions:
        variant = impression.variant or "none"
        when = (impression.at // bucket * bucket, impression.list)
        for table, key in ((groups["list"], impression.list), (groups["variant"], variant), (buckets, when)):
            row(table, key)["lists"] += 1
            row(table, key)["shown"] += len(impression.items)
        sources.update(item.source for item in impression.items)
        lengths[len(impression.items)] += 1
    for source, n in sources.items():
        row(groups["source"], source or "none")["shown"] += n
    for position in range(max(lengths, default=0)):  # slot p was shown in every list longer than p
        row(groups["position"], str(position))["shown"] += sum(n for length, n in lengths.items() if length > position)
    for credit in credits:
        impression, item = credit.impression, credit.impression.items[credit.position]
        outcome = OUTCOMES[credit.event.type]
        revenue = (price(credit.event.product_id) or 0.0) if outcome == "purchases" else 0.0
        keys = ((groups["list"], impression.list), (groups["variant"], impression.variant or "none"),
                (groups["source"], item.source or "none"), (groups["position"], str(credit.position)),
                (buckets, (impression.at // bucket * bucket, impression.list)))
        for table, key in keys:
            row(table, key)[outcome] += 1
            row(table, key)["revenue"] += revenue
    return {
        **{f"by_{name}": {key: _rates(r) for key, r in sorted(table.items(), key=lambda kv: _order(kv[0]))}
           for name, table in groups.items()},
        "buckets": [{"start": start, "list": kind, **_rates(r)} for (start, kind), r in sorted(buckets.items())],
    }


def _order(key: str):
    return (0, int(key), "") if key.isdigit() else (1, 0, key)


def _rates(r: dict) -> dict:
    shown = max(r["shown"], 1)
    return {**r, "revenue": round(r["revenue"], 2), "click_through": round(r["views"] / shown, 4),
            "add_to_cart": round(r["carts"] / shown, 4), "conversion": round(r["purchases"] / shown, 4),
            "revenue_per_thousand": round(r["revenue"] / shown * 1000, 2)}


def recommendation_report(store, since: float, until: float, window: float, bucket: float) -> dict:
    """`report` over the lists `store` kept from `since` until `until` and the outcomes up to
    `window` after them (`GET /metrics/recommendations`)."""
    impressions = store.impressions(since=since, until=until, limit=None)
    credits = attribute(impressions, store.outcomes_between(since, until + window), window)
    prices: dict[str, float | None] = {}

    def price(product_id: str) -> float | None:
        if product_id not in prices:
            try:
                prices[product_id] = store.get("products", product_id).price
            except UnknownNode:  # withdrawn for good: no price to count
                prices[product_id] = None
        return prices[product_id]

    return {"since": since, "until": until, "window_seconds": window, **report(impressions, credits, price, bucket)}
