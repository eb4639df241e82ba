"""One lock for the jobs that rewrite or delete warehouse files: expiry, compaction, erasure,
withdrawal and the sweep of erased subjects' late rows. They run in different processes (the
scheduler, `datamin rights`), so the lock is a file lock (flock) on <root>/_maintenance.lock:
compaction can then never merge a file that an erasure is rewriting and so resurrect its rows.
The sink does not take it: it only adds new files, which every job already tolerates."""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from warehouse.layout import Layout

_local = threading.local()


@contextmanager
def maintenance_lock(layout: Layout) -> Iterator[None]:
    """Holds the warehouse's maintenance lock; re-entrant within a thread, blocking across processes."""
    depth = getattr(_local, "depth", 0)
    if depth:
        _local.depth = depth + 1
        try:
            yield
        finally:
            _local.depth -= 1
        return
    layout.root.mkdir(parents=True, exist_ok=True)
    fd = os.open(layout.maintenance_lock_file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        _local.depth = 1
        try:
            yield
        finally:
            _local.depth = 0
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
