"""All Cypher lives in cypher/*.cypher, and every statement the code names exists there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from lookgraph.graph.cypher import cypher, library, parse_file

ROOT = Path(__file__).resolve().parents[1]
PYTHON = [p for p in ROOT.rglob("*.py") if ".venv" not in p.parts and "node_modules" not in p.parts]
PACKAGE = [*ROOT.glob("*.py"), *(p for d in ("graph", "loaders", "embeddings", "api") for p in (ROOT / d).rglob("*.py"))]
CYPHER_CLAUSE = re.compile(r"""["'][^"'\n]*\b(MATCH|MERGE|UNWIND|DETACH DELETE|CREATE CONSTRAINT)\s*[(\w]""")


def statement_keys_in(text: str) -> list[str]:
    """String literals shaped like `"<cypher file>.<statement>"` (f-string fields kept)."""
    stems = "|".join(sorted({Path(s.file).stem for s in library().values()}))
    return re.findall(rf"""f?["']((?:{stems})\.[A-Za-z_{{}}]+)["']""", text)


def test_every_statement_has_a_unique_name_and_ends_with_a_semicolon():
    statements = library()
    assert len(statements) > 40
    for key, statement in statements.items():
        assert statement.text and not statement.text.endswith(";"), key


def test_a_statement_without_a_name_is_rejected(tmp_path):
    (tmp_path / "x.cypher").write_text("MATCH (n) RETURN n;\n")
    with pytest.raises(ValueError, match="without a '// name:' line"):
        parse_file(tmp_path / "x.cypher")


def test_statement_keys_used_in_python_exist():
    keys = library()
    used = set()
    for path in PACKAGE:
        for key in statement_keys_in(path.read_text("utf-8")):
            if "{" in key:  # f"read.{kind}_page", f"neighbours.neighbours_{label}": every expansion
                pattern = re.compile("^" + re.sub(r"\\\{[^}]*\\\}", ".+", re.escape(key)) + "$")
                assert any(pattern.match(k) for k in keys), f"{path}: {key}"
            else:
                assert key in keys, f"{path}: no Cypher statement {key}"
            used.add(key)
    assert {"load.append_events", "erase.erase_shopper", "read.{kind}_page"} <= used


def test_no_python_file_builds_cypher_from_strings():
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in PYTHON if not path.name.startswith("test_cypher_")  # their input is Cypher
        for n, line in enumerate(path.read_text("utf-8").splitlines(), 1)
        if CYPHER_CLAUSE.search(line)
    ]
    assert offenders == []


def test_unknown_statement_names_fail_loudly():
    with pytest.raises(KeyError, match="no Cypher statement 'read.nope'"):
        cypher("read.nope")
