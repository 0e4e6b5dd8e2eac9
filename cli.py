"""The `lookgraph` command line.

Where the store lives comes from settings (`LOOKGRAPH_HOME`, `LOOKGRAPH_STORE`, `NEO4J_*`, or a
`lookgraph.toml`; see `settings.py`); `--store` overrides the kind for one command.
"""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from .settings import Settings

app = typer.Typer(
    help="lookgraph: complete-the-look recommendations from one retail graph.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


class StoreKind(str, Enum):
    embedded = "embedded"
    neo4j = "neo4j"


class SourceFormat(str, Enum):
    native = "native"
    bundlerec = "bundlerec"
    diginetica = "diginetica"


class FileFormat(str, Enum):
    csv = "csv"
    jsonl = "jsonl"


StoreOption = Annotated[
    StoreKind | None,
    typer.Option("--store", help="Store to use (default: LOOKGRAPH_STORE, else embedded)."),
]


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _store(store: StoreKind | None):
    from .graph.stores import open_store

    try:
        return open_store(Settings(), store.value if store else None)
    except (ValueError, OSError) as err:
        _fail(str(err))


@app.command("demo-data")
def demo_data(
    out: Annotated[Path, typer.Argument(help="Folder to write the native-format demo store into.")] = Path("demo-data"),
    products: Annotated[int, typer.Option(min=100, help="Products in the catalogue.")] = 2_000,
    shoppers: Annotated[int, typer.Option(min=1, help="Shoppers.")] = 300,
    events: Annotated[int, typer.Option(min=1, help="Events (views, carts, purchases, dismissals).")] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed writes the same files.")] = 7,
    file_format: Annotated[FileFormat, typer.Option("--format", help="csv or jsonl files.")] = FileFormat.csv,
) -> None:
    """Write a seeded demo fashion store (native format) to OUT."""
    from .loaders.demo import DemoSpec, write_demo_store

    counts = write_demo_store(out, DemoSpec(products, shoppers, events, seed), file_format.value)
    typer.echo(f"wrote {out}: " + ", ".join(f"{n:,} {kind}" for kind, n in counts.items()))


@app.command()
def load(
    source: Annotated[Path, typer.Argument(help="Folder to load (a native store, a BundleRec domain, or Diginetica).")],
    source_format: Annotated[SourceFormat, typer.Option("--format", help="What SOURCE is.")] = SourceFormat.native,
    store: StoreOption = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Rows per write batch (default: LOOKGRAPH_BATCH_SIZE).")] = None,
) -> None:
    """Load SOURCE into the store, all or nothing. Re-loading the same files changes nothing."""
    from .loaders.bundlerec import BundleRecSource
    from .loaders.diginetica import DigineticaSource
    from .loaders.native import NativeSource
    from .loaders.pipeline import load as run_load
    from .loaders.source import LoadError

    reader = {"native": NativeSource, "bundlerec": BundleRecSource, "diginetica": DigineticaSource}[source_format.value]
    try:
        parsed = reader(source)
    except (ValueError, OSError) as err:
        _fail(str(err))
    with _store(store) as graph:
        try:
            report = run_load(parsed, graph, batch_size or Settings().batch_size)
        except LoadError as err:
            _fail(str(err))
    rows = ", ".join(f"{n:,} {kind}" for kind, n in report.rows.items() if n)
    typer.echo(f"loaded {source} into the {graph.name} store in {report.seconds:.1f}s: {rows} "
               f"({report.new_events:,} new events)")


@app.command()
def stats(
    store: StoreOption = None,
    top: Annotated[int, typer.Option(min=1, help="How many top categories to list.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Counts per node label and relationship type, and the largest categories."""
    with _store(store) as graph:
        result = graph.stats(top)
    if as_json:
        json.dump(result.as_dict(), sys.stdout, indent=2)
        typer.echo()
        return
    typer.echo(f"{graph.name} store")
    typer.echo("nodes:")
    for label, n in result.nodes.items():
        typer.echo(f"  {label:<14}{n:>12,}")
    typer.echo("relationships:")
    for rel, n in result.relationships.items():
        typer.echo(f"  {rel:<14}{n:>12,}")
    typer.echo("top categories (products in or below):")
    for cid, name, n in result.top_categories:
        typer.echo(f"  {n:>8,}  {name}  [{cid}]")


if __name__ == "__main__":
    app()
