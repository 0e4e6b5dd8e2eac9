"""`lookgraph export --format neo4j-admin`: CSV files for `neo4j-admin database import full`.

For catalogues and histories too big for transactional loading. One file per label and per
relationship type, each with the importer's header row (`id:ID(Product)`, `:START_ID(Session)`,
`ts:double`...); each label is its own id space, so ids need only be unique per label. The
folder also gets `import.sh` with the exact command. Records stream from the store; only the
sessions (derived from events) are gathered in memory.
"""

from __future__ import annotations

import csv
import shlex
import time
from pathlib import Path

from .store import GraphStore

NODES = {
    "Category": ["id:ID(Category)", "name"],
    "Product": ["id:ID(Product)", "name", "price:float"],
    "Attribute": ["key:ID(Attribute)", "kind", "value"],
    "Shopper": ["id:ID(Shopper)", "home_location"],
    "Session": ["id:ID(Session)", "started_at:double", "location", "gift:boolean"],
    "Look": ["id:ID(Look)", "name"],
}
RELATIONSHIPS = {
    "CHILD_OF": [":START_ID(Category)", ":END_ID(Category)"],
    "IN_CATEGORY": [":START_ID(Product)", ":END_ID(Category)"],
    "HAS_ATTRIBUTE": [":START_ID(Product)", ":END_ID(Attribute)"],
    "HAD_SESSION": [":START_ID(Shopper)", ":END_ID(Session)"],
    "INTERACTED": [":START_ID(Session)", ":END_ID(Product)", "event_id", "type", "ts:double", "location", "gift:boolean"],
    "INCLUDES": [":START_ID(Look)", ":END_ID(Product)", "position:int"],
    "FOUND_IN": [":START_ID(Look)", ":END_ID(Session)"],
    "SAVED": [":START_ID(Shopper)", ":END_ID(Look)", "ts:double"],
    "BOUGHT_WITH": [":START_ID(Product)", ":END_ID(Product)", "sessions:int", "lift:double", "updated_at:double"],
    "GOES_WITH": [":START_ID(Category)", ":END_ID(Category)", "looks:int", "lift:double", "updated_at:double"],
}


def _file_name(name: str) -> str:
    return f"{name.lower()}.csv"


def export_neo4j_admin(store: GraphStore, folder: Path, database: str = "neo4j") -> dict[str, int]:
    """Write every node and relationship of `store` into `folder`; returns rows per file."""
    folder.mkdir(parents=True, exist_ok=True)
    handles = {name: open(folder / _file_name(name), "w", encoding="utf-8", newline="")
               for name in [*NODES, *RELATIONSHIPS]}
    writers = {name: csv.writer(handle) for name, handle in handles.items()}
    counts = dict.fromkeys(handles, 0)

    def row(name: str, *values) -> None:
        writers[name].writerow(["" if v is None else str(v).lower() if isinstance(v, bool) else v for v in values])
        counts[name] += 1

    try:
        for name, header in [*NODES.items(), *RELATIONSHIPS.items()]:
            writers[name].writerow(header)
        for c in store.iter_records("categories"):
            row("Category", c.id, c.name)
            if c.parent_id:
                row("CHILD_OF", c.id, c.parent_id)
        attributes = set()
        for p in store.iter_records("products"):
            row("Product", p.id, p.name, p.price)
            if p.category_id:
                row("IN_CATEGORY", p.id, p.category_id)
            for a in p.attributes:
                if a.key not in attributes:
                    attributes.add(a.key)
                    row("Attribute", a.key, a.kind, a.value)
                row("HAS_ATTRIBUTE", p.id, a.key)
        for s in store.iter_records("shoppers"):
            row("Shopper", s.id, s.home_location)
        sessions: dict[str, list] = {}
        for e in store.iter_records("events"):
            s = sessions.get(e.session_id)
            if s is None:
                sessions[e.session_id] = [e.ts, e.location, e.gift, e.shopper_id]
            else:
                if e.ts < s[0]:
                    s[0], s[1] = e.ts, e.location
                s[2] = s[2] or e.gift
            row("INTERACTED", e.session_id, e.product_id, e.id, e.type, e.ts, e.location, e.gift)
        for sid, (started, location, gift, shopper) in sessions.items():
            row("Session", sid, started, location, gift)
            if shopper:
                row("HAD_SESSION", shopper, sid)
        for look in store.iter_records("looks"):
            row("Look", look.id, look.name)
            for position, pid in enumerate(look.product_ids):
                row("INCLUDES", look.id, pid, position)
            if look.session_id:
                row("FOUND_IN", look.id, look.session_id)
        for saved in store.iter_records("saved_looks"):
            row("SAVED", saved.shopper_id, saved.look_id, saved.ts)
        at = (store.bought_with_state() or {}).get("at", 0.0)  # the imported database recomputes it when served
        for product, other, sessions, lift in store.iter_bought_with():
            row("BOUGHT_WITH", product, other, sessions, lift, at)
        exported = time.time()
        for category, other, looks, lift in store.iter_goes_with():
            row("GOES_WITH", category, other, looks, lift, exported)
    finally:
        for handle in handles.values():
            handle.close()

    arguments = [f"--nodes={name}={_file_name(name)}" for name in NODES]
    arguments += [f"--relationships={name}={_file_name(name)}" for name in RELATIONSHIPS]
    script = (
        "#!/usr/bin/env bash\n"
        "# Import into a new, empty database (stop Neo4j or use a database that does not exist yet),\n"
        "# then start it (CREATE DATABASE, or restart); lookgraph creates the constraints and indexes\n"
        "# of cypher/schema.cypher when it first connects. NEO4J_ADMIN names another neo4j-admin,\n"
        "# e.g. 'scripts/neo4j.sh admin' for the local server of the lookgraph checkout.\n"
        "set -euo pipefail\n"
        f'cd "$(dirname "$0")"\n'
        # The database first: --nodes and --relationships take any number of files after them.
        f"${{NEO4J_ADMIN:-neo4j-admin}} database import full {shlex.quote(database)} "
        + " ".join(shlex.quote(a) for a in arguments) + "\n"
    )
    (folder / "import.sh").write_text(script)
    (folder / "import.sh").chmod(0o755)
    return counts
