"""The DuckDB catalog analysts open read-only: one view per minimised table, plus analyst views.

The catalog holds no data, only views over the Parquet partitions (``read_parquet`` of
``layout.table_glob(table)``, hive-partitioned, union by name), so it is small and rebuilt in a
moment. Guarantees:

- Every minimised table of the registry has a view, also before it holds a file: then an empty view
  with the same columns and types, so analysts' queries and the analyst views never fail for lack of
  data.
- A rebuild writes a new file beside the catalog and ``os.replace``s it into place: an analyst who
  has the old file open keeps a consistent catalog, and nobody waits on a lock the sink holds.
- ``duplicate_events`` lists, per table and day, rows that repeat an event id (rare: a producer that
  crashed between a send and its acknowledgement sends the event again; analysts who need exact
  counts there use ``count(DISTINCT event_id)``).
- A Parquet file whose footer cannot be read (corrupt, truncated, not Parquet) or that lacks the
  table's id column (foreign) is moved to ``_quarantine/`` with a warning before it can break a view,
  and the move is recorded in the audit trail (``audit_log``; see warehouse.quarantine).
  Each file is validated once: a builder remembers the files it has checked (path, size, mtime).
- The file is written in DuckDB's storage format of ``STORAGE_VERSION``, which the stock DuckDB CLI
  on PyPI (``duckdb-cli``, 1.4 and later) opens, whichever newer duckdb library wrote it.
- What a refresh costs does not grow with the number of files: views read globs, so the catalog is
  written again only when a view must change (a table's first or last file, a new schema), and only
  folders that changed are listed (`CatalogBuilder.refresh`, `warehouse.catalog_scan`).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from datamin.config import Config
from schemas.registry import Registry, default_registry
from warehouse.arrow import arrow_schema, id_column
from warehouse.boundary import lock_to, record_read_paths_sql
from warehouse.catalog_scan import FolderIndex, ScanCost
from warehouse.errors import CatalogError
from warehouse.layout import PARTITION_KEY, Layout
from warehouse.permissions import give_to_group, prepare_warehouse
from warehouse.quarantine import quarantine
from warehouse.sql import quote_identifier, quote_literal
from warehouse.suppression import VISITOR, suppressed_view_statements

log = logging.getLogger(__name__)

STORAGE_VERSION = "v1.4.0"
"""DuckDB storage compatibility of the catalog file: the oldest release whose CLI must open it (1.4 is a
long-term release; duckdb 2.0 writes a format the 1.x CLIs refuse by default)."""

AUDIT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("at", "TIMESTAMPTZ"), ("job", "VARCHAR"), ("action", "VARCHAR"), ("table_name", "VARCHAR"),
    ("partition", "VARCHAR"), ("rows", "BIGINT"), ("bytes", "BIGINT"), ("detail", "VARCHAR"),
)
"""The audit trail's columns (written by the scheduler's jobs under ``<root>/_audit/<kind>/``)."""

ANALYST_VIEWS: tuple[tuple[str, str], ...] = (
    ("daily_requests", f"""
        SELECT event_date AS date, count(*) AS requests, count(DISTINCT {VISITOR['http_request']}) AS visitors
        FROM http_request GROUP BY event_date ORDER BY event_date"""),  # noqa: S608 - this module's SQL
    ("http_error_rate", """
        SELECT event_date AS date, count(*) AS requests,
               count(*) FILTER (WHERE status >= 500) AS server_errors,
               round(count(*) FILTER (WHERE status >= 500) / count(*), 4) AS error_rate
        FROM http_request GROUP BY event_date ORDER BY event_date"""),
)
"""(name, SELECT) of the views analysts start from that group by day only; they read only the table
views. The views that group people are suppressed (`warehouse.suppression`)."""


@dataclass
class CatalogReport:
    """What one build or refresh did."""

    path: Path
    tables: dict[str, int] = field(default_factory=dict)
    """table -> Parquet files its view reads (0: an empty typed view)"""
    quarantined: list[Path] = field(default_factory=list)
    """where files that failed validation were moved to"""
    rebuilt: bool = False
    """whether the catalog file was written (a refresh writes it only when its views must change)"""
    statements: int = 0
    """SQL statements the write executed (0 when not rebuilt)"""
    cost: ScanCost = field(default_factory=ScanCost)
    """folders listed and footers read to find out what changed"""


class CatalogBuilder:
    """Keeps one catalog file in step with the warehouse at a cost in proportion to what changed.

    A table's view reads a glob, so files added to or removed from any partition are seen by the next
    query without touching the catalog. `refresh` (what the sink calls after its flushes) therefore
    writes the catalog only when a view must change: a table gains its first file or loses its last
    (a typed empty view and a view over the glob are different statements), or its files bring a
    schema not seen before (the view's columns are fixed when it is created). It finds that out by
    looking only at the folders that changed (`FolderIndex`), reading each new file's footer once."""

    def __init__(self, layout: Layout, catalog_path: str | os.PathLike[str], registry: Registry | None = None,
                 *, analyst_group: str | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC), min_visitors: int = 10) -> None:
        self.layout = layout
        self.catalog_path = Path(catalog_path)
        self.registry = registry or default_registry()
        self.analyst_group = analyst_group
        """warehouse.analyst_group: who may read the tables and the catalog (warehouse.permissions)"""
        self.clock = clock
        self.min_visitors = min_visitors
        """warehouse.min_visitors: the smallest group of people an analyst view shows"""
        self._report: CatalogReport | None = None
        self._indexes = {event: self._index(self.layout.table_dir(event), lambda n: n.startswith(f"{PARTITION_KEY}="),
                                            id_column(event), event)
                         for event in self.registry.event_types("minimised")}
        self._audit = self._index(self.layout.audit_dir, lambda n: not n.startswith("."), None, "_audit")
        self._shape: object = None
        """what the written catalog's views depend on; a refresh writes it again when this changes"""

    def build(self) -> CatalogReport:
        """Looks at every folder and writes the catalog (atomically). Raises CatalogError when it
        cannot be written."""
        return self._update(full=True)

    def refresh(self) -> CatalogReport:
        """Looks at what changed since the last look; writes the catalog only when a view must change
        (or it is missing). Raises CatalogError when it cannot be written."""
        return self._update(full=False)

    def _update(self, *, full: bool) -> CatalogReport:
        report = self._report = CatalogReport(self.catalog_path)
        for event, index in self._indexes.items():
            index.look(report.cost, full=full)
            report.tables[event] = index.files()
        self._audit.look(report.cost, full=full)
        shape = (tuple((e, i.fingerprints()) for e, i in self._indexes.items()), bool(self._audit.files()))
        if full or shape != self._shape or not self.catalog_path.exists():
            try:
                self._gid = prepare_warehouse(self.layout.root, self.catalog_path, self.analyst_group)
            except OSError as exc:
                raise CatalogError(f"cannot prepare the warehouse {self.layout.root} for its readers "
                                   f"({exc.strerror}): check that datamin's user owns it") from exc
            statements = self._statements()
            self._write(statements)
            self._shape = shape
            report.rebuilt, report.statements = True, len(statements)
        self._report = None
        return report

    def _statements(self) -> list[str]:
        statements: list[str] = []
        for event, index in self._indexes.items():
            body = self._empty_table(event)
            if index.files():
                # the typed empty row set first: every column of the schema is there, in its order and
                # type, even when the files were written by an older version that lacked some
                source = _read_parquet(self.layout.table_glob(event), hive=True)
                body = f"SELECT * FROM ({body} UNION ALL BY NAME {source})"  # noqa: S608
            statements.append(f"CREATE VIEW {quote_identifier(event)} AS {body}")
        audit_glob = str(self.layout.audit_dir.resolve() / "*" / "*.parquet")
        statements.append("CREATE VIEW audit_log AS " + (
            _read_parquet(audit_glob, hive=False) if self._audit.files() else _empty_select(AUDIT_COLUMNS)))
        statements += [f"CREATE VIEW {name} AS {sql.strip()}" for name, sql in ANALYST_VIEWS]
        statements += suppressed_view_statements(self.min_visitors)  # the views that group people
        statements.append(f"CREATE VIEW table_freshness AS {self._freshness()}")
        statements.append(f"CREATE VIEW duplicate_events AS {self._duplicates()}")
        # what an analyst's connection may read (warehouse.boundary): these folders, no more
        statements += record_read_paths_sql(self._read_folders(), [])
        return statements

    def _index(self, root: Path, accept: Callable[[str], bool], required: str | None, table: str) -> FolderIndex:
        def quarantine(path: Path, problem: str) -> None:
            moved = self._quarantine(path, table, problem)  # and recorded in the audit trail
            if moved and self._report is not None:
                self._report.quarantined.append(moved)

        return FolderIndex(root, accept, required, quarantine)

    def _quarantine(self, path: Path, table: str, problem: str) -> Path | None:
        return quarantine(self.layout, path, table, problem, now=self.clock())

    def _read_folders(self) -> list[Path]:
        """The folders the views read: each table's and the audit trail's."""
        return [self.layout.table_dir(e) for e in self.registry.event_types("minimised")] + [self.layout.audit_dir]

    def _duplicates(self) -> str:
        """Per table and day, how many rows repeat an event id already there (a producer that crashed
        may have sent an event twice; its event id tells them apart): only days with any."""
        parts = [f"SELECT '{event}' AS table_name, {PARTITION_KEY} AS date, count(*) AS events, "  # noqa: S608
                 f"count(*) - count(DISTINCT {quote_identifier(id_column(event))}) AS duplicates "
                 f"FROM {quote_identifier(event)} GROUP BY {PARTITION_KEY}"
                 for event in self.registry.event_types("minimised")]
        return f"SELECT * FROM ({' UNION ALL '.join(parts)}) WHERE duplicates > 0 ORDER BY table_name, date"  # noqa: S608

    def _freshness(self) -> str:
        """Per table: rows, first and last day, newest event time (how fresh the data is)."""
        parts = []
        for event in self.registry.event_types("minimised"):
            stamps = [f.name for f in arrow_schema(self.registry.latest(event, "minimised"))
                      if pa.types.is_timestamp(f.type)]
            newest = f"max({quote_identifier(stamps[0])})" if stamps else "CAST(NULL AS TIMESTAMPTZ)"
            parts.append(f"SELECT '{event}' AS table_name, count(*) AS rows, min({PARTITION_KEY}) AS first_day, "  # noqa: S608
                         f"max({PARTITION_KEY}) AS last_day, {newest} AS newest FROM {quote_identifier(event)}")
        return " UNION ALL ".join(parts)

    def _empty_table(self, event: str) -> str:
        schema = arrow_schema(self.registry.latest(event, "minimised"))
        columns = [(f.name, _duckdb_type(f.type)) for f in schema] + [(PARTITION_KEY, "DATE")]
        return _empty_select(tuple(columns))

    def _write(self, statements: list[str]) -> None:
        target = self.catalog_path
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            con = _connect_for_writing(tmp)
            try:
                # the builder, too, reads only the folders its views read (warehouse.boundary)
                lock_to(con, self._read_folders())
                for sql in statements:
                    con.execute(sql)
            finally:
                con.close()
            give_to_group(tmp, self._gid)
            os.replace(tmp, target)
        except duckdb.Error as exc:
            raise CatalogError(f"could not build the catalog {target}: {exc}") from exc
        except OSError as exc:
            raise CatalogError(f"could not write the catalog {target} ({exc.strerror}): check that its folder "
                               "is writable and the disk has room") from exc
        finally:
            for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
                try:
                    leftover.unlink(missing_ok=True)
                except OSError:  # its folder is not writable or not a folder; reported above
                    pass


