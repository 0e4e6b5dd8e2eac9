"""Export a `GraphStore` into index arrays and a PyTorch Geometric `HeteroData`.

The export streams `store.iter_records()` (never the whole store at once) into integer edge
arrays: node ids become positions per node type, relationships become `[2, E]` arrays. It is
the one hand-off from the graph store to training and evaluation (data flows one way:
store -> export -> embeddings -> back to the store).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
import torch
from torch_geometric.data import HeteroData

from ..graph.model import EVENT_TYPES
from ..graph.store import GraphStore

NODE_TYPES = ("shopper", "session", "product", "category", "attribute", "look")
EDGE_TYPES = (
    ("shopper", "had", "session"),
    ("session", "interacted", "product"),
    ("product", "in", "category"),
    ("category", "child_of", "category"),
    ("product", "has", "attribute"),
    ("look", "includes", "product"),
    ("look", "found_in", "session"),
    ("shopper", "saved", "look"),
)
EVENT_WEIGHT = {"view": 1.0, "cart": 2.0, "purchase": 3.0, "dismiss": -1.0}


class _Index:
    """Ids of one node type -> positions, in first-seen order."""

    def __init__(self):
        self.ids: list[str] = []
        self.position: dict[str, int] = {}

    def __call__(self, node_id: str) -> int:
        found = self.position.get(node_id)
        if found is None:
            found = self.position[node_id] = len(self.ids)
            self.ids.append(node_id)
        return found


@dataclass
class GraphExport:
    ids: dict[str, list[str]]
    edges: dict[tuple[str, str, str], np.ndarray]
    """(src, rel, dst) -> int64 array [2, E] of positions."""
    event_type: np.ndarray
    """Per ('session', 'interacted', 'product') edge: index into `EVENT_TYPES`."""
    event_ts: np.ndarray
    look_position: np.ndarray
    """Per ('look', 'includes', 'product') edge: the item's position in the look."""
    product_category: np.ndarray
    """Leaf category position of each product, -1 when it has none."""
    category_names: list[str] = field(default_factory=list)
    mined_looks: list = field(default_factory=list)
    """The `Look` records of the looks mined from baskets (`recommend/mining.py`), the last
    looks of `ids["look"]`; the rest are curated."""

    def count(self, node_type: str) -> int:
        return len(self.ids[node_type])

    def index(self, node_type: str) -> dict[str, int]:
        return {node_id: i for i, node_id in enumerate(self.ids[node_type])}

    @property
    def fingerprint(self) -> str:
        """A short hash of everything training sees: ids and every edge array."""
        digest = hashlib.sha256()
        for node_type in NODE_TYPES:
            digest.update("\n".join(self.ids[node_type]).encode())
        for edge_type in EDGE_TYPES:
            digest.update(np.ascontiguousarray(self.edges[edge_type]).tobytes())
        digest.update(self.event_type.tobytes())
        return digest.hexdigest()[:16]

    def look_items(self) -> list[np.ndarray]:
        """Product positions of each look, in display order."""
        src, dst = self.edges[("look", "includes", "product")]
        order = np.lexsort((self.look_position, src))
        src, dst = src[order], dst[order]
        bounds = np.searchsorted(src, np.arange(self.count("look") + 1))
        return [dst[bounds[i] : bounds[i + 1]] for i in range(self.count("look"))]

    def to_hetero_data(self) -> HeteroData:
        """A `HeteroData` with every relationship and its reverse (`rev_<rel>`)."""
        data = HeteroData()
        for node_type in NODE_TYPES:
            data[node_type].num_nodes = self.count(node_type)
        for (src, rel, dst), index in self.edges.items():
            edge_index = torch.from_numpy(index)
            data[src, rel, dst].edge_index = edge_index
            data[dst, f"rev_{rel}", src].edge_index = edge_index.flip(0)
        weights = torch.tensor([EVENT_WEIGHT[t] for t in EVENT_TYPES])[torch.from_numpy(self.event_type).long()]
        data["session", "interacted", "product"].edge_weight = weights
        data["product", "rev_interacted", "session"].edge_weight = weights
        return data


