"""Restriction of processing (and objection): the subject's stored rows are moved out of the
analyst-readable files until lifted, without deleting them (warehouse.rights.restricted_area).

    <root>/_rights/restricted.parquet      one column, ``subject``: the restricted pseudonyms

The list holds pseudonyms only (all key periods' pseudonyms of each restricted subject), never a
subject key, and nothing says which pseudonyms belong together. It is replaced atomically
(temp file, fsync, ``os.replace``). It says whose rows the hourly sweep moves when they arrive late
(minimised before the restriction); the views do not read it (analysts cannot: ``_rights`` is private).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from datamin.config import Config
from datamin.files import replace_file
from warehouse.layout import Layout, layout_of
from warehouse.rights.restricted_area import release, sequester
from warehouse.rights.subjects import SUBJECT_COLUMN, Subject, resolve_subject

_SCHEMA = pa.schema([pa.field(SUBJECT_COLUMN, pa.string(), nullable=False)])


def restricted_path(layout: Layout) -> Path:
    """``<root>/_rights/restricted.parquet``."""
    return layout.restricted_file


def read_restricted(layout: Layout) -> set[str]:
    """The restricted pseudonyms (empty when there is no list)."""
    path = restricted_path(layout)
    if not path.exists():
        return set()
    return set(pq.read_table(path, columns=[SUBJECT_COLUMN]).column(0).to_pylist())


def _write(layout: Layout, pseudonyms: Iterable[str]) -> None:
    table = pa.Table.from_pylist([{SUBJECT_COLUMN: p} for p in sorted(set(pseudonyms))], schema=_SCHEMA)
    write_atomically(restricted_path(layout), table)


def add_restricted(layout: Layout, pseudonyms: Iterable[str]) -> int:
    """Adds ``pseudonyms`` to the list; returns how many were not on it yet."""
    current = read_restricted(layout)
    new = set(pseudonyms) - current
    if new or not restricted_path(layout).exists():
        _write(layout, current | new)
    return len(new)


def remove_restricted(layout: Layout, pseudonyms: Iterable[str]) -> int:
    """Takes ``pseudonyms`` off the list; returns how many were on it."""
    current = read_restricted(layout)
    gone = current & set(pseudonyms)
    if gone:
        _write(layout, current - gone)
    return len(gone)


def restrict(config: Config, subject_key: str | Subject) -> int:
    """Hides the subject's stored rows (every key period's pseudonym) from analysts until `lift`.
    Returns how many pseudonyms were added (0: already restricted, or no key period yet). Idempotent.

    Only periods with a key file are covered: rows of a later period do not exist yet, and the
    processor keeps no identifiers for a restricted subject from the request on."""
    pseudonyms = resolve_subject(config, subject_key).pseudonyms
    layout = layout_of(config)
    added = add_restricted(layout, pseudonyms.values())
    sequester(layout, pseudonyms.values())  # out of the analyst-readable files (also when re-run after a crash)
    return added


def lift(config: Config, subject_key: str | Subject) -> int:
    """Ends a restriction or objection: the rows are visible again. Returns how many pseudonyms were
    taken off the list (0: the subject was not restricted). Idempotent."""
    pseudonyms = resolve_subject(config, subject_key).pseudonyms
    layout = layout_of(config)
    removed = remove_restricted(layout, pseudonyms.values())  # first: the sweep must not move them back
    release(layout, pseudonyms.values())
    return removed


def write_atomically(path: Path, table: pa.Table) -> None:
    """Writes ``table`` as Parquet to ``path``, whole or not at all (``datamin.files.replace_file``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_file(path, lambda f: pq.write_table(table, f))
