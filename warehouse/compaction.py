"""Compaction: a closed day's small files merged into one, each row kept exactly once.

Only partitions whose day is before today (UTC of the injected ``now``) are touched, and only the
files listed when the merge starts: a late file the sink adds meanwhile is left for the next run.
One partition goes through these steps, each durable (fsync) before the next:

1. the listed files are read (pyarrow) and written as one file ``_compaction/<id>/compacted~<id>.parquet``;
   its footer's row count must equal the sum of the inputs' footers, else the merge is abandoned and
   the originals stay as they are;
2. ``_compaction/<id>/MANIFEST`` (json: table, day, the new file's target, the merged files' names,
   the row count) is written atomically: from here on the merge *will* complete;
3. the new file is renamed into the partition as ``compacted~<id>.parquet``;
4. the merged files are deleted, then the audit entry written (once: keyed by ``<id>``);
5. ``_compaction/<id>/`` is removed.

One compaction runs at a time per warehouse (the scheduler serialises its jobs).
``recover_compactions()`` (also run at the start of every ``compact()``) finishes every merge whose
target is in its partition (steps 4-5) and abandons every other one (deletes its staging folder; the
originals were never touched). A process killed at any step therefore ends, after recovery, with
each row in exactly one file. The sink's offset checkpoints (``_sink/checkpoints/``) do not depend
on file names, so merging never causes a reload.

Readers: between steps 3 and 4 (the time to unlink a few files) a reader that lists the folder sees
the new file *and* the old ones, i.e. those rows twice; a query that must be exact at that instant
can de-duplicate by ``event_id``. The opposite order (delete, then rename) would instead make rows
vanish and lose them for good on a crash, so it is not an option. Swapping whole folders would need
an atomic exchange of two non-empty directories (Linux ``renameat2(RENAME_EXCHANGE)``: not portable,
and it races with a late file the sink renames into the old folder), so the brief window is accepted.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from datamin.clock import as_utc
from datamin.files import replace_file, sync_dir
from warehouse.audit_trail import AuditEntry, AuditLog
from warehouse.layout import PARTITION_KEY, Layout

log = logging.getLogger(__name__)

MANIFEST = "MANIFEST"
AUDIT_KIND = "compaction"
COMPRESSION = "zstd"
COMPACTED_PREFIX = "compacted~"


@dataclass(frozen=True)
class Compaction:
    """One partition whose files were merged."""

    table: str
    day: date
    path: Path
    """the new file, ``<partition>/compacted~<id>.parquet``"""
    merged: tuple[str, ...]
    """names of the files it replaced"""
    rows: int
    bytes_before: int
    bytes_after: int


def compact(layout: Layout, *, now: datetime, min_files: int = 2, audit: AuditLog | None = None,
            job: str = "compaction", fsync: bool = True) -> list[Compaction]:
    """Merges every closed partition (day before today, UTC) holding ``min_files`` or more data files.

    Recovers interrupted merges first. Idempotent: a partition left with one file is not touched
    again. A partition whose files cannot be merged (incompatible column types) is logged and left
    as it is. An OSError propagates; what it interrupted is finished or undone by the next run."""
    if min_files < 2:
        raise ValueError(f"min_files={min_files}: merging fewer than 2 files changes nothing; use 2 or more")
    today = as_utc(now).date()
    recover_compactions(layout, audit=audit, job=job, fsync=fsync)
    done = []
    for table in layout.tables():
        for day, folder in layout.partitions(table):
            if day >= today:
                break  # today's partition is still being written
            files = data_files(folder)
            if len(files) < min_files:
                continue
            result = _compact_partition(layout, table, day, folder, files, audit=audit, job=job,
                                        now=now, fsync=fsync)
            if result is not None:
                done.append(result)
    return done


def data_files(folder: Path) -> list[Path]:
    """The Parquet data files of a partition folder (never temporary dot-files), by name."""
    return sorted(p for p in folder.iterdir()
                  if p.name.endswith(".parquet") and not p.name.startswith(".") and p.is_file())


def recover_compactions(layout: Layout, *, audit: AuditLog | None = None, job: str = "compaction",
                        fsync: bool = True) -> int:
    """Finishes (target already in place) or abandons (not yet) every interrupted merge.

    Safe to call any number of times. Returns how many merges it finished. A finished merge is
    audited once, dated by its MANIFEST, if its entry had not been written yet."""
    base = layout.compaction_dir
    if not base.is_dir():
        return 0
    finished = 0
    for stage in sorted(base.iterdir()):
        manifest_path = stage / MANIFEST
        if not stage.is_dir():
            continue
        if not manifest_path.is_file():
            log.warning("abandoning merge %s: it had not committed; the original files are untouched", stage.name)
            shutil.rmtree(stage)
            continue
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        target = layout.root / manifest["target"]
        if not target.exists():
            # not renamed yet: the originals are all in place, so dropping the merged copy is safe
            # (or the partition was expired meanwhile, and nothing is left to do)
            log.warning("abandoning merge %s of %s: its file never reached the partition", stage.name,
                        manifest["table"])
            shutil.rmtree(stage)
            continue
        log.warning("finishing merge %s of %s/%s", stage.name, manifest["table"], target.parent.name)
        _finish(layout, stage, manifest, audit=audit, job=job, fsync=fsync)
        finished += 1
    return finished


def merge_files(layout: Layout, table: str, day: date, folder: Path, files: list[Path], *, tag: str = "",
                audit: AuditLog | None = None, job: str = "compaction", now: datetime,
                fsync: bool = True) -> Compaction | None:
    """Merges ``files`` of one partition into ``compacted~[<tag>~]<id>.parquet`` through the steps above
    (exactly once under any interruption, with `recover_compactions`); None when they cannot be merged.
    The caller holds the warehouse's maintenance lock."""
    return _compact_partition(layout, table, day, folder, files, audit=audit, job=job, now=now, fsync=fsync,
                              tag=tag)


