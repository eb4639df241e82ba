"""Quoting for the SQL the warehouse writes itself (DuckDB views, scans): the one place names and
strings become SQL. Values from outside go in as query parameters, never through these."""

from __future__ import annotations


def quote_identifier(name: str) -> str:
    """``name`` as a double-quoted SQL identifier (a table, view or column name)."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """``text`` as a single-quoted SQL string literal (a file path or glob)."""
    return "'" + text.replace("'", "''") + "'"
