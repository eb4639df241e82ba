"""The warehouse sink: minimised topics -> day-partitioned Parquet, exactly once per Kafka offset.

``run_sink(config)`` consumes every minimised topic in the consumer group ``warehouse.group_id``
(read_committed, no auto-commit). The checkpoints the writer keeps beside the data are the truth:
on every assignment the sink finishes interrupted flushes (``PartitionWriter.recover``) and seeks
each partition to its checkpoint + 1 (or the beginning). Committed consumer offsets only inform
monitoring. Values that cannot be decoded, or that are not minimised events of the topic's type,
go to the dead-letter topic as a small JSON note (topic, partition, offset, reason; never the
value) and are skipped.

A buffer is flushed at ``warehouse.flush_rows`` rows or when its oldest message is
``warehouse.flush_seconds`` old; new files are queryable at once (the views read globs), and the
catalog is refreshed at most every ``CATALOG_INTERVAL`` seconds after a flush (longer when a refresh
takes over a tenth of that): written again only when a view must change, at a cost that does not
grow with the number of files. A write error (disk full)
stops the sink with that error and nothing of the failed flush visible.

Run it with ``datamin sink`` (SIGTERM or SIGINT flush and exit) or from a thread (pass ``stop``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from datamin.config import Config
from datamin.exceptions import DecodeError, EventError
from datamin.kafka import (
    ConsumerRebalanceListener,
    KafkaError,
    OffsetAndMetadata,
    dead_letter_note,
    new_consumer,
    new_producer,
    translate_kafka_errors,
)
from datamin.kafka import TopicPartition as KafkaTopicPartition
from datamin.topics import MINIMISED_EVENTS, Topics
from schemas import decode, default_registry
from schemas.registry import Registry
from warehouse.arrow import records_to_table, time_column
from warehouse.batcher import Batcher, Buffer, TopicPartition
from warehouse.catalog import CatalogBuilder
from warehouse.errors import CatalogError
from warehouse.expiry import oldest_kept_day
from warehouse.layout import layout_of
from warehouse.locking import sink_running
from warehouse.writer import Flush, PartitionWriter

log = logging.getLogger(__name__)

CATALOG_INTERVAL = 1.0
"""seconds between catalog refreshes while events stream in (at least)"""
CATALOG_SHARE = 9.0
"""and at least this many times the last build's duration: the catalog takes at most a tenth of the time"""
PROGRESS_INTERVAL = 10.0
"""seconds between progress lines in the log"""
POLL_MS = 100
SESSION_TIMEOUT_MS = 10_000
MAX_POLL_RECORDS = 20_000
"""at most this many records per poll"""


@dataclass
class SinkStats:
    """Totals of one run."""

    rows: int = 0
    files: int = 0
    flushes: int = 0
    dead_letters: int = 0
    catalog_builds: int = 0
    expired_on_arrival: int = 0
    """rows already past their table's retention when they arrived: counted, never written"""



def check_event(topic_event: str, value: bytes | None, registry: Registry) -> dict[str, Any]:
    """The decoded record of a message on the minimised topic of ``topic_event``.

    Raises EventError (to be dead-lettered) for an empty value, undecodable bytes, a raw event or an
    event of another type: the warehouse keeps only minimised events of the table's type."""
    if not value:
        raise DecodeError("empty value (tombstone) on a minimised topic")
    schema, record = decode(value, registry)
    if schema.kind != "minimised":
        raise EventError(f"a {schema.kind} {schema.name} event on a minimised topic: it is never loaded")
    if schema.name != topic_event:
        raise EventError(f"a {schema.name} event on the {topic_event} topic")
    return record


