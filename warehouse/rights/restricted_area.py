"""Restricted rows, physically apart: the rows of a restricted (or objecting) subject are moved out of the
analyst-readable table files into an area only datamin's own user reads, and back when the restriction
is lifted. Reading the Parquet files directly (the stock ``duckdb`` tool, pyarrow) cannot see them.

    <root>/_restricted/<table>/event_date=YYYY-MM-DD/<source file stem>~r<tag>.parquet    moved rows
    <root>/<table>/event_date=YYYY-MM-DD/restored~<tag>.parquet                           rows moved back

The area has the warehouse's own shape (`area_layout`), so the officer's commands treat it like the
tables: access exports read it, erasure deletes from it, expiry deletes its day folders on the tables'
schedule. It is 0700 (warehouse.permissions) whatever the analysts' group.

A move writes the moved rows to their destination first (whole or not at all), then rewrites the
source without them (atomically, as erasure does). A crash between the two leaves the rows in both
places; running the command again writes the same destination file (its name is derived from the
source file and the pseudonyms) and completes the source's rewrite, so nothing is duplicated.
Rows of the subject that arrive after the restriction (minimised just before it) are moved by
`sweep_restricted`, which the scheduler runs with the hourly erasure sweep.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datamin.config import TABLES
from datamin.files import replace_file
from warehouse.audit_trail import AuditLog
from warehouse.damage import named_damage
from warehouse.expiry import Expiry, expire
from warehouse.layout import Layout
from warehouse.rights.erasure import COMPRESSION, FileChange, remove_leftovers, rewrite_file
from warehouse.rights.subjects import files_holding, row_matches

AREA = "_restricted"


def area_layout(layout: Layout) -> Layout:
    """The restricted area, shaped like the warehouse: ``<root>/_restricted/<table>/event_date=…/``."""
    return Layout(layout.restricted_dir)


def sequester(layout: Layout, pseudonyms: Iterable[str], *, tables: Sequence[str] = TABLES,
              fsync: bool = True) -> list[FileChange]:
    """Moves every row whose ``subject`` is in ``pseudonyms`` from the tables into the area; returns the
    table files rewritten. Idempotent."""
    wanted = sorted(set(pseudonyms))
    tag = _tag(wanted)
    return _move(layout, area_layout(layout), tables, wanted, lambda source: f"{source.stem}~r{tag}.parquet",
                 fsync=fsync)


def release(layout: Layout, pseudonyms: Iterable[str], *, tables: Sequence[str] = TABLES,
            fsync: bool = True) -> list[FileChange]:
    """Moves every row whose ``subject`` is in ``pseudonyms`` from the area back into the tables (as
    ``restored~<tag>.parquet`` files in their day folders); returns the area files rewritten."""
    wanted = sorted(set(pseudonyms))
    return _move(area_layout(layout), layout, tables, wanted,
                 lambda source: f"restored~{_tag([source.name, *wanted])}.parquet", fsync=fsync)


def sweep_restricted(layout: Layout, pseudonyms: Iterable[str], *, fsync: bool = True) -> list[FileChange]:
    """Moves rows of restricted subjects that reached the tables after their restriction."""
    return sequester(layout, pseudonyms, fsync=fsync)


def expire_restricted(layout: Layout, retention_days: Mapping[str, int], *, now: datetime,
                      audit: AuditLog | None = None, job: str = "expiry") -> list[Expiry]:
    """Deletes the area's day folders past their table's retention, as expiry does the tables'."""
    return expire(area_layout(layout), retention_days, now=now, audit=audit, job=job)


def _move(source: Layout, target: Layout, tables: Sequence[str], wanted: Sequence[str],
          name_for: Callable[[Path], str], *, fsync: bool, rounds: int = 3) -> list[FileChange]:
    if not wanted:
        return []
    matches = dict.fromkeys(wanted)
    changes: list[FileChange] = []
    remove_leftovers(source, tables)
    seen: dict[Path, tuple[int, int]] = {}
    for _ in range(rounds):
        with named_damage(source):
            found = files_holding(source, tables, matches, seen=seen)
        if not found:
            break
        for table, files in sorted(found.items()):
            for path in sorted(files):
                destination = target.table_dir(table) / path.parent.name / name_for(path)

                def split(rows: pa.Table, table: str = table, destination: Path = destination) -> tuple[pa.Table, int]:
                    hit = row_matches(rows, table, matches)
                    moved = rows.filter(hit)
                    if moved.num_rows:
                        destination.parent.mkdir(parents=True, exist_ok=True)
                        replace_file(destination, lambda f: pq.write_table(moved, f, compression=COMPRESSION),
                                     fsync=fsync)
                    return rows.filter(pc.invert(hit)), moved.num_rows

                try:
                    with named_damage(source):  # not `path`: a failed write is no damage of the source
                        done = rewrite_file(path, split, fsync=fsync)
                except FileNotFoundError:
                    continue  # expired or compacted away meanwhile; the next scan looks again
                with contextlib.suppress(FileNotFoundError):
                    st = path.stat()
                    seen[path] = (st.st_ino, st.st_mtime_ns)
                if done is not None:
                    rows, before, after = done
                    changes.append(FileChange(table, os.path.relpath(path, source.root), rows, before, after))
    return changes


def _tag(parts: Sequence[str]) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:16]
