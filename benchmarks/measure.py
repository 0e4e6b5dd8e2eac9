"""What the benchmark scripts share: run the CLI in a child, measure a child's peak memory."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


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