class _Sink:
    """The sink's state between polls. Buffers and writes are guarded by one lock, since kafka-python
    calls the rebalance listener from its IO thread while ``poll`` waits."""

    def __init__(self, config: Config, registry: Registry, consumer: Any, producer: Any,
                 on_flush: Callable[[Flush], None] | None, clock: Callable[[], float]) -> None:
        self.config = config
        self.registry = registry
        self.consumer = consumer
        self.producer = producer
        self.on_flush = on_flush
        self.clock = clock
        self.topics = Topics(config)
        self.events = {self.topics.minimised(e): e for e in MINIMISED_EVENTS}
        layout = layout_of(config)
        self.writer = PartitionWriter(layout)
        self.catalog = CatalogBuilder(layout, config.warehouse.catalog, registry,
                                      analyst_group=config.warehouse.analyst_group,
                                      min_visitors=config.warehouse.min_visitors)
        self.batcher = Batcher(config.warehouse.flush_rows, config.warehouse.flush_seconds)
        self.stats = SinkStats()
        self.lock = threading.RLock()
        self.to_commit: dict[TopicPartition, int] = {}
        self.catalog_dirty = True
        self.last_catalog = float("-inf")
        self.catalog_cost = 0.0
        """seconds the last catalog build took"""
        self.listener_error: BaseException | None = None
        self.today: Callable[[], date] = lambda: datetime.now(UTC).date()
        """the calendar day retention is judged on (a clock, so tests can move it)"""
        self.wall: Callable[[], datetime] = lambda: datetime.now(UTC)
        """the time future-dated rows are judged against (the processor refuses them already)"""

    # -- rebalance listener (kafka-python's IO thread) ---------------------------------------------

    def on_assigned(self, assigned: set[Any]) -> None:
        try:
            with self.lock:
                parts = [(tp.topic, tp.partition) for tp in assigned]
                self.batcher.drop(parts)
                self.writer.recover(parts)
                for tp in assigned:
                    done = self.writer.checkpoint(tp.topic, tp.partition)
                    if done is None:
                        self.consumer.seek_to_beginning(tp)
                    else:
                        self.consumer.seek(tp, done + 1)
                log.info("assigned %d partition(s); resuming each after its checkpoint", len(parts))
        except BaseException as exc:
            self.listener_error = exc
            raise

    def on_revoked(self, revoked: set[Any]) -> None:
        try:
            with self.lock:
                for tp in revoked:
                    self._flush((tp.topic, tp.partition))
        except BaseException as exc:
            self.listener_error = exc
            raise

    # -- main loop ---------------------------------------------------------------------------------

    def handle(self, polled: dict[Any, list[Any]]) -> None:
        now = self.clock()
        with self.lock:
            for tp, messages in polled.items():
                if messages:
                    self._take_in(tp.topic, tp.partition, messages, now)

    def _take_in(self, topic: str, partition: int, messages: list[Any], now: float) -> None:
        """Decodes one partition's polled messages (offsets growing) into its buffer, in runs: a run ends
        where the buffer reaches ``flush_rows`` records, and is flushed there, as if added one by one.
        No per-message batcher call: the loop does only what each message needs."""
        event = self.events[topic]
        registry = self.registry
        flush_rows = self.batcher.flush_rows
        room = max(1, flush_rows - self.batcher.rows((topic, partition)))
        records: list[dict[str, Any]] = []
        append = records.append
        dead = 0
        start = 0  # index of the run's first message
        for i, msg in enumerate(messages):
            try:
                append(check_event(event, msg.value, registry))
            except EventError as exc:
                self._dead_letter(topic, partition, msg.offset, exc)
                dead += 1
                continue
            if len(records) >= room:
                self.batcher.extend(topic, partition, event, messages[start].offset, msg.offset, records, dead, now)
                self._flush((topic, partition))
                records = []
                append = records.append
                dead = 0
                start = i + 1
                room = flush_rows
        if start < len(messages):
            self.batcher.extend(topic, partition, event, messages[start].offset, messages[-1].offset, records,
                                dead, now)

    def flush_due(self) -> None:
        with self.lock:
            for tp in self.batcher.due(self.clock()):
                self._flush(tp)

    def flush_all(self) -> None:
        with self.lock:
            for tp in self.batcher.partitions():
                self._flush(tp)

    def _flush(self, tp: TopicPartition) -> None:
        buf = self.batcher.take(tp)
        if buf is None:
            return
        if buf.dead_letters:
            self.producer.flush()  # the notes are out before the checkpoint moves past their offsets
        files = self._write(buf)
        self.stats.flushes += 1
        self.stats.rows += len(buf.records)
        self.stats.files += len(files)
        self.to_commit[tp] = buf.last + 1
        self.catalog_dirty = self.catalog_dirty or bool(files)
        if self.on_flush:
            self.on_flush(Flush(buf.event, buf.topic, buf.partition, buf.first, buf.last, len(buf.records),
                                tuple(files)))

    def _write(self, buf: Buffer) -> list[Path]:
        schema = self.registry.latest(buf.event, "minimised")
        table = self._within_retention(buf.event, records_to_table(schema, buf.records))
        return self.writer.write(buf.event, buf.topic, buf.partition, buf.first, buf.last, table,
                                 time_column=time_column(buf.event))

    def _within_retention(self, event: str, table: pa.Table) -> pa.Table:
        """Drops rows whose day partition is already past retention (a late or replayed event), so the
        sink never writes what expiry would have to delete; they are counted and the offsets still move."""
        oldest = oldest_kept_day(event, self.config.warehouse.retention_days, self.today())
        cutoff = pa.scalar(datetime.combine(oldest, datetime.min.time(), UTC), pa.timestamp("ms", tz="UTC"))
        future = pa.scalar(self.wall() + timedelta(seconds=self.config.minimise.clock_skew_seconds),
                           pa.timestamp("ms", tz="UTC"))
        column = table.column(time_column(event))
        keep = pc.fill_null(pc.and_(pc.greater_equal(column, cutoff), pc.less_equal(column, future)), True)
        kept = table.filter(keep)
        if kept.num_rows != table.num_rows:
            self.stats.expired_on_arrival += table.num_rows - kept.num_rows
            log.warning("%s: %d row(s) older than the table's retention or dated in the future arrived and were "
                        "not written", event, table.num_rows - kept.num_rows)
        return kept

    def _dead_letter(self, topic: str, partition: int, offset: int, exc: EventError) -> None:
        log.warning("dead-lettering %s[%d]@%d: %s", topic, partition, offset, exc.reason)
        self.stats.dead_letters += 1
        reason = f"{exc.reason}: {exc}"
        note = dead_letter_note("sink", topic, reason, partition=partition, offset=offset)
        self.producer.send(self.topics.dead_letter, note)

    def commit(self) -> None:
        """Commits the offsets flushed so far (informational; outside the lock: it may rebalance)."""
        with self.lock:
            offsets, self.to_commit = self.to_commit, {}
        if not offsets:
            return

        try:
            self.consumer.commit({KafkaTopicPartition(t, p): OffsetAndMetadata(o, "", -1)
                                  for (t, p), o in offsets.items()})
        except KafkaError as exc:  # the checkpoints are the truth; a lost commit only delays monitoring
            log.info("could not commit consumer offsets (%s); the checkpoints stand", type(exc).__name__)

    def maybe_rebuild_catalog(self, *, force: bool = False) -> None:
        now = self.clock()
        # a build costs ~0.1-0.5 s on a large warehouse: under load, wait at least 9 builds' time between
        # two, so that the catalog never takes more than a tenth of the sink's time
        wait = max(CATALOG_INTERVAL, CATALOG_SHARE * self.catalog_cost)
        if not (force or (self.catalog_dirty and now - self.last_catalog >= wait)):
            return
        first = self.last_catalog == float("-inf")
        self.catalog_dirty = False
        self.last_catalog = now
        try:
            started = time.perf_counter()
            report = self.catalog.build() if first else self.catalog.refresh()
            self.catalog_cost = time.perf_counter() - started
            self.stats.catalog_builds += report.rebuilt
            if report.quarantined:
                log.warning("quarantined %d file(s) while building the catalog", len(report.quarantined))
        except CatalogError as exc:
            self.catalog_dirty = True
            log.warning("%s; retrying on the next flush", exc)


