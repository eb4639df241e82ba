"""The minimisation stream processor: raw topics in, minimised topics out, exactly once.

One consumer (consumer group processor.group_id, read_committed, no auto-commit, range assignment so
that partition p of every input topic — raw topics, consent, privacy requests, all keyed by subject
key with the same partition count — lands on the same instance) and one transactional producer
(transactional id ``<processor.transactional_id>-<instance>``). Per poll batch:

    begin transaction → each record: decode → ledger / minimise → minimised topic (or dead letter)
    → consumed offsets into the transaction → commit

so output and input offsets commit together: a process killed at any moment loses and duplicates
nothing (the next owner reads from the last committed offsets; an open transaction is aborted).

- Consent is held per input partition (`ConsentLedger`). When partitions are assigned, the ledger of
  each new one is restored by reading its consent and privacy-request partitions from the beginning
  to their current end (a separate read_committed consumer) before any of its events is processed.
  Within a batch, consent and privacy-request records are handled before events.
- Anything undecodable or failing validation goes to the dead-letter topic as JSON with the source
  topic, partition, offset, reason, stage and schema fingerprint — never the payload; the loop goes on.
- A Kafka error mid-batch aborts the transaction and rewinds the batch's partitions to where the
  batch began; a fatal one (producer fenced: another instance with this transactional id) stops the
  processor with a BrokerError saying so.
- SIGTERM / SIGINT (when run in the main thread) or ``stop.set()``: the batch in hand is finished and
  committed, then the processor exits.
- Metrics: events in / out / dead-lettered per second, fields dropped by rule, consumer lag; logged
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
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from datamin.config import Config
from datamin.event_time import check_event_time
from datamin.exceptions import BrokerError, DecodeError, EventError
from datamin.identity import is_hashed, subject_of_raw
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
from processors.ledger import ConsentLedger
from processors.metrics import Metrics, serve_metrics
from processors.minimise import Minimiser
from processors.pipeline import new_ledger, process_event, subject_of
from processors.transforms import KeyStore
from schemas import decode, default_registry, encode
from schemas.encoding import HEADER_SIZE, MAGIC

log = logging.getLogger("datamin.processor")

FATAL_ERRORS: tuple[type[KafkaError], ...] = (
    ProducerFencedError, InvalidProducerEpochError, AuthorizationError, UnsupportedVersionError, FatalKafkaError,
)
"""errors after which this producer can never commit again: stop, do not retry"""
RESTORE_TIMEOUT_S = 300.0
MAX_POLL_RECORDS = 5000
"""records per poll, so per transaction: each commit costs a few broker round trips, paid per batch"""


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
                 clock: Callable[[], datetime] | None = None) -> None:
        self.config = config
        self.instance = instance
        self.stop = stop
        self.log_interval = log_interval
        self.topics = Topics(config)
        self.registry = default_registry()
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.keys = KeyStore(Path(config.pseudonymise.key_dir), config.pseudonymise.rotation, self.clock)
        self.minimiser = Minimiser(self.registry, config.minimise, self.keys)
        self.erased = ErasedSubjects(config)
        self.requests = HashedRequests(config)
        """requests on the privacy-requests topic, keyed by the subject's hash: read whole, applied per event"""
        """erasures from the compacted erased-subjects topic: a replay never brings a person back"""
        self.metrics = Metrics(self.minimiser.counters)
        self.ledgers: dict[int, ConsentLedger] = {}
        """one consent ledger per input partition number"""
        self._control = {self.topics.consent, self.topics.privacy_requests}
        self._out_topics: dict[str, str] = {}
        """minimised topic per event type (names built once)"""
        self._next: dict[TopicPartition, int] = {}
        self._open = False
        self._batch_start: dict[TopicPartition, int] = {}
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
                max_poll_records=MAX_POLL_RECORDS)
            self._consumer.subscribe(self.topics.inputs(), listener=self)
            self.erased.start()
            self.requests.start()
        log.info("processor %s started: %d input topics, group %s", tx_id, len(self.topics.inputs()),
                 self.config.processor.group_id)
        last_log, last = time.monotonic(), (0, 0, 0)
        try:
            while not self.stop.is_set():
                with translate_kafka_errors("polling the input topics", self.config):
                    batch = self._consumer.poll(timeout_ms=500)
                if batch:
                    self._process(batch)
                now = time.monotonic()
                if now - last_log >= self.log_interval:
                    last = self._log_rates(now - last_log, last)
                    last_log = now
        finally:
            self._close()
        log.info("processor %s stopped after committing its last batch", tx_id)

    def _close(self) -> None:
        self.erased.stop()
        self.requests.stop()
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

    # -- one batch, one transaction ----------------------------------------------------------------
    def _process(self, batch: dict[TopicPartition, list[Any]]) -> None:
        assert self._producer is not None and self._consumer is not None
        producer, consumer = self._producer, self._consumer
        ordered = sorted(batch.items(), key=lambda item: item[0].topic not in self._control)
        self._batch_start = {tp: records[0].offset for tp, records in batch.items()}
        counts = [0, 0, 0]
        try:
            producer.begin_transaction()
            self._open = True
            for tp, records in ordered:
                for record in records:
                    counts[0] += 1
                    counts[1 if self._handle(tp, record) else 2] += 1
            offsets = {tp: OffsetAndMetadata(records[-1].offset + 1, "", -1) for tp, records in batch.items()}
            producer.send_offsets_to_transaction(offsets, consumer.group_metadata())
            producer.commit_transaction()
            self._open = False
        except FATAL_ERRORS as exc:
            self._open = False
            raise BrokerError(_fatal_message(self._tx_id, exc)) from exc
        except KafkaError as exc:
            log.warning("batch of %d records aborted (%s: %s); rewinding to the last committed offsets",
                        counts[0], type(exc).__name__, exc)
            self._abort()
            return
        for tp, records in batch.items():
            self._next[tp] = records[-1].offset + 1
        self.metrics.add(counts[0], counts[1], counts[2])
        self._update_lag()

    @property
    def _tx_id(self) -> str:
        return f"{self.config.processor.transactional_id}-{self.instance}"

    def _abort(self) -> None:
        assert self._producer is not None and self._consumer is not None
        try:
            self._producer.abort_transaction()
        except KafkaError as exc:
            raise BrokerError(_fatal_message(self._tx_id, exc)) from exc
        finally:
            self._open = False
        assigned = self._consumer.assignment()
        for tp, offset in self._batch_start.items():
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
    def on_partitions_revoked(self, revoked: Any) -> None:
        if self._open:  # never between batches; a transaction open here is aborted, nothing is lost
            log.warning("partitions revoked with a transaction open: aborting it")
            self._abort()
        for tp in revoked:  # another instance may own them now: no lag of ours to report
            self._next.pop(tp, None)

    def on_partitions_assigned(self, assigned: Any) -> None:
        partitions = {tp.partition for tp in assigned}
        for p in set(self.ledgers) - partitions:
            del self.ledgers[p]
        new = sorted(partitions - set(self.ledgers))
        if new:
            self._restore(new)
        log.info("assigned partitions %s of %d input topics (consent restored for %s)",
                 sorted(partitions), len(self.topics.inputs()), new)

    def on_partitions_lost(self, lost: Any) -> None:
        self.on_partitions_revoked(lost)
        for tp in lost:
            self.ledgers.pop(tp.partition, None)

    def _restore(self, partitions: list[int]) -> None:
        """Rebuilds the ledgers of ``partitions`` from their consent and privacy-request partitions."""
        ledgers = {p: new_ledger(self.config) for p in partitions}
        tps = [TopicPartition(topic, p) for topic in sorted(self._control) for p in partitions]
        started = time.monotonic()
        applied = 0
        with translate_kafka_errors("restoring the consent ledger", self.config):
            reader = new_consumer(self.config, group_id=None, isolation_level="read_committed",
                                  enable_auto_commit=False)
            try:
                reader.assign(tps)
                reader.seek_to_beginning(*tps)
                end = reader.end_offsets(tps)
                pending = {tp for tp in tps if reader.position(tp) < end[tp]}
                while pending:
                    if time.monotonic() - started > RESTORE_TIMEOUT_S:
                        raise BrokerError(f"restoring the consent ledger took over {RESTORE_TIMEOUT_S:.0f}s; "
                                          "check the broker, or the size of the consent topic")
                    for tp, records in reader.poll(timeout_ms=500).items():
                        for record in records:
                            if record.offset < end[tp]:
                                applied += _apply_control(ledgers[tp.partition], tp.topic, self.topics, record)
                    pending = {tp for tp in pending if reader.position(tp) < end[tp]}
            finally:
                reader.close(autocommit=False)
        self.ledgers.update(ledgers)
        log.info("consent ledger restored for partitions %s: %d records, %d subjects, %.1fs", partitions,
                 applied, sum(len(ledger) for ledger in ledgers.values()), time.monotonic() - started)

    # -- metrics ---------------------------------------------------------------------------------
    def _update_lag(self) -> None:
        assert self._consumer is not None
        lag = {}
        assigned = self._consumer.assignment()
        for tp, nxt in self._next.items():
            if tp not in assigned:  # kafka-python raises IllegalStateError for a partition not assigned
                continue
            high = self._consumer.highwater(tp)
            if high is not None:
                lag[(tp.topic, tp.partition)] = max(0, high - nxt)
        with self.metrics.lock:
            self.metrics.lag = lag

    def _log_rates(self, seconds: float, last: tuple[int, int, int]) -> tuple[int, int, int]:
        m = self.metrics
        with m.lock:
            now = (m.events_in, m.events_out, m.dead_lettered)
            lag = sum(m.lag.values())
            dropped = sum(v for k, v in m.dropped.items() if k.startswith("dropped."))
        rates = [(a - b) / seconds for a, b in zip(now, last, strict=True)]
        log.info("events in %.0f/s, out %.0f/s, dead-lettered %.1f/s; fields dropped %d in total; lag %d",
                 *rates, dropped, lag)
        return now


