"""Backups age out like everything else: listing with their age, and expiry within the one-year cap.

A backup is deleted once it is ``backup.retention_days`` old (at most 365, enforced in the config)
counted from the time in its manifest, or — for a folder left without a manifest by an interrupted
``backup create`` — from the time in its name, after a day. The scheduler's hourly retention job runs
`expire_backups` on ``backup.dest`` through the retention inventory (`warehouse.backup.inventory`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from datamin.clock import as_utc
from datamin.config import RETENTION_CAP_DAYS, Config
from datamin.exceptions import BackupError
from warehouse.backup.manifest import ID_PREFIX, MANIFEST_NAME, Manifest
from warehouse.backup.store import Store

log = logging.getLogger(__name__)

INCOMPLETE_GRACE = timedelta(days=1)
"""an unfinished backup folder (no manifest) is deleted after this long"""


@dataclass(frozen=True)
class BackupEntry:
    """One backup in a store, as the retention inventory shows it."""

    backup_id: str
    location: str
    created_at: datetime
    age_days: float
    expires_at: datetime
    complete: bool
    files: int
    bytes: int
    encrypted: bool

    def line(self) -> str:
        state = ("encrypted" if self.encrypted else "not encrypted") if self.complete else "INCOMPLETE (no manifest)"
        return (f"{self.backup_id}  {self.created_at:%Y-%m-%d %H:%M} UTC  age {self.age_days:5.1f} d  "
                f"expires {self.expires_at:%Y-%m-%d}  {self.files} files  {self.bytes} bytes  {state}")


def _time_of_id(backup_id: str) -> datetime | None:
    try:
        return datetime.strptime(backup_id[len(ID_PREFIX):len(ID_PREFIX) + 16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def list_backups(where: str | os.PathLike[str], *, now: datetime,
                 retention_days: int = RETENTION_CAP_DAYS) -> list[BackupEntry]:
    """Every backup folder under ``where``, oldest first (other entries are ignored)."""
    store = Store.open(where)
    at = as_utc(now)
    out = []
    for name in store.listdir():
        if not name.startswith(ID_PREFIX):
            continue
        child = store.child(name)
        try:
            manifest = Manifest.from_json(child.read(MANIFEST_NAME), child.url) if child.exists(MANIFEST_NAME) else None
        except BackupError as exc:
            log.warning("%s", exc)
            manifest = None
        if manifest is not None:
            created, expires = manifest.created_at, min(manifest.expires_at,
                                                        manifest.created_at + timedelta(days=retention_days))
            files, size, encrypted = len(manifest.files), manifest.total_bytes, manifest.encryption is not None
        else:
            stamp = _time_of_id(name)
            if stamp is None:
                continue
            created, expires, files, size, encrypted = stamp, stamp + INCOMPLETE_GRACE, 0, 0, False
        out.append(BackupEntry(backup_id=name, location=child.url, created_at=created,
                               age_days=(at - created).total_seconds() / 86400, expires_at=expires,
                               complete=manifest is not None, files=files, bytes=size, encrypted=encrypted))
    return sorted(out, key=lambda e: e.created_at)


def backup_inventory(config: Config, *, now: datetime) -> list[BackupEntry]:
    """The backups under ``backup.dest`` with their age (for the retention inventory); [] when unset."""
    if not config.backup.dest:
        return []
    return list_backups(config.backup.dest, now=now, retention_days=config.backup.retention_days)


def expire_backups(where: str | os.PathLike[str], *, now: datetime, retention_days: int) -> list[BackupEntry]:
    """Deletes every backup under ``where`` past its expiry (and at most ``retention_days`` old, capped
    at 365); returns what it deleted."""
    days = min(retention_days, RETENTION_CAP_DAYS)
    store = Store.open(where)
    at = as_utc(now)
    gone = []
    for entry in list_backups(where, now=at, retention_days=days):
        if entry.expires_at <= at:
            store.delete_dir(entry.backup_id)
            log.info("backup %s expired (taken %s) and deleted", entry.backup_id, entry.created_at.isoformat())
            gone.append(entry)
    return gone
