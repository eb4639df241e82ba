"""The warehouse's working folders and the sink's checkpoints as stores of the retention inventory.

- ``_staging/<id>/``: a sink flush writes its files here and renames them into place within seconds;
- ``_compaction/<id>/``: compaction stages its merged file here (under the maintenance lock);
- ``_trash/``: expiry moves a day folder here (one rename) before deleting it (under the lock).

What stays in them is what an interrupted run left: minimised rows that belong in a table or are due
for deletion. Each is capped at `WORKING_CAP` (a day) and the scheduler's hourly retention job
finishes what it finds stale, the way the owner's own recovery would (a committed flush or merge is
completed, an uncommitted one discarded, a trashed day deleted and audited), never deleting what a
running job uses: compaction and expiry hold the maintenance lock, which the job takes too, and a sink
flush lives for seconds, so a stage nothing wrote to for a day has no running flush behind it.

The checkpoints (``_sink/checkpoints/<topic>~p<n>``, an offset each, no personal data) go when last
written longer ago than any topic keeps a record: by then every record up to that offset is gone from
Kafka, so a sink resuming without it (at the beginning) loads nothing twice.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

from datamin.clock import as_utc
from datamin.config import Config
from datamin.retention import CAP, SCHEDULER, Store, cap_words, file_store, mtime
from datamin.topics import Topics
from warehouse.audit_trail import AuditLog
from warehouse.layout import Layout
from warehouse.locking import maintenance_lock

log = logging.getLogger(__name__)

WORKING_CAP = timedelta(days=1)
"""the longest anything may stay in a working folder: a day without a write makes it stale"""
RETENTION_JOB = "retention"


def working_stores(config: Config, layout: Layout) -> list[Store]:
    """The three working folders and the sink's checkpoints."""
    return [
        _working("sink staging", layout.staging_dir, "minimised rows of a sink flush on their way into a table",
                 "a stale flush is completed (it had committed) or discarded (it had not), as the sink's "
                 "recovery does", lambda now: _recover_staging(layout, now)),
        _working("compaction staging", layout.compaction_dir,
                 "a merged copy of a closed day's minimised rows on its way into the table",
                 "a stale merge is finished or abandoned under the maintenance lock, as compaction's recovery "
                 "does", lambda now: _recover_compaction(layout, now)),
        _working("expiry trash", layout.trash_dir, "day folders of minimised rows past retention, being deleted",
                 "a stale trashed day is deleted and audited under the maintenance lock, as expiry's next run "
                 "does", lambda now: _empty_trash(layout, now)),
        checkpoint_store(config, layout),
    ]


def checkpoint_store(config: Config, layout: Layout) -> Store:
    """The sink's checkpoints: deleted once last written longer ago than any topic keeps a record."""
    longest = max(timedelta(milliseconds=s.max_age_ms) for s in Topics(config).all())
    cap = min(longest, CAP)
    folder = layout.checkpoint_file("x", 0).parent
    store = file_store("sink checkpoints", folder, "*", cap,
                       holds="per topic partition: the last offset loaded into the warehouse; no personal data",
                       setting=None)
    return dataclasses.replace(store, how=f"a checkpoint is deleted {cap_words(cap)} after its last write, when "
                                          "Kafka no longer holds any record it covers")


def _working(name: str, folder: Path, holds: str, how: str, expire: Callable[[datetime], int]) -> Store:
    return Store(name=name, kind="files", location=str(folder), holds=holds, cap=WORKING_CAP,
                 enforced_by=SCHEDULER, how=f"{how}, once nothing was written to it for {cap_words(WORKING_CAP)}",
                 oldest=lambda now: min((t for t in map(last_write, _entries(folder)) if t is not None),
                                        default=None),
                 expire=expire)


def _entries(folder: Path) -> list[Path]:
    return sorted(folder.iterdir()) if folder.is_dir() else []


def last_write(entry: Path) -> datetime | None:
    """The latest write to ``entry`` or anything in it (a file, or a folder and its files)."""
    times = [mtime(entry)]
    if entry.is_dir() and not entry.is_symlink():
        times += [mtime(p) for p in entry.rglob("*")]
    return max((t for t in times if t is not None), default=None)


def _stale(folder: Path, now: datetime) -> list[Path]:
    cutoff = as_utc(now) - WORKING_CAP
    return [e for e in _entries(folder) if (t := last_write(e)) is not None and t < cutoff]


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)


def _recover_staging(layout: Layout, now: datetime) -> int:
    from warehouse.writer import PartitionWriter

    writer = PartitionWriter(layout)
    done = 0
    for stage in _stale(layout.staging_dir, now):
        if stage.is_dir() and not stage.is_symlink():
            writer.recover_stage(stage)
        else:
            _remove(stage)
        log.info("retention: finished the stale sink staging entry %s", stage.name)
        done += 1
    return done


def _recover_compaction(layout: Layout, now: datetime) -> int:
    from warehouse.compaction import recover_compactions

    with maintenance_lock(layout):  # no merge runs while it is held
        stale = _stale(layout.compaction_dir, now)
        if not stale:
            return 0
        for entry in stale:
            if not entry.is_dir():
                _remove(entry)
        recover_compactions(layout, audit=AuditLog(layout), job=RETENTION_JOB)
        return len(stale)


def _empty_trash(layout: Layout, now: datetime) -> int:
    from warehouse.expiry import finish_trash

    with maintenance_lock(layout):  # no expiry runs while it is held
        stale = _stale(layout.trash_dir, now)
        if not stale:
            return 0
        finish_trash(layout, AuditLog(layout), RETENTION_JOB)
        for entry in stale:  # what expiry did not make (it leaves those): deleted once stale
            if entry.exists() or entry.is_symlink():
                _remove(entry)
                log.info("retention: deleted %s from %s (stale, not a folder expiry made)", entry.name,
                         layout.trash_dir)
        return len(stale)
