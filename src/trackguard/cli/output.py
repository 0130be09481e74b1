"""How commands print results: one code path for table, json, jsonl and csv (docs/cli.md).

A table on a terminal is a rich table that fits the window. A table sent to a pipe or a file
is the same table with no width limit: one row per line, every value whole, trailing blanks
cut, so ``| grep -c`` counts records and ``| sort`` sorts them. ``json`` is one document
(an array of row objects for lists, one object for stats and show); ``jsonl`` is one object
per line; ``csv`` is a header line and one row per line. Values are printed as the store
holds them; times are ISO 8601 UTC strings in every format.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Final

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

#: Wide enough that no value is ever cut or folded when output is not a terminal.
PIPE_WIDTH: Final = 1_000_000

# C0/C1 controls but tab and newline, the line and paragraph separators (U+2028, U+2029: they
# end a line for splitlines and some terminals), and the bidi overrides that reorder what a
# terminal shows.
_UNSAFE: Final = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069]")

_FIGURE: Final = re.compile(r"-|-?\d+(\.\d+)?")

Row = Mapping[str, Any]


def printable(text: str, *, one_line: bool = False) -> str:
    """``text`` with control and bidi characters as ``\\xNN``/``\\uNNNN`` escapes, so what a
    client sent cannot drive the terminal."""

    def escape(m: re.Match[str]) -> str:
        code = ord(m.group())
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    text = _UNSAFE.sub(escape, text)
    return text.replace("\t", "\\t").replace("\n", "\\n") if one_line else text


def write_stdout(data: bytes) -> None:
    """All of ``data`` on stdout, flushed. A large buffered write returns a short count,
    raising nothing, when the reader goes away part way (``| head``); writing on raises
    ``BrokenPipeError``, which ends the command quietly (cli/base.py) instead of exit 0
    with the output cut."""
    out = sys.stdout.buffer
    view = memoryview(data)
    while view:
        view = view[out.write(view) :]
    out.flush()


def new_table() -> Table:
    """A table in the house style: no box, columns two spaces apart."""
    return Table(show_edge=False, box=None, pad_edge=False)


def print_table(table: Table) -> None:
    """``table`` on stdout: fitted to a terminal, unlimited when piped (one row per line)."""
    if sys.stdout.isatty():
        Console(highlight=False, soft_wrap=False).print(table)
        return
    buffer = io.StringIO()
    Console(
        file=buffer, width=PIPE_WIDTH, highlight=False, color_system=None, soft_wrap=False
    ).print(table)
    lines = buffer.getvalue().splitlines()
    click.echo("\n".join(line.rstrip() for line in lines))


def rows_table(rows: Sequence[Row], columns: Sequence[tuple[str, str]]) -> Table:
    """A table of ``rows`` with ``(key, header)`` columns; numbers are right-aligned."""
    table = new_table()
    for key, header in columns:
        numeric = bool(rows) and all(_numeric(r.get(key)) for r in rows)
        table.add_column(header, justify="right" if numeric else "left", no_wrap=True)
    for r in rows:
        table.add_row(*(Text(printable(_cell(r.get(key)), one_line=True)) for key, _ in columns))
    return table


def _numeric(value: Any) -> bool:
    """A count or a figure (``12``, ``0.25``, ``"100.00"``, ``"-"``): right-aligned."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int | float) or (
        isinstance(value, str) and _FIGURE.fullmatch(value) is not None
    )


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value) or "-"
    return str(value)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def emit_json(document: Any) -> None:
    """One JSON document on stdout."""
    click.echo(_json(document))


def emit_jsonl(rows: Sequence[Row]) -> None:
    """One JSON object per line on stdout."""
    for r in rows:
        click.echo(_json(r))


def emit_csv(rows: Sequence[Row], keys: Sequence[str]) -> None:
    """A header and one row per line; lists are space-separated, None is empty."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(keys)
    for r in rows:
        writer.writerow(
            [
                ""
                if r.get(k) is None
                else " ".join(map(str, r[k]))
                if isinstance(r.get(k), list | tuple)
                else r[k]
                for k in keys
            ]
        )
    click.echo(buffer.getvalue(), nl=False)


def emit_rows(
    fmt: str, rows: Sequence[Row], columns: Sequence[tuple[str, str]], *, document: Any = None
) -> None:
    """``rows`` in ``fmt``: a table of ``columns``, or every key of the rows in json, jsonl and
    csv. ``document`` replaces the array of rows as the json output when given."""
    keys = list(rows[0]) if rows else [key for key, _ in columns]
    if fmt == "json":
        emit_json(list(rows) if document is None else document)
    elif fmt == "jsonl":
        emit_jsonl(rows)
    elif fmt == "csv":
        emit_csv(rows, keys)
    else:
        print_table(rows_table(rows, columns))
