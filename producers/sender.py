"""The sender thread of `EventProducer`: it takes what callers queued, encodes it, sends it to Kafka, and
spools to local disk while Kafka is away, replaying the spool when Kafka is back (see `producers.producer`
for what is guaranteed)."""

from __future__ import annotations

import atexit
import collections
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from datamin.config import Config
from datamin.exceptions import ConfigError, ValidationError
from datamin.topics import Topics
from producers.agent_link import AgentLink
from producers.client import Done, KafkaClient, KafkaFuture, kafka_factory
from producers.queue import SENDER_BATCH, Bytes, Control, EventQueue, Item, Message
from producers.spool import Position, Spool, SpooledRecord
from producers.stats import ProducerStats
from schemas import Registry, default_registry, encode

log = logging.getLogger(__name__)

Clock = Callable[[], float]

REPLAY_STALL_SECONDS = 30.0
"""a replay batch not completed after this long (twice the delivery timeout) means the Kafka client
stalled: it is replaced and the batch's unacknowledged records are sent again"""


def uuid4_strings(n: int) -> list[str]:
    """``n`` random (version 4) UUIDs as strings, from one read of the OS's random source: a read per
    UUID, as ``uuid.uuid4()`` makes, costs more than the rest of an event's encoding."""
    raw = bytearray(os.urandom(16 * n))
    raw[6::16] = bytes(b & 0x0F | 0x40 for b in raw[6::16])  # version 4
    raw[8::16] = bytes(b & 0x3F | 0x80 for b in raw[8::16])  # variant RFC 4122
    out = []
    for i in range(0, 16 * n, 16):
        h = raw[i:i + 16].hex()
        out.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return out


