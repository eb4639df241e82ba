"""Erasure in the warehouse's quarantine (``<root>/_quarantine/``): files the catalog moved aside
(corrupt, or not datamin's) are no view's business, but they may still hold a person's rows.

`erase_quarantine` looks at every quarantined file:

- readable Parquet: rows where any text column holds one of the subject's pseudonyms are removed
  (the file is rewritten atomically; a file left with no rows is deleted);
- unreadable (the reason it was quarantined may be that it is corrupt): nobody can tell whether it
  holds the person, so it is deleted -- when in doubt, drop it.

`withdraw_quarantine` does for a withdrawal of consent what the tables get: in the quarantined files of
a table (``_quarantine/<table>/…``), the consent-only identifier columns of the subject's rows are set
to null (rows kept); an unreadable file is deleted, as by erasure, since nobody can blank it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datamin.files import replace_file
from warehouse.layout import Layout


@dataclass(frozen=True)
class QuarantineErasure:
    """What erasure did in the quarantine. Holds no key and no pseudonym."""

    files_checked: int = 0
    files_rewritten: int = 0
    files_deleted: int = 0
    rows_removed: int = 0
    unreadable_deleted: int = 0
    rows_blanked: int = 0
    """rows whose consent-only identifiers were set to null (withdrawal)"""


def erase_quarantine(layout: Layout, pseudonyms: Iterable[str]) -> QuarantineErasure:
    """Removes the rows of ``pseudonyms`` from every quarantined file (see the module docstring)."""
    wanted = pa.array(sorted(set(pseudonyms)), pa.string())
    folder = layout.quarantine_dir
    if not folder.is_dir():
        return QuarantineErasure()
    checked = rewritten = deleted = rows = unreadable = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        checked += 1
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException):
            path.unlink(missing_ok=True)
            unreadable += 1
            deleted += 1
            continue
        if len(wanted) == 0:
            continue
        hit = pa.array([False] * table.num_rows, pa.bool_())
        for column in table.columns:
            if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
                hit = pc.or_(hit, pc.fill_null(pc.is_in(column, value_set=wanted), False))
        found = int(pc.sum(pc.cast(hit, pa.int64())).as_py() or 0)
        if not found:
            continue
        rows += found
        kept = table.filter(pc.invert(hit))
        if kept.num_rows == 0:
            path.unlink(missing_ok=True)
            deleted += 1
        else:
            replace_file(path, lambda f: pq.write_table(kept, f, compression="zstd"))  # noqa: B023 - called at once
            rewritten += 1
    if deleted:
        for sub in sorted((p for p in folder.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            if not any(sub.iterdir()):
                os.rmdir(sub)
    return QuarantineErasure(files_checked=checked, files_rewritten=rewritten, files_deleted=deleted,
                             rows_removed=rows, unreadable_deleted=unreadable)


def withdraw_quarantine(layout: Layout, pseudonyms: Iterable[str],
                        columns: Mapping[str, Sequence[str]]) -> QuarantineErasure:
    """Sets the ``columns[table]`` of the rows of ``pseudonyms`` to null in every quarantined file of a
    table in ``columns`` (see the module docstring); unreadable files there are deleted."""
    wanted = pa.array(sorted(set(pseudonyms)), pa.string())
    folder = layout.quarantine_dir
    if not folder.is_dir() or len(wanted) == 0:
        return QuarantineErasure()
    checked = rewritten = deleted = blanked = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        names = [c for c in columns.get(path.relative_to(folder).parts[0], ()) if c]
        if not names:
            continue
        checked += 1
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException):
            path.unlink(missing_ok=True)
            deleted += 1
            continue
        present = [c for c in names if c in table.column_names and _is_text(table.column(c).type)]
        hit = pa.array([False] * table.num_rows, pa.bool_())
        for name in present:
            hit = pc.or_(hit, pc.fill_null(pc.is_in(table.column(name), value_set=wanted), False))
        found = int(pc.sum(pc.cast(hit, pa.int64())).as_py() or 0)
        if not found:
            continue
        for name in present:
            column = table.column(name)
            index = table.column_names.index(name)
            table = table.set_column(index, table.field(index),
                                     pc.if_else(hit, pa.scalar(None, column.type), column))
        replace_file(path, lambda f: pq.write_table(table, f, compression="zstd"))  # noqa: B023 - called at once
        rewritten += 1
        blanked += found
    return QuarantineErasure(files_checked=checked, files_rewritten=rewritten, files_deleted=deleted,
                             unreadable_deleted=deleted, rows_blanked=blanked)


def _is_text(kind: pa.DataType) -> bool:
    return bool(pa.types.is_string(kind) or pa.types.is_large_string(kind))


def quarantined_files(layout: Layout) -> list[Path]:
    """Every file in the quarantine, for scans."""
    folder = layout.quarantine_dir
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
