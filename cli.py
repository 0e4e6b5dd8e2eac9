"""The `lookgraph` command line.

Where the store lives comes from settings (`LOOKGRAPH_HOME`, `LOOKGRAPH_STORE`, `NEO4J_*`, or a
`lookgraph.toml`; see `settings.py`); `--store` overrides the kind for one command.
"""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from .settings import Settings, SettingsError, load_settings

app = typer.Typer(
    help="lookgraph: complete-the-look recommendations from one retail graph.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",  # a docstring's lines join into one paragraph, as written
)


class StoreKind(str, Enum):
    embedded = "embedded"
    neo4j = "neo4j"


class SourceFormat(str, Enum):
    native = "native"
    bundlerec = "bundlerec"
    diginetica = "diginetica"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class RankerSplit(str, Enum):
    time = "time"
    random = "random"


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


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as err:
        _fail(str(err))


def _store(store: StoreKind | None):
    from neo4j.exceptions import AuthError, ServiceUnavailable

    from .graph.stores import open_store

    settings = _settings()
    try:
        return open_store(settings, store.value if store else None)
    except ServiceUnavailable as err:
        _fail(f"cannot reach Neo4j at {settings.neo4j_uri} ({' '.join(str(err).split())}); start it (bash scripts/neo4j.sh start) "
              "or point NEO4J_URI at a running server")
    except AuthError:
        _fail(f"Neo4j at {settings.neo4j_uri} refused user {settings.neo4j_user!r}: check NEO4J_USER and NEO4J_PASSWORD")
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
    strict: Annotated[bool, typer.Option(help="Refuse (rather than warn about) an event id already stored with "
                                         "other content.")] = False,
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
            report = run_load(parsed, graph, batch_size or _settings().batch_size, strict=strict)
        except LoadError as err:
            _fail(str(err))
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)
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
    where = _settings().db_path if graph.name == "embedded" else _settings().neo4j_uri
    typer.echo(f"{graph.name} store at {where}")
    typer.echo("nodes:")
    for label, n in result.nodes.items():
        typer.echo(f"  {label:<14}{n:>12,}")
    typer.echo("relationships:")
    for rel, n in result.relationships.items():
        typer.echo(f"  {rel:<14}{n:>12,}")
    typer.echo("top categories (products in or below):")
    for cid, name, n in result.top_categories:
        typer.echo(f"  {n:>8,}  {name}  [{cid}]")


@app.command("refresh-crowd")
def refresh_crowd(store: StoreOption = None) -> None:
    """Recompute the crowd's co-engagement, (:Product)-[:BOUGHT_WITH]->(:Product), from every
    event now (a load does it itself; serving processes every LOOKGRAPH_CROWD_REFRESH_SECONDS
    once events came in)."""
    from .graph import crowd

    with _store(store) as graph:
        done = crowd.refresh(graph)
    typer.echo(f"BOUGHT_WITH on the {graph.name} store: {done['rows']:,} rows for {done['products']:,} products "
               f"in {done['seconds']} s")


class ExportFormat(str, Enum):
    neo4j_admin = "neo4j-admin"


@app.command()
def export(
    out: Annotated[Path, typer.Argument(help="Folder to write the export into.")],
    export_format: Annotated[ExportFormat, typer.Option("--format", help="neo4j-admin: CSV for the bulk importer.")] =
        ExportFormat.neo4j_admin,
    store: StoreOption = None,
    database: Annotated[str, typer.Option(help="Database name in the generated import.sh.")] = "neo4j",
) -> None:
    """Export the whole graph for `neo4j-admin database import full` (with an import.sh)."""
    from .graph.neo4j_admin import export_neo4j_admin

    with _store(store) as graph:
        counts = export_neo4j_admin(graph, out, database)
    typer.echo(f"wrote {out}: " + ", ".join(f"{n:,} {name}" for name, n in counts.items()))
    typer.echo(f"then: bash {out / 'import.sh'}")


