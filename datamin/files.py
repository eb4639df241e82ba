"""Durable files, the few ways datamin writes them: a file replaced whole or not at all, fsync of a
directory after a rename, and a secret (a key) created exactly once even when several processes race
for it."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def sync_dir(path: Path) -> None:
    """fsync a directory, so that a rename or a new file in it survives a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_file(path: Path, write: Callable[[BinaryIO], object], *, fsync: bool = True) -> None:
    """Replaces ``path`` whole or not at all: ``write`` fills ``.<name>.<random>.tmp`` beside it, which is
    fsynced and renamed over ``path``, then the folder is fsynced (both only with ``fsync``). On any
    failure ``path`` is as it was and the temporary file is gone."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        sync_dir(path.parent)


def read_secret(path: Path, size: int) -> bytes:
    """The ``size`` random bytes in ``path``; FileNotFoundError when absent, OSError when damaged."""
    data = path.read_bytes()
    if len(data) != size:
        raise OSError(f"{path} is damaged: expected {size} bytes; restore it from backup")
    return data


def create_secret(path: Path, size: int) -> bytes:
    """The secret in ``path``, created (``size`` random bytes, mode 0600, folder 0700) if missing.

    Safe between processes: the bytes are written and fsynced under a temporary name, then hard-linked
    to ``path``, which fails if another process got there first — and then its secret is used."""
    with contextlib.suppress(FileNotFoundError):
        return read_secret(path, size)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o600)
        secret = secrets.token_bytes(size)
        os.write(fd, secret)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        try:
            os.link(temp, path)  # atomic "create if absent" with the full content
        except FileExistsError:
            return read_secret(path, size)
        sync_dir(path.parent)
        return secret
    finally:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
