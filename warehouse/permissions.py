"""Who may read the warehouse on disk: datamin's own user, and the analysts' group when one is set.

    warehouse.analyst_group unset     folders 0700, files 0600: datamin's user alone
    warehouse.analyst_group = "g"     folders 0750 (setgid), files 0640, group g: g reads the tables

Only the table folders and the audit trail are for analysts. The warehouse's private folders (the
rights trail and restricted rows, quarantine, staging, checkpoints, trash, compaction) are 0700
whatever the group, so a member of the group cannot read restricted rows, corrupt files or the rights
trail even with the stock ``duckdb`` tool. Keys and the spool are 0700/0600 always (they live outside
the warehouse; see datamin.files.create_secret and producers.spool).

`apply_umask` makes everything a datamin command creates follow the table above (Parquet files, the
catalog, the audit trail); `prepare_warehouse` sets the root's group and setgid bit, so that every
folder and file created beneath it belongs to the analysts' group, and locks the private folders.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from datamin import rules
from datamin.config import Config

PRIVATE_FOLDERS = ("_rights", "_restricted", "_quarantine", "_staging", "_sink", "_trash", "_compaction")
"""Folders under the warehouse root that only datamin's own user (the officer's commands) reads."""


def umask_for(config: Config) -> int:
    """0o027 (files 0640, folders 0750) with an analysts' group, else 0o077 (0600/0700)."""
    return 0o027 if config.warehouse.analyst_group else 0o077


def apply_umask(config: Config) -> int:
    """Sets the process's umask for ``config``; returns the previous one."""
    return os.umask(umask_for(config))


def prepare_warehouse(root: Path, catalog: Path, group: str | None) -> int | None:
    """Creates the warehouse root for its readers (see the module) and locks its private folders; lets
    the group pass through (not list) the folders holding the root and the catalog when datamin owns
    them. Returns the group's id (None without a group). Idempotent and cheap: run before each catalog
    build."""
    gid = rules.group_id(group) if group else None
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    if gid is None:
        os.chmod(root, 0o700)
    else:
        os.chown(root, -1, gid)
        os.chmod(root, 0o2750)  # noqa: S103 - the analysts' group reads the tables, by design
        catalog.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
        for folder in {root.resolve().parent, catalog.resolve().parent}:
            _let_group_through(folder, gid)
    for name in PRIVATE_FOLDERS:
        folder = root / name
        folder.mkdir(mode=0o700, exist_ok=True)
        # setgid kept: a file staged here and renamed into a table folder is the group's already
        os.chmod(folder, 0o700 if gid is None else 0o2700)
    return gid


def give_to_group(path: Path, gid: int | None) -> None:
    """Gives a file datamin wrote to the analysts' group, readable by it (0640); 0600 without a group."""
    with contextlib.suppress(FileNotFoundError):
        if gid is None:
            os.chmod(path, 0o600)
        else:
            os.chown(path, -1, gid)
            os.chmod(path, 0o640)


def _let_group_through(folder: Path, gid: int) -> None:
    """A folder datamin's user owns is given to the group with pass-through only (g=x): members reach
    the warehouse and the catalog in it without listing it (the keys beside them stay 0700)."""
    st = folder.stat()
    if st.st_uid != os.getuid():
        return  # not ours: the operator decides (the README says how)
    if st.st_gid != gid:
        os.chown(folder, -1, gid)
        os.chmod(folder, (st.st_mode & 0o7707) | 0o010)  # noqa: S103 - g=x: pass through, not list
    elif not st.st_mode & 0o010:
        os.chmod(folder, (st.st_mode & 0o7777) | 0o010)  # noqa: S103 - g+x
