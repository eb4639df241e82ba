"""`datamin agent`: one process per machine that sends the events of every web server process on it.

With ``producer.agent_socket`` set, each process's `EventProducer` builds and encodes its events as
before, then hands every batch to the agent in one write on a Unix socket instead of running a Kafka
client of its own. The agent sends them with its own `EventProducer` (same transport, acks, spool and
replay as any producer): the web server's processes keep their CPU for requests, and the broker sees
one idempotent producer per machine instead of one per worker.

Guarantees, on top of `producers.producer`'s:

- Only raw topics and the dead-letter topic: an event for any other topic (minimised, consent
  state, privacy requests) is refused, counted and logged, never sent. The socket file is 0600:
  only processes of the agent's user (and root) can connect.
- Nothing lost across a stop of the agent: on SIGTERM it stops taking writes (producers then get an
  error and send directly), reads to the end what the producers wrote before, and closes its producer
  (sent, else spooled). A frame cut short is discarded whole and its events are sent by the producer.
- Lost when the agent crashes: what it held in memory and what producers had written that it had not
  read yet (as a crashed producer's process loses its queue).
- A producer that cannot reach the agent (not started, stopped, stalled past
  `producers.agent_link.WRITE_TIMEOUT_S`) sends to Kafka directly, and goes back to the agent
  once its direct sends are all acknowledged; while it switches, one process's events can reach a
  partition in a different order (each carries its time).
"""

from __future__ import annotations

import logging
import os
import selectors
import socket
import stat
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

from datamin.config import Config
from datamin.exceptions import ConfigError
from datamin.topics import Topics
from producers.agent_wire import EVENTS, FLUSH, FrameReader, WireError, flushed_frame, read_events, read_flush
from producers.producer import EventProducer
from producers.queue import Bytes

log = logging.getLogger(__name__)

PUBLISH_WAIT_S = 30.0
"""how long the agent waits for room in its producer's queue before an event counts as dropped;
meanwhile it reads nothing more, so producers' writes wait (and after a while go directly)"""
FLUSH_WAIT_MAX_S = 120.0
"""the longest a flush request may make the agent wait for Kafka, whatever the producer asked"""
FLUSHES_PER_PEER = 4
"""flush requests one connection may have waiting at once; more are answered "not confirmed" at once"""
STOP_READ_S = 5.0
"""at a stop, how long the agent reads what producers wrote before it stopped taking writes"""


@dataclass
class AgentStats:
    connections: int = 0
    events: int = 0
    """events taken and put on the agent's producer"""
    refused: int = 0
    """events for a topic the agent does not send to (and frames that did not parse)"""


@dataclass
class _Peer:
    sock: socket.socket
    reader: FrameReader
    lock: threading.Lock
    """held while a flush answer is written"""
    flushes: int = 0
    """flush requests being waited for (under ``lock``)"""
    closed: bool = False


