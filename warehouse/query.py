"""Analysts' queries on the catalog: inside the analyst boundary, results as an aligned table, CSV or
JSON lines.

The connection is warehouse.boundary's: read-only, only the tables' folders readable, external access
off and the configuration locked, and only reading statements run (no ``COPY … TO``, no
``read_blob`` of a key). A query can never change the catalog or wait on the sink: the sink replaces
the catalog file rather than writing into it.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import json
import os
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import duckdb

from warehouse.boundary import READ_PATHS_TABLE, open_analyst_connection, reading_statements
from warehouse.damage import damage_summary, damaged, damaged_file_named, find_damaged, may_be_damage
from warehouse.errors import QueryError
from warehouse.layout import Layout

FORMATS = ("table", "csv", "json")
MAX_CELL = 60
"""characters of a cell shown in the text table (CSV and JSON are never cut)"""


def run_query(catalog_path: str | os.PathLike[str], sql: str, fmt: str = "table", out: TextIO | None = None) -> int:
    """Runs ``sql`` on the catalog and prints the result to ``out`` (default stdout); returns the row count.

    Raises QueryError for an unknown format, a missing catalog, bad SQL or an attempt to write."""
    out = out or sys.stdout
    if fmt not in FORMATS:
        raise QueryError(f"unknown output format {fmt!r}: use one of {', '.join(FORMATS)}")
    path = Path(catalog_path)
    if not path.is_file():
        raise QueryError(f"no catalog at {path}: run `datamin sink` or `datamin demo` first "
                         "(or point warehouse.catalog at the catalog file)")
    columns, rows = fetch(path, sql)
    if fmt == "csv":
        write_csv(columns, rows, out)
    elif fmt == "json":
        write_json_lines(columns, rows, out)
    else:
        write_table(columns, rows, out)
    return len(rows)


def fetch(catalog_path: Path, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """(column names, rows) of ``sql`` (reading statements only; the last one's result) on an analyst
    connection to the catalog."""
    con = open_analyst_connection(catalog_path)
    try:
        statements = reading_statements(con, sql)
        for statement in statements[:-1]:
            con.execute(statement)
        result = con.execute(statements[-1])
        if result.description is None:
            return [], []
        columns = [d[0] for d in result.description]
        return columns, result.fetchall()
    except duckdb.Error as exc:
        found = _damaged_file(con, exc)
        if found is not None:
            path, problem = found
            raise damaged(path, Layout(path.parents[2]), problem) from None  # <root>/<table>/<partition>/<file>
        hint = ""
        if isinstance(exc, duckdb.InvalidInputException) and "read-only" in str(exc).lower():
            hint = "\nThe catalog is read-only: queries may only read."
        elif isinstance(exc, duckdb.CatalogException):
            hint = "\nList the views with: SELECT view_name FROM duckdb_views() WHERE NOT internal"
        elif isinstance(exc, duckdb.PermissionException):
            hint = ("\nAnalysts' queries read only the tables and views of the catalog (no other files, "
                    "no extensions, no settings): see 'The analyst boundary' in the README.")
        raise QueryError(f"query failed: {exc}{hint}") from None
    finally:
        con.close()


def _damaged_file(con: duckdb.DuckDBPyConnection, exc: duckdb.Error) -> tuple[Path, str] | None:
    """The damaged file behind a failed query: the one DuckDB names, else the first of the catalog's
    folders that cannot be read whole (looked for only after an error a damaged file can cause)."""
    named = damaged_file_named(exc)
    if named is not None and not isinstance(exc, duckdb.PermissionException):
        return named, damage_summary(exc)
    if not may_be_damage(exc):
        return None
    sql = f"SELECT path FROM {READ_PATHS_TABLE} WHERE kind = 'directory'"  # noqa: S608 - a fixed name
    folders = [Path(p) for (p,) in con.execute(sql).fetchall()]
    return find_damaged(folders)


def write_table(columns: Sequence[str], rows: Sequence[Sequence[Any]], out: TextIO) -> None:
    """An aligned text table (numbers right-aligned) and a "(N rows)" line."""
    cells = [[_text(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    numeric = [bool(rows) and all(isinstance(r[i], int | float | decimal.Decimal) and not isinstance(r[i], bool)
                                  for r in rows if r[i] is not None) for i in range(len(columns))]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric, strict=True)).rstrip()

    if columns:
        out.write(line(list(columns)) + "\n")
        out.write("  ".join("-" * w for w in widths) + "\n")
    for row in cells:
        out.write(line(row) + "\n")
    out.write(f"({len(rows)} row{'' if len(rows) == 1 else 's'})\n")


def write_csv(columns: Sequence[str], rows: Sequence[Sequence[Any]], out: TextIO) -> None:
    """CSV with a header line; null is an empty field."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if v is None else _plain(v) for v in row])


def write_json_lines(columns: Sequence[str], rows: Sequence[Sequence[Any]], out: TextIO) -> None:
    """One JSON object per row; dates and times as ISO 8601, decimals as numbers."""
    for row in rows:
        out.write(json.dumps(dict(zip(columns, row, strict=True)), default=_json_default, ensure_ascii=False) + "\n")


def _plain(value: Any) -> str:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return str(value)


def _text(value: Any) -> str:
    if value is None:
        return "NULL"
    text = _plain(value).replace("\n", " ")
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    return str(value)