def with_looks(graph: GraphExport, looks: list) -> GraphExport:
    """`graph` with mined `looks` (`Look` records of its products) added after its own."""
    if not looks:
        return graph
    index = graph.index("product")
    first = graph.count("look")
    rows = [(first + n, index[pid], position) for n, look in enumerate(looks) for position, pid in enumerate(look.product_ids)]
    includes = np.array([[r[0] for r in rows], [r[1] for r in rows]], dtype=np.int64)
    edges = dict(graph.edges)
    edges[("look", "includes", "product")] = np.concatenate([graph.edges[("look", "includes", "product")], includes], axis=1)
    ids = dict(graph.ids)
    ids["look"] = [*graph.ids["look"], *(look.id for look in looks)]
    return GraphExport(ids, edges, graph.event_type, graph.event_ts,
                       np.concatenate([graph.look_position, np.array([r[2] for r in rows], dtype=np.int64)]),
                       graph.product_category, graph.category_names, [*graph.mined_looks, *looks])


def export_graph(store: GraphStore, batch_size: int = 10_000, mined_looks: bool = False) -> GraphExport:
    """Stream every record of `store` into a `GraphExport`. Mined looks are left out unless
    asked for: they are derived from the events, and `lookgraph train` mines them afresh."""
    index = {t: _Index() for t in NODE_TYPES}
    pairs: dict[tuple[str, str, str], tuple[list[int], list[int]]] = {e: ([], []) for e in EDGE_TYPES}

    def link(edge_type, a: int, b: int) -> None:
        pairs[edge_type][0].append(a)
        pairs[edge_type][1].append(b)

    categories = list(store.iter_records("categories", batch_size))  # a tree: small next to the rest
    for category in categories:
        index["category"](category.id)
    for category in categories:
        if category.parent_id is not None:
            link(("category", "child_of", "category"), index["category"](category.id), index["category"](category.parent_id))
    product_category: list[int] = []
    for product in store.iter_records("products", batch_size):
        p = index["product"](product.id)
        product_category.append(index["category"](product.category_id) if product.category_id else -1)
        if product.category_id:
            link(("product", "in", "category"), p, index["category"](product.category_id))
        for attribute in product.attributes:
            link(("product", "has", "attribute"), p, index["attribute"](attribute.key))
    for shopper in store.iter_records("shoppers", batch_size):
        index["shopper"](shopper.id)

    type_code = {t: i for i, t in enumerate(EVENT_TYPES)}
    event_type, event_ts = [], []
    sessions_seen: set[int] = set()
    for event in store.iter_records("events", batch_size):
        s = index["session"](event.session_id)
        link(("session", "interacted", "product"), s, index["product"](event.product_id))
        event_type.append(type_code[event.type])
        event_ts.append(event.ts)
        if event.shopper_id is not None and s not in sessions_seen:
            sessions_seen.add(s)
            link(("shopper", "had", "session"), index["shopper"](event.shopper_id), s)
    look_position = []
    for look in store.iter_records("looks", batch_size):
        if look.mined and not mined_looks:
            continue
        lk = index["look"](look.id)
        for position, pid in enumerate(look.product_ids):
            link(("look", "includes", "product"), lk, index["product"](pid))
            look_position.append(position)
        if look.session_id is not None:
            link(("look", "found_in", "session"), lk, index["session"](look.session_id))
    for saved in store.iter_records("saved_looks", batch_size):
        link(("shopper", "saved", "look"), index["shopper"](saved.shopper_id), index["look"](saved.look_id))

    return GraphExport(
        ids={t: index[t].ids for t in NODE_TYPES},
        edges={e: np.array(pairs[e], dtype=np.int64).reshape(2, -1) for e in EDGE_TYPES},
        event_type=np.array(event_type, dtype=np.int8),
        event_ts=np.array(event_ts, dtype=np.float64),
        look_position=np.array(look_position, dtype=np.int64),
        product_category=np.array(product_category, dtype=np.int64),
        category_names=[c.name for c in categories],
    )