@app.command()
def train(
    store: StoreOption = None,
    epochs: Annotated[int, typer.Option(min=1, help="Most epochs (early stopping may end sooner).")] = 30,
    dim: Annotated[int, typer.Option(min=8, help="Embedding size (64 on Neo4j, its vector index's size).")] = 64,
    batch_size: Annotated[int, typer.Option(min=16, help="Complement pairs per mini-batch.")] = 512,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed and data train the same model.")] = 7,
    device: Annotated[Device, typer.Option(help="auto (a GPU when present), cpu or cuda.")] = Device.auto,
    threads: Annotated[int, typer.Option(min=0, help="CPU threads for torch (0: the cores idle now, at most 4).")] = 0,
    max_minutes: Annotated[float | None, typer.Option(min=0.1, help="Stop after the epoch that passes this many "
                                                      "minutes, keeping the best epoch (default: early stopping alone).")] = None,
    ranker_split: Annotated[RankerSplit, typer.Option(help="What the ranker learns from: time (what shoppers went on "
                                                      "to after a moment, nothing later seen) or random (a random fifth "
                                                      "of their products: only where the order of engagement says "
                                                      "nothing, e.g. ratings entered in bulk).")] = RankerSplit.time,
    impressions_days: Annotated[float, typer.Option(min=0, help="Also learn the ranker from the feeds served in "
                                                    "this many days and what shoppers took from them (kept "
                                                    "impressions; 0: not).")] = 0.0,
) -> None:
    """Train LookGNN embeddings for every node and the ranker, save a versioned artifact,
    write vectors back. One line per epoch on standard error."""
    from .embeddings.publish import train_and_publish
    from .embeddings.train import TrainConfig

    settings = _settings()
    if device is Device.cuda:
        import torch

        if not torch.cuda.is_available():
            _fail(f"--device cuda: no CUDA device is usable here (torch {torch.__version__}); "
                  "use --device cpu, or auto to take a GPU when there is one")
    config = TrainConfig(dim=dim, epochs=epochs, batch_size=batch_size, seed=seed, device=device.value, threads=threads,
                         max_minutes=max_minutes, ranker_split=ranker_split.value)
    with _store(store) as graph:
        try:
            folder, result = train_and_publish(graph, settings.home, config, progress=sys.stderr.isatty(),
                                               log_line=lambda line: typer.echo(line, err=True),
                                               impressions_days=impressions_days)
        except ValueError as err:
            _fail(str(err))
    meta = result.vectors.meta
    metrics = meta["metrics"]
    validation = (f"validation NDCG@10 {metrics['val_ndcg@10']:.4f} (looks)" if meta["validation_looks"]
                  else f"validation NDCG@20 {metrics['val_shopper_ndcg@20']:.4f} (shoppers)")
    again = metrics.get("epochs_on_every_interaction", 0)
    typer.echo(f"trained {metrics['epochs']} epochs" + (f" and {again} more on every interaction" if again else "")
               + f" in {metrics['train_seconds']:.1f}s ({metrics['seconds_per_epoch']:.1f}s/epoch); {validation}; "
               f"content weight {meta['content_weight']}")
    ranker = meta.get("ranker")
    typer.echo(f"ranker: {_ways(ranker)}; validation NDCG@20 {ranker['valid_ndcg@20']}"
               if ranker else "ranker: none (the hand-set evidence weights rank)")
    typer.echo(f"artifact {folder}; embeddings written to the {graph.name} store")


def _ways(report: dict) -> str:
    """How each kind of request is ranked, in words."""
    base, way = report.get("base") or {}, report.get("way") or {}
    words = {"trees": "trees learnt from nothing", "boosted": "{} with trees learnt over it", "base": "{} alone"}
    return "; ".join(f"{label}: " + words[way.get(kind, "trees")].format(base.get(kind))
                     for kind, label in (("feed", "a shopper's feed"), ("session", "an anonymous visitor's session"),
                                         ("page", "a product page")))


