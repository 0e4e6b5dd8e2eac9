"""Lint every statement of cypher/*.cypher with Neo4j's own parser and semantic checker.

    python tools/lint_cypher.py [FOLDER]

Runs `tools/cypher-lint/lint.mjs` (npm package @neo4j-cypher/language-support, installed with
`npm ci --prefix tools/cypher-lint`) on each named statement, declaring the parameters it uses
and lookgraph's labels and relationship types. Exits 1 on any error (syntax, undefined
variable, missing parameter...); warnings, such as deprecations, are printed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from lookgraph.graph.cypher import Statement, cypher_folder, parse_file
from lookgraph.graph.model import LABELS, OPERATIONAL_LABELS, OPERATIONAL_RELATIONSHIPS, RELATIONSHIPS

LINTER = Path(__file__).resolve().parent / "cypher-lint" / "lint.mjs"


def statements_in(folder: Path) -> list[Statement]:
    return [s for path in sorted(folder.rglob("*.cypher")) for s in parse_file(path)]


def lint(statements: list[Statement]) -> list[dict]:
    payload = {
        "statements": [{"key": f"{s.file}:{s.name}", "text": s.text, "parameters": s.parameters, "line": s.line}
                       for s in statements],
        "schema": {"labels": [*LABELS, *OPERATIONAL_LABELS],
                   "relationshipTypes": [*RELATIONSHIPS, *OPERATIONAL_RELATIONSHIPS]},
    }
    done = subprocess.run(["node", str(LINTER)], input=json.dumps(payload), capture_output=True, text=True,
                          cwd=LINTER.parent)
    if done.returncode != 0:
        raise RuntimeError(f"the Cypher linter failed to run:\n{done.stderr}")
    return json.loads(done.stdout)


def main(argv: list[str]) -> int:
    folder = Path(argv[0]) if argv else cypher_folder()
    statements = statements_in(folder)
    findings = lint(statements)
    errors = [f for f in findings if f["severity"] == 1]
    for f in findings:
        kind = "error" if f["severity"] == 1 else "warning"
        file = f["key"].rsplit(":", 1)[0]
        print(f"{file}:{f['line']}: {kind}: {f['message']}")
    print(f"checked {len(statements)} Cypher statements in {folder}: "
          f"{len(errors)} error(s), {len(findings) - len(errors)} warning(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
