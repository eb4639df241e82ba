"""Continuous compaction: the sink's small files merged while their day is still open.

The sink writes a file per partition every few seconds (``warehouse.flush_seconds``), thousands a
day per table; daily compaction (`warehouse.compaction.compact`) merges them only once the day has
closed. `compact_open_days` runs every few minutes (the scheduler's ``compaction_open`` job) over
today's and yesterday's partitions (UTC of the injected ``now``) and keeps each at about one file
per hour:

- a sink file is *settled* once its modification time is ``min_age`` old (the sink never touches a
  file again once it is in its partition; the age only keeps the merge off files a reader may be
  listing right now); settled files are grouped by the UTC hour of that time;
- in an hour still open, its settled files are merged into one *piece*
  (``compacted~h<YYYYMMDDHH>~<id>.parquet``) once there are ``min_files`` of them, and its pieces
  with them once there are ``MAX_OPEN_PIECES``;
- once the hour is over (plus ``min_age``), its pieces and remaining files are merged into one.

So a table-day holds at most one file per closed hour, a few pieces of the open hour and the files
of the last ``min_age``. Each merge goes through `warehouse.compaction.merge_files` (staged file,
MANIFEST, rename, delete, `recover_compactions`): the same exactly-once steps as daily compaction,
recovered the same way, under the same maintenance lock.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from datamin.clock import as_utc
from warehouse.audit_trail import AuditLog
from warehouse.compaction import COMPACTED_PREFIX, Compaction, data_files, merge_files, recover_compactions
from warehouse.layout import Layout, parse_data_file_name

MIN_AGE = timedelta(minutes=2)
"""how old a sink file must be before it is merged"""
MAX_OPEN_PIECES = 6
"""pieces of an open hour that are merged into one with its next settled files"""
_PIECE = re.compile(rf"^{re.escape(COMPACTED_PREFIX)}h(\d{{10}})~[0-9a-f]+\.parquet$")


def compact_open_days(layout: Layout, *, now: datetime, min_age: timedelta = MIN_AGE, min_files: int = 2,
                      audit: AuditLog | None = None, job: str = "compaction_open",
                      fsync: bool = True) -> list[Compaction]:
    """Merges the settled small files of today's and yesterday's partitions, about one file per hour.

    Recovers interrupted merges first. Idempotent; the caller holds the maintenance lock."""
    if min_files < 2:
        raise ValueError(f"min_files={min_files}: merging fewer than 2 files changes nothing; use 2 or more")
    now = as_utc(now)
    recover_compactions(layout, audit=audit, job=job, fsync=fsync)
    days = {now.date(), (now - timedelta(days=1)).date()}
    done = []
    for table in layout.tables():
        for day, folder in layout.partitions(table):
            if day not in days:
                continue
            for hour, files in _merges(folder, now, min_age, min_files):
                result = merge_files(layout, table, day, folder, files, tag=f"h{hour:%Y%m%d%H}", audit=audit,
                                     job=job, now=now, fsync=fsync)
                if result is not None:
                    done.append(result)
    return done


def _merges(folder: Path, now: datetime, min_age: timedelta, min_files: int) -> list[tuple[datetime, list[Path]]]:
    """(hour, files to merge into one) for one partition folder."""
    settled: dict[datetime, list[Path]] = defaultdict(list)
    pieces: dict[datetime, list[Path]] = defaultdict(list)
    for path in data_files(folder):
        piece = _PIECE.match(path.name)
        if piece:
            pieces[datetime.strptime(piece.group(1), "%Y%m%d%H").replace(tzinfo=UTC)].append(path)
            continue
        if parse_data_file_name(path.name) is None:
            continue  # a closed day's merge or a file datamin did not write: left to daily compaction
        try:
            written = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        except FileNotFoundError:
            continue
        if written <= now - min_age:
            settled[written.replace(minute=0, second=0, microsecond=0)].append(path)
    plans = []
    for hour in sorted(set(settled) | set(pieces)):
        small, merged = settled.get(hour, []), pieces.get(hour, [])
        if now >= hour + timedelta(hours=1) + min_age:
            files = merged + small  # the hour is over: one file for it
            if len(files) >= 2:
                plans.append((hour, files))
        elif len(small) >= min_files:
            plans.append((hour, (merged if len(merged) >= MAX_OPEN_PIECES - 1 else []) + small))
    return plans
