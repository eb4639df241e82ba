"""Graceful stop: SIGTERM and SIGINT ask a long-running process to finish its work in hand and exit."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def stop_on_signals(stop: threading.Event | None = None, *, doing: str = "stopping",
                    on_stop: Callable[[], None] | None = None) -> Iterator[threading.Event]:
    """While inside, SIGTERM and SIGINT set ``stop`` (a new event if none is given, yielded) and call
    ``on_stop``; the previous handlers come back on leaving. Off the main thread (where Python allows no
    signal handlers) it only yields the event."""
    stop = stop if stop is not None else threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("%s received: %s", signal.Signals(signum).name, doing)
        stop.set()
        if on_stop is not None:
            on_stop()

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
