"""The demo store is seeded and plants every behaviour the engine must handle."""

from __future__ import annotations

from collections import Counter, defaultdict

from lookgraph.loaders.demo import DemoSpec, DemoStore, write_demo_store
from lookgraph.loaders.native import NativeSource


def test_same_seed_same_files_other_seed_other_files(tmp_path):
    spec = DemoSpec(products=200, shoppers=20, events=500, seed=3)
    write_demo_store(tmp_path / "a", spec)
    write_demo_store(tmp_path / "b", spec)
    write_demo_store(tmp_path / "c", DemoSpec(200, 20, 500, seed=4))
    for name in ("products.csv", "events.csv", "looks.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "events.csv").read_bytes() != (tmp_path / "c" / "events.csv").read_bytes()


def test_demo_plants_every_behaviour(tmp_path):
    # Dense enough (about 40 sessions per shopper) for consumable refills to recur.
    write_demo_store(tmp_path, DemoSpec(products=300, shoppers=30, events=6_000, seed=11))
    source = NativeSource(tmp_path)
    products = {p.id: p for _, _, p in source.records("products")}
    events = [e for _, _, e in source.records("events")]
    looks = [lk for _, _, lk in source.records("looks")]
    shoppers = {s.id: s for _, _, s in source.records("shoppers")}
    group = lambda pid: "/".join(products[pid].category_id.split("/")[:3])  # noqa: E731

    assert all(len({group(p) for p in look.product_ids}) == len(look.product_ids) >= 2 for look in looks)
    assert any(e.gift for e in events)
    assert any(e.shopper_id is None for e in events)
    assert any(e.shopper_id and e.location != shoppers[e.shopper_id].home_location for e in events)
    assert {e.type for e in events} == {"view", "cart", "purchase", "dismiss"}

    purchases = defaultdict(Counter)
    for e in events:
        if e.type == "purchase" and e.shopper_id:
            purchases[e.shopper_id][products[e.product_id].category_id] += 1
    durable = [n for c in purchases.values() for cat, n in c.items() if cat.startswith("home/durables")]
    consumable = [n for c in purchases.values() for cat, n in c.items() if cat.startswith("home/consumables")]
    assert durable and max(durable) == 1  # nobody buys a second toilet seat
    assert consumable and max(consumable) >= 3  # coffee comes back


def test_events_stream_exactly_the_requested_count():
    store = DemoStore(DemoSpec(products=150, shoppers=5, events=777, seed=1))
    assert sum(1 for _ in store.events()) == 777
