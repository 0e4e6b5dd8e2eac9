"""A seeded demo store: a fashion catalogue with looks, and shoppers with tastes of their own.

What it plants, so that every behaviour of the engine has something to act on:

- a category tree (fashion/<department>/<group>/<leaf>, home/durables, home/consumables) and
  products with brand, colour, material, style and occasion attributes;
- looks that combine 3-4 groups of one department and style (top + bottom + shoes + bag...);
- shoppers with a home city, a department, one or two favourite styles, some of them
  variety-seekers who browse other styles too;
- sessions of views, carts, purchases and dismissals, browsing looks or categories; among them
  gift sessions (another department, flagged `gift`), sessions away from home (another city),
  one-time purchases of home durables (a toilet seat, a sofa) and consumables bought again
  and again near their cycle (coffee every few weeks).

Everything streams: 1M events are written without holding them in memory.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..graph.model import Attribute, Category, Event, Look, Product, SavedLook, Shopper
from .native import NativeWriter

DEPARTMENTS = ("women", "men")
FASHION_GROUPS = {
    "tops": ("T-shirts", "Shirts", "Blouses", "Sweaters", "Hoodies"),
    "bottoms": ("Jeans", "Trousers", "Skirts", "Shorts"),
    "dresses": ("Day dresses", "Evening dresses"),
    "outerwear": ("Jackets", "Coats", "Blazers"),
    "shoes": ("Boots", "Sneakers", "Heels", "Loafers", "Sandals"),
    "bags": ("Totes", "Crossbody bags", "Backpacks"),
    "accessories": ("Belts", "Scarves", "Hats", "Sunglasses", "Jewellery"),
}
MENSWEAR_SKIPS = {"Blouses", "Skirts", "Day dresses", "Evening dresses", "Heels"}
DURABLES = ("Toilet seats", "Sofas", "Mattresses", "Kettles")
CONSUMABLES = {"Coffee": 21, "Laundry detergent": 45, "Razor blades": 30, "Shampoo": 40}
"""Consumable leaf -> typical repurchase cycle in days."""
ONE_ITEM = {"Day dresses": "day dress", "Evening dresses": "evening dress", "Scarves": "scarf",
            "Mattresses": "mattress", "Jeans": "jeans", "Trousers": "trousers", "Shorts": "shorts",
            "Sunglasses": "sunglasses", "Jewellery": "jewellery", "Coffee": "coffee",
            "Laundry detergent": "laundry detergent", "Shampoo": "shampoo"}
"""What one product of a leaf is called where dropping the plural's `s` would not do."""

STYLES = ("casual", "classic", "sporty", "boho", "streetwear", "evening")
OCCASIONS = {
    "casual": ("weekend", "travel"), "classic": ("work", "wedding"), "sporty": ("outdoor", "weekend"),
    "boho": ("beach", "festival"), "streetwear": ("weekend", "night out"), "evening": ("party", "wedding"),
}
COLOURS = ("black", "white", "navy", "grey", "beige", "red", "green", "blue", "pink", "brown", "olive", "cream")
MATERIALS = ("cotton", "denim", "leather", "wool", "linen", "silk", "suede", "jersey")
CITIES = ("London", "Paris", "Berlin", "Madrid", "Rome", "Amsterdam", "Vienna", "Lisbon", "Dublin",
          "Prague", "Warsaw", "Stockholm", "Copenhagen", "Brussels", "Milan", "Munich", "Lyon",
          "Barcelona", "Oslo", "Zurich")
OUTFITS = (
    ("tops", "bottoms", "shoes", "bags"),
    ("tops", "bottoms", "outerwear", "shoes"),
    ("dresses", "shoes", "bags", "accessories"),
    ("tops", "bottoms", "shoes", "accessories"),
)
SPAN_DAYS = 180
END_TS = 1_793_491_200.0  # 2026-11-01T00:00:00Z
DAY = 86_400.0


@dataclass(frozen=True)
class DemoSpec:
    products: int = 2_000
    shoppers: int = 300
    events: int = 20_000
    seed: int = 7


def one_item(leaf_name: str) -> str:
    """One product of the leaf `leaf_name`, in lower case: "Boots" -> "boot", "Scarves" -> "scarf"."""
    return ONE_ITEM.get(leaf_name) or leaf_name.lower().removesuffix("s")


def _brands(rng: random.Random, n: int = 60) -> list[str]:
    first = ("Nor", "Vel", "Ast", "Mar", "Lun", "Cor", "Bel", "Sol", "Ori", "Kai", "Ely", "Tam")
    second = ("den", "ora", "is", "ello", "vik", "ette", "ano", "wood", "ford", "lux", "ine", "ard")
    names = sorted({a + b for a in first for b in second})
    rng.shuffle(names)
    return names[:n]