def _apply_control(ledger: ConsentLedger, topic: str, topics: Topics, record: Any) -> int:
    """Applies one consent or privacy-request record while restoring; undecodable ones are skipped here
    (the main loop dead-letters them)."""
    if record.value is None:
        subject = subject_of_raw(record.key.decode("utf-8", "replace")) if record.key else None
        if topic == topics.consent and subject:
            ledger.forget_consents(subject)
        return 0
    try:
        schema, raw = decode(record.value, default_registry())
    except DecodeError:
        return 0
    key = record.key.decode("utf-8", "replace") if record.key else None
    subject = subject_of(raw, key)
    try:
        if schema.name == "consent_record":
            ledger.apply_consent(subject, raw)
        elif schema.name == "privacy_request":
            if is_hashed(subject):
                return 0  # applied per event by HashedRequests
            ledger.apply_request(subject, raw)
        else:
            return 0
    except (TypeError, ValueError):
        return 0
    return 1


def _fatal_message(tx_id: str, exc: KafkaError) -> str:
    if isinstance(exc, (ProducerFencedError, InvalidProducerEpochError)):
        return (f"processor stopped: another instance uses the transactional id {tx_id!r} and has fenced this "
                "one. Give every instance its own stable name (DATAMIN_INSTANCE or --instance)")
    return f"processor stopped: Kafka refused the transaction ({type(exc).__name__}: {exc}); check the ACLs " \
           "and that the broker supports transactions"
