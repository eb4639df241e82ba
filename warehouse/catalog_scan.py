"""What the catalog needs to know about the files under a folder, found at a cost in proportion to
what changed since the last look, not to how many files there are.

`FolderIndex` watches one folder of sub-folders (a table and its day partitions, or the audit trail
and its kinds). A look lists the folder itself, and lists again only the sub-folders whose
modification time moved (a file added, removed or renamed in or out moves it) or moved less than
`SETTLE_S` before the previous look (a change within the file system's timestamp granularity must
not be missed). Files are validated once each, by name, size and modification time: a new or
rewritten file has its footer read; one that is not readable Parquet, or lacks the required column,
is handed to ``quarantine``. The index keeps, per file, its schema's fingerprint (column names and
types), so the catalog can tell a new schema from more of the same.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SETTLE_S = 2.0
"""a folder modified less than this long before a look is listed again at the next one"""

VANISHED = "vanished"
"""check_parquet's problem for a file deleted (compacted, expired) between listing and reading"""
Fingerprint = tuple[tuple[str, str], ...]
"""a Parquet file's columns: (name, Arrow type) in order"""


@dataclass
class ScanCost:
    """What looks cost: folders listed and footers read (the work that could grow with the files)."""

    folders_listed: int = 0
    footers_read: int = 0


@dataclass
class _Folder:
    stamp: int
    """modification time (ns) when listed"""
    settled: bool
    """listed long enough after its last change that an unchanged stamp means unchanged content"""
    files: dict[str, tuple[int, int, Fingerprint]] = field(default_factory=dict)
    """name -> (size, mtime_ns, fingerprint) of its valid Parquet files"""


class FolderIndex:
    """The valid Parquet files of ``root/<sub-folder>/*.parquet`` whose sub-folder name ``accept`` takes."""

    def __init__(self, root: Path, accept: Callable[[str], bool], required: str | None,
                 quarantine: Callable[[Path, str], None], clock: Callable[[], float] = time.time) -> None:
        self.root = root
        self.accept = accept
        self.required = required
        self.quarantine = quarantine
        self.clock = clock
        self._root: _Folder | None = None
        self._folders: dict[str, _Folder] = {}

    def look(self, cost: ScanCost, *, full: bool = False) -> None:
        """Brings the index up to date (``full``: list every sub-folder, as on a first look)."""
        now = self.clock()
        root_stamp = _stamp(self.root)
        if root_stamp is None:
            self._root, self._folders = None, {}
            return
        if full or self._root is None or not self._root.settled or self._root.stamp != root_stamp:
            cost.folders_listed += 1
            names = {e.name for e in _scandir(self.root) if e.is_dir() and self.accept(e.name)}
            for gone in set(self._folders) - names:
                del self._folders[gone]
            for name in names - set(self._folders):
                self._folders[name] = _Folder(stamp=-1, settled=False)
            self._root = _Folder(root_stamp, now - root_stamp / 1e9 >= SETTLE_S)
        for name, folder in list(self._folders.items()):
            stamp = _stamp(self.root / name)
            if stamp is None:
                del self._folders[name]
            elif full or not folder.settled or folder.stamp != stamp:
                self._list(name, folder, stamp, now, cost)

    def files(self) -> int:
        return sum(len(f.files) for f in self._folders.values())

    def fingerprints(self) -> frozenset[Fingerprint]:
        return frozenset(fp for f in self._folders.values() for (_s, _m, fp) in f.files.values())

    def paths(self) -> list[Path]:
        return [self.root / name / file for name, f in sorted(self._folders.items()) for file in sorted(f.files)]

    def _list(self, name: str, folder: _Folder, stamp: int, now: float, cost: ScanCost) -> None:
        cost.folders_listed += 1
        path = self.root / name
        seen: dict[str, tuple[int, int, Fingerprint]] = {}
        for entry in _scandir(path):
            if not entry.name.endswith(".parquet") or entry.name.startswith("."):
                continue
            try:
                st = entry.stat()
            except FileNotFoundError:  # compacted or expired meanwhile
                continue
            known = folder.files.get(entry.name)
            if known is not None and known[:2] == (st.st_size, st.st_mtime_ns):
                seen[entry.name] = known
                continue
            cost.footers_read += 1
            problem, fingerprint = check_parquet(path / entry.name, self.required)
            if problem == VANISHED:
                continue
            if problem is not None:
                self.quarantine(path / entry.name, problem)
                continue
            assert fingerprint is not None
            seen[entry.name] = (st.st_size, st.st_mtime_ns, fingerprint)
        folder.files = seen
        folder.stamp = stamp
        folder.settled = now - stamp / 1e9 >= SETTLE_S


def check_parquet(path: Path, required: str | None) -> tuple[str | None, Fingerprint | None]:
    """(None, its columns) when ``path`` is readable Parquet (with column ``required``), else (the problem, None)."""
    try:
        schema = pq.read_schema(path)
    except FileNotFoundError:
        return VANISHED, None
    except (OSError, pa.ArrowException) as exc:
        return f"not a readable Parquet file ({type(exc).__name__})", None
    if required and required not in schema.names:
        return f"foreign Parquet file: no {required!r} column", None
    return None, tuple((f.name, str(f.type)) for f in schema)


def _stamp(path: Path) -> int | None:
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return st.st_mtime_ns


def _scandir(path: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as entries:
            return list(entries)
    except (FileNotFoundError, NotADirectoryError):
        return []
