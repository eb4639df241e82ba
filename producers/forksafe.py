"""What makes `EventProducer` safe to create before a fork (gunicorn --preload, uWSGI, multiprocessing).

A fork copies the process's memory but only the forking thread: the child has the producer's queue,
spool handle and Kafka client, but no sender thread, so whatever it published would wait for ever.
After a fork (``os.register_at_fork``, and a pid check in ``publish`` for servers that fork without
running Python's hooks) the child starts afresh: a new queue, its own spool folder, its own Kafka
client and sender thread. The events queued before the fork stay the parent's, which sends them: the
child discards its copies (never sent twice) and the parent keeps its own (never lost).

What the child inherited is made harmless, never closed: the parent's Kafka client shares its
sockets with the parent (closing it in the child would shut the parent's connections down), and the
spool's lock and segment files share their open file descriptions with the parent (unlocking or
flushing them would release the parent's lock or write into its segments); those descriptors are
pointed at /dev/null instead.
"""

from __future__ import annotations

import atexit
import logging
import os
import weakref
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

_restarts: weakref.WeakKeyDictionary[Any, Callable[[], None]] = weakref.WeakKeyDictionary()
_abandoned: list[Any] = []
"""inherited Kafka clients: kept referenced so that they are never finalised (closed) in the child"""


def watch(producer: Any, restart: Callable[[], None]) -> None:
    """Registers ``restart`` (re-initialises ``producer`` in a new process) to run after a fork."""
    _restarts[producer] = restart


def restart_in_child(producer: Any) -> None:
    """Gives ``producer`` a fresh queue, spool, Kafka client and sender in this (forked) process."""
    restart = _restarts.get(producer)
    if restart is None or getattr(producer, "_closed", False):
        return
    _disarm_kafka(getattr(producer, "_kafka", None))
    _disarm_spool(getattr(producer, "_spool", None))
    atexit.unregister(producer._at_exit)
    restart()
    log.debug("datamin producer: restarted after a fork in process %d", os.getpid())


def _after_fork_in_child() -> None:
    for producer in list(_restarts.keys()):
        try:
            restart_in_child(producer)
        except Exception:  # noqa: BLE001 - a child must start even if this failed; publish() checks again
            log.exception("datamin producer: could not restart after a fork")


def _disarm_kafka(client: Any) -> None:
    """The inherited client's sockets are the parent's: never close them from here (no atexit close, no
    finaliser)."""
    if client is None:
        return
    unregister = getattr(client, "_unregister_cleanup", None)
    if callable(unregister):
        unregister()
    try:
        client._closed = True  # kafka-python's close() and __del__ then do nothing
    except AttributeError:  # pragma: no cover - a client without that flag
        pass
    _abandoned.append(client)


def _disarm_spool(spool: Any) -> None:
    """Points the inherited spool's descriptors at /dev/null: the lock stays the parent's, and nothing
    buffered in the child's copy can reach the parent's segment files."""
    if spool is None:
        return
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        for name in ("_writer", "_lock"):
            f = getattr(spool, name, None)
            if f is not None and not f.closed:
                os.dup2(devnull, f.fileno())
    finally:
        os.close(devnull)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