def _compact_partition(layout: Layout, table: str, day: date, folder: Path, files: list[Path], *,
                       audit: AuditLog | None, job: str, now: datetime, fsync: bool,
                       tag: str = "") -> Compaction | None:
    ident = uuid.uuid4().hex
    stage = layout.compaction_dir / ident
    name = f"{COMPACTED_PREFIX}{tag + '~' if tag else ''}{ident}.parquet"
    target = folder / name
    try:
        expected = sum(pq.read_metadata(f).num_rows for f in files)
        bytes_before = sum(f.stat().st_size for f in files)
        merged = pa.concat_tables([pq.ParquetFile(f).read() for f in files], promote_options="default")
    except (pa.ArrowException, ValueError, OSError) as exc:  # Arrow raises OSError for a corrupt page
        log.warning("not compacting %s/%s: a file is unreadable or the files' columns do not merge (%s)",
                    table, folder.name, type(exc).__name__)
        return None
    try:
        if merged.num_rows != expected:
            log.error("not compacting %s/%s: read %d rows where the footers count %d; originals left as they are",
                      table, folder.name, merged.num_rows, expected)
            return None
        stage.mkdir(parents=True)
        staged = stage / name
        with open(staged, "wb") as f:
            pq.write_table(merged, f, compression=COMPRESSION)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        written = pq.read_metadata(staged).num_rows
        if written != expected:
            log.error("not compacting %s/%s: the merged file holds %d rows, not %d; originals left as they are",
                      table, folder.name, written, expected)
            shutil.rmtree(stage)
            return None
        manifest = {"table": table, "day": day.isoformat(), "target": str(target.relative_to(layout.root)),
                    "staged": name, "merged": [f.name for f in files], "rows": expected,
                    "bytes_before": bytes_before, "at": as_utc(now).isoformat()}
        replace_file(stage / MANIFEST, lambda f: f.write(json.dumps(manifest).encode()), fsync=fsync)
    except Exception:
        shutil.rmtree(stage, ignore_errors=True)  # not committed: nothing visible changed
        raise
    # committed: from here an interruption is finished by recover_compactions()
    try:
        os.replace(staged, target)
    except FileNotFoundError:
        log.warning("partition %s/%s vanished during its merge (expired?); abandoning", table, folder.name)
        shutil.rmtree(stage)
        return None
    if fsync:
        sync_dir(folder)
    return _finish(layout, stage, manifest, audit=audit, job=job, fsync=fsync)


def _finish(layout: Layout, stage: Path, manifest: dict[str, Any], *, audit: AuditLog | None, job: str,
            fsync: bool) -> Compaction:
    """Steps 4-5; idempotent."""
    target = layout.root / manifest["target"]
    folder = target.parent
    for name in manifest["merged"]:
        (folder / name).unlink(missing_ok=True)
    if fsync:
        sync_dir(folder)
    result = Compaction(table=manifest["table"], day=date.fromisoformat(manifest["day"]), path=target,
                        merged=tuple(manifest["merged"]), rows=int(manifest["rows"]),
                        bytes_before=int(manifest["bytes_before"]), bytes_after=target.stat().st_size)
    if audit is not None:
        audit.append([AuditEntry(at=datetime.fromisoformat(manifest["at"]), job=job, action="merge_files",
                                 table_name=result.table,
                                 partition=f"{PARTITION_KEY}={result.day.isoformat()}", rows=result.rows,
                                 bytes=result.bytes_after,
                                 detail=f"{len(result.merged)} files merged into 1; "
                                        f"{result.bytes_before} bytes before")],
                     kind=AUDIT_KIND, key=stage.name)
    shutil.rmtree(stage)
    log.info("compacted %s/%s: %d files into 1, %d rows", result.table, folder.name, len(result.merged), result.rows)
    return result


