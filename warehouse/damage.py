"""Damaged Parquet files, named: a corrupt, torn or foreign file in the warehouse becomes a
DamagedFileError (the file, its table, what to do) wherever a command reads it, never a DuckDB or
Arrow traceback.

    with named_damage(layout):            # DuckDB names the file in its message
        con.execute("SELECT … FROM read_parquet([...])")
    with named_damage(layout, path):      # Arrow often does not: the caller knows which file it read
        pq.read_table(path)               # (only around reads: any OSError in the block is blamed on path)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.errors import DamagedFileError
from warehouse.layout import Layout

_QUOTED_PARQUET = re.compile(r"""["']([^"'\n]+?\.parquet)["']""")
_DAMAGE = (duckdb.InvalidInputException, duckdb.IOException, pa.ArrowInvalid, pa.ArrowIOError, OSError)


def damaged_file_named(exc: BaseException) -> Path | None:
    """The absolute path of a Parquet file a DuckDB or Arrow error message names in quotes, if any."""
    for match in _QUOTED_PARQUET.finditer(str(exc)):
        path = Path(match.group(1))
        if path.is_absolute() and len(path.parents) > 3:
            return path
    return None


def damaged_file_in(exc: BaseException, layout: Layout) -> Path | None:
    """The warehouse file a DuckDB or Arrow error message names, if it names one under the root."""
    root = layout.root.resolve()
    for match in _QUOTED_PARQUET.finditer(str(exc)):
        path = Path(match.group(1))
        if path.is_absolute() and root in path.resolve().parents:
            return path
    return None


def table_of(path: Path, layout: Layout) -> str:
    """The table (first folder under the root) a warehouse file belongs to; "_audit" etc. for trails."""
    return path.resolve().relative_to(layout.root.resolve()).parts[0]


def damaged(path: Path, layout: Layout, problem: str) -> DamagedFileError:
    """The error for ``path``, with the fix an operator can follow."""
    table = table_of(path, layout)
    quarantine = layout.quarantine_dir / table
    return DamagedFileError(
        str(path), table, problem,
        f"move it out of the tables: mkdir -p '{quarantine}' && mv '{path}' '{quarantine}/' (the catalog does this "
        "itself at its next rebuild, which the running sink and the scheduler do; it is recorded in audit_log), "
        "restore the file from a backup if there is one, then run the command again (an analyst: tell whoever "
        "runs datamin)")


@contextmanager
def named_damage(layout: Layout, path: Path | None = None, *,
                 candidates: Iterable[Path] = ()) -> Iterator[None]:
    """Turns a DuckDB or Arrow error about a warehouse file into a DamagedFileError: the file named in
    the message, else ``path``, else the first of ``candidates`` (the files the block read) that cannot
    be read whole, when the error is one damage can cause. A missing file (expired or compacted
    meanwhile) is not damage and propagates."""
    try:
        yield
    except FileNotFoundError:
        raise
    except (*_DAMAGE, duckdb.Error) as exc:
        if isinstance(exc, PermissionError | duckdb.PermissionException):
            raise
        found = damaged_file_in(exc, layout) or path
        problem = damage_summary(exc)
        if found is None and may_be_damage(exc):
            probed = find_damaged_files(candidates)
            if probed is not None:
                found, problem = probed
        if found is None or not found.exists():
            raise  # not damage we can name, or expired/compacted away meanwhile (the caller's retry handles it)
        raise damaged(found, layout, problem) from exc


def may_be_damage(exc: BaseException) -> bool:
    """True for DuckDB errors a damaged file can cause (some, like a bad Thrift footer field, name no file)."""
    return type(exc) is duckdb.Error or isinstance(exc, (duckdb.InvalidInputException, duckdb.IOException,
                                                         duckdb.InternalException, duckdb.SerializationException))


def find_damaged(folders: Iterable[Path]) -> tuple[Path, str] | None:
    """The first Parquet file under ``folders`` that cannot be read whole, and why; None when all can.
    Reads every file (the diagnosis after a failure whose message names no file, not a routine check)."""
    return find_damaged_files(path for folder in folders for path in sorted(Path(folder).rglob("*.parquet")))


def find_damaged_files(paths: Iterable[Path]) -> tuple[Path, str] | None:
    """The first of ``paths`` that cannot be read whole, and why; None when all can."""
    for path in paths:
        try:
            pq.read_table(path)
        except FileNotFoundError:
            continue
        except (pa.ArrowException, OSError) as exc:
            return path, damage_summary(exc)
    return None


def damage_summary(exc: BaseException) -> str:
    """The first line of a dependency's error, the file's path replaced (the error names it already)."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return _QUOTED_PARQUET.sub("the file", first)