@app.command("explain-model")
def explain_model() -> None:
    """What the latest artifact's ranker looks at: each feature's share of the gain, and how it
    was trained (or the hand-set weights when it has no ranker)."""
    from .embeddings.vectors import latest_artifact
    from .recommend.ranker import EvidenceRanker, LearnedRanker

    try:
        folder = latest_artifact(_settings().home)
    except FileNotFoundError as err:
        _fail(str(err))
    ranker = LearnedRanker.load(folder)
    report = ranker.describe() if ranker else EvidenceRanker().describe()
    typer.echo(f"artifact {folder.name}: ranker {report['ranker']}")
    if ranker is None:
        for source, weight in report["weights"].items():
            typer.echo(f"  evidence {source:<10} x {weight}")
        typer.echo(f"  plus {report['plus']}")
        across = json.loads((folder / "model.json").read_text()).get("across_only")
        if across:
            typer.echo(f"  the anchors' categories: {'left out (complements only)' if across['chosen'] else 'kept in feeds'}; "
                       f"held-out answers in the top 20: {across['hits']['across only']} of {across['queries']} left out, "
                       f"{across['hits']['more of the same']} kept (sign test p {across['p']})")
        return
    typer.echo(f"  {_ways(report)}")
    for kind, found in report.get("valid_by_kind", {}).items():
        if kind in report.get("borrowed", {}):  # too few queries of its own to choose by
            typer.echo(f"  {kind}: {found['queries']} validation queries, too few of its own: ranked as a "
                       f"{report['borrowed'][kind]} is")
            continue
        typer.echo(f"  {kind}: {found['queries']} validation queries, NDCG@20 " + ", ".join(
            f"{way} {value}" for way, value in found.items() if way != "queries"))
    folds = report.get("folds", 1)
    typer.echo(f"  {report['trees']} trees from nothing, {report.get('boosted_trees', 0)} over the base"
               + (f", learnt from every query for the rounds {folds} folds chose; each way judged on the "
                  f"{report['valid_queries']} queries out of fold" if folds > 1 else
                  f"; {report['train_queries']} training and {report['valid_queries']} validation queries")
               + f"; validation NDCG@20 {report['valid_ndcg@20']}")
    if found := report.get("over_hand_set"):
        typer.echo(f"  too few held-out queries for trees: {report['base']['feed']} alone answered {found['answered']} of "
                   f"{report['valid_queries']} in the top 20 against the hand-set weights' {found['hand_set_answered']} "
                   f"(sign test p {found['p']})")
    typer.echo("  feature                      share of gain")
    for feature, share in report["gain"].items():
        typer.echo(f"  {feature:<28} {share:6.1%}")
    if logged := report.get("logged"):
        typer.echo(f"  learnt also from {logged['learnt_from']} logged feeds; on {logged['held_out']} held-out feeds "
                   f"({logged['logged_clicks']:.0f} clicks as served) the clicks estimated (item-position inverse "
                   f"propensity): {logged['estimated_clicks_with_logs']} with them, "
                   f"{logged['estimated_clicks_without_logs']} without")


@app.command()
def evaluate(
    store: StoreOption = None,
    seeds: Annotated[str, typer.Option(help="Comma-separated split seeds.")] = "0,1,2",
    methods: Annotated[str | None, typer.Option(
        help="Comma-separated methods (default: popularity, co-occurrence, content-knn, itemknn, ease (up to 6,000 "
             "products), bpr-mf, lightgcn, lookgnn, engine (what the API serves after `lookgraph train`), and on Neo4j "
             "fastrp-knn: FastRP embeddings and kNN in its Graph Data Science).")] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Most LookGNN epochs per seed.")] = 30,
    out: Annotated[Path | None, typer.Option(help="Write OUT.md and OUT.json (default: print only).")] = None,
    impressions_days: Annotated[float, typer.Option(min=0, help="The engine's ranker also learns from the feeds "
                                                    "served in this many days, and the rankers learnt with and without "
                                                    "them are estimated on the last fifth of them (0: not).")] = 0.0,
    shopper_share: Annotated[float, typer.Option(min=0.01, max=1.0, help="Share of the shoppers (with 3+ products) whose "
                                                 "latest product is held out and asked for: the shopper task's query "
                                                 "count, and so its noise.")] = 0.2,
) -> None:
    """Every method on the same seeded splits: complete the look, shopper to product, session
    next item, and beyond-accuracy figures; mean and standard deviation over the seeds."""
    from .embeddings.evaluate import default_methods, markdown_table, run, save
    from .embeddings.export import export_graph
    from .embeddings.train import TrainConfig

    with _store(store) as graph:
        exported = export_graph(graph)
        logged = None
        if impressions_days > 0:
            from .recommend.logged import logged_feeds

            logged = logged_feeds(graph, impressions_days, time.time())
        if methods is None:
            methods = ",".join(default_methods(exported)) + (",fastrp-knn" if graph.name == "neo4j" else "")
        try:
            report = run(exported, tuple(int(s) for s in seeds.split(",")), TrainConfig(epochs=epochs),
                         tuple(m.strip() for m in methods.split(",")), log=lambda line: typer.echo(line, err=True),
                         store=graph, logged=logged, shopper_share=shopper_share)
        except (KeyError, ValueError) as err:
            _fail(f"bad --seeds or --methods: {err}")
    report["command"] = "lookgraph evaluate " + " ".join(sys.argv[2:])
    if out is not None:
        save(report, out)
        typer.echo(f"wrote {out.with_suffix('.md')} and {out.with_suffix('.json')}")
    typer.echo(markdown_table(report))


