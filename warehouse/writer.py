"""Exactly-once loading of Kafka offset ranges into day-partitioned Parquet files. File I/O only.

One flush covers the offsets ``first..last`` of one (topic, partition). It goes through these steps,
each durable (fsync) before the next:

1. every day's rows are written as Parquet (zstd) into ``_staging/<id>/``;
2. a MANIFEST (the target path of each staged file and the checkpoint ``last``) is written
   atomically (temp file + os.replace) into the staging folder: from here on the flush *will* happen;
3. each staged file is renamed into ``<table>/event_date=YYYY-MM-DD/<topic>~p<n>~o<first>-<last>.parquet``;
4. the checkpoint file of (topic, partition) is replaced atomically with ``last``;
5. the staging folder is removed.

``recover()`` finishes every staging folder that has a MANIFEST (renames are idempotent) and deletes
every one that has not. A process killed at any moment and restarted therefore ends with each offset
loaded exactly once, provided its consumer resumes at ``checkpoint() + 1``. An OSError (disk full)
before step 2 removes the staging folder and propagates: no file is visible and no checkpoint moves.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datamin.files import replace_file, sync_dir
from warehouse.errors import WarehouseError
from warehouse.layout import Layout

log = logging.getLogger(__name__)

MANIFEST = "MANIFEST"
COMPRESSION = "zstd"


@dataclass(frozen=True)
class Flush:
    """What one call of ``PartitionWriter.write`` loaded."""

    table: str
    topic: str
    partition: int
    first: int
    last: int
    rows: int
    files: tuple[Path, ...]


class PartitionWriter:
    """Writes offset ranges of Kafka partitions into a warehouse, exactly once per offset.

    One writer may serve many (topic, partition)s; two processes must never write the same
    (topic, partition) at once (the consumer group guarantees that)."""

    def __init__(self, layout: Layout, *, fsync: bool = True) -> None:
        self.layout = layout
        self._fsync = fsync

    # -- reading state ----------------------------------------------------------------------------

    def checkpoint(self, topic: str, partition: int) -> int | None:
        """The last offset of (topic, partition) loaded, or None when nothing has been loaded yet."""
        path = self.layout.checkpoint_file(topic, partition)
        try:
            text = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        try:
            return int(json.loads(text)["last"])
        except (ValueError, KeyError, TypeError):
            raise WarehouseError(f"checkpoint file {path} is corrupt; it was written atomically, so something "
                               "else changed it: restore it or delete it (the sink then reloads the topic "
                               "from its earliest offset, duplicating what is already loaded)") from None

    # -- writing ----------------------------------------------------------------------------------

    def write(self, table: str, topic: str, partition: int, first: int, last: int, rows: pa.Table,
              *, time_column: str = "time") -> list[Path]:
        """Loads ``rows`` (the decodable events of offsets first..last) and moves the checkpoint to ``last``.

        Returns the data files made visible (none when ``rows`` is empty: the checkpoint still moves,
        so offsets that held only undecodable values are not read again). A range already loaded
        (``last <= checkpoint``) is skipped and returns []. Raises ValueError for a range that
        overlaps the checkpoint partly, and OSError when the disk fails; then nothing is visible
        and the checkpoint has not moved."""
        if first > last or first < 0:
            raise ValueError(f"offset range {first}..{last} of {topic}[{partition}] is empty or negative")
        self.recover([(topic, partition)])  # a flush that failed after its MANIFEST counts as done
        done = self.checkpoint(topic, partition)
        if done is not None and last <= done:
            log.info("skipping %s[%d] offsets %d..%d: already loaded up to %d", topic, partition, first, last, done)
            return []
        if done is not None and first <= done:
            raise ValueError(f"offsets {first}..{last} of {topic}[{partition}] overlap the checkpoint {done}: "
                             "resume consuming at checkpoint + 1")
        if rows.num_rows == 0:
            self._write_checkpoint(topic, partition, last)
            return []

        name = self.layout.data_file_name(topic, partition, first, last)
        stage = self.layout.staging_dir / f"{topic}~p{partition}~{uuid.uuid4().hex}"
        try:
            stage.mkdir(parents=True)
            planned: list[tuple[str, str]] = []
            for i, (day, part) in enumerate(split_by_day(rows, time_column)):
                staged = stage / f"{i}.parquet"
                self._write_parquet(part, staged)
                target = self.layout.partition_dir(table, day) / name
                planned.append((staged.name, str(target.relative_to(self.layout.root))))
            self._sync_dir(stage)
            manifest = {"files": planned, "topic": topic, "partition": partition, "last": last}
            self._write_atomically(stage / MANIFEST, json.dumps(manifest).encode())
        except Exception:
            # not committed yet: a failed (or interrupted) flush leaves nothing behind
            shutil.rmtree(stage, ignore_errors=True)
            raise
        return self._complete(stage, manifest)

    def recover(self, partitions: Iterable[tuple[str, int]] | None = None) -> int:
        """Finishes or discards interrupted flushes (of the given (topic, partition)s, else of all).

        Safe to call any number of times, and before every assignment. Returns how many flushes
        were completed."""
        wanted = None if partitions is None else {f"{t}~p{p}~" for t, p in partitions}
        self._remove_stale_checkpoint_temps(partitions)
        staging = self.layout.staging_dir
        if not staging.is_dir():
            return 0
        completed = 0
        for stage in sorted(staging.iterdir()):
            if wanted is not None and not any(stage.name.startswith(w) for w in wanted):
                continue
            completed += self.recover_stage(stage)
        return completed

    def recover_stage(self, stage: Path) -> bool:
        """Finishes (it has a MANIFEST) or discards (it has not) one interrupted flush's staging folder;
        True when it finished one. The retention job calls it for a stage no sink touched for a day."""
        manifest_path = stage / MANIFEST
        if not manifest_path.is_file():
            log.warning("discarding interrupted flush %s (it had not committed)", stage.name)
            shutil.rmtree(stage, ignore_errors=True)
            return False
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        log.warning("completing interrupted flush %s of %s[%s] up to offset %s",
                    stage.name, manifest["topic"], manifest["partition"], manifest["last"])
        self._complete(stage, manifest)
        return True

    def _remove_stale_checkpoint_temps(self, partitions: Iterable[tuple[str, int]] | None) -> None:
        folder = self.layout.checkpoint_file("x", 0).parent
        if not folder.is_dir():
            return
        names = None if partitions is None else {self.layout.checkpoint_file(t, p).name for t, p in partitions}
        for tmp in folder.glob(".*.tmp"):
            if names is None or tmp.name[1:].rsplit(".", 2)[0] in names:
                tmp.unlink(missing_ok=True)

    # -- steps ------------------------------------------------------------------------------------

    def _complete(self, stage: Path, manifest: dict[str, Any]) -> list[Path]:
        """Steps 3-5: idempotent, so recover() may run them again after a crash part-way."""
        visible: list[Path] = []
        dirs: set[Path] = set()
        for staged_name, rel in manifest["files"]:
            target = self.layout.root / rel
            staged = stage / staged_name
            if staged.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staged, target)
                dirs.add(target.parent)
            elif not target.exists():
                # renamed earlier, then removed by compaction or expiry: nothing left to do
                log.info("file %s of flush %s is gone from its partition; nothing to redo", rel, stage.name)
                continue
            visible.append(target)
        for d in dirs:
            self._sync_dir(d)
        topic, partition, last = manifest["topic"], int(manifest["partition"]), int(manifest["last"])
        done = self.checkpoint(topic, partition)
        if done is None or last > done:
            self._write_checkpoint(topic, partition, last)
        shutil.rmtree(stage)
        return visible

    def _write_parquet(self, part: pa.Table, path: Path) -> None:
        with open(path, "wb") as f:
            pq.write_table(part, f, compression=COMPRESSION)
            f.flush()
            if self._fsync:
                os.fsync(f.fileno())

    def _write_checkpoint(self, topic: str, partition: int, last: int) -> None:
        path = self.layout.checkpoint_file(topic, partition)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._write_atomically(path, json.dumps({"last": last}).encode())

    def _write_atomically(self, path: Path, data: bytes) -> None:
        replace_file(path, lambda f: f.write(data), fsync=self._fsync)

    def _sync_dir(self, path: Path) -> None:
        if self._fsync:
            sync_dir(path)


def split_by_day(rows: pa.Table, time_column: str = "time") -> list[tuple[date, pa.Table]]:
    """``rows`` split by the UTC day of ``time_column``, days in order. Pure.

    Raises ValueError when the column is missing or holds nulls (every minimised event has a time)."""
    if time_column not in rows.column_names:
        raise ValueError(f"rows have no {time_column!r} column to partition by")
    times = rows.column(time_column)
    if times.null_count:
        raise ValueError(f"{times.null_count} row(s) have no {time_column!r}; cannot choose their day")
    if pa.types.is_timestamp(times.type) and times.type.tz not in (None, "UTC", "+00:00"):
        times = pc.cast(times, pa.timestamp(times.type.unit, tz="UTC"))
    days = pc.cast(times, pa.date32())
    unique = pc.unique(days).to_pylist()
    if len(unique) == 1:
        return [(unique[0], rows)]
    return [(day, rows.filter(pc.equal(days, pa.scalar(day, pa.date32())))) for day in sorted(unique)]
