"""What the benchmark scripts share: their common arguments, running the CLI in a child,
measuring a child's peak memory."""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


def demo_parser(description: str | None) -> argparse.ArgumentParser:
    """Arguments every benchmark over the demo store and the real datasets takes, with the
    sizes the issues' goals are stated for."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--products", type=int, default=100_000)
    parser.add_argument("--shoppers", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "lookgraph-bench")
    return parser


def demo_store(args: argparse.Namespace) -> Path:
    """The seeded demo store of the sizes in `args` (see `demo_parser`), generated once under --work."""
    demo = args.work / f"demo-{args.products}-{args.shoppers}-{args.events}"
    if not (demo / "events.csv").exists():
        print(f"generating the demo store in {demo} ...", flush=True)
        lookgraph("demo-data", str(demo), "--products", str(args.products), "--shoppers", str(args.shoppers),
                  "--events", str(args.events), "--seed", "7", home=args.work / "unused")
    return demo


def lookgraph(*args: str, home: Path) -> tuple[float, str]:
    """Run the CLI in a fresh child; return its wall time and output."""
    env = dict(os.environ, LOOKGRAPH_HOME=str(home))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "lookgraph.cli", *args], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"lookgraph {' '.join(args)} failed:\n{done.stderr}")
    return seconds, done.stdout


def peak_rss_mib(run) -> tuple[object, float]:
    """Run `run()` in a forked child so its peak RSS is measured alone (RUSAGE_CHILDREN is a max
    over all children ever waited for, so each measurement gets a child of its own)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        result = run()
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        os.write(write, json.dumps([result, peak]).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        payload = pipe.read()
    os.waitpid(pid, 0)
    result, peak = json.loads(payload)
    return result, peak


def wait_until_answering(base: str, seconds: float = 120) -> None:
    """Return once `base`/health answers; exit after `seconds` without an answer."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{base}/health", timeout=1)
            return
        except OSError:
            time.sleep(0.25)
    raise SystemExit(f"{base} did not answer /health in {seconds:g} s")


def fuzz_served(base: str, key: str, examples: int, seen) -> None:
    """Schemathesis over every operation of the served OpenAPI document (`tests/fuzzing.py`),
    with `key`; `seen(operation, case, response)` after each request."""
    import schemathesis

    sys.path.insert(0, str(ROOT))
    from tests.fuzzing import each_case

    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    each_case(schema, key, examples, lambda operation, case: seen(operation, case, case.call(base_url=base)))
