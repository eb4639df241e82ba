"""Errors of the warehouse's streaming side (writer, catalog, queries), under datamin's one tree.

    DataminError
    └── WarehouseError        the warehouse's files are not as they must be; the message says the fix
        ├── CatalogError      the catalog is missing or cannot be built
        ├── QueryError        an analyst's query failed (bad SQL, a write on the read-only catalog)
        └── DamagedFileError  a Parquet file of the warehouse cannot be read: names the file, its table, the fix
"""

from __future__ import annotations

from datamin.exceptions import DataminError


class WarehouseError(DataminError):
    """The warehouse's files are not as they must be (e.g. a corrupt checkpoint); the message says the fix."""


class CatalogError(WarehouseError):
    """The DuckDB catalog is missing or could not be built."""


class QueryError(WarehouseError):
    """A query on the catalog failed: bad SQL, an unknown view, or an attempt to write."""


class DamagedFileError(WarehouseError):
    """A Parquet file of the warehouse is corrupt, torn or not Parquet; names the file, its table and the fix."""

    def __init__(self, path: str, table: str, problem: str, fix: str) -> None:
        self.path = path
        self.table = table
        self.problem = problem
        self.fix = fix
        super().__init__(f"damaged file {path} (table {table}): {problem}. Fix: {fix}")
