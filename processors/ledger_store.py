"""Where a consent ledger keeps its subjects: a dict in memory, bounded, spilling to SQLite past it.

`SubjectStore` maps a subject key to its packed entry (see `processors.ledger`). Up to ``capacity``
subjects live in a dict kept in least-recently-used order; past that, the least recently used eighth
is written in one transaction to an SQLite database and dropped from memory. A subject read again is
moved back (and removed from the database), so each key lives in exactly one of the two places.

The database is SQLite's private temporary database (``sqlite3.connect("")``): a file SQLite
unlinks as soon as it opens it (in ``SQLITE_TMPDIR``, else /var/tmp or /tmp), so nothing is left
behind by a killed process, and its page cache is bounded (``CACHE_KIB``). Deleted rows are
overwritten with zeros (``secure_delete``, whatever SQLite's build defaults to): once SQLite writes the
page back, a subject forgotten, expired or read back into memory leaves no copy of its key in the file.
It is a cache of the consent topic, never a source of truth: a restarted processor rebuilds it from
the topic.

Not thread-safe: one thread uses a store at a time (the restore thread, then the processor loop).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from itertools import islice

Entry = int | tuple[int | None, int | None, bool, int | None]
"""a subject's packed state: its choice alone (an int), or (choice, restriction, ever restricted, erasure)"""

CACHE_KIB = 2048
"""SQLite's page cache per spilled store (KiB): what a spilled store costs in memory besides the dict"""
_SCHEMA = ("CREATE TABLE subjects (key TEXT PRIMARY KEY, choice INTEGER, restriction INTEGER, "
           "ever INTEGER NOT NULL, erasure INTEGER) WITHOUT ROWID")


class SubjectStore:
    """Subject key -> `Entry`, at most ``capacity`` of them in memory (None: no bound, never spills)."""

    def __init__(self, capacity: int | None = None) -> None:
        if capacity is not None and capacity < 1:
            raise ValueError(f"capacity={capacity}: keep at least one subject in memory")
        self.capacity = capacity
        self._mem: dict[str, Entry] = {}
        self._db: sqlite3.Connection | None = None
        self._spilled = 0
        """how many subjects are in the database (none of them also in memory)"""

    def __len__(self) -> int:
        return len(self._mem) + self._spilled

    @property
    def in_memory(self) -> int:
        return len(self._mem)

    @property
    def spilled(self) -> int:
        return self._spilled

    def keys(self) -> Iterator[str]:
        yield from list(self._mem)
        if self._db is not None and self._spilled:
            for (key,) in self._db.execute("SELECT key FROM subjects"):
                yield key

    def get(self, key: str) -> Entry | None:
        """The subject's entry (now the most recently used), or None when unknown."""
        mem = self._mem
        entry = mem.pop(key, None)
        if entry is not None:
            mem[key] = entry
            return entry
        if not self._spilled:
            return None
        assert self._db is not None
        row = self._db.execute("SELECT choice, restriction, ever, erasure FROM subjects WHERE key = ?",
                               (key,)).fetchone()
        if row is None:
            return None
        self._db.execute("DELETE FROM subjects WHERE key = ?", (key,))
        self._spilled -= 1
        entry = _entry(row[0], row[1], bool(row[2]), row[3])
        self._remember(key, entry)
        return entry

    def put(self, key: str, entry: Entry | None) -> None:
        """Sets the subject's entry; None forgets the subject."""
        mem = self._mem
        if entry is None:
            if mem.pop(key, None) is None and self._spilled:
                assert self._db is not None
                self._spilled -= self._db.execute("DELETE FROM subjects WHERE key = ?", (key,)).rowcount
            return
        mem.pop(key, None)
        self._remember(key, entry)

    def remove_where(self, keep_in_memory: Callable[[Entry], bool], drop_sql: str,
                     params: tuple[int, ...]) -> int:
        """Forgets every subject for which ``keep_in_memory(entry)`` is False (in memory) or ``drop_sql``
        (a WHERE clause over choice, restriction, ever, erasure) is true (spilled); returns how many."""
        gone = [key for key, entry in self._mem.items() if not keep_in_memory(entry)]
        for key in gone:
            del self._mem[key]
        dropped = 0
        if self._db is not None and self._spilled:
            dropped = self._db.execute(f"DELETE FROM subjects WHERE {drop_sql}", params).rowcount  # noqa: S608
            self._spilled -= dropped
        return len(gone) + dropped

    def close(self) -> None:
        """Frees the database (its file is already unlinked)."""
        if self._db is not None:
            self._db.close()
            self._db = None
            self._spilled = 0

    def _remember(self, key: str, entry: Entry) -> None:
        self._mem[key] = entry
        if self.capacity is not None and len(self._mem) > self.capacity:
            self._spill(max(1, self.capacity // 8))

    def _spill(self, count: int) -> None:
        """Moves the ``count`` least recently used subjects to the database."""
        db = self._db or self._open()
        oldest = list(islice(self._mem, count))
        rows: list[tuple[str, int | None, int | None, int, int | None]] = []
        for key in oldest:
            entry = self._mem.pop(key)
            if type(entry) is int:
                rows.append((key, entry, None, 0, None))
            else:
                assert isinstance(entry, tuple)
                choice, restriction, ever, erasure = entry
                rows.append((key, choice, restriction, int(ever), erasure))
        db.execute("BEGIN")
        db.executemany("INSERT OR REPLACE INTO subjects VALUES (?, ?, ?, ?, ?)", rows)
        db.execute("COMMIT")
        self._spilled += len(rows)

    def _open(self) -> sqlite3.Connection:
        # "": SQLite's private temporary database, unlinked on open; autocommit, explicit BEGIN for batches
        db = sqlite3.connect("", isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode = OFF")
        db.execute("PRAGMA synchronous = OFF")
        db.execute("PRAGMA secure_delete = ON")
        db.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        db.execute(_SCHEMA)
        self._db = db
        return db


def _entry(choice: int | None, restriction: int | None, ever: bool, erasure: int | None) -> Entry:
    if restriction is None and erasure is None and not ever and choice is not None:
        return choice
    return (choice, restriction, ever, erasure)
