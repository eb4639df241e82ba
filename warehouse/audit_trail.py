"""The audit trail: every expiry, compaction, erasure or leak scan, as Parquet analysts can query.

    <root>/_audit/<kind>/<YYYYMMDDTHHMMSSffffffZ>-<uuid>.parquet     one file per append() call

Columns, always these and in this order: ``at`` (timestamp, UTC), ``job``, ``action``, ``table_name``,
``partition`` (nullable), ``rows``, ``bytes``, ``detail``. A file is written under a temporary
name in the same folder and renamed into place (``os.replace``), so a reader never sees half a file,
and files are never changed once written. In DuckDB:
``SELECT * FROM read_parquet('<root>/_audit/*/*.parquet')``.

The trail holds no personal data: callers pass table and partition names, counts and fixed wording,
never a value from an event (no IP address, identifier or free text).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from datamin.files import replace_file
from warehouse.layout import Layout

SCHEMA = pa.schema([
    pa.field("at", pa.timestamp("us", tz="UTC"), nullable=False),
    pa.field("job", pa.string(), nullable=False),
    pa.field("action", pa.string(), nullable=False),
    pa.field("table_name", pa.string(), nullable=False),
    pa.field("partition", pa.string(), nullable=True),
    pa.field("rows", pa.int64(), nullable=False),
    pa.field("bytes", pa.int64(), nullable=False),
    pa.field("detail", pa.string(), nullable=False),
])
"""The columns of every audit file."""

_KIND_RE = re.compile(r"^[a-z][a-z0-9_]*$")
_KEY_NAMESPACE = uuid.UUID("6f0d3c1e-5b8a-4c2e-9f41-3d7a2b9e8c10")


@dataclass(frozen=True)
class AuditEntry:
    """One thing a job did to the warehouse. ``at`` is aware (any zone; stored as UTC)."""

    at: datetime
    job: str
    action: str
    table_name: str
    partition: str | None
    rows: int
    bytes: int
    detail: str = ""


class AuditLog:
    """Appends to and reads the audit trail under ``<root>/_audit``."""

    def __init__(self, layout: Layout, *, fsync: bool = True) -> None:
        self.layout = layout
        self._fsync = fsync

    def append(self, entries: Sequence[AuditEntry], *, kind: str | None = None,
               key: str | None = None) -> Path | None:
        """Writes ``entries`` as one new Parquet file under ``_audit/<kind>/`` and returns its path.

        ``kind`` defaults to the entries' common ``job``. With ``key`` the file name is derived from
        ``kind``, ``key`` and the earliest ``at``, and an existing file of that name is left as it
        is: a job that reruns a step after a crash records it once. Returns None (and writes
        nothing) for no entries. Raises ValueError for a naive time, a negative count or a bad kind.
        """
        if not entries:
            return None
        for entry in entries:
            _check(entry)
        if kind is None:
            jobs = {e.job for e in entries}
            if len(jobs) != 1:
                raise ValueError("entries of several jobs need an explicit kind= (the _audit sub-folder)")
            kind = jobs.pop()
        if not _KIND_RE.match(kind):
            raise ValueError(f"audit kind {kind!r} must be lower-case letters, digits and '_', e.g. 'expiry'")
        folder = self.layout.audit_dir / kind
        first = min(e.at for e in entries).astimezone(UTC)
        ident = uuid.uuid5(_KEY_NAMESPACE, f"{kind}/{key}") if key is not None else uuid.uuid4()
        path = folder / f"{first.strftime('%Y%m%dT%H%M%S%fZ')}-{ident.hex}.parquet"
        if key is not None and path.exists():
            return path
        folder.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pylist([_row(e) for e in entries], schema=SCHEMA)
        replace_file(path, lambda f: pq.write_table(table, f), fsync=self._fsync)
        return path

    def read(self, kind: str | None = None) -> list[AuditEntry]:
        """Every entry (of one kind, else of all), oldest first; for tests and the command line."""
        base = self.layout.audit_dir
        if not base.is_dir():
            return []
        folders = [base / kind] if kind is not None else sorted(p for p in base.iterdir() if p.is_dir())
        found: list[tuple[datetime, str, int, AuditEntry]] = []
        for folder in folders:
            if not folder.is_dir():
                continue
            for path in sorted(folder.glob("*.parquet")):
                for i, row in enumerate(pq.ParquetFile(path).read().to_pylist()):
                    entry = AuditEntry(at=row["at"].astimezone(UTC), job=row["job"], action=row["action"],
                                       table_name=row["table_name"], partition=row["partition"],
                                       rows=row["rows"], bytes=row["bytes"], detail=row["detail"])
                    found.append((entry.at, path.name, i, entry))
        return [entry for *_, entry in sorted(found, key=lambda t: t[:3])]


def _check(entry: AuditEntry) -> None:
    if entry.at.tzinfo is None or entry.at.tzinfo.utcoffset(entry.at) is None:
        raise ValueError("audit entry time is naive: pass an aware datetime (UTC)")
    if entry.rows < 0 or entry.bytes < 0:
        raise ValueError(f"audit entry of {entry.table_name!r} has a negative count; counts are rows and bytes")
    if not entry.job or not entry.action:
        raise ValueError("audit entry needs a job and an action")


def _row(entry: AuditEntry) -> dict[str, object]:
    return {"at": entry.at.astimezone(UTC), "job": entry.job, "action": entry.action,
            "table_name": entry.table_name, "partition": entry.partition, "rows": entry.rows,
            "bytes": entry.bytes, "detail": entry.detail}
