"""The minimisation stream processor: raw topics in, minimised topics out, exactly once.

One consumer (consumer group processor.group_id, read_committed, no auto-commit, range assignment so
that partition p of every input topic — raw topics, consent, privacy requests, all keyed by subject
key with the same partition count — lands on the same instance) and one transactional producer
(transactional id ``<processor.transactional_id>-<instance>``):

    begin transaction → polls: each record: decode → ledger / minimise → minimised topic (or dead
    letter) → … → consumed offsets into the transaction → commit

so output and input offsets commit together: a process killed at any moment loses and duplicates
nothing (the next owner reads from the last committed offsets; an open transaction is aborted).
A transaction spans as many polls as fit in ``processor.transaction_seconds`` or
``processor.transaction_bytes`` of input, whichever comes first, so a caught-up processor (small
polls) still commits a few times a second rather than once per poll. Partitions being revoked
commit the open transaction first.

- Consent is held per input partition (`ConsentLedger`, bounded: expired every ``EXPIRE_INTERVAL_S``
  and spilling past ``processor.ledger_memory_subjects``). When partitions are assigned, their input
  partitions are paused and their ledgers restored in the background (`processors.restore`) from
  their consent and privacy-request partitions; they resume once restored, so no event is processed
  without its consent state and the loop keeps polling (and heartbeating) meanwhile. Within a poll,
  consent and privacy-request records are handled before events.
- Anything undecodable or failing validation goes to the dead-letter topic as JSON with the source
  topic, partition, offset, reason, stage and schema fingerprint — never the payload; the loop goes on.
- A Kafka error mid-batch aborts the transaction and rewinds the batch's partitions to where the
  batch began; a fatal one (producer fenced: another instance with this transactional id) stops the
  processor with a BrokerError saying so.
- SIGTERM / SIGINT (when run in the main thread) or ``stop.set()``: the batch in hand is finished and
  committed, then the processor exits.
- Metrics: events in / out / dead-lettered per second, fields dropped by rule, the group's lag per
  input partition (committed vs end offset, `processors.lag`); logged
  every ``log_interval`` seconds and served in Prometheus text format on 127.0.0.1:``metrics_port``.

Run it with ``datamin process`` (configuration from datamin.toml / the environment; ``--instance`` or
DATAMIN_INSTANCE names the instance, ``--metrics-port`` serves metrics).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from datamin.config import Config
from datamin.event_time import check_event_time
from datamin.exceptions import BrokerError, DecodeError, EventError
from datamin.identity import subject_of_raw
from datamin.kafka import (
    AuthorizationError,
    ConsumerRebalanceListener,
    FatalKafkaError,
    InvalidProducerEpochError,
    KafkaError,
    OffsetAndMetadata,
    ProducerFencedError,
    RangePartitionAssignor,
    TopicPartition,
    UnsupportedVersionError,
    dead_letter_note,
    new_consumer,
    new_producer,
    translate_kafka_errors,
)
from datamin.kafka.partitioner import KeyHashPartitioner
from datamin.signals import stop_on_signals
from datamin.topics import Topics
from processors.erased import ErasedSubjects
from processors.hashed_requests import HashedRequests
from processors.lag import GroupLag
from processors.ledger import ConsentLedger
from processors.metrics import Metrics, serve_metrics
from processors.minimise import Minimiser
from processors.pipeline import new_ledger, process_event, subject_of
from processors.restore import LedgerRestore
from processors.transforms import KeyStore
from schemas import decode, default_registry, encode
from schemas.encoding import HEADER_SIZE, MAGIC

log = logging.getLogger("datamin.processor")

FATAL_ERRORS: tuple[type[KafkaError], ...] = (
    ProducerFencedError, InvalidProducerEpochError, AuthorizationError, UnsupportedVersionError, FatalKafkaError,
)
"""errors after which this producer can never commit again: stop, do not retry"""
MAX_POLL_RECORDS = 5000
"""records per poll (a transaction spans polls: see processor.transaction_seconds)"""
EXPIRE_INTERVAL_S = 3600.0
"""seconds between two expiries of the consent ledgers"""


def run_processor(config: Config, *, instance: str | None = None, stop: threading.Event | None = None,
                  metrics_port: int | None = None, log_interval: float = 30.0) -> None:
    """Runs the processor until ``stop`` is set (or SIGTERM / SIGINT arrives). Raises BrokerError when
    Kafka cannot be reached or this instance is fenced; event errors never stop it.

    ``instance`` must be stable across restarts of the same instance and unique among the running ones
    (default: DATAMIN_INSTANCE, else the host name): it names the transactional id and the static group
    membership, so a restarted instance takes over its partitions and aborts what its killed predecessor
    left open at once, without waiting for the group's session timeout."""
    instance = instance or os.environ.get("DATAMIN_INSTANCE") or socket.gethostname()
    stop = stop or threading.Event()
    loop = ProcessorLoop(config, instance, stop, log_interval=log_interval)
    server = serve_metrics(loop.metrics, metrics_port) if metrics_port is not None else None
    try:
        with stop_on_signals(stop, doing="finishing the batch in hand, then stopping"):
            loop.run()
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()


