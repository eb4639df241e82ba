"""Who a subject is in the warehouse: their pseudonyms in every key period, a keyed hash to find their
requests again, and the data files that hold their rows. File I/O and DuckDB only; no Kafka.

A subject key, made canonical by `datamin.identity` (``user:<id>`` or ``visitor:<id>``, one
normalisation rule; a bare key is a user id), becomes the ``subject`` column as
``pseudonymise(subject_key, key_of_period(event_time), "subject")``. Keys are per period and shared
by all subjects, so the warehouse holds one pseudonym per (subject, period): `subject_pseudonyms`
recomputes all of them from the key files present. A period whose key was deleted (crypto-shredded)
has no pseudonym left to find, and its rows are no longer linkable to anyone.

Nothing here stores a subject key. The keyed hash the rights trail and the erased-subjects topic are
keyed by is `datamin.keys.subject_hash` (re-exported here with `key_store`).
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Final

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from datamin.clock import as_utc
from datamin.config import Config
from datamin.keys import KeyStore, key_store, known_subject_hash, pseudonymise, require_subject_key, subject_hash
from warehouse.arrow import time_column
from warehouse.damage import named_damage
from warehouse.layout import Layout

SUBJECT_COLUMN: Final = "subject"
_ROTATION_OF: Final = (
    (re.compile(r"^\d{4}-\d{2}-\d{2}$"), "daily"),
    (re.compile(r"^\d{4}-W\d{2}$"), "weekly"),
    (re.compile(r"^\d{4}-\d{2}$"), "monthly"),
)


class Subject:
    """A person as one rights command sees them, resolved once: the subject key (checked not empty), its
    pseudonym in every key period present, and its keyed hash (computed on first use). Never printed."""

    def __init__(self, config: Config, subject_key: str) -> None:
        self.key = require_subject_key(subject_key)
        self.pseudonyms = subject_pseudonyms(key_store(config), self.key)
        """``{period: pseudonym}`` for every period that has a key file, oldest first"""
        self._config = config

    @functools.cached_property
    def hash(self) -> str:
        """`datamin.keys.subject_hash` of the key: what the rights trail and erased-subjects topic know."""
        return subject_hash(self._config, self.key)

    def __repr__(self) -> str:
        return f"Subject(<key hidden>, {len(self.pseudonyms)} pseudonym(s))"


def resolve_subject(config: Config, subject: str | Subject) -> Subject:
    """``subject`` itself if already resolved, else the `Subject` of that subject key."""
    return subject if isinstance(subject, Subject) else Subject(config, subject)


def subject_pseudonyms(keys: KeyStore, subject_key: str) -> dict[str, str]:
    """``{period: pseudonym}`` of ``subject_key`` for every period that has a key file, oldest first.

    Periods of another rotation than ``keys``' own (the rotation was changed) are included too. The
    privacy_request rows of requests recorded on the privacy-requests topic name the subject by its
    keyed hash, so the pseudonyms of that hash are included as well, as ``{period}/request``.
    Never creates a key. Raises ValueError for an empty subject key."""
    subject_key = require_subject_key(subject_key)  # canonical: user:<id> / visitor:<id>
    hashed = known_subject_hash(keys.directory, subject_key)
    stores: dict[str, KeyStore] = {keys.rotation: keys}
    found: dict[str, str] = {}
    for period in keys.periods():
        rotation = next((r for pattern, r in _ROTATION_OF if pattern.match(period)), None)
        if rotation is None:
            continue
        store = stores.setdefault(rotation, KeyStore(keys.directory, rotation))
        try:
            key = store.key_for(period, create=False)
        except (OSError, ValueError):
            continue  # deleted meanwhile (expiry of keys) or damaged: nothing to recompute
        pseudonym = pseudonymise(subject_key, key, SUBJECT_COLUMN)
        if pseudonym is not None:
            found[period] = pseudonym
        of_hash = pseudonymise(hashed, key, SUBJECT_COLUMN) if hashed else None
        if of_hash is not None:
            found[f"{period}/request"] = of_hash
    return found




def files_holding(layout: Layout, tables: Sequence[str], pseudonyms: Mapping[str, datetime | None],
                  *, attempts: int = 3, seen: dict[Path, tuple[int, int]] | None = None) -> dict[str, dict[Path, int]]:
    """``{table: {file: rows}}`` of the files holding rows of ``pseudonyms``: ``{pseudonym: cutoff}``,
    where a row matches when its ``subject`` is the pseudonym and, if the cutoff is not None, its
    time (``time``; ``received`` for privacy_request) is at or before the cutoff.

    Reads only those two columns of each file (DuckDB). A file that vanishes during the scan
    (expiry, compaction) makes the scan start again, at most ``attempts`` times, then the error
    propagates.

    With ``seen`` ({file: (inode, mtime_ns)}), files whose inode and mtime are as recorded there are
    skipped, and every file scanned is recorded: a second call looks only at files added or replaced
    since the first (what the sink or compaction wrote meanwhile)."""
    result: dict[str, dict[Path, int]] = {}
    if not pseudonyms:
        return result
    keys = sorted(pseudonyms)
    cutoffs = [pseudonyms[k] for k in keys]
    params: dict[str, object] = {"pseudonyms": keys, "cutoffs": [None if c is None else as_utc(c) for c in cutoffs]}
    for table in tables:
        when = time_column(table)  # fixed identifiers from code, never from input
        sql = ("SELECT t.filename, count(*) FROM read_parquet($files, filename = true, hive_partitioning = false, "  # noqa: S608
               "union_by_name = true) AS t JOIN (SELECT unnest($pseudonyms) AS pseudonym, unnest($cutoffs) AS cutoff) "
               f"AS s ON t.{SUBJECT_COLUMN} = s.pseudonym WHERE s.cutoff IS NULL OR t.{when} <= s.cutoff "
               "GROUP BY t.filename")
        for attempt in range(attempts):
            files = layout.data_files(table)
            stamps: dict[Path, tuple[int, int]] = {}
            if seen is not None:
                for f in files:
                    with contextlib.suppress(FileNotFoundError):
                        st = f.stat()
                        stamps[f] = (st.st_ino, st.st_mtime_ns)
                files = [f for f in files if f in stamps and seen.get(f) != stamps[f]]
            if not files:
                break
            try:
                with named_damage(layout, candidates=files), duckdb.connect() as con:  # damage named, with the fix
                    rows = con.execute(sql, {**params, "files": [str(f) for f in files]}).fetchall()
            except duckdb.IOException:
                if attempt == attempts - 1:
                    raise
                continue
            if rows:
                result[table] = {Path(name): int(count) for name, count in rows}
            if seen is not None:
                seen.update(stamps)
            break
    return result


def row_matches(rows: pa.Table, table: str, pseudonyms: Mapping[str, datetime | None]) -> pa.ChunkedArray:
    """A boolean per row of ``rows`` (a ``table`` file): the same match as `files_holding`, in Arrow."""
    keys = sorted(pseudonyms)
    index = pc.index_in(rows.column(SUBJECT_COLUMN), value_set=pa.array(keys, pa.string()))
    hit = pc.is_valid(index)
    if all(pseudonyms[k] is None for k in keys):
        return hit
    cutoffs = pa.array([pseudonyms[k] for k in keys], pa.timestamp("us", tz="UTC"))
    per_row = pc.take(cutoffs, index)
    times = pc.cast(rows.column(time_column(table)), pa.timestamp("us", tz="UTC"))
    in_time = pc.or_kleene(pc.is_null(per_row), pc.less_equal(times, per_row))
    return pc.fill_null(pc.and_kleene(hit, in_time), False)
