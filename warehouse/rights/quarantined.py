"""Erasure reaches the quarantine too: a file moved out of the tables (corrupt, torn, foreign) may
still hold the person's rows.

- A quarantined file that can still be read whole is rewritten without the person's rows, as erasure
  rewrites the tables' files.
- A quarantined file that cannot be read may hold them and nobody can tell: it is deleted, and the
  receipt and the audit trail say so. (It was out of every view already and would have been deleted
  at its day's expiry; when in doubt, datamin drops it.)
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datamin.config import TABLES
from warehouse.audit_trail import AuditEntry, AuditLog
from warehouse.layout import Layout
from warehouse.quarantine import Quarantined, quarantined
from warehouse.rights.erasure import FileChange, rewrite_file
from warehouse.rights.subjects import SUBJECT_COLUMN, row_matches


def erase_quarantined(layout: Layout, pseudonyms: Iterable[str], *, now: datetime, request_id: str,
                      fsync: bool = True) -> tuple[list[FileChange], list[Quarantined]]:
    """(files rewritten, unreadable files deleted) for an erasure of ``pseudonyms``; both audited."""
    wanted = dict.fromkeys(pseudonyms)
    changes: list[FileChange] = []
    deleted: list[Quarantined] = []
    if not wanted:
        return changes, deleted
    for item in quarantined(layout):
        if item.table not in TABLES:
            continue  # the audit trail's own files hold no one's rows
        try:
            columns = pq.read_schema(item.path).names
            pq.read_table(item.path)
        except (pa.ArrowException, OSError):
            item.path.unlink(missing_ok=True)
            deleted.append(item)
            continue
        if SUBJECT_COLUMN not in columns:
            continue

        def without(rows: pa.Table, table: str = item.table) -> tuple[pa.Table, int]:
            hit = row_matches(rows, table, wanted)
            kept = rows.filter(pc.invert(hit))
            return kept, rows.num_rows - kept.num_rows

        done = rewrite_file(item.path, without, fsync=fsync)
        if done is not None:
            rows, before, after = done
            changes.append(FileChange(item.table, os.path.relpath(item.path, layout.root), rows, before, after))
    entries = [AuditEntry(at=now, job="erasure", action="erase_rows_quarantined", table_name=c.table,
                          partition=None, rows=c.rows, bytes=max(0, c.bytes_before - c.bytes_after),
                          detail=f"request {request_id}: {c.path}") for c in changes]
    entries += [AuditEntry(at=now, job="erasure", action="delete_quarantined", table_name=d.table,
                           partition=d.partition, rows=0, bytes=d.bytes,
                           detail=f"request {request_id}: unreadable, may have held the subject's rows")
                for d in deleted]
    if entries:
        AuditLog(layout).append(entries, kind="erasure", key=f"quarantine/{request_id}/{now.isoformat()}")
    return changes, deleted