def _connect_for_writing(path: Path) -> duckdb.DuckDBPyConnection:
    no_extensions: dict[str, str | bool | int | float | list[str]] = {
        "autoinstall_known_extensions": False, "autoload_known_extensions": False}
    try:
        return duckdb.connect(str(path), config={**no_extensions, "storage_compatibility_version": STORAGE_VERSION})
    except duckdb.Error as exc:
        # a duckdb older than STORAGE_VERSION neither knows the setting's value nor writes anything newer
        if STORAGE_VERSION not in str(exc) and "storage_compatibility_version" not in str(exc):
            raise
        return duckdb.connect(str(path), config=no_extensions)


def build_catalog(config_or_layout: Config | Layout, catalog_path: str | os.PathLike[str] | None = None,
                  registry: Registry | None = None) -> CatalogReport:
    """Builds the catalog once. ``catalog_path`` defaults to ``config.warehouse.catalog``."""
    group, min_visitors = None, 10
    if isinstance(config_or_layout, Config):
        layout = Layout(Path(config_or_layout.warehouse.root))
        catalog_path = catalog_path or config_or_layout.warehouse.catalog
        group = config_or_layout.warehouse.analyst_group
        min_visitors = config_or_layout.warehouse.min_visitors
    else:
        layout = config_or_layout
    if catalog_path is None:
        raise CatalogError("build_catalog needs a catalog path when given a Layout")
    return CatalogBuilder(layout, catalog_path, registry, analyst_group=group, min_visitors=min_visitors).build()


def _read_parquet(glob: str, *, hive: bool) -> str:
    options = "union_by_name = true"
    if hive:
        options = f"hive_partitioning = true, hive_types = {{'{PARTITION_KEY}': 'DATE'}}, " + options
    return f"SELECT * FROM read_parquet({quote_literal(glob)}, {options})"  # noqa: S608 - a quoted path


def _empty_select(columns: tuple[tuple[str, str], ...]) -> str:
    return "SELECT " + ", ".join(f"CAST(NULL AS {t}) AS {quote_identifier(n)}" for n, t in columns) + " WHERE false"


_DUCKDB_TYPES = {
    pa.string(): "VARCHAR", pa.int32(): "INTEGER", pa.int64(): "BIGINT", pa.float64(): "DOUBLE",
    pa.float32(): "FLOAT", pa.bool_(): "BOOLEAN", pa.binary(): "BLOB", pa.date32(): "DATE",
}


def _duckdb_type(dtype: pa.DataType) -> str:
    if pa.types.is_timestamp(dtype):
        return "TIMESTAMPTZ" if dtype.tz else "TIMESTAMP"
    return _DUCKDB_TYPES[dtype]


