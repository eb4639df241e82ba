"""Rules that both configuration validation and the code that uses a value apply, written once so that
`datamin config` refuses exactly what would fail at run time.

Each check raises ValueError with the problem; datamin.config turns it into a ConfigError naming the
key and the fix, and the run-time caller (e.g. the URL transform) raises it as it is.
"""

from __future__ import annotations

import grp
from collections.abc import Collection
from pathlib import Path


def query_allowlist(entries: Collection[str]) -> tuple[str, ...]:
    """The entries of a query-parameter allow-list as a tuple; ValueError for a bare string, an empty or
    non-string entry, or ``"*"`` alone (which would keep every parameter, e-mail addresses and tokens
    included)."""
    if isinstance(entries, str):
        raise ValueError("must be a list of parameter names such as "
                         f"('utm_*',), not the single string {entries!r}")
    out = tuple(entries)
    for entry in out:
        if not isinstance(entry, str) or not entry.strip().strip("*"):
            raise ValueError(f"entry {entry!r} is not usable: give a parameter name "
                             "('ref') or a name prefix ending in '*' ('utm_*'); '*' alone would keep "
                             "every parameter")
    return out


def folder_path(value: str) -> Path:
    """A folder datamin creates or uses; ValueError when empty (it would be the working directory),
    holding a NUL byte, or naming an existing file that is not a folder."""
    if not value.strip():
        raise ValueError("is empty, which would put the files into whatever directory datamin is started in")
    if "\0" in value:
        raise ValueError("contains a NUL byte")
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{value!r} exists and is not a folder")
    return path


def file_path(value: str) -> Path:
    """A file datamin creates or replaces; ValueError when empty, holding a NUL byte, naming a folder,
    or when its parent exists and is not a folder."""
    if not value.strip():
        raise ValueError("is empty")
    if "\0" in value:
        raise ValueError("contains a NUL byte")
    path = Path(value)
    if path.is_dir():
        raise ValueError(f"{value!r} is a folder, not a file")
    parent = path.parent
    if parent.exists() and not parent.is_dir():
        raise ValueError(f"the parent of {value!r} is not a folder")
    return path


def inside(path: Path, folder: Path) -> bool:
    """True when ``path`` is ``folder`` or lies under it (both resolved)."""
    p, f = path.resolve(), folder.resolve()
    return p == f or f in p.parents


def group_id(group: str) -> int:
    """The id of a Unix group given by name or number; ValueError when there is no such group."""
    value = group.strip()
    if not value:
        raise ValueError("is empty")
    if value.isdigit():
        try:
            return grp.getgrgid(int(value)).gr_gid
        except (KeyError, OverflowError):
            raise ValueError(f"there is no group with id {value}") from None
    try:
        return grp.getgrnam(value).gr_gid
    except KeyError:
        raise ValueError(f"there is no group named {value!r} on this machine") from None
