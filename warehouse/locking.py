"""One lock for the jobs that rewrite or delete warehouse files: expiry, compaction, erasure,
withdrawal and the sweep of erased subjects' late rows. They run in different processes (the
scheduler, `datamin rights`), so the lock is a file lock (flock) on <root>/_maintenance.lock:
compaction can then never merge a file that an erasure is rewriting and so resurrect its rows.
The sink does not take it: it only adds new files, which every job already tolerates.

Every running sink holds a *shared* lock on <root>/_sink/running.lock (`sink_running`), so that a
restore of a backup over the warehouse can tell that a sink is running and refuse
(`exclusive_if_no_sink`)."""

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


def _sink_lock_path(layout: Layout) -> str:
    folder = layout.root / "_sink"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / "running.lock")


@contextmanager
def sink_running(layout: Layout) -> Iterator[None]:
    """Held by a sink while it runs (shared: several sink processes may serve one warehouse)."""
    fd = os.open(_sink_lock_path(layout), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


@contextmanager
def exclusive_if_no_sink(layout: Layout) -> Iterator[bool]:
    """Yields True while holding the sink lock exclusively (no sink runs, and none can start on this
    warehouse meanwhile), or False at once when a sink holds it."""
    fd = os.open(_sink_lock_path(layout), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
