"""MovieLens-100k as a lookgraph native folder: a public collaborative-filtering benchmark run
through the generic native loader (`lookgraph load FOLDER`), with no adapter of its own.

The data comes from a package registry, not the web: RecBole's wheel on PyPI ships ml-100k
(`recbole/dataset_example/ml-100k/`, atomic files). `pip download recbole` fetches it once into
`--cache`. Mapping:

- products: movies, named by title, in the category of their first genre; every genre and the
  release decade are attributes (`genre:Comedy`, `decade:1990s`);
- shoppers: users; events: every rating as a `purchase` (the implicit-feedback setting of the
  CF literature), in one session per user and day.

    python benchmarks/movielens.py --out /tmp/ml-100k-native
    LOOKGRAPH_HOME=/tmp/ml100k lookgraph load /tmp/ml-100k-native
    LOOKGRAPH_HOME=/tmp/ml100k lookgraph evaluate --out benchmarks/results/eval-ml-100k
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import zipfile
from collections import defaultdict
from pathlib import Path

FOLDER = "recbole/dataset_example/ml-100k/"


def fetch(cache: Path) -> Path:
    """The ml-100k atomic files, extracted from RecBole's wheel (downloaded once)."""
    target = cache / FOLDER
    if (target / "ml-100k.inter").exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "recbole==1.2.1", "-d", str(cache)],
                   check=True)
    wheel = next(cache.glob("recbole-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(cache, [n for n in archive.namelist() if n.startswith(FOLDER)])
    return target


def rows(path: Path):
    with path.open(encoding="latin-1") as f:
        reader = csv.reader(f, delimiter="\t")
        header = [h.split(":")[0] for h in next(reader)]
        for row in reader:
            yield dict(zip(header, row))


def convert(source: Path, out: Path, keep=None) -> dict[str, int]:
    """Write the native folder; `keep(user_id, item_id)`, when given, chooses the ratings that
    become events (a split's training part)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "lookgraph.json").write_text(json.dumps({"format": "lookgraph-native", "version": 1}) + "\n")
    genres: set[str] = set()
    products = []
    for row in rows(source / "ml-100k.item"):
        classes = row.get("class", "").split() or ["unknown"]
        genres.update(classes)
        year = row.get("release_year", "")
        attributes = [f"genre:{g}" for g in classes] + ([f"decade:{year[:3]}0s"] if year[:3].isdigit() else [])
        products.append({"id": f"m{row['item_id']}", "name": row.get("movie_title") or f"movie {row['item_id']}",
                         "category_id": f"genre/{classes[0]}", "attributes": "|".join(attributes)})
    _write(out / "categories.csv", ["id", "name", "parent_id"],
           [{"id": "genre", "name": "Movies", "parent_id": ""}] +
           [{"id": f"genre/{g}", "name": g, "parent_id": "genre"} for g in sorted(genres)])
    _write(out / "products.csv", ["id", "name", "category_id", "attributes"], products)
    _write(out / "shoppers.csv", ["id"], [{"id": f"u{row['user_id']}"} for row in rows(source / "ml-100k.user")])
    events, per_user_day = [], defaultdict(int)
    for row in sorted(rows(source / "ml-100k.inter"), key=lambda r: (int(r["user_id"]), float(r["timestamp"]))):
        if keep is not None and not keep(row["user_id"], row["item_id"]):
            continue
        user, ts = row["user_id"], int(float(row["timestamp"]))
        session = f"u{user}/{ts // 86_400}"
        per_user_day[session] += 1
        events.append({"event_id": f"r{user}-{row['item_id']}", "ts": ts, "session_id": session,
                       "product_id": f"m{row['item_id']}", "type": "purchase", "shopper_id": f"u{user}"})
    _write(out / "events.csv", ["event_id", "ts", "session_id", "product_id", "type", "shopper_id"], events)
    return {"products": len(products), "events": len(events), "sessions": len(per_user_day)}


def _write(path: Path, fields: list[str], rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fields)
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="the native folder to write")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "lookgraph" / "recbole")
    args = parser.parse_args()
    counts = convert(fetch(args.cache), args.out)
    print(f"wrote {args.out}: " + ", ".join(f"{n:,} {k}" for k, n in counts.items()))