class Sender:
    """The state and the sender thread of an `EventProducer`; `EventProducer` adds the callers' side."""

    def __init__(self, config: Config, *, registry: Registry | None = None,
                 kafka: Callable[[], KafkaClient] | None = None, clock: Clock = time.monotonic,
                 log_interval: float = 60.0, replay_batch: int = 1000, retry_interval: float = 0.5,
                 max_retry_interval: float = 30.0, spool: Spool | None = None, start: bool = True) -> None:
        self._registry = registry or default_registry()
        topics = Topics(config)
        self._topics = {name: topics.raw(name) for name in self._registry.event_types("raw")}
        self._schemas = {name: self._registry.latest(name) for name in self._topics}
        self._routes = {name: (self._topics[name], schema, "event_id" in schema.field_names)
                        for name, schema in self._schemas.items()}
        """event type -> (topic, latest schema, whether the sender fills in a missing event_id)"""
        self._make_kafka = kafka or kafka_factory(config)
        self._clock = clock
        self._log_interval = log_interval
        self._replay_batch = replay_batch
        self._retry_interval = retry_interval
        self._max_retry_interval = max_retry_interval
        self._queue_size = config.producer.queue_size
        self._queue = EventQueue(self._queue_size, linger=config.producer.linger_ms / 1000.0)
        self._held = 0
        """events the sender took from the queue and has not yet handed to Kafka or the spool"""
        if spool is None:
            try:
                spool = Spool.open(config.producer.spool_dir, config.producer.spool_max_bytes)
            except OSError as exc:
                raise ConfigError("producer.spool_dir", f"cannot be used as the spool ({exc.strerror})",
                                  "point it at a folder this process may create and write") from None
        self._spool = spool
        self._agent = (AgentLink(config.producer.agent_socket, retry_interval=retry_interval, clock=clock)
                       if config.producer.agent_socket else None)
        """the machine's `datamin agent`, when ``producer.agent_socket`` names one: batches are handed to it
        instead of to a Kafka client of this process's own while it takes them"""
        self._counts = collections.Counter[str]()
        self._lock = threading.Lock()
        self._failed: collections.deque[tuple[str, bytes | None, bytes]] = collections.deque()
        self._pending: collections.deque[KafkaFuture] = collections.deque()
        """direct sends not yet counted, oldest first; the sender counts the acknowledged ones (``_sweep``)
        instead of a callback per record in kafka-python's I/O thread"""
        self._swept_failures = 0
        """failed direct sends taken off ``_pending``; each one's errback spools it"""
        self._errbacks_run = 0
        """errbacks that have handed their record to ``_failed`` (under the lock)"""
        self._client_failed = False
        """a send of the current client failed: kafka-python's idempotent producer then stalls (its
        pending batches never complete), so the client is replaced before anything is replayed"""
        self._kafka: KafkaClient | None = None
        self._kafka_due = 0.0
        self._outage = False
        self._slow_send = False
        self._backoff = retry_interval
        self._replay: list[tuple[SpooledRecord, Any]] | None = None
        self._replay_since = 0.0
        self._acked: set[Position] = set()
        self._spool_bytes = spool.size_bytes
        self._closed = False
        self._agent_unconfirmed = False
        """at the stop, the agent did not confirm that what it was handed is sent or spooled"""
        self._last_drop_log = -1e18
        self._drops_unlogged = 0
        self._next_stats = clock() + log_interval
        self._thread = threading.Thread(target=self._run, name="datamin-producer", daemon=True)
        self._started = start
        if start:
            self._thread.start()
            atexit.register(self._at_exit)

    def stats(self) -> ProducerStats:
        with self._lock:
            counts = dict(self._counts)
        return ProducerStats(**counts, queued=len(self._queue) + self._held, spool_bytes=self._spool_bytes,
                             spool_damaged=self._spool.damaged)

    def close(self, timeout: float | None = 10.0) -> bool:
        """Sends what is queued, waits up to ``timeout`` for Kafka, spools what is left, stops the
        sender and releases the spool. True when everything was either sent or spooled in time (by
        this process, or by the agent it was handed to, which confirmed it)."""
        if self._closed:
            return True
        self._closed = True
        if self._started:
            atexit.unregister(self._at_exit)
        done = self._control("stop", timeout)
        if self._started:
            self._thread.join(None if timeout is None else max(timeout, 0.1))
        return done and not self._agent_unconfirmed

    def _control(self, kind: str, timeout: float | None) -> bool:
        deadline = self._clock() + (timeout if timeout is not None else 1e9)
        control = Control(kind, deadline, threading.Event())
        if not self._started:  # driven by the caller (tests, tools): do the work in this thread
            while len(self._queue):
                self._step(block=False)
            (self._stop if kind == "stop" else self._do_flush)(control)
            return control.done.is_set()
        if not self._thread.is_alive():
            return kind == "stop"
        try:
            self._queue.put(control, timeout)
        except queue.Full:
            return False
        return control.done.wait(timeout)

    def _at_exit(self) -> None:  # pragma: no cover - interpreter shutdown
        self.close(5.0)

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def _drop(self, why: str) -> None:
        with self._lock:
            self._counts["dropped"] += 1
            self._drops_unlogged += 1
            now = self._clock()
            if now - self._last_drop_log < 10.0:
                return
            self._last_drop_log = now
            n, self._drops_unlogged = self._drops_unlogged, 0
        log.error("datamin producer: DROPPED %d event(s) since the last report: %s. Events are being lost; "
                  "check Kafka, producer.queue_size and producer.spool_max_bytes", n, why)

    # -- the sender thread -----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                if self._step():
                    return
            except Exception:  # the sender must survive anything
                log.exception("datamin producer: sender error; continuing")
                time.sleep(0.1)

    def _step(self, block: bool = True) -> bool:
        """One round of the sender loop; True when it has stopped. Tests drive it with block=False."""
        self._drain_failed()
        self._pump_replay()
        busy = self._replay is not None or not self._spool.empty()
        if self._slow_send and not len(self._queue):
            # the sender has caught up: a send that blocked before (e.g. the first one, on the topic's
            # metadata) says nothing about the events that will be queued next
            self._slow_send = False
        items = self._queue.take(SENDER_BATCH, (0.02 if busy else 0.5) if block else 0.0)
        if not items:
            self._sweep()
            self._maybe_log_stats()
            return False
        self._held = len(items)
        try:
            stopped, spooled = self._send_items(items)
        finally:
            self._held = 0
        if stopped:
            return True
        if spooled:
            self._spool.sync()
            self._spool_bytes = self._spool.size_bytes
        self._sweep()
        self._maybe_log_stats()
        return False

    def _send_items(self, items: list[Item]) -> tuple[bool, bool]:
        """Encodes and sends (or spools) a batch of queued items in order; (stopped, anything spooled)."""
        encoded = self._encode_items(items)
        if self._agent is None:
            return self._send_encoded(encoded)
        spooled = False
        run: list[Message] = []
        for message in [*encoded, None]:  # runs of messages go to the agent, what it did not take directly
            if isinstance(message, tuple):
                run.append(message)
                continue
            left = self._hand_to_agent(run) if run else run
            run = []
            if left:
                spooled |= self._send_encoded(left)[1]
            if message is not None and self._on_control(message):
                return True, spooled
        return False, spooled

    def _hand_to_agent(self, messages: list[Message]) -> list[Message]:
        """Hands ``messages`` to the agent when it takes them; those it did not take, to send directly.
        The sender goes (back) to the agent only when nothing of its own is in flight or spooled, so
        that its events do not overtake each other more than a switch needs."""
        agent = self._agent
        assert agent is not None
        if not agent.connected:
            if (self._outage or self._replay is not None or not self._spool.empty()
                    or not self._deliveries_settled() or not agent.connect()):
                return messages
            self._drop_kafka()  # all acknowledged: this process needs no connection to Kafka meanwhile
        handed = agent.hand(messages)
        if handed:
            self._count("handed", handed)
        return messages[handed:]

    def _encode_items(self, items: list[Item]) -> list[Message | Control]:
        """Encodes a batch of queued events (all of them before any is sent: each loop stays warm in the
        CPU's caches); records that do not fit their schema are counted and left out."""
        routes = self._routes
        out: list[Message | Control] = []
        append = out.append
        event_ids = iter(uuid4_strings(len(items)))
        for item in items:
            if isinstance(item, Bytes):
                append(item)
                continue
            if isinstance(item, Control):
                append(item)
                continue
            try:
                if len(item) == 3:  # publish_later: built here, in batches, off the request's path
                    event_type, build, args = item
                    record = build(*args)
                    owned = True
                else:
                    event_type, record = item
                    owned = False
                topic, schema, needs_id = routes[event_type]
                if needs_id and not record.get("event_id"):
                    if owned:
                        record["event_id"] = next(event_ids)
                    else:
                        record = {**record, "event_id": next(event_ids)}
                value = encode(schema, record)
                subject = record.get("subject_key")
                append((topic, subject.encode("utf-8") if isinstance(subject, str) else None, value))
            except ValidationError as exc:
                self._count("invalid")
                log.warning("datamin producer: event refused: %s", exc)
            except Exception:  # the sender must survive anything, and go on with the batch
                self._count("invalid")
                log.exception("datamin producer: event refused: building or encoding it failed")
        return out

    def _send_encoded(self, messages: Sequence[Message | Control]) -> tuple[bool, bool]:
        """Sends (or spools) encoded messages and handles flush/stop requests, in order.

        The hot loop of the producer. Whether messages may go to Kafka directly is decided once per batch
        and again whenever this thread changes that: it spools, enters an outage or handles a flush."""
        pending = self._pending
        direct = self._direct_client()
        spooled = False
        perf_counter = time.perf_counter
        for i, message in enumerate(messages):
            try:
                if isinstance(message, Control):
                    if self._on_control(message):
                        return True, spooled
                    direct = self._direct_client()
                    continue
                topic, key, value = message
                if (direct is not None and self._slow_send
                        and len(self._queue) + len(messages) - i > 0.9 * self._queue_size):
                    log.warning("datamin producer: queue over 90 percent full while Kafka stalls; spooling until "
                                "the spool is replayed")
                    self._outage = True
                    direct = None
                if direct is not None:
                    t0 = perf_counter()
                    try:
                        future = direct.send(topic, value=value, key=key)
                    except Exception as exc:  # any send error means: spool
                        self._enter_outage(f"send failed ({type(exc).__name__})")
                    else:
                        self._slow_send = perf_counter() - t0 > 0.1  # blocked on metadata or buffer
                        future.add_errback(self._on_send_failed, topic, key, value)
                        pending.append(future)
                        continue
                # behind the spool (order kept), in an outage, or without a client
                self._to_spool(topic, key, value)
                spooled = True
                direct = self._direct_client()
            except Exception:  # the sender must survive anything, and go on with the batch
                log.exception("datamin producer: sender error; continuing")
                direct = self._direct_client()
        return False, spooled

    def _on_control(self, control: Control) -> bool:
        """Handles a flush or stop request; True when the sender has stopped."""
        self._spool.sync()
        if control.kind == "stop":
            self._stop(control)
            return True
        self._do_flush(control)
        return False

    def _direct_client(self) -> KafkaClient | None:
        """The client to send to directly, or None when events must go to the spool: in an outage, while
        the spool holds anything or is being replayed, or while there is no client."""
        if self._outage or self._replay is not None or not self._spool.empty():
            return None
        return self._kafka_client()

    def _to_spool(self, topic: str, key: bytes | None, value: bytes) -> None:
        if self._spool.append(topic, key, value):
            self._count("spooled")
        else:
            self._drop(self._spool.refusal)  # full, or the disk refused the write (rolled back)

    def _on_send_failed(self, topic: str, key: bytes | None, value: bytes, exc: BaseException) -> None:
        self._client_failed = True
        self._failed.append((topic, key, value))
        with self._lock:  # after the append: _deliveries_settled relies on that order
            self._counts["failed"] += 1
            self._errbacks_run += 1

    def _sweep(self) -> None:
        """Counts the direct sends acknowledged since the last sweep, oldest first (a send still in
        flight holds back the count of those behind it until it completes)."""
        pending = self._pending
        sent = failed = 0
        while pending and pending[0].is_done:
            if pending.popleft().succeeded():
                sent += 1
            else:
                failed += 1
        self._swept_failures += failed
        if sent:
            self._count("sent", sent)

    def _deliveries_settled(self) -> bool:
        """True when every direct send was acknowledged, or failed and is in ``_failed`` (or spooled)."""
        self._sweep()
        with self._lock:
            errbacks_run = self._errbacks_run
        return not self._pending and errbacks_run >= self._swept_failures

    def _drain_failed(self) -> None:
        if not self._failed:
            return
        self._enter_outage("Kafka failed to deliver")
        while self._failed:
            self._to_spool(*self._failed.popleft())
        self._spool.sync()
        self._spool_bytes = self._spool.size_bytes

    def _enter_outage(self, why: str) -> None:
        if not self._outage:
            log.warning("datamin producer: %s; spooling events to disk until Kafka is back", why)
        self._outage = True

    def _kafka_client(self) -> KafkaClient | None:
        if self._kafka is None and self._clock() >= self._kafka_due:
            try:
                self._kafka = self._make_kafka()
            except Exception as exc:  # no broker, bad address, …: spool and retry
                self._enter_outage(f"cannot connect to Kafka ({type(exc).__name__})")
                self._retry_later()
        return self._kafka

    def _retry_later(self) -> None:
        self._kafka_due = self._clock() + self._backoff
        self._backoff = min(self._backoff * 2, self._max_retry_interval)

    def _drop_kafka(self) -> None:
        """Closes the Kafka client at once; what it had not delivered fails into the spool."""
        kafka, self._kafka = self._kafka, None
        if kafka is not None:
            try:
                kafka.close(timeout=0)
            except Exception:  # kafka-python's close(0) raises when records are pending
                sender = getattr(kafka, "_sender", None)
                if sender is not None:  # abort the pending batches so that their errbacks spool them
                    sender.force_close()
                    sender.join(5.0)
                try:
                    kafka.close(timeout=0)
                except Exception:  # BLE001  # pragma: no cover
                    log.debug("datamin producer: closing the Kafka client failed", exc_info=True)
        self._drain_failed()

    def _reset_kafka_later(self) -> None:
        """After a failed replay: back off, and rebuild the client unless direct sends are pending."""
        if self._deliveries_settled():
            self._drop_kafka()
        self._retry_later()

    def _pump_replay(self) -> None:
        """Advances the replay of the spool: completes the batch in flight, or sends the next one."""
        if self._client_failed and self._kafka is not None:
            # after a failed delivery (e.g. expired during an outage) kafka-python's idempotent producer
            # completes nothing more: abort what it holds (its errbacks spool it) and build a new one
            log.warning("datamin producer: a delivery failed; replacing the Kafka client before replaying")
            self._drop_kafka()
            self._client_failed = False
            self._retry_later()
            return
        self._client_failed = False
        if self._replay is not None:
            if not all(f.is_done for _, f in self._replay):
                if self._clock() - self._replay_since < REPLAY_STALL_SECONDS:
                    return
                log.warning("datamin producer: a replay batch did not complete in %.0f s; replacing the Kafka "
                            "client", REPLAY_STALL_SECONDS)
                self._drop_kafka()  # what was not acknowledged counts as failed and stays spooled
            self._finish_replay_batch()
            return
        if self._spool.empty():
            if self._outage and not self._failed:
                self._outage = False
                self._backoff = self._retry_interval
                log.warning("datamin producer: spool replayed; sending directly again")
            return
        if self._clock() < self._kafka_due:
            return
        kafka = self._kafka_client()
        if kafka is None:
            return
        batch: list[tuple[SpooledRecord, Any]] = []
        for record in self._spool.peek(self._replay_batch):
            if record.end in self._acked:
                batch.append((record, None))
                continue
            try:
                future = kafka.send(record.topic, value=record.value, key=record.key)
            except Exception as exc:
                log.info("datamin producer: replay paused (%s); retrying", type(exc).__name__)
                self._retry_later()
                break
            batch.append((record, future))
        if not any(f is not None for _, f in batch):
            self._reset_kafka_later()
            return
        self._replay = [(r, f if f is not None else Done()) for r, f in batch]
        self._replay_since = self._clock()

    def _finish_replay_batch(self) -> None:
        batch, self._replay = self._replay or [], None
        replayed = 0
        failed = False
        for record, future in batch:
            if isinstance(future, Done):
                continue
            if future.succeeded():
                self._acked.add(record.end)
                replayed += 1
            else:
                failed = True
        last: Position | None = None
        for record, _ in batch:
            if record.end not in self._acked:
                break
            self._acked.discard(record.end)
            last = record.end
        if last is not None:
            self._spool.commit(last)
            self._spool_bytes = self._spool.size_bytes
        self._count("replayed", replayed)
        if failed:
            self._reset_kafka_later()
        elif self._clock() >= self._kafka_due:
            self._backoff = self._retry_interval

    def _do_flush(self, control: Control) -> None:
        self._wait_kafka(control.deadline)
        if self._replay is not None and all(f.is_done for _, f in self._replay):
            self._finish_replay_batch()
        settled = self._deliveries_settled()  # before the drain: what it found failed is spooled below
        self._drain_failed()
        self._spool.sync()
        if self._agent is not None and not self._agent.flush(control.deadline - self._clock()):
            settled = False
        if settled:
            control.done.set()

    def _replay_until(self, deadline: float) -> None:
        """At close: keeps replaying the spool while Kafka takes it, until empty or the deadline."""
        real_deadline = time.monotonic() + max(0.0, deadline - self._clock())  # also bounded in real time
        while ((self._replay is not None or not self._spool.empty()) and self._clock() < deadline
               and time.monotonic() < real_deadline):
            self._drain_failed()
            self._pump_replay()
            if self._replay is None and self._clock() < self._kafka_due:
                if self._kafka_due >= deadline:
                    return  # the next attempt is after the deadline: what is left stays spooled
            time.sleep(0.005)  # waiting for acknowledgements from kafka-python's I/O thread

    def _wait_kafka(self, deadline: float) -> None:
        if self._kafka is not None:
            try:
                self._kafka.flush(timeout=max(0.0, deadline - self._clock()))
            except Exception as exc:  # KafkaTimeoutError: reported by the caller's False
                log.debug("datamin producer: flush incomplete (%s)", type(exc).__name__)

    def _stop(self, control: Control) -> None:
        self._wait_kafka(control.deadline)
        self._replay_until(control.deadline)
        if self._replay is not None and all(f.is_done for _, f in self._replay):
            self._finish_replay_batch()
        self._drop_kafka()  # aborts what Kafka has not acknowledged; the errbacks spool it
        if self._agent is not None:
            self._agent_unconfirmed = not self._agent.flush(control.deadline - self._clock())
            self._agent.close()
        self._sweep()
        self._spool.sync()
        self._spool_bytes = self._spool.size_bytes
        self._log_stats()
        self._spool.close()
        control.done.set()

    def _maybe_log_stats(self) -> None:
        if self._clock() >= self._next_stats:
            self._next_stats = self._clock() + self._log_interval
            self._log_stats()

    def _log_stats(self) -> None:
        s = self.stats()
        log.info("datamin producer: sent=%d handed=%d failed=%d spooled=%d dropped=%d replayed=%d invalid=%d "
                 "queued=%d spool_bytes=%d", s.sent, s.handed, s.failed, s.spooled, s.dropped, s.replayed, s.invalid,
                 s.queued, s.spool_bytes)