def consumer_settings(config: Config) -> dict[str, Any]:
    """The KafkaConsumer options of the sink (besides the group and the connection): read_committed,
    manual commits, and fetch/poll sizes for throughput. Shared with the benchmark's bare consumer."""
    return {
        "isolation_level": "read_committed",
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        # one poll hands over up to a whole flush, so the loop's per-poll work (commit, flush and
        # catalog checks) is spread over many rows; measured with bench/sink_throughput.py's bare
        # consumer, 500..20000 make no difference to kafka-python's own per-record cost (~5 us)
        "max_poll_records": max(500, min(config.warehouse.flush_rows, MAX_POLL_RECORDS)),
        "check_crcs": True,  # in C: crc32c is a dependency
        # fewer, larger fetches: a partition's fetch of 1 MiB (the default) is only ~5000 rows, so the
        # sink would wait for the broker every few ms
        "max_partition_fetch_bytes": 8 * 1024 * 1024,
        "fetch_max_bytes": 64 * 1024 * 1024,
        # a killed sink's partitions move on after 10 s rather than 45 s
        "session_timeout_ms": SESSION_TIMEOUT_MS,
        "heartbeat_interval_ms": 3000,
    }


def run_sink(config: Config, *, stop: threading.Event | None = None,
             on_flush: Callable[[Flush], None] | None = None, registry: Registry | None = None,
             clock: Callable[[], float] = time.monotonic) -> SinkStats:
    """Loads the minimised topics into the warehouse until ``stop`` is set; then flushes and returns.

    Raises BrokerError when Kafka cannot be reached, and OSError when a write fails (nothing of
    that flush is visible, its offsets stay unloaded). Returns the run's totals."""
    stop = stop or threading.Event()
    registry = registry or default_registry()
    with translate_kafka_errors("starting the warehouse sink", config):
        consumer = new_consumer(config, group_id=config.warehouse.group_id, **consumer_settings(config))
    try:
        with translate_kafka_errors("starting the warehouse sink's dead-letter producer", config):
            producer = new_producer(config, acks="all", linger_ms=20)
    except BaseException:
        consumer.close(autocommit=False)
        raise
    sink = _Sink(config, registry, consumer, producer, on_flush, clock)
    running = sink_running(sink.writer.layout)  # a restore over this warehouse refuses while it is held
    running.__enter__()

    class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
        def on_partitions_revoked(self, revoked: set[Any]) -> None:
            sink.on_revoked(revoked)

        def on_partitions_assigned(self, assigned: set[Any]) -> None:
            sink.on_assigned(assigned)

    started = clock()
    progress = (started, 0)
    try:
        with translate_kafka_errors("consuming the minimised topics", config):
            # fetch the topics' metadata first: a group joined without it assigns nothing
            missing = [t for t in sorted(sink.events) if not consumer.partitions_for_topic(t)]
            if missing:
                log.warning("%d minimised topic(s) do not exist yet (%s): run `datamin topics` (provision) "
                            "to create them; the sink picks them up when they appear", len(missing),
                            ", ".join(missing))
            consumer.subscribe(sorted(sink.events), listener=Listener())
        sink.maybe_rebuild_catalog(force=True)
        log.info("warehouse sink started: %d topics into %s", len(sink.events), config.warehouse.root)
        while not stop.is_set():
            try:
                with translate_kafka_errors("consuming the minimised topics", config):
                    polled = consumer.poll(timeout_ms=POLL_MS)
            except BaseException:
                if sink.listener_error is not None:
                    raise sink.listener_error from None
                raise
            sink.handle(polled)
            sink.flush_due()
            sink.commit()
            sink.maybe_rebuild_catalog()
            now = clock()
            if now - progress[0] >= PROGRESS_INTERVAL:
                rate = (sink.stats.rows - progress[1]) / (now - progress[0])
                log.info("sink: %.0f rows/s; %d rows in %d files so far, %d dead-lettered, %d waiting",
                         rate, sink.stats.rows, sink.stats.files, sink.stats.dead_letters,
                         sink.batcher.pending_rows)
                progress = (now, sink.stats.rows)
        sink.flush_all()
        sink.commit()
        sink.maybe_rebuild_catalog(force=True)
        log.info("warehouse sink stopped: %d rows in %d files, %d dead-lettered",
                 sink.stats.rows, sink.stats.files, sink.stats.dead_letters)
        return sink.stats
    finally:
        running.__exit__(None, None, None)
        producer.close()
        consumer.close(autocommit=False)
