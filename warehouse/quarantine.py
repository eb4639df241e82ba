"""The quarantine: where files that cannot be read (corrupt, torn, foreign) go, out of every view.

    <root>/_quarantine/<table>/<partition folder>/<file name>.<8 hex>

Nothing leaves analysis silently: every move is recorded in the audit trail (job "catalog", action
"quarantine": table, partition, bytes and the problem), which analysts see as ``audit_log``. The
quarantine is private to datamin's user (0700, warehouse.permissions) and it expires like the tables:
a quarantined file of a day partition goes when that day passes its table's retention, any other after
the one-year cap counted from the file's last change (`expire_quarantine`, run by expiry).
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

from datamin.config import RETENTION_CAP_DAYS
from warehouse.audit_trail import AuditEntry, AuditLog
from warehouse.expiry import oldest_kept_day
from warehouse.layout import PARTITION_KEY, Layout

log = logging.getLogger(__name__)

QUARANTINE_JOB = "catalog"
_DAY = re.compile(rf"^{PARTITION_KEY}=(\d{{4}}-\d{{2}}-\d{{2}})$")


@dataclass(frozen=True)
class Quarantined:
    table: str
    partition: str | None
    path: Path
    bytes: int


def quarantine(layout: Layout, path: Path, table: str, problem: str, *, now: datetime,
               audit: AuditLog | None = None) -> Path | None:
    """Moves ``path`` (a file of ``table``) into the quarantine and records it in the audit trail;
    returns where it went (None when it vanished first)."""
    partition = path.parent.name
    target_dir = layout.quarantine_dir / table / partition
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / f"{path.name}.{uuid.uuid4().hex[:8]}"
    try:
        size = path.stat().st_size
        os.replace(path, target)
    except FileNotFoundError:
        return None
    log.warning("moved %s to %s: %s", path, target, problem)
    (audit or AuditLog(layout)).append([AuditEntry(
        at=now, job=QUARANTINE_JOB, action="quarantine", table_name=table,
        partition=partition if _DAY.match(partition) else None, rows=0, bytes=size,
        detail=f"{problem}; moved to {target.relative_to(layout.root)}")], key=target.name)
    return target


def quarantined(layout: Layout) -> list[Quarantined]:
    """Every file in the quarantine."""
    base = layout.quarantine_dir
    if not base.is_dir():
        return []
    found = []
    for path in sorted(p for p in base.rglob("*") if p.is_file()):
        rel = path.relative_to(base).parts
        partition = rel[1] if len(rel) > 2 else None
        found.append(Quarantined(rel[0], partition, path, path.stat().st_size))
    return found


def expire_quarantine(layout: Layout, retention_days: Mapping[str, int], *, now: datetime,
                      audit: AuditLog | None = None, job: str = "expiry") -> list[Quarantined]:
    """Deletes quarantined files past retention (see the module); audited; returns what went."""
    today = now.astimezone(UTC).date()
    gone = []
    for item in quarantined(layout):
        day = _day(item.partition)
        if day is not None:
            expired = day < oldest_kept_day(item.table, retention_days, today)  # the tables' own rule
        else:
            changed = datetime.fromtimestamp(item.path.stat().st_mtime, UTC)
            expired = changed < now - timedelta(days=RETENTION_CAP_DAYS)
        if not expired:
            continue
        item.path.unlink(missing_ok=True)
        gone.append(item)
        if audit is not None:
            audit.append([AuditEntry(at=now, job=job, action="delete_quarantined", table_name=item.table,
                                     partition=item.partition, rows=0, bytes=item.bytes,
                                     detail="quarantined file past retention")], kind=job,
                         key=str(item.path.relative_to(layout.root)))
    for folder in sorted((p for p in layout.quarantine_dir.rglob("*") if p.is_dir()), reverse=True) \
            if layout.quarantine_dir.is_dir() else []:
        if not any(folder.iterdir()):
            shutil.rmtree(folder, ignore_errors=True)
    return gone


def _day(partition: str | None) -> date | None:
    m = _DAY.match(partition or "")
    return date.fromisoformat(m.group(1)) if m else None
