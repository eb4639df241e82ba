"""A producer's connection to the `datamin agent` on its machine (``producer.agent_socket``).

The sender hands each batch of encoded events to the agent in one write instead of sending them to
Kafka itself: the web server's process then runs no Kafka client at all, and an event costs it the
building, encoding and a share of one write (see `producers.agent`). Used by the sender thread only."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

from producers.agent_wire import FLUSHED, FrameReader, WireError, events_frames, flush_frame, read_flushed
from producers.queue import Message

log = logging.getLogger(__name__)

WRITE_TIMEOUT_S = 5.0
"""a write the agent does not take within this long (it is stalled) sends the events another way"""


class AgentLink:
    def __init__(self, path: str, *, retry_interval: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._retry_interval = retry_interval
        self._clock = clock
        self._sock: socket.socket | None = None
        self._retry_at = 0.0
        self._topic_bytes: dict[str, bytes] = {}
        self._unconfirmed = 0
        """events handed since the agent last confirmed a flush"""
        self._requests = 0
        self._reader = FrameReader()
        self._warned = False

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def connect(self) -> bool:
        """Connects unless connected; False when the agent is not there (tried again at most every
        ``retry_interval`` seconds)."""
        if self._sock is not None:
            return True
        if self._clock() < self._retry_at:
            return False
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(WRITE_TIMEOUT_S)
        try:
            sock.connect(self.path)
        except OSError as exc:
            sock.close()
            self._away(f"cannot connect ({exc.strerror or type(exc).__name__})")
            return False
        self._sock = sock
        self._reader = FrameReader()
        log.info("datamin producer: handing events to the agent at %s", self.path)
        self._warned = False
        return True

    def hand(self, messages: list[Message]) -> int:
        """Writes ``messages`` to the agent in order; how many it took (all unless the connection failed:
        the rest must go another way, and were not taken in part)."""
        sock = self._sock
        if sock is None:
            return 0
        handed = 0
        try:
            for count, frame in events_frames(messages, self._topic_bytes):
                sock.sendall(frame)
                handed += count
        except (OSError, WireError) as exc:
            self._away(f"the connection failed ({type(exc).__name__})")
        self._unconfirmed += handed
        return handed

    def flush(self, timeout: float) -> bool:
        """True when the agent confirms within ``timeout`` that every event handed to it is acknowledged
        by Kafka or in its spool. False when it did not, or when the connection was lost while events
        handed on it were unconfirmed (their fate is the agent's: see `producers.agent`)."""
        if self._unconfirmed == 0:
            return True
        sock = self._sock
        if sock is None:
            self._unconfirmed = 0  # reported once: those events are the agent's now
            return False
        self._requests += 1
        request = self._requests & 0xFFFFFFFF
        deadline = self._clock() + max(0.0, timeout)
        try:
            sock.sendall(flush_frame(request, int(max(0.0, timeout) * 1000)))
        except OSError as exc:  # a cut frame would garble the stream: this connection is done
            self._away(f"the connection failed ({type(exc).__name__})")
            self._unconfirmed = 0
            return False
        try:
            while True:
                left = deadline - self._clock()
                if left <= 0:
                    return False
                sock.settimeout(left + 0.5)  # the agent answers at the end of the wait it was given
                data = sock.recv(4096)
                if not data:
                    raise ConnectionResetError("the agent closed the connection")
                for kind, body in self._reader.feed(data):
                    if kind == FLUSHED:
                        answered, ok = read_flushed(body)
                        if answered == request:  # earlier answers came after their flush gave up
                            if ok:
                                self._unconfirmed = 0
                            return ok
        except TimeoutError:  # its answer, when it comes, is skipped by the next flush
            return False
        except (OSError, WireError) as exc:
            self._away(f"the connection failed ({type(exc).__name__})")
            self._unconfirmed = 0
            return False
        finally:
            if self._sock is not None:
                self._sock.settimeout(WRITE_TIMEOUT_S)

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def _away(self, why: str) -> None:
        self.close()
        self._retry_at = self._clock() + self._retry_interval
        if not self._warned:
            log.warning("datamin producer: the agent at %s is not taking events: %s; sending to Kafka directly "
                        "meanwhile (producer.agent_socket: start `datamin agent`)", self.path, why)
            self._warned = True
