"""The quarantine: where files that cannot be read (corrupt, torn, foreign) go, out of every view.

    <root>/_quarantine/<table>/<partition folder>/<file name>.<8 hex>

Nothing leaves analysis silently: every move is recorded in the audit trail (job "catalog", action
"quarantine": table, partition, bytes and the problem), which analysts see as ``audit_log``. The
quarantine is private to datamin's user (0700, warehouse.permissions); it expires like the tables
(warehouse.retention) and erasure reaches it (warehouse.rights.quarantine).
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from warehouse.audit_trail import AuditEntry, AuditLog
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