class DemoStore:
    """Builds the catalogue eagerly (it is small) and streams sessions and events."""

    def __init__(self, spec: DemoSpec):
        if spec.products < 100 or spec.shoppers < 1 or spec.events < 1:
            raise ValueError("the demo store needs at least 100 products, 1 shopper and 1 event")
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.categories = self._categories()
        self.brands = _brands(self.rng)
        self.products: list[Product] = []
        self.by_group: dict[tuple[str, str, str], list[str]] = {}  # (dept, group, style) -> ids
        self.by_leaf: dict[str, list[str]] = {}
        self.looks_by_theme: dict[tuple[str, str], list[Look]] = {}  # (dept, style) -> looks
        self._make_products()
        self.looks = self._make_looks()
        self.shoppers = self._make_shoppers()

    # -- catalogue ---------------------------------------------------------------------
    def _categories(self) -> list[Category]:
        cats = [Category("fashion", "Fashion"), Category("home", "Home")]
        for dept in DEPARTMENTS:
            cats.append(Category(f"fashion/{dept}", dept.title(), "fashion"))
            for group, leaves in FASHION_GROUPS.items():
                kept = [leaf for leaf in leaves if dept == "women" or leaf not in MENSWEAR_SKIPS]
                if not kept:
                    continue
                cats.append(Category(f"fashion/{dept}/{group}", group.title(), f"fashion/{dept}"))
                for leaf in kept:
                    cats.append(Category(f"fashion/{dept}/{group}/{_slug(leaf)}", leaf, f"fashion/{dept}/{group}"))
        for group, leaves in (("durables", DURABLES), ("consumables", tuple(CONSUMABLES))):
            cats.append(Category(f"home/{group}", group.title(), "home"))
            cats.extend(Category(f"home/{group}/{_slug(leaf)}", leaf, f"home/{group}") for leaf in leaves)
        return cats

    def _make_products(self) -> None:
        rng = self.rng
        leaves = [c for c in self.categories if c.id.count("/") == 3 and c.id.startswith("fashion/")]
        home = [c for c in self.categories if c.id.count("/") == 2 and c.id.startswith("home/")]
        n_home = max(len(home), self.spec.products * 7 // 100)
        for i in range(self.spec.products):
            pid = f"p{i:06d}"
            brand = rng.choice(self.brands)
            colour = rng.choice(COLOURS)
            if i < n_home:
                leaf = home[i % len(home)]
                attrs = (Attribute("brand", brand),)
                price = round(rng.lognormvariate(3.0 if "consumables" in leaf.id else 5.0, 0.5), 2)
                self.products.append(Product(pid, f"{brand} {one_item(leaf.name)}", leaf.id, price, attrs))
                self.by_leaf.setdefault(leaf.id, []).append(pid)
                continue
            leaf = rng.choice(leaves)
            _, dept, group, _ = leaf.id.split("/")
            style = rng.choice(STYLES)
            material = rng.choice(MATERIALS)
            attrs = (
                Attribute("brand", brand), Attribute("colour", colour), Attribute("material", material),
                Attribute("style", style), Attribute("occasion", rng.choice(OCCASIONS[style])),
            )
            price = round(rng.lognormvariate(3.8, 0.6), 2)
            name = f"{brand} {colour} {material} {one_item(leaf.name)}"
            self.products.append(Product(pid, name, leaf.id, price, attrs))
            self.by_group.setdefault((dept, group, style), []).append(pid)
            self.by_leaf.setdefault(leaf.id, []).append(pid)

    def _make_looks(self) -> list[Look]:
        rng = self.rng
        looks = []
        for i in range(max(10, self.spec.products // 25)):
            dept = rng.choice(DEPARTMENTS)
            style = rng.choice(STYLES)
            outfit = [g for g in rng.choice(OUTFITS) if dept == "women" or g != "dresses"]
            items = [rng.choice(pool) for g in outfit if (pool := self.by_group.get((dept, g, style)))]
            if len(items) >= 2:
                occasion = rng.choice(OCCASIONS[style])
                look = Look(f"look{i:05d}", f"{occasion} {style} ({dept})", tuple(dict.fromkeys(items)))
                looks.append(look)
                self.looks_by_theme.setdefault((dept, style), []).append(look)
        return looks

    def _make_shoppers(self) -> list[dict]:
        rng = self.rng
        shoppers = []
        for i in range(self.spec.shoppers):
            shoppers.append({
                "id": f"u{i:06d}",
                "home": CITIES[min(int(rng.paretovariate(1.2)) - 1, len(CITIES) - 1)],
                "dept": "women" if rng.random() < 0.6 else "men",
                "styles": rng.sample(STYLES, rng.choice((1, 2))),
                "variety": rng.random() < 0.2,
                "activity": rng.lognormvariate(0, 1),
                "consumable": rng.choice(list(CONSUMABLES)) if rng.random() < 0.4 else None,
            })
        return shoppers

    # -- behaviour ---------------------------------------------------------------------
    def events(self) -> Iterator[Event]:
        """Sessions until `spec.events` events exist (the last session may be cut short)."""
        rng = random.Random(self.spec.seed + 1)
        cumulative = list(itertools.accumulate(s["activity"] for s in self.shoppers))
        owned_durables: set[tuple[str, str]] = set()
        next_refill: dict[str, float] = {}
        emitted = session_no = 0
        while emitted < self.spec.events:
            start = END_TS - SPAN_DAYS * DAY + rng.random() * SPAN_DAYS * DAY
            anonymous = rng.random() < 0.15
            shopper = rng.choices(self.shoppers, cum_weights=cumulative)[0]
            sid = f"s{session_no:07d}"
            session_no += 1
            plan = self._plan_session(rng, shopper, start, owned_durables, next_refill, anonymous)
            t = start
            for product_id, kind, location, gift in plan:
                t += rng.uniform(15, 180)
                yield Event(f"e{emitted:08d}", sid, product_id, kind, round(t, 3),
                            None if anonymous else shopper["id"], location, gift)
                emitted += 1
                if emitted >= self.spec.events:
                    return

    def _plan_session(self, rng, shopper, start, owned_durables, next_refill, anonymous):
        home = shopper["home"]
        location = rng.choice([c for c in CITIES if c != home]) if rng.random() < 0.06 else home
        roll = rng.random()
        refill_due = shopper["consumable"] and next_refill.get(shopper["id"], 0) <= start
        if not anonymous and refill_due and roll < 0.5:
            leaf = f"home/consumables/{_slug(shopper['consumable'])}"
            usual = int(shopper["id"][1:]) % len(self.by_leaf[leaf])  # their usual brand, every time
            product = self.by_leaf[leaf][usual]
            cycle = CONSUMABLES[shopper["consumable"]] * rng.uniform(0.85, 1.15)
            next_refill[shopper["id"]] = start + cycle * DAY
            return [(product, "view", location, False), (product, "cart", location, False),
                    (product, "purchase", location, False)]
        leaf = f"home/durables/{_slug(rng.choice(DURABLES))}"
        if roll < 0.03 and (anonymous or (shopper["id"], leaf) not in owned_durables):
            # A one-time durable: compare a few, buy one, never buy that kind again.
            options = rng.sample(self.by_leaf[leaf], min(3, len(self.by_leaf[leaf])))
            owned_durables.add((shopper["id"], leaf))
            return [(p, "view", location, False) for p in options] + [
                (options[0], "cart", location, False), (options[0], "purchase", location, False)]
        gift = rng.random() < 0.05
        dept = shopper["dept"]
        if gift:
            dept = "men" if dept == "women" else "women"
            style = rng.choice(STYLES)
        elif shopper["variety"] and rng.random() < 0.4:
            style = rng.choice(STYLES)
        else:
            style = rng.choice(shopper["styles"])
        candidates = self.looks_by_theme.get((dept, style))
        if candidates and rng.random() < 0.5:
            browsed = list(rng.choice(candidates).product_ids)
            browsed = browsed[: rng.randint(2, len(browsed))]
        else:
            groups = [g for g in FASHION_GROUPS if self.by_group.get((dept, g, style))]
            browsed = [rng.choice(self.by_group[(dept, rng.choice(groups), style)]) for _ in range(rng.randint(2, 6))]
        plan = []
        for product in dict.fromkeys(browsed):
            plan.append((product, "view", location, gift))
            if rng.random() < 0.03:
                plan.append((product, "dismiss", location, gift))
            elif rng.random() < 0.25:
                plan.append((product, "cart", location, gift))
                if rng.random() < 0.5:
                    plan.append((product, "purchase", location, gift))
        return plan

    def saved_looks(self) -> Iterator[SavedLook]:
        rng = random.Random(self.spec.seed + 2)
        for shopper in self.shoppers:
            pool = self.looks_by_theme.get((shopper["dept"], shopper["styles"][0]))
            if pool and rng.random() < 0.3:
                for look in rng.sample(pool, min(len(pool), rng.randint(1, 2))):
                    yield SavedLook(shopper["id"], look.id, END_TS - rng.random() * SPAN_DAYS * DAY)

    def write(self, folder: str | Path, fmt: str = "csv") -> dict[str, int]:
        out = NativeWriter(folder, fmt)
        return {
            "categories": out.write("categories", self.categories),
            "products": out.write("products", self.products),
            "shoppers": out.write("shoppers", (Shopper(s["id"], s["home"]) for s in self.shoppers)),
            "events": out.write("events", self.events()),
            "looks": out.write("looks", self.looks),
            "saved_looks": out.write("saved_looks", self.saved_looks()),
        }


def _slug(text: str) -> str:
    return text.lower().replace(" ", "-")


def write_demo_store(folder: str | Path, spec: DemoSpec, fmt: str = "csv") -> dict[str, int]:
    return DemoStore(spec).write(folder, fmt)
