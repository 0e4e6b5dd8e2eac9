"""What every input source gives the load pipeline: records, or problems that say where.

A `Source` yields, per record kind, `(file, line, record)` triples, or a `LoadProblem` for a
row it could not turn into a record. The pipeline (`loaders/pipeline.py`) does the rest:
reference checks, all-or-nothing writes, progress.
"""

from __future__ import annotations

import abc
import csv
import io
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class LoadProblem:
    file: str
    line: int
    field: str | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.reason}" if self.field else f"{where}: {self.reason}"


class LoadWarning(LoadProblem):
    """Something that loads, but deserves a look (an empty file)."""


class LoadError(Exception):
    """The input had problems; nothing was written."""

    def __init__(self, problems: list[LoadProblem], total: int):
        self.problems = problems
        self.total = total
        shown = "\n".join(f"  {p}" for p in problems)
        more = f"\n  ... and {total - len(problems)} more" if total > len(problems) else ""
        super().__init__(f"{total} problem(s) in the input; nothing was loaded:\n{shown}{more}")


class FieldError(ValueError):
    """Raised by a row parser: `field` is the column at fault."""

    def __init__(self, field: str, reason: str):
        super().__init__(reason)
        self.field = field
        self.reason = reason


Located = tuple[str, int, object]


class Source(abc.ABC):
    """An input that yields model records per kind, in `model.RECORD_KINDS` order."""

    name: str = "source"

    @abc.abstractmethod
    def records(self, kind: str) -> Iterator[Located | LoadProblem]:
        """Every record of `kind`, each with the file and line it came from."""


def utf8_lines(path: Path) -> Iterator[str]:
    """Lines of a file decoded as UTF-8 (line endings kept, as `csv` wants them).

    Decodes in blocks of about 1 MiB for speed; when a block fails, its lines are decoded one
    by one to find the bad one, and `EncodingProblem` names that line.
    """
    first_line = 1
    with open(path, "rb") as handle:
        while block := handle.readlines(1 << 20):
            if first_line == 1 and block[0].startswith(b"\xef\xbb\xbf"):  # the BOM a spreadsheet writes
                block[0] = block[0][3:]
            try:
                text = b"".join(block).decode("utf-8")
            except UnicodeDecodeError:
                for offset, raw in enumerate(block):
                    try:
                        raw.decode("utf-8")
                    except UnicodeDecodeError as err:
                        raise EncodingProblem(str(path), first_line + offset, err) from None
                raise  # a multi-byte character split across lines: impossible for \n-ended lines
            yield from io.StringIO(text, newline="")
            first_line += len(block)


class EncodingProblem(Exception):
    """A file is not UTF-8; reading it stops at the first bad line."""

    def __init__(self, file: str, line: int, err: UnicodeDecodeError):
        reason = f"not valid UTF-8 (byte {err.object[err.start]:#04x} at column {err.start + 1}); save the file as UTF-8"
        super().__init__(f"{file}:{line}: {reason}")
        self.problem = LoadProblem(file, line, None, reason)


def _delimiter(header_line: str, required: tuple[str, ...], default: str) -> str:
    """The header's delimiter: `default`, unless only a semicolon or a tab (a spreadsheet's
    export in many locales) splits the header into the required columns."""
    for candidate in (default, ";", "\t"):
        names = {h.strip() for h in next(csv.reader([header_line], delimiter=candidate))}
        if all(c in names for c in required):
            return candidate
    return default


def csv_rows(path: Path, required: tuple[str, ...], delimiter: str = ",") -> Iterator:
    """`(line, row dict)` for each data row of a CSV file with a header row, or
    `(line, LoadProblem)` for a row that cannot be read. Raises `EncodingProblem`. A UTF-8
    byte-order mark is skipped, CRLF line ends read as LF, and a header split by `;` or a tab
    (rather than `delimiter`) is read with that."""
    lines = utf8_lines(path)
    first = next(lines, None)
    if first is None:
        return
    delimiter = _delimiter(first, required, delimiter)
    reader = csv.reader(itertools.chain([first], lines), delimiter=delimiter, strict=True)
    try:
        header = [h.strip() for h in next(reader)]
    except csv.Error as err:
        yield 1, LoadProblem(str(path), 1, None, f"malformed CSV header: {err}")
        return
    missing = [c for c in required if c not in header]
    if missing:
        yield 1, LoadProblem(str(path), 1, None, f"header lacks required column(s) {', '.join(missing)}"
                             f" (it reads {header!r}, split at {delimiter!r})")
        return
    width = len(header)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            yield reader.line_num, LoadProblem(str(path), reader.line_num, None, f"malformed CSV: {err}")
            return
        if not row:
            continue
        if len(row) != width:
            yield reader.line_num, LoadProblem(str(path), reader.line_num, None, f"{len(row)} fields, the header has {width}")
            continue
        yield reader.line_num, dict(zip(header, row))
