"""Time-based expiry: whole day partitions past their table's retention are deleted, and audited.

A partition for day D of table T expires when ``D < today - retention(T)``, ``today`` being the UTC day
of the injected ``now``: with 90 days' retention on 2025-04-01, 2025-01-01 (90 days back) is kept and
2024-12-31 goes. A table without a configured retention gets ``TABLE_RETENTION_MAX_DAYS`` (364: a day
partition goes whole, so its first rows are then 365 days old), and any retention above that is clamped
to it here, whatever the caller passes: nothing is kept longer than the policy's year. A partition
dated after tomorrow expires too: no event may be dated in the future (they are refused where they
enter), so such a partition can only come from before that rule, and would outlive every retention.

Deleting one partition, each step durable before the next:

1. the day folder is renamed into ``<root>/_trash/<table>~<day>~<days>d~<at>~<id>`` (one atomic
   rename: readers see the whole partition or none of it, never half);
2. the deletion is appended to the audit log (keyed by the trash name, so it is recorded once);
3. the trash folder is deleted.

Every non-dry run first finishes what an interrupted run left in ``_trash`` (auditing it if step 2
had not happened), so a crash at any point followed by a rerun ends with the partition gone and one
audit entry. Reruns are idempotent. The cost grows with the partitions dropped: surviving partitions
are only listed by folder name, and rows are counted from Parquet footers, never by reading data.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq

from datamin.clock import as_utc
from datamin.config import retention_for
from datamin.files import sync_dir
from warehouse.audit_trail import AuditEntry, AuditLog
from warehouse.layout import PARTITION_KEY, Layout

log = logging.getLogger(__name__)

AUDIT_KIND = "expiry"
_TRASH_RE = re.compile(r"^(?P<table>[^~]+)~(?P<day>\d{4}-\d{2}-\d{2})~(?P<days>\d+)d~"
                       r"(?P<at>\d{8}T\d{12}Z)~[0-9a-f]{32}$")
_AT_FORMAT = "%Y%m%dT%H%M%S%fZ"


@dataclass(frozen=True)
class Expiry:
    """One day partition that is (or, in a dry run, would be) deleted, with what it held."""

    table: str
    day: date
    path: Path
    """the partition folder, ``<root>/<table>/event_date=YYYY-MM-DD``"""
    files: int
    """Parquet files in it"""
    rows: int
    """rows in those files, from their footers (an unreadable file counts 0 and is logged)"""
    bytes: int
    """bytes of every file in the folder"""
    retention_days: int
    """the effective retention that made it expire (after clamping to the cap)"""

    @property
    def partition(self) -> str:
        return f"{PARTITION_KEY}={self.day.isoformat()}"



def oldest_kept_day(table: str, retention_days: Mapping[str, int], today: date) -> date:
    """The oldest day partition of ``table`` that is still kept on ``today``. Pure."""
    return today - timedelta(days=retention_for(table, retention_days))


def plan_expiry(layout: Layout, retention_days: Mapping[str, int], today: date,
                latest: date | None = None) -> list[Expiry]:
    """The partitions of every table that are past retention on ``today``, oldest first per table, then
    those dated after ``latest`` (default: tomorrow), which no event may have: future-dated partitions
    would otherwise outlive every retention.

    Deletes nothing. Lists folder names and reads only the footers of the partitions it returns."""
    latest = latest if latest is not None else today + timedelta(days=1)
    plan: list[Expiry] = []
    for table in layout.tables():
        days = retention_for(table, retention_days)
        keep_from = today - timedelta(days=days)
        plan += [_measure(table, day, path, path, days) for day, path in layout.partitions(table)
                 if day < keep_from or day > latest]
    return plan


def expire(layout: Layout, retention_days: Mapping[str, int], *, now: datetime, dry_run: bool = False,
           audit: AuditLog | None = None, job: str = "expiry") -> list[Expiry]:
    """Deletes every partition past retention at ``now`` (aware); returns what was deleted.

    With ``dry_run`` nothing is deleted, moved or audited and the plan is returned. Otherwise
    partitions left in ``_trash`` by an interrupted run are finished first and included in the
    result; each deletion is appended to ``audit`` (kind "expiry") when one is given."""
    now = as_utc(now)
    latest = (now + timedelta(days=1)).date()  # the clock skew accepted is at most a day
    if dry_run:
        return plan_expiry(layout, retention_days, now.date(), latest)
    done = _finish_trash(layout, audit, job)
    for item in plan_expiry(layout, retention_days, now.date(), latest):
        trash = layout.trash_dir / (f"{item.table}~{item.day.isoformat()}~{item.retention_days}d~"
                                    f"{now.strftime(_AT_FORMAT)}~{uuid.uuid4().hex}")
        layout.trash_dir.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(item.path, trash)
        except FileNotFoundError:
            log.info("partition %s/%s vanished before expiry (another run?); skipping", item.table, item.partition)
            continue
        sync_dir(item.path.parent)
        sync_dir(layout.trash_dir)
        why = ("dated in the future (no event may be)" if item.day > latest
               else f"past {item.retention_days} days' retention")
        _record(audit, item, now, job, key=trash.name, detail=why)
        shutil.rmtree(trash)
        log.info("expired %s/%s: %d files, %d rows, %d bytes",
                 item.table, item.partition, item.files, item.rows, item.bytes)
        done.append(item)
    return done


def finish_trash(layout: Layout, audit: AuditLog | None, job: str) -> list[Expiry]:
    """Completes (audited) the deletions interrupted runs left in ``_trash``; the hourly retention job
    calls it too. Call it holding the maintenance lock."""
    return _finish_trash(layout, audit, job)


def _finish_trash(layout: Layout, audit: AuditLog | None, job: str) -> list[Expiry]:
    """Completes deletions an interrupted run had moved to ``_trash`` (steps 2 and 3)."""
    if not layout.trash_dir.is_dir():
        return []
    done = []
    for trash in sorted(layout.trash_dir.iterdir()):
        m = _TRASH_RE.match(trash.name)
        if not m or not trash.is_dir():
            log.warning("leaving %s in %s: not a folder expiry made", trash.name, layout.trash_dir)
            continue
        table, day = m.group("table"), date.fromisoformat(m.group("day"))
        at = datetime.strptime(m.group("at"), _AT_FORMAT).replace(tzinfo=UTC)
        item = _measure(table, day, layout.partition_dir(table, day), trash, int(m.group("days")))
        _record(audit, item, at, job, key=trash.name,
                detail=f"past {item.retention_days} days' retention; finished after an interrupted run")
        shutil.rmtree(trash)
        log.warning("finished the interrupted expiry of %s/%s", table, item.partition)
        done.append(item)
    return done


def _record(audit: AuditLog | None, item: Expiry, at: datetime, job: str, *, key: str, detail: str) -> None:
    if audit is None:
        return
    audit.append([AuditEntry(at=at, job=job, action="delete_partition", table_name=item.table,
                             partition=item.partition, rows=item.rows, bytes=item.bytes,
                             detail=f"{detail}; {item.files} files")], kind=AUDIT_KIND, key=key)


def _measure(table: str, day: date, path: Path, folder: Path, retention_days: int) -> Expiry:
    """Counts what ``folder`` holds from file sizes and Parquet footers (no data is read)."""
    files = rows = size = 0
    for entry in os.scandir(folder):
        if not entry.is_file(follow_symlinks=False):
            continue
        size += entry.stat(follow_symlinks=False).st_size
        if entry.name.endswith(".parquet") and not entry.name.startswith("."):
            files += 1
            try:
                rows += pq.read_metadata(entry.path).num_rows
            except (OSError, ValueError) as exc:
                log.warning("cannot read the footer of %s in %s/%s (%s); counting 0 rows",
                            entry.name, table, day.isoformat(), type(exc).__name__)
    return Expiry(table=table, day=day, path=path, files=files, rows=rows, bytes=size,
                  retention_days=retention_days)