@app.command()
def serve(
    store: StoreOption = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Processes serving the port: the way to use more cores. "
                                         "Each applies the store's changes (LOOKGRAPH_FRESHNESS_SECONDS).")] = 1,
    access_log: Annotated[bool, typer.Option(help="Log every request as a JSON line on standard error.")] = True,
) -> None:
    """Serve the REST API (OpenAPI docs at /docs). Needs LOOKGRAPH_API_KEYS. On SIGTERM or
    Ctrl-C it stops taking connections and answers the requests in flight before exiting."""
    import uvicorn

    settings = _settings()
    if store is not None:  # every worker reads its settings from the environment
        os.environ["LOOKGRAPH_STORE"] = store.value
        settings = settings.model_copy(update={"store": store.value})
    os.environ["LOOKGRAPH_ACCESS_LOG"] = "1" if access_log else "0"
    if workers == 1:
        try:
            api = served_app()
        except (ValueError, OSError) as err:
            _fail(str(err))
        uvicorn.run(api, host=host, port=port, log_level="warning", timeout_graceful_shutdown=30)
        return
    try:  # each worker builds its own app; a mistake is said once, here, not once per worker
        _check_serving(settings)
    except (ValueError, OSError) as err:
        _fail(str(err))
    from .api import workers as serving

    if not serving.SPREADS_CONNECTIONS:
        uvicorn.run("lookgraph.cli:served_app", factory=True, workers=workers, host=host, port=port, log_level="warning",
                    timeout_graceful_shutdown=30)
        return
    try:
        code = serving.serve(host, port, workers, graceful=30, timeout=settings.worker_timeout_seconds)
    except OSError as err:
        _fail(f"cannot listen on {host}:{port}: {err.strerror or err}")
    raise typer.Exit(code)


def _check_serving(settings) -> None:
    from .api.security import Keys
    from .graph.stores import open_store
    from .recommend.policies import policy_config

    policy_config()

    if not Keys(settings.api_keys, settings.api_keys_file):
        raise ValueError("set LOOKGRAPH_API_KEYS or LOOKGRAPH_API_KEYS_FILE "
                         "(e.g. 'a-long-random-key:read,events;another-long-key:admin')")
    open_store(settings).close()


def served_app(heartbeat=None):
    """The app one `lookgraph serve` process (or worker) serves, from the environment's settings;
    `heartbeat`: see `create_app`."""
    import logging

    from pythonjsonlogger.json import JsonFormatter
    from threadpoolctl import threadpool_limits

    from .api.app import create_app
    from .graph.stores import open_store

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", rename_fields={"asctime": "time"}))
    root = logging.getLogger("lookgraph")
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    access = os.environ.get("LOOKGRAPH_ACCESS_LOG", "1") != "0"
    logging.getLogger("lookgraph.access").setLevel(logging.INFO if access else logging.WARNING)
    settings = _settings()
    api = create_app(settings, open_store(settings), heartbeat=heartbeat)
    # Each request's matrix-vector products are small: extra BLAS and OpenMP threads per request
    # thread only spin (measured, they doubled the CPU time per request). After the app is
    # built: the limit reaches only the libraries loaded by then.
    threadpool_limits(1)
    # The index built at start-up lives as long as the process. Frozen out of the garbage
    # collector's sight, a full collection takes 3 ms instead of 220 ms (100k products), which
    # stalled every request in flight.
    gc.freeze()
    return api


if __name__ == "__main__":
    app()
