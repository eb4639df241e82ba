"""The backups in the retention inventory (`datamin retention`, the scheduler's hourly retention job):
a store whose cap is ``backup.retention_days`` (at most 365), whose oldest item is the oldest backup
in ``backup.dest`` and whose expiry deletes the backups past it (each deletion in the audit trail).
Backups written to another place than ``backup.dest`` are not seen here: `datamin backup create`
says so, and ``datamin backup expire DEST`` expires them."""

from __future__ import annotations

from datetime import datetime, timedelta

from datamin.clock import as_utc
from datamin.config import Config
from datamin.retention import SCHEDULER, Store, register_stores
from warehouse.audit_trail import AuditEntry, AuditLog
from warehouse.backup.retention import backup_inventory, expire_backups
from warehouse.layout import layout_of

AUDIT_JOB = "backup"


def expire_dest(config: Config, now: datetime) -> int:
    """Deletes the backups in ``backup.dest`` past ``backup.retention_days`` at ``now``, each recorded
    in the audit trail; returns how many. Nothing when ``backup.dest`` is unset."""
    if not config.backup.dest:
        return 0
    at = as_utc(now)
    gone = expire_backups(config.backup.dest, now=at, retention_days=config.backup.retention_days)
    layout = layout_of(config)
    if gone and layout.root.is_dir():
        AuditLog(layout).append([AuditEntry(at=at, job=AUDIT_JOB, action="expire_backup", table_name="*",
                                            partition=None, rows=0, bytes=e.bytes,
                                            detail=f"backup {e.backup_id} of {e.created_at.isoformat()}")
                                 for e in gone], kind=AUDIT_JOB)
    return len(gone)


@register_stores
def backup_stores(config: Config) -> list[Store]:
    days = config.backup.retention_days

    def oldest(now: datetime) -> datetime | None:
        entries = backup_inventory(config, now=as_utc(now))
        return entries[0].created_at if entries else None

    return [Store(
        name="backups", kind="files",
        location=config.backup.dest or "backup.dest is unset: no backups are kept where the scheduler looks",
        holds="snapshots of the tables, the rights and audit trails and the sink's offsets (minimised rows, "
              "pseudonyms), owner-only, encrypted when backup.key_file is set; never keys or secrets",
        cap=timedelta(days=days), enforced_by=SCHEDULER,
        how=f"each backup deleted once {days} day(s) old; a restore first re-applies every erasure, "
            "restriction, withdrawal and expiry recorded since it was taken",
        setting="backup.retention_days", oldest=oldest, expire=lambda now: expire_dest(config, now))]
