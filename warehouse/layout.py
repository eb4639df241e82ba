"""Where the warehouse keeps what, on disk. Every part of warehouse/ finds its files through here.

    <root>/<table>/event_date=YYYY-MM-DD/<topic>~p<partition>~o<first>-<last>.parquet   data, immutable
    <root>/<table>/event_date=YYYY-MM-DD/compacted~<id>.parquet                          a closed day, merged
    <root>/_sink/checkpoints/<topic>~p<partition>                                        last offset loaded
    <root>/_staging/<id>/                                                                files being written
    <root>/_audit/<kind>/…parquet                                                        the audit trail
    <root>/_quarantine/…                                                                 corrupt or foreign files
    <root>/_trash/, <root>/_compaction/<id>/                                             expiry's and compaction's work
    <root>/_rights/requests/…, <root>/_rights/restricted.parquet, …                      the rights trail and lists
    <root>/_restricted/<table>/event_date=YYYY-MM-DD/…parquet                            restricted rows, apart
    <root>/_maintenance.lock                                                             one maintenance job at a time

A file is written under _staging and renamed into place, so a reader never sees half a file.
Folder names beginning with "_" are never tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from datamin.config import Config

PARTITION_KEY = "event_date"
_PARTITION_RE = re.compile(r"^event_date=(\d{4}-\d{2}-\d{2})$")
_DATA_RE = re.compile(r"^(?P<topic>[A-Za-z0-9._-]+)~p(?P<partition>\d+)~o(?P<first>\d+)-(?P<last>\d+)\.parquet$")


def layout_of(config: Config) -> Layout:
    """The warehouse layout of ``config``."""
    return Layout(Path(config.warehouse.root))


@dataclass(frozen=True)
class Layout:
    root: Path

    def table_dir(self, table: str) -> Path:
        return self.root / table

    def partition_dir(self, table: str, day: date) -> Path:
        return self.root / table / f"{PARTITION_KEY}={day.isoformat()}"

    def data_file_name(self, topic: str, partition: int, first: int, last: int) -> str:
        return f"{topic}~p{partition}~o{first:019d}-{last:019d}.parquet"

    def checkpoint_file(self, topic: str, partition: int) -> Path:
        return self.root / "_sink" / "checkpoints" / f"{topic}~p{partition}"

    @property
    def staging_dir(self) -> Path:
        return self.root / "_staging"

    @property
    def audit_dir(self) -> Path:
        return self.root / "_audit"

    @property
    def quarantine_dir(self) -> Path:
        return self.root / "_quarantine"

    @property
    def rights_dir(self) -> Path:
        """``<root>/_rights/``: the requests trail and the restricted-pseudonyms list."""
        return self.root / "_rights"

    @property
    def rights_requests_dir(self) -> Path:
        """The rights trail: ``<root>/_rights/requests/``."""
        return self.rights_dir / "requests"

    @property
    def restricted_file(self) -> Path:
        """The restricted-pseudonyms list the analysts' views filter by: ``<root>/_rights/restricted.parquet``."""
        return self.rights_dir / "restricted.parquet"

    @property
    def erased_sweep_file(self) -> Path:
        """Erased pseudonyms kept for the sweep of late rows: ``<root>/_rights/erased_sweep.parquet``."""
        return self.rights_dir / "erased_sweep.parquet"

    @property
    def maintenance_lock_file(self) -> Path:
        """The lock that keeps maintenance jobs (compaction, erasure) apart: ``<root>/_maintenance.lock``."""
        return self.root / "_maintenance.lock"

    def data_files(self, table: str) -> list[Path]:
        """Every visible data file of ``table`` (what its view reads), in path order."""
        folder = self.table_dir(table)
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.glob(f"{PARTITION_KEY}=*/*.parquet") if not p.name.startswith("."))

    def tables(self) -> list[str]:
        """Tables that have a folder (whether or not they hold rows yet)."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("_"))

    def partitions(self, table: str) -> list[tuple[date, Path]]:
        """The day partitions of a table, oldest first."""
        folder = self.table_dir(table)
        if not folder.is_dir():
            return []
        found = []
        for p in folder.iterdir():
            m = _PARTITION_RE.match(p.name)
            if m and p.is_dir():
                found.append((date.fromisoformat(m.group(1)), p))
        return sorted(found)

    def table_glob(self, table: str) -> str:
        """The glob a DuckDB view reads a table through."""
        return str(self.table_dir(table).resolve() / f"{PARTITION_KEY}=*" / "*.parquet")

    @property
    def restricted_dir(self) -> Path:
        """Where restricted subjects' rows are kept apart from the tables: ``<root>/_restricted/``, itself
        shaped like a warehouse (see warehouse.restricted_area)."""
        return self.root / "_restricted"

    @property
    def trash_dir(self) -> Path:
        """Where expiry moves a day folder (one atomic rename) before deleting it: ``<root>/_trash/``."""
        return self.root / "_trash"

    @property
    def compaction_dir(self) -> Path:
        """Where compaction stages its merged file and MANIFEST: ``<root>/_compaction/<id>/``.

        Kept apart from ``_staging`` because the sink's recovery owns (and discards) what is there."""
        return self.root / "_compaction"


def parse_data_file_name(name: str) -> tuple[str, int, int, int] | None:
    """(topic, partition, first offset, last offset) of a sink data file name, else None."""
    m = _DATA_RE.match(name)
    if not m:
        return None
    return m.group("topic"), int(m.group("partition")), int(m.group("first")), int(m.group("last"))
