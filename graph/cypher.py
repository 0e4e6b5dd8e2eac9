"""The Cypher library: named statements read from `cypher/*.cypher`.

A file holds statements separated by `;`, each introduced by a `// name: <name>` comment line
(other comment lines are documentation). Python code refers to a statement as
`"<file>.<name>"` (e.g. `"load.upsert_products"`) and never builds Cypher from strings.
The same files are what CI lints with Neo4j's own parser and what the Neo4j Browser imports.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path

_NAME = re.compile(r"^//\s*name:\s*(\S+)\s*$")
_PARAMETER = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")
_STRING = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


@dataclass(frozen=True)
class Statement:
    file: str
    name: str
    text: str
    line: int
    """Line of the file where the statement's text starts (1-based)."""

    @property
    def key(self) -> str:
        return f"{Path(self.file).stem}.{self.name}"

    @property
    def parameters(self) -> list[str]:
        """The `$parameters` the statement uses (outside string literals), sorted."""
        return sorted(set(_PARAMETER.findall(_STRING.sub("''", self.text))))


def parse_file(path: Path) -> list[Statement]:
    """Split a .cypher file into named statements; raise ValueError on an unnamed one."""
    statements: list[Statement] = []
    name, body, start = None, [], 0
    for number, line in enumerate(path.read_text("utf-8").splitlines(), 1):
        match = _NAME.match(line.strip())
        if match:
            if body and "".join(body).strip():
                raise ValueError(f"{path}:{number}: statement before this name is not ended with ';'")
            name, body, start = match.group(1), [], number + 1
            continue
        if line.strip().startswith("//") and not body:
            continue
        if line.strip() and name is None:
            raise ValueError(f"{path}:{number}: statement without a '// name:' line")
        if line.strip() or body:
            if not body:
                start = number
            body.append(line)
        if line.rstrip().endswith(";"):
            text = "\n".join(body).strip().rstrip(";").strip()
            statements.append(Statement(str(path), name, text, start))
            name, body = None, []
    if body and "".join(body).strip():
        raise ValueError(f"{path}: last statement is not ended with ';'")
    return statements


def cypher_folder() -> Path:
    return Path(str(files("lookgraph.cypher")))


@cache
def library() -> dict[str, Statement]:
    """Every named statement of `cypher/*.cypher`, by `"<file>.<name>"`."""
    found: dict[str, Statement] = {}
    for path in sorted(cypher_folder().glob("*.cypher")):
        for statement in parse_file(path):
            if statement.key in found:
                raise ValueError(f"{path}:{statement.line}: duplicate statement name {statement.key}")
            found[statement.key] = statement
    return found


def cypher(key: str) -> str:
    """The text of statement `"<file>.<name>"`."""
    try:
        return library()[key].text
    except KeyError:
        raise KeyError(f"no Cypher statement {key!r} in {cypher_folder()}") from None
