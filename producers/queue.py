"""The bounded queue between the callers of `EventProducer` and its sender thread, and what goes on it."""

from __future__ import annotations

import collections
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple


class Bytes(NamedTuple):
    """An already-encoded message (``publish_bytes``, and what the agent takes): sent as it is."""

    topic: str
    key: bytes | None
    value: bytes


@dataclass
class Control:
    kind: str  # "flush" or "stop"
    deadline: float
    done: threading.Event


Later = tuple[str, Callable[..., dict[str, Any]], tuple[Any, ...]]
"""(event type, build, args): a record the sender builds with ``build(*args)`` (``publish_later``)"""
Item = tuple[str, dict[str, Any]] | Later | Bytes | Control
Message = tuple[str, bytes | None, bytes]
"""(topic, key, value) of an encoded message"""

SENDER_BATCH = 1000
"""items the sender takes from the queue at once (between two looks at failures, the replay and stats)"""


class EventQueue:
    """A bounded FIFO between the callers and the sender, like ``queue.Queue`` but cheaper on both sides:
    a put takes one plain lock and wakes the sender only when it sleeps, and the sender takes everything
    waiting (up to a batch) under one acquisition instead of one get per event.

    Linger: woken by the first event after a pause, the taker waits ``linger`` seconds more for the
    events that follow it, and puts in that time do not wake it (unless a flush or stop arrives or
    ``wake_at`` items are waiting). At web pacing (an event every few milliseconds) the sender then
    wakes once per batch rather than once per event: the CPU a request costs its process stays small."""

    def __init__(self, maxsize: int, *, linger: float = 0.0, wake_at: int = 500) -> None:
        self.maxsize = maxsize
        self.linger = linger
        self.wake_at = wake_at
        self._items: collections.deque[Item] = collections.deque()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._taker_waits = False
        self._lingering = False
        self._putters = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: Item, timeout: float | None = 0.0) -> None:
        """Appends ``item``; when full, waits up to ``timeout`` seconds (None: for ever, 0: not at all)
        for room, then raises ``queue.Full``."""
        with self._lock:
            if len(self._items) >= self.maxsize:
                self._wait_for_room(timeout)
            self._items.append(item)
            if self._taker_waits and (not self._lingering or isinstance(item, Control)
                                      or len(self._items) >= self.wake_at):
                self._not_empty.notify()

    def put_all(self, items: list[Item], timeout: float | None = 0.0) -> int:
        """Appends ``items`` in order under one acquisition of the lock, waiting for room as ``put`` does;
        how many were appended (all unless the wait for room ran out)."""
        with self._lock:
            deadline = None if timeout is None else time.monotonic() + timeout
            n = 0
            try:
                for item in items:
                    if len(self._items) >= self.maxsize:
                        self._wait_for_room(None if deadline is None else deadline - time.monotonic())
                    self._items.append(item)
                    n += 1
            except queue.Full:
                pass
            if n and self._taker_waits and (not self._lingering or len(self._items) >= self.wake_at):
                self._not_empty.notify()
            return n

    def _wait_for_room(self, timeout: float | None) -> None:
        if timeout is not None and timeout <= 0:
            raise queue.Full
        deadline = None if timeout is None else time.monotonic() + timeout
        self._putters += 1
        try:
            while len(self._items) >= self.maxsize:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise queue.Full
                self._not_full.wait(remaining)
        finally:
            self._putters -= 1

    def take(self, max_items: int, timeout: float) -> list[Item]:
        """Up to ``max_items`` items, oldest first; waits up to ``timeout`` seconds (0: not at all) for
        the first. One taker at a time (the sender thread, or the caller when it drives the sender)."""
        with self._lock:
            items = self._items
            if not items and timeout > 0:
                self._taker_waits = True
                try:
                    self._not_empty.wait(timeout)
                    if items and self.linger > 0 and not isinstance(items[-1], Control):
                        self._lingering = True
                        self._not_empty.wait(self.linger)
                finally:
                    self._taker_waits = False
                    self._lingering = False
            if len(items) <= max_items:
                batch = list(items)
                items.clear()
            else:
                batch = [items.popleft() for _ in range(max_items)]
            if batch and self._putters:
                self._not_full.notify(len(batch))
            return batch
