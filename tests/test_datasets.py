"""The real datasets load through their adapters (skipped where ../shared/data is absent)."""

from __future__ import annotations

import pytest

from lookgraph.loaders.bundlerec import BundleRecSource, category_paths, title_terms
from lookgraph.loaders.diginetica import DigineticaSource
from lookgraph.loaders.pipeline import load

from .conftest import dataset


def test_category_cells_keep_names_with_commas():
    assert category_paths("[[Clothing, Shoes & Jewelry,Women,Lingerie, Sleep & Lounge],[A,B]]") == [
        ["Clothing, Shoes & Jewelry", "Women", "Lingerie, Sleep & Lounge"], ["A", "B"]]
    with pytest.raises(ValueError):
        category_paths("Clothing")


def test_title_terms_are_lowercase_unique_and_meaningful():
    assert title_terms("Tommy Hilfiger Men's Tommy Star Print Boxer, 2 Pack") == [
        "tommy", "hilfiger", "men", "star", "print", "boxer"]


@pytest.mark.dataset
@pytest.mark.parametrize("domain, users, sessions, bundles", [("clothing", 965, 1181, 1910), ("electronic", None, 1145, 1750)])
def test_bundlerec_domains_load_whole(embedded, domain, users, sessions, bundles):
    report = load(BundleRecSource(dataset("bundlerec", domain)), embedded)
    stats = embedded.stats()
    assert stats.nodes["Session"] == sessions and stats.nodes["Look"] == bundles
    if users:
        assert stats.nodes["Shopper"] == users
    assert report.rows["saved_looks"] == stats.relationships["SAVED"]
    look = embedded.get("looks", f"{domain}/bundle/0")
    assert len(look.product_ids) >= 2 and look.session_id
    assert load(BundleRecSource(dataset("bundlerec", domain)), embedded).new_events == 0


@pytest.mark.dataset
def test_diginetica_loads_views_and_purchases(embedded):
    load(DigineticaSource(dataset("diginetica")), embedded)
    stats = embedded.stats()
    assert stats.nodes["Product"] == 184_047 and stats.nodes["Category"] == 1_217
    # 12,391 view rows (the file has no final newline, so `wc -l` says one less) + 18,025 purchases.
    assert stats.relationships["INTERACTED"] == 12_391 + 18_025
