"""The Cypher check CI runs: Neo4j's own parser passes our files and fails broken ones."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "lint_cypher.py"

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (ROOT / "tools" / "cypher-lint" / "node_modules").is_dir(),
    reason="needs Node.js and `npm ci --prefix tools/cypher-lint` (scripts/test.sh does both when npm exists)",
)


def run_lint(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), str(folder)], capture_output=True, text=True)


def test_every_statement_in_cypher_is_valid_neo4j_5():
    done = run_lint(ROOT / "cypher")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 error(s)" in done.stdout


@pytest.mark.parametrize(
    "statement, message",
    [
        ("MATCH (p:Product {id: $id})\nRETRUN p", "Invalid input 'RETRUN'"),
        ("MATCH (p:Product {id: $id})\nRETURN q", "Variable `q` not defined"),
        ("MATCH (p:Product)\nWHERE p.price > $floor\nRETURN p", None),  # $floor is declared: fine
    ],
)
def test_the_check_fails_on_a_broken_statement(tmp_path, statement, message):
    (tmp_path / "broken.cypher").write_text(f"// a comment\n\n// name: broken\n{statement};\n")
    done = run_lint(tmp_path)
    if message is None:
        assert done.returncode == 0, done.stdout
        return
    assert done.returncode == 1
    assert "broken.cypher:" in done.stdout and message in done.stdout