class Agent:
    """Listens on ``path`` (default ``producer.agent_socket``) and sends what producers hand it."""

    def __init__(self, config: Config, path: str | None = None, *, producer: EventProducer | None = None) -> None:
        if not (path or config.producer.agent_socket):
            raise ConfigError("producer.agent_socket", "is empty", "set the path of the agent's Unix socket, "
                              "e.g. /run/datamin/agent.sock, or pass --socket")
        self.path = Path(path or config.producer.agent_socket)
        topics = Topics(config)
        self.stats = AgentStats()
        self._listener = _listen(self.path)
        try:
            # its own producer sends to Kafka: handing its events to itself would go round for ever
            self._producer = producer or EventProducer(replace(config, producer=replace(config.producer,
                                                                                          agent_socket="")))
        except BaseException:
            self._listener.close()
            self.path.unlink(missing_ok=True)
            raise
        self._allowed = set(self._producer._topics.values()) | {topics.dead_letter}
        self._peers: dict[int, _Peer] = {}
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._last_refusal_log = -1e18

    def serve(self, stop: threading.Event, *, log_interval: float = 60.0) -> AgentStats:
        """Takes events until ``stop`` is set; then reads what was written before, and closes."""
        next_log = time.monotonic() + log_interval
        try:
            while not stop.is_set():
                for key, _ in self._selector.select(timeout=0.2):
                    if key.data is None:
                        self._accept()
                    elif not key.data.closed:  # (one closed earlier in this round)
                        self._read(key.data)
                if time.monotonic() >= next_log:
                    next_log = time.monotonic() + log_interval
                    self._log_stats()
        finally:
            self._close()
        return self.stats

    def _accept(self) -> None:
        try:
            sock, _ = self._listener.accept()
        except BlockingIOError:
            return
        sock.settimeout(5.0)  # read only when the selector says so; a flush answer may wait for room
        peer = _Peer(sock, FrameReader(), threading.Lock())
        self._peers[sock.fileno()] = peer
        self._selector.register(sock, selectors.EVENT_READ, peer)
        self.stats.connections += 1

    def _read(self, peer: _Peer) -> bool:
        """Takes what ``peer`` wrote; False once it is closed."""
        try:
            data = peer.sock.recv(1 << 20)
        except OSError:
            data = b""
        if not data:
            if peer.reader.partial:
                log.warning("datamin agent: a producer left %d bytes of a frame cut short; it sends those events "
                            "itself", peer.reader.partial)
            self._forget(peer)
            return False
        try:
            for kind, body in peer.reader.feed(data):
                if kind == EVENTS:
                    self._take(read_events(body))
                elif kind == FLUSH:
                    request, wait_ms = read_flush(body)
                    self._flush_for(peer, request, min(wait_ms / 1000, FLUSH_WAIT_MAX_S))
                else:
                    raise WireError(f"a frame of unknown kind {kind!r}")
        except WireError as exc:
            self.stats.refused += 1
            log.error("datamin agent: closed a connection that does not speak datamin's producer protocol: %s", exc)
            self._forget(peer)
            return False
        return True

    def _take(self, messages: list[Bytes]) -> None:
        allowed = self._allowed
        if not all(m.topic in allowed for m in messages):
            for m in messages:
                if m.topic not in allowed:
                    self._refuse(m.topic)
            messages = [m for m in messages if m.topic in allowed]
        self.stats.events += self._producer.publish_encoded(messages, timeout=PUBLISH_WAIT_S)

    def _refuse(self, topic: str) -> None:
        self.stats.refused += 1
        now = time.monotonic()
        if now - self._last_refusal_log >= 10.0:
            self._last_refusal_log = now
            log.error("datamin agent: refused an event for topic %r (%d refused so far): the agent sends to raw "
                      "topics and the dead-letter topic only", topic[:200], self.stats.refused)

    def _flush_for(self, peer: _Peer, request: int, wait_s: float) -> None:
        """Answers a flush request when the agent's producer has flushed, in a thread of its own: the
        agent goes on taking events meanwhile."""
        with peer.lock:
            busy = peer.flushes >= FLUSHES_PER_PEER
            if not busy:
                peer.flushes += 1
        if busy:
            self._answer(peer, request, False)
            return
        threading.Thread(target=self._flush_and_answer, args=(peer, request, wait_s), name="datamin-agent-flush",
                         daemon=True).start()

    def _flush_and_answer(self, peer: _Peer, request: int, wait_s: float) -> None:
        ok = self._producer.flush(wait_s)
        with peer.lock:
            peer.flushes -= 1
        self._answer(peer, request, ok)

    def _answer(self, peer: _Peer, request: int, ok: bool) -> None:
        with peer.lock:
            try:
                peer.sock.sendall(flushed_frame(request, ok))
            except OSError:
                pass  # the producer is gone; its flush reports False

    def _forget(self, peer: _Peer) -> None:
        if peer.closed:
            return
        peer.closed = True
        self._peers.pop(peer.sock.fileno(), None)
        self._selector.unregister(peer.sock)
        with peer.lock:
            peer.sock.close()

    def _close(self) -> None:
        """Stops taking writes, reads what producers wrote before that, closes the producer."""
        self._selector.unregister(self._listener)
        self._listener.close()
        try:
            self.path.unlink()
        except OSError:
            pass
        deadline = time.monotonic() + STOP_READ_S
        for peer in list(self._peers.values()):
            try:
                peer.sock.shutdown(socket.SHUT_RD)  # the producer's next write fails: it sends directly
            except OSError:
                pass
        while self._peers and time.monotonic() < deadline:
            for key, _ in self._selector.select(timeout=0.1):
                if not key.data.closed:
                    self._read(key.data)
        for peer in list(self._peers.values()):
            self._forget(peer)
        self._selector.close()
        self._producer.close()
        self._log_stats()

    def _log_stats(self) -> None:
        s = self.stats
        log.info("datamin agent: connections=%d events=%d refused=%d", s.connections, s.events, s.refused)


def _listen(path: Path) -> socket.socket:
    """A listening Unix socket at ``path`` (0600); a stale socket file is replaced, a live agent refused."""
    if path.is_socket():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # left by an agent that crashed
        else:
            raise ConfigError("producer.agent_socket", f"another datamin agent is already listening at {path}",
                              "stop it first, or give this one another --socket")
        finally:
            probe.close()
    elif path.exists():
        raise ConfigError("producer.agent_socket", f"{path} exists and is not a socket",
                          "point it at a path of its own, e.g. /run/datamin/agent.sock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        umask = os.umask(0o177)
        try:
            sock.bind(str(path))
        finally:
            os.umask(umask)
    except OSError as exc:
        raise ConfigError("producer.agent_socket", f"cannot listen at {path} ({exc.strerror or exc})",
                          "point it at a folder this user may write, with a path under 108 bytes") from None
    if stat.S_IMODE(path.stat().st_mode) & 0o077:  # pragma: no cover - the umask above makes it 0600
        path.chmod(0o600)
    sock.listen(128)
    sock.setblocking(False)
    return sock