class ProcessorLoop(ConsumerRebalanceListener):  # type: ignore[misc]
    """The consume → minimise → produce loop of one instance. Use `run_processor`."""

    def __init__(self, config: Config, instance: str, stop: threading.Event, *, log_interval: float = 30.0,
                 clock: Callable[[], datetime] | None = None,
                 consumer_options: Mapping[str, Any] | None = None) -> None:
        self.config = config
        self.clock = clock or (lambda: datetime.now(UTC))
        self.consumer_options = dict(consumer_options or {})
        """extra KafkaConsumer settings (session and poll timeouts), over the defaults"""
        self.instance = instance
        self.stop = stop
        self.log_interval = log_interval
        self.topics = Topics(config)
        self.registry = default_registry()
        self.keys = KeyStore(Path(config.pseudonymise.key_dir), config.pseudonymise.rotation, self.clock)
        self.minimiser = Minimiser(self.registry, config.minimise, self.keys)
        self.erased = ErasedSubjects(config)
        self.requests = HashedRequests(config)
        """requests on the privacy-requests topic, keyed by the subject's hash: read whole, applied per event"""
        """erasures from the compacted erased-subjects topic: a replay never brings a person back"""
        self.metrics = Metrics(self.minimiser.counters)
        self.ledgers: dict[int, ConsentLedger] = {}
        """one consent ledger per input partition number"""
        self.restore = LedgerRestore(config, lambda: new_ledger(config), self.clock)
        self.group_lag = GroupLag(config, config.processor.group_id, self.topics.inputs(), self._publish_lag)
        self.assignments = 0
        """how many times partitions were assigned to this instance (1 unless the group rebalanced)"""
        self.transactions = 0
        """transactions committed"""
        self._control = {self.topics.consent, self.topics.privacy_requests}
        self._out_topics: dict[str, str] = {}
        """minimised topic per event type (names built once)"""
        self._open = False
        self._batch_start: dict[TopicPartition, int] = {}
        """first offset of each partition in the open transaction (where an abort rewinds to)"""
        self._tx_offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        self._tx_deadline = 0.0
        self._tx_bytes = 0
        self._tx_counts = [0, 0, 0]
        self._logged_transactions = 0
        self._consumer: Any = None
        self._producer: Any = None

    # -- lifecycle -------------------------------------------------------------------------------
    def run(self) -> None:
        tx_id = f"{self.config.processor.transactional_id}-{self.instance}"
        with translate_kafka_errors("starting the processor", self.config):
            self._producer = new_producer(
                self.config, transactional_id=tx_id, enable_idempotence=True, acks="all",
                linger_ms=5, batch_size=256 * 1024, partitioner=KeyHashPartitioner())
            # no delivery future per record where the transport can do without (the commit reports failures)
            self._send = getattr(self._producer, "send_nowait", self._producer.send)
            try:
                self._producer.init_transactions()
            except FATAL_ERRORS as exc:
                raise BrokerError(_fatal_message(tx_id, exc)) from exc
            self._consumer = new_consumer(
                self.config, group_id=self.config.processor.group_id, isolation_level="read_committed",
                enable_auto_commit=False, auto_offset_reset="earliest",
                group_instance_id=f"processor-{self.instance}",  # static member: a restart takes over at once
                partition_assignment_strategy=[RangePartitionAssignor],
                **{"max_poll_records": MAX_POLL_RECORDS, **self.consumer_options})
            self._consumer.subscribe(self.topics.inputs(), listener=self)
            self.erased.start()
            self.requests.start()
            self.group_lag.start()
        log.info("processor %s started: %d input topics, group %s", tx_id, len(self.topics.inputs()),
                 self.config.processor.group_id)
        last_log, last = time.monotonic(), (0, 0, 0)
        next_expiry = time.monotonic() + EXPIRE_INTERVAL_S
        settings = self.config.processor
        try:
            while not self.stop.is_set():
                self._install_restored()
                wait = 500 if not self._open else max(0, int((self._tx_deadline - time.monotonic()) * 1000))
                with translate_kafka_errors("polling the input topics", self.config):
                    batch = self._consumer.poll(timeout_ms=wait)
                if batch:
                    self._process(batch)
                now = time.monotonic()
                if self._open and (now >= self._tx_deadline or self._tx_bytes >= settings.transaction_bytes):
                    self._commit()
                if now >= next_expiry:
                    self._expire()
                    next_expiry = now + EXPIRE_INTERVAL_S
                if now - last_log >= self.log_interval:
                    last = self._log_rates(now - last_log, last)
                    last_log = now
            if self._open:  # stopping: the records in hand are committed, not redone
                self._commit()
        finally:
            self._close()
        log.info("processor %s stopped after committing its last batch", tx_id)

    def _close(self) -> None:
        self.erased.stop()
        self.requests.stop()
        self.restore.stop()
        self.group_lag.stop()
        for ledger in self.ledgers.values():
            ledger.close()
        if self._consumer is not None:
            try:
                self._consumer.close(autocommit=False)
            except KafkaError as exc:  # pragma: no cover - best effort at shutdown
                log.warning("closing the consumer: %s", type(exc).__name__)
        if self._producer is not None:
            try:
                self._producer.close(timeout=10)
            except KafkaError as exc:  # pragma: no cover
                log.warning("closing the producer: %s", type(exc).__name__)

    # -- transactions spanning polls ---------------------------------------------------------------
    def _process(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """Handles one poll's records inside the open transaction (beginning one if none is open)."""
        assert self._producer is not None
        producer = self._producer
        ordered = sorted(batch.items(), key=lambda item: item[0].topic not in self._control)
        counts = self._tx_counts
        try:
            if not self._open:
                producer.begin_transaction()
                self._open = True
                self._tx_deadline = time.monotonic() + self.config.processor.transaction_seconds
            for tp, records in ordered:
                self._batch_start.setdefault(tp, records[0].offset)
                for record in records:
                    counts[0] += 1
                    counts[1 if self._handle(tp, record) else 2] += 1
                    self._tx_bytes += len(record.value or b"")
                self._tx_offsets[tp] = OffsetAndMetadata(records[-1].offset + 1, "", -1)
        except FATAL_ERRORS as exc:
            self._open = False
            raise BrokerError(_fatal_message(self._tx_id, exc)) from exc
        except KafkaError as exc:
            log.warning("transaction of %d records aborted (%s: %s); rewinding to the last committed offsets",
                        counts[0], type(exc).__name__, exc)
            self._abort()

    def _commit(self) -> None:
        """Commits the open transaction with its input offsets (or aborts and rewinds it on an error)."""
        assert self._producer is not None and self._consumer is not None
        try:
            self._producer.send_offsets_to_transaction(self._tx_offsets, self._consumer.group_metadata())
            self._producer.commit_transaction()
        except FATAL_ERRORS as exc:
            self._open = False
            raise BrokerError(_fatal_message(self._tx_id, exc)) from exc
        except KafkaError as exc:
            log.warning("transaction of %d records aborted at commit (%s: %s); rewinding to the last committed "
                        "offsets", self._tx_counts[0], type(exc).__name__, exc)
            self._abort()
            return
        self.metrics.add(*self._tx_counts)
        self.transactions += 1
        self._reset_transaction()

    def _reset_transaction(self) -> None:
        self._open = False
        self._batch_start, self._tx_offsets = {}, {}
        self._tx_bytes = 0
        self._tx_counts = [0, 0, 0]

    @property
    def _tx_id(self) -> str:
        return f"{self.config.processor.transactional_id}-{self.instance}"

    def _abort(self) -> None:
        assert self._producer is not None and self._consumer is not None
        starts = self._batch_start
        try:
            self._producer.abort_transaction()
        except KafkaError as exc:
            raise BrokerError(_fatal_message(self._tx_id, exc)) from exc
        finally:
            self._reset_transaction()
        assigned = self._consumer.assignment()
        for tp, offset in starts.items():
            if tp in assigned:
                self._consumer.seek(tp, offset)

    def _handle(self, tp: TopicPartition, record: Any) -> bool:
        """Processes one input record inside the open transaction; False when it was dead-lettered."""
        assert self._producer is not None
        value: bytes | None = record.value
        try:
            if value is None:
                if tp.topic == self.topics.consent:  # a tombstone of the compacted consent topic
                    ledger = self.ledgers.get(tp.partition)
                    subject = subject_of_raw(record.key.decode("utf-8", "replace")) if record.key else None
                    if ledger is not None and subject:
                        ledger.forget_consents(subject)
                    return True
                raise DecodeError("empty message (no value)")
            schema, raw = decode(value, self.registry)
            if schema.kind != "raw":
                raise DecodeError(f"{schema.key}: a minimised event on an input topic")
            check_event_time(self.config, schema.name, raw, self.clock())
            key = record.key.decode("utf-8", "replace") if record.key else None
            ledger = self.ledgers.get(tp.partition)
            subject = subject_of(raw, key)
            self.erased.mark(ledger, subject)
            self.requests.mark(ledger, subject)
            result = process_event(self.minimiser, ledger, schema, raw, key)
            out = encode(result.schema, result.record)
        except EventError as exc:
            self._dead_letter(tp, record, str(exc))
            return False
        except Exception as exc:  # a bug on one event must not stop the stream
            # the message of a foreign exception may quote a value: keep only its type
            log.error("minimising %s[%d]@%d failed with %s (a bug: please report it)",
                      tp.topic, tp.partition, record.offset, type(exc).__name__)
            self._dead_letter(tp, record, f"{type(exc).__name__} while minimising")
            return False
        subject = result.record.get("subject")
        target = self._out_topics.get(result.schema.name)
        if target is None:
            target = self._out_topics[result.schema.name] = self.topics.minimised(result.schema.name)
        self._send(target, value=out, key=subject.encode() if isinstance(subject, str) else None)
        return True

    def _dead_letter(self, tp: TopicPartition, record: Any, reason: str) -> None:
        assert self._producer is not None
        value: bytes | None = record.value
        fingerprint = bytes(value[2:HEADER_SIZE]).hex() if value and len(value) >= HEADER_SIZE and \
            value[:2] == MAGIC else None
        note = dead_letter_note("processor", tp.topic, reason, partition=tp.partition, offset=record.offset,
                                schema=fingerprint)
        self._producer.send(self.topics.dead_letter, value=note)

    # -- rebalancing: the ledger follows the partitions ------------------------------------------
    # kafka-python calls these on the thread that also heartbeats: nothing here may block for long
    def on_partitions_revoked(self, revoked: Any) -> None:
        if self._open:  # what was processed so far is committed before another instance may take over
            log.info("partitions revoked with a transaction open: committing it first")
            self._commit()

    def on_partitions_assigned(self, assigned: Any) -> None:
        assert self._consumer is not None
        self.assignments += 1
        partitions = {tp.partition for tp in assigned}
        for p in set(self.ledgers) - partitions:
            self.ledgers.pop(p).close()
        self.restore.cancel(self.restore.pending() - partitions)
        waiting = partitions - set(self.ledgers)
        if waiting:  # no event of theirs is processed before their consent state is there
            self._consumer.pause(*[tp for tp in assigned if tp.partition in waiting])
        new = sorted(waiting - self.restore.pending())
        self.restore.start(new)
        log.info("assigned partitions %s of %d input topics (consent being restored for %s)",
                 sorted(partitions), len(self.topics.inputs()), sorted(waiting))

    def on_partitions_lost(self, lost: Any) -> None:
        if self._open:  # the partitions are someone else's already: nothing of this transaction may commit
            self._abort()
        gone = {tp.partition for tp in lost}
        self.restore.cancel(gone)
        for p in gone:
            ledger = self.ledgers.pop(p, None)
            if ledger is not None:
                ledger.close()

    def _install_restored(self) -> None:
        """Installs the ledgers restored since the last poll and resumes their partitions."""
        done = self.restore.take()
        if not done:
            return
        assert self._consumer is not None
        assigned = self._consumer.assignment()
        mine = {tp.partition for tp in assigned}
        for p, ledger in done.items():
            if p in mine:
                self.ledgers[p] = ledger
            else:
                ledger.close()
        self._consumer.resume(*[tp for tp in assigned if tp.partition in done])

    def _expire(self) -> None:
        now = self.clock()
        gone = sum(ledger.expire(now) for ledger in self.ledgers.values())
        log.info("consent ledgers: %d subject(s) expired, %d kept (%d spilled to disk)", gone,
                 sum(len(x) for x in self.ledgers.values()), sum(x.store.spilled for x in self.ledgers.values()))

    # -- metrics ---------------------------------------------------------------------------------
    def _publish_lag(self, lag: dict[tuple[str, int], int]) -> None:
        with self.metrics.lock:
            self.metrics.lag = lag

    def _log_rates(self, seconds: float, last: tuple[int, int, int]) -> tuple[int, int, int]:
        m = self.metrics
        with m.lock:
            now = (m.events_in, m.events_out, m.dead_lettered)
            lag = sum(m.lag.values())
            dropped = sum(v for k, v in m.dropped.items() if k.startswith("dropped."))
        rates = [(a - b) / seconds for a, b in zip(now, last, strict=True)]
        transactions = self.transactions - self._logged_transactions
        self._logged_transactions = self.transactions
        log.info("events in %.0f/s, out %.0f/s, dead-lettered %.1f/s; fields dropped %d in total; group lag %d; "
                 "%.1f transactions/s of %.0f records", *rates, dropped, lag, transactions / seconds,
                 (now[0] - last[0]) / max(1, transactions))
        return now


def _fatal_message(tx_id: str, exc: KafkaError) -> str:
    if isinstance(exc, (ProducerFencedError, InvalidProducerEpochError)):
        return (f"processor stopped: another instance uses the transactional id {tx_id!r} and has fenced this "
                "one. Give every instance its own stable name (DATAMIN_INSTANCE or --instance)")
    return f"processor stopped: Kafka refused the transaction ({type(exc).__name__}: {exc}); check the ACLs " \
           "and that the broker supports transactions"
