"""The analyst boundary: a DuckDB connection to the catalog that can read the tables and nothing else.

Analysts may read the tables and views; they may never read keys, secrets, restricted rows or files
outside the tables, nor write anything. A connection from `open_analyst_connection` enforces that in
DuckDB itself, not by inspecting SQL text:

- read-only: the catalog file cannot be changed;
- ``allowed_directories``: only the folders the catalog's views read (each table's folder and the
  audit trail), as recorded in the catalog by its builder (`record_read_paths`); ``..`` and symbolic
  links out of them are refused by DuckDB;
- ``enable_external_access = false``: every other file, the network, ``ATTACH``, ``INSTALL`` and
  ``LOAD`` are refused; extensions are neither auto-installed nor auto-loaded;
- ``lock_configuration = true``: no ``SET``/``RESET`` can give any of it back;
- only reading statements run (SELECT, with DESCRIBE/SHOW/SUMMARIZE, and EXPLAIN): ``COPY … TO``,
  ``EXPORT DATABASE``, ``CREATE`` (even of a temporary table), ``PRAGMA``, ``CALL`` and the rest are
  refused before anything executes, because DuckDB would let ``COPY`` write into an allowed folder.

What this cannot do: an analyst with a shell who opens the Parquet files or the catalog with the stock
``duckdb`` tool is bound only by file permissions. That is why keys and the rights secret live outside
the warehouse, restricted rows are moved out of the analyst-readable files, and the warehouse is
created 0750/0640 for the analysts' group (see warehouse.permissions).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

import duckdb

from warehouse.errors import QueryError

READ_PATHS_TABLE = "datamin_read_paths"
"""The catalog's table of the folders (kind 'directory') and files (kind 'file') its views read."""
READING_STATEMENTS = frozenset({duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN})
"""Statement types an analyst may run; every other type is refused before execution (an EXPLAIN only
of a SELECT, since ``EXPLAIN ANALYZE`` runs the statement it explains)."""
_EXPLAIN = re.compile(r"\s*EXPLAIN\s+(?:ANALY[SZ]E\s+)?(?P<inner>.+)", re.IGNORECASE | re.DOTALL)


def record_read_paths_sql(directories: Iterable[Path], files: Iterable[Path]) -> list[str]:
    """The statements the catalog builder runs to record what its views read (absolute, resolved)."""
    rows = [("directory", str(Path(d).resolve()) + os.sep) for d in directories]
    rows += [("file", str(Path(f).resolve())) for f in files]
    statements = [f"CREATE TABLE {READ_PATHS_TABLE} (kind VARCHAR NOT NULL, path VARCHAR NOT NULL)"]
    if rows:
        values = ", ".join(f"({_literal(kind)}, {_literal(path)})" for kind, path in sorted(set(rows)))
        statements.append(f"INSERT INTO {READ_PATHS_TABLE} VALUES {values}")  # noqa: S608 - quoted literals
    return statements


def open_analyst_connection(catalog_path: str | os.PathLike[str]) -> duckdb.DuckDBPyConnection:
    """A read-only connection to the catalog, locked inside the analyst boundary (see the module).

    Raises QueryError when the catalog cannot be opened or predates the boundary (no read paths)."""
    try:
        con = duckdb.connect(str(catalog_path), read_only=True,
                             config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    except duckdb.Error as exc:
        raise QueryError(f"cannot open the catalog {catalog_path} read-only: {exc}") from None
    try:
        try:
            rows = con.execute(f"SELECT kind, path FROM {READ_PATHS_TABLE}").fetchall()  # noqa: S608
        except duckdb.CatalogException:
            raise QueryError(f"the catalog {catalog_path} was built by an older datamin and does not say which "
                             "folders its views read: rebuild it (`datamin sink` or the scheduler rebuilds it; "
                             "`datamin demo` for the demo)") from None
        lock_to(con, [p for kind, p in rows if kind == "directory"], [p for kind, p in rows if kind == "file"])
    except BaseException:
        con.close()
        raise
    return con


def lock_to(con: duckdb.DuckDBPyConnection, directories: Iterable[str | Path],
            files: Iterable[str | Path] = ()) -> None:
    """Confines ``con`` to reading ``directories`` and ``files``: external access off, configuration locked."""
    folders = [p if str(p).endswith(os.sep) else str(Path(p).resolve()) + os.sep for p in map(str, directories)]
    con.execute("SET allowed_directories = $1", [folders])
    con.execute("SET allowed_paths = $1", [[str(f) for f in files]])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def reading_statements(con: duckdb.DuckDBPyConnection, sql: str) -> list[duckdb.Statement]:
    """The statements of ``sql``; QueryError if any is not a reading statement (nothing has run yet)."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(f"query failed: {exc}") from None
    if not statements:
        raise QueryError("the query is empty: give a SELECT statement")
    for statement in statements:
        if not _reads(con, statement):
            kind = statement.type.name.replace("_STATEMENT", "")
            raise QueryError(f"{kind} statements are refused: analysts may only read (SELECT, DESCRIBE, SHOW, "
                             "SUMMARIZE, EXPLAIN); nothing was run. To keep a result, use --format csv or json "
                             "and redirect the output")
    return statements


def _reads(con: duckdb.DuckDBPyConnection, statement: duckdb.Statement) -> bool:
    if statement.type == duckdb.StatementType.SELECT:
        return True
    if statement.type != duckdb.StatementType.EXPLAIN:
        return False
    explained = _EXPLAIN.fullmatch(statement.query)
    if explained is None:
        return False
    inner = con.extract_statements(explained.group("inner"))
    return len(inner) == 1 and inner[0].type == duckdb.StatementType.SELECT


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
