"""The confluent-kafka transport's producer and consumer: librdkafka's clients behind kafka-python's methods
(see `datamin.kafka.confluent` for what the adapters hide)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

from confluent_kafka import Consumer as _Consumer
from confluent_kafka import KafkaError as _KafkaError
from confluent_kafka import KafkaException as _KafkaException
from confluent_kafka import Producer as _Producer
from confluent_kafka import TopicPartition as _TopicPartition

from datamin.kafka.client import KafkaError, KafkaTimeoutError, TopicPartition
from datamin.kafka.confluent_settings import METADATA_TIMEOUT_S, OFFSET_BEGINNING, OFFSET_INVALID, error_of
from datamin.kafka.confluent_settings import ask as _ask
from datamin.kafka.confluent_settings import call as _call

FLUSH_LIMIT_S = 600.0
"""the longest ``flush()`` without a timeout waits: beyond librdkafka's delivery timeout (300 s by default)"""


# -- producer -----------------------------------------------------------------------------------------
class Delivery:
    """The future of one record: done when librdkafka reports its delivery (when the producer is polled).
    Cheap when nobody adds a callback (the sender only looks at ``is_done``): no lists, and the record's
    metadata is read from librdkafka's message only when asked for."""

    __slots__ = ("_producer", "_error", "_done", "_callbacks", "_errbacks", "_message")

    def __init__(self, producer: ConfluentProducer) -> None:
        self._producer = producer
        self._done = False
        self._error: KafkaError | None = None
        self._message: Any = None
        self._callbacks: list[tuple[Callable[..., Any], tuple[Any, ...]]] | None = None
        self._errbacks: list[tuple[Callable[..., Any], tuple[Any, ...]]] | None = None

    def _complete(self, err: _KafkaError | None, msg: Any) -> None:
        self._done = True
        if err is not None:
            self._error = error_of(err)
            for f, args in self._errbacks or ():
                f(*args, self._error)
        else:
            self._message = msg
            if self._callbacks:
                metadata = self._metadata()
                for f, args in self._callbacks:
                    f(*args, metadata)

    def _metadata(self) -> tuple[str, int, int] | None:
        msg = self._message
        return None if msg is None else (msg.topic(), msg.partition(), msg.offset())

    def add_callback(self, f: Callable[..., Any], *args: Any) -> Delivery:
        if self._done and self._error is None:
            f(*args, self._metadata())
        elif not self._done:
            if self._callbacks is None:
                self._callbacks = []
            self._callbacks.append((f, args))
        return self

    def add_errback(self, f: Callable[..., Any], *args: Any) -> Delivery:
        if self._done and self._error is not None:
            f(*args, self._error)
        elif not self._done:
            if self._errbacks is None:
                self._errbacks = []
            self._errbacks.append((f, args))
        return self

    @property
    def is_done(self) -> bool:
        if not self._done:
            self._producer.serve()
        return self._done

    def succeeded(self) -> bool:
        return self._done and self._error is None

    def failed(self) -> bool:
        return self._done and self._error is not None

    def get(self, timeout: float | None = None) -> Any:
        deadline = time.monotonic() + (timeout if timeout is not None else 60.0)
        while not self._done:
            left = deadline - time.monotonic()
            if left <= 0:
                raise KafkaTimeoutError(f"no delivery report in {timeout}s")
            self._producer.serve(min(left, 0.1))
        if self._error is not None:
            raise self._error
        return self._metadata()


class ConfluentProducer:
    """librdkafka's producer with kafka-python's ``send`` / ``flush`` / ``close`` and transaction methods."""

    def __init__(self, conf: dict[str, Any], max_block_s: float) -> None:
        self._p = _call(_Producer, conf)
        self._max_block_s = max_block_s
        self._sends = 0

    def serve(self, timeout: float = 0.0) -> None:
        """Runs the delivery callbacks that are due."""
        self._p.poll(timeout)

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> Delivery:
        delivery = Delivery(self)
        self._produce(topic, value, key, delivery._complete)
        return delivery

    def send_nowait(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> None:
        """``send`` without a future: a failure surfaces at the transaction's commit or at ``flush``."""
        self._produce(topic, value, key, None)

    def _produce(self, topic: str, value: bytes | None, key: bytes | None,
                 on_delivery: Callable[..., Any] | None) -> None:
        self._sends += 1
        if self._sends & 255 == 0:
            self._p.poll(0)
        try:
            self._p.produce(topic, value, key, on_delivery=on_delivery)
        except BufferError:  # the local queue is full: wait for deliveries, as kafka-python's max_block_ms
            deadline = time.monotonic() + self._max_block_s
            while True:
                self._p.poll(0.05)
                try:
                    self._p.produce(topic, value, key, on_delivery=on_delivery)
                    return
                except BufferError:
                    if time.monotonic() > deadline:
                        raise KafkaTimeoutError(f"the producer's queue stayed full for {self._max_block_s}s") \
                            from None
        except _KafkaException as exc:
            raise error_of(exc) from None

    def flush(self, timeout: float | None = None) -> None:
        """Waits for every record sent; ``None`` waits FLUSH_LIMIT_S at most (librdkafka's -1 could wait forever)."""
        left = _call(self._p.flush, timeout if timeout is not None else FLUSH_LIMIT_S)
        if left:
            raise KafkaTimeoutError(f"{left} record(s) not delivered within {timeout}s")

    def close(self, timeout: float | None = None) -> None:
        """Delivers what it can within ``timeout``; what is left fails (its errbacks run)."""
        left = self._p.flush(timeout if timeout is not None else 30.0)
        if left:
            self._p.purge(in_queue=True, in_flight=True, blocking=False)
            self._p.poll(0)
            self._p.flush(0)

    def init_transactions(self, timeout: float = 60.0) -> None:
        _call(self._p.init_transactions, timeout)

    def begin_transaction(self) -> None:
        _call(self._p.begin_transaction)

    def send_offsets_to_transaction(self, offsets: Mapping[Any, Any], group_metadata: Any) -> None:
        positions = [_TopicPartition(tp.topic, tp.partition, getattr(o, "offset", o)) for tp, o in offsets.items()]
        _call(self._p.send_offsets_to_transaction, positions, group_metadata, 60.0)

    def commit_transaction(self) -> None:
        _call(self._p.commit_transaction, 60.0)

    def abort_transaction(self) -> None:
        _call(self._p.abort_transaction, 60.0)


# -- consumer -----------------------------------------------------------------------------------------
class OffsetAndTimestamp(NamedTuple):
    """The answer of ``offsets_for_times`` for one partition, as kafka-python gives it."""

    offset: int
    timestamp: int


class Record:
    """One consumed record, as kafka-python's ConsumerRecord offers it (the fields datamin reads)."""

    __slots__ = ("offset", "key", "value")

    def __init__(self, offset: int, key: bytes | None, value: bytes | None) -> None:
        self.offset = offset
        self.key = key
        self.value = value


class ConfluentConsumer:
    """librdkafka's consumer with kafka-python's methods: ``poll`` returns {TopicPartition: [records]}."""

    def __init__(self, conf: dict[str, Any], max_poll_records: int) -> None:
        self._conf = conf
        self._c = _call(_Consumer, conf)
        self._max = max_poll_records
        self._tps: dict[tuple[str, int], TopicPartition] = {}
        self._assigned: set[TopicPartition] = set()
        self._manual = False
        self._pending: dict[TopicPartition, int] | None = None
        self._paused_in_assign: list[Any] | None = None
        """pauses asked for inside the assign listener, applied after its assign()"""
        """seeks asked for inside a rebalance callback, or before a manual assignment is started"""
        self._positions: dict[TopicPartition, int] = {}
        self._seeked: set[TopicPartition] = set()
        self._lows: dict[TopicPartition, int] = {}
        self._listener: Any = None

    def _tp(self, topic: str, partition: int) -> TopicPartition:
        tp = self._tps.get((topic, partition))
        if tp is None:
            tp = self._tps[(topic, partition)] = TopicPartition(topic, partition)
        return tp

    # group membership
    def subscribe(self, topics: list[str], listener: Any = None) -> None:
        self._listener = listener
        _call(self._c.subscribe, list(topics), on_assign=self._on_assign, on_revoke=self._on_revoke,
              on_lost=self._on_lost)

    def _on_assign(self, consumer: Any, partitions: list[Any]) -> None:
        assigned = {self._tp(p.topic, p.partition) for p in partitions}
        self._pending = {}
        self._paused_in_assign = []
        try:
            if self._listener is not None:
                self._listener.on_partitions_assigned(assigned)
            offsets, paused = self._pending, self._paused_in_assign
        finally:
            self._pending = self._paused_in_assign = None
        self._assigned = assigned
        for tp, offset in offsets.items():
            self._note_seek(tp, offset)
        consumer.assign([_TopicPartition(tp.topic, tp.partition, offsets.get(tp, OFFSET_INVALID))
                         for tp in assigned])
        if paused:  # assign() starts every partition fetching: pauses asked for in the listener come after it
            consumer.pause(paused)

    def _on_revoke(self, consumer: Any, partitions: list[Any]) -> None:
        revoked = {self._tp(p.topic, p.partition) for p in partitions}
        try:
            if self._listener is not None:
                self._listener.on_partitions_revoked(revoked)
        finally:
            self._assigned -= revoked
            consumer.unassign()

    def _on_lost(self, consumer: Any, partitions: list[Any]) -> None:
        lost = {self._tp(p.topic, p.partition) for p in partitions}
        try:
            if self._listener is not None:
                handler = getattr(self._listener, "on_partitions_lost", self._listener.on_partitions_revoked)
                handler(lost)
        finally:
            self._assigned -= lost
            consumer.unassign()

    def group_metadata(self) -> Any:
        return _call(self._c.consumer_group_metadata)

    def commit(self, offsets: Mapping[Any, Any] | None = None) -> None:
        if offsets is None:
            _call(self._c.commit, asynchronous=False)
            return
        _call(self._c.commit, offsets=[_TopicPartition(tp.topic, tp.partition, getattr(o, "offset", o))
                                       for tp, o in offsets.items()], asynchronous=False)

    # manual assignment and positions
    def assign(self, partitions: list[Any]) -> None:
        self._manual = True
        self._assigned = {self._tp(tp.topic, tp.partition) for tp in partitions}
        self._pending = {}
        self._start()

    def _start(self) -> None:
        """Starts the manual assignment with the seeks asked for since ``assign``."""
        if not self._manual or self._pending is None:
            return
        offsets, self._pending = self._pending, None
        _call(self._c.assign, [_TopicPartition(tp.topic, tp.partition, offsets.get(tp, OFFSET_INVALID))
                               for tp in self._assigned])

    def assignment(self) -> set[TopicPartition]:
        return set(self._assigned)

    def _note_seek(self, tp: TopicPartition, offset: int) -> None:
        self._positions[tp] = offset  # OFFSET_BEGINNING is resolved when the position is asked for
        self._seeked.add(tp)

    def seek(self, partition: Any, offset: int) -> None:
        tp = self._tp(partition.topic, partition.partition)
        if self._pending is not None:
            self._pending[tp] = offset
            if self._manual:
                self._note_seek(tp, offset)
            return
        self._note_seek(tp, offset)
        try:
            self._c.seek(_TopicPartition(tp.topic, tp.partition, offset))
        except _KafkaException:  # not fetching yet: start the assignment again from the offsets wanted
            self._c.assign([_TopicPartition(t.topic, t.partition, self._positions.get(t, OFFSET_INVALID))
                            for t in self._assigned])

    def seek_to_beginning(self, *partitions: Any) -> None:
        for tp in partitions or tuple(self._assigned):
            self.seek(tp, OFFSET_BEGINNING)

    def position(self, partition: Any) -> int:
        self._start()
        tp = self._tp(partition.topic, partition.partition)
        if tp in self._seeked:
            if self._positions[tp] == OFFSET_BEGINNING:
                self._positions[tp] = self._lows[tp] if tp in self._lows else self._watermarks(tp)[0]
            return self._positions[tp]
        got = int(_call(self._c.position, [_TopicPartition(tp.topic, tp.partition)])[0].offset)
        known = self._positions.get(tp)
        if got >= 0:
            return got if known is None else max(got, known)
        if known is not None:
            return known
        committed = _ask(self._c.committed, [_TopicPartition(tp.topic, tp.partition)], timeout=METADATA_TIMEOUT_S)
        if committed and committed[0].offset >= 0:
            return int(committed[0].offset)
        low, high = self._watermarks(tp)
        return low

    def _watermarks(self, tp: TopicPartition) -> tuple[int, int]:
        # a new topic's partition, or one whose leader moves, answers with a passing error a while
        low, high = _ask(self._c.get_watermark_offsets, _TopicPartition(tp.topic, tp.partition),
                         timeout=METADATA_TIMEOUT_S)
        self._lows[tp] = int(low)  # a broker round trip each: the low one is kept for seek_to_beginning
        return int(low), int(high)

    def end_offsets(self, partitions: Iterable[Any]) -> dict[TopicPartition, int]:
        return {self._tp(p.topic, p.partition): self._watermarks(self._tp(p.topic, p.partition))[1]
                for p in partitions}

    def beginning_offsets(self, partitions: Iterable[Any]) -> dict[TopicPartition, int]:
        return {self._tp(p.topic, p.partition): self._watermarks(self._tp(p.topic, p.partition))[0]
                for p in partitions}

    def committed(self, partition: Any) -> int | None:
        """The group's committed offset of ``partition``, None when it has none (kafka-python's answer)."""
        found = _ask(self._c.committed, [_TopicPartition(partition.topic, partition.partition)],
                     timeout=METADATA_TIMEOUT_S)
        return int(found[0].offset) if found and found[0].offset >= 0 else None

    def highwater(self, partition: Any) -> int | None:
        try:
            _, high = self._c.get_watermark_offsets(_TopicPartition(partition.topic, partition.partition),
                                                    cached=True)
        except _KafkaException:
            return None
        return int(high) if high >= 0 else None

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        metadata = _call(self._c.list_topics, topic, timeout=METADATA_TIMEOUT_S)
        found = metadata.topics.get(topic)
        if found is None or found.error is not None or not found.partitions:
            return None
        return set(found.partitions)

    def offsets_for_times(self, timestamps: Mapping[Any, int]) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        """The first offset at or after each time (ms), with that record's timestamp; None where there is none."""
        wanted = [_TopicPartition(tp.topic, tp.partition, ts) for tp, ts in timestamps.items()]
        found = _ask(self._c.offsets_for_times, wanted, timeout=METADATA_TIMEOUT_S) if wanted else []
        out: dict[TopicPartition, OffsetAndTimestamp | None] = {}
        hits = [f for f in found if f.offset >= 0]
        stamps: dict[tuple[str, int], int] = {}
        if hits:  # librdkafka gives the offset only: read each record there for its timestamp
            reader = _call(_Consumer, {**self._conf, "group.id": f"datamin-reader-{uuid.uuid4().hex}",
                                       "enable.auto.commit": False})
            try:
                reader.assign(hits)
                deadline = time.monotonic() + METADATA_TIMEOUT_S
                while len(stamps) < len(hits) and time.monotonic() < deadline:
                    for m in reader.consume(len(hits), 0.5):
                        if m.error() is None:
                            stamps.setdefault((m.topic(), m.partition()), m.timestamp()[1])
            finally:
                reader.close()
        for f in found:
            tp = self._tp(f.topic, f.partition)
            at = stamps.get((f.topic, f.partition))
            out[tp] = OffsetAndTimestamp(f.offset, at) if f.offset >= 0 and at is not None else None
        return out

    def pause(self, *partitions: Any) -> None:
        tps = [_TopicPartition(p.topic, p.partition) for p in partitions]
        if self._paused_in_assign is not None:  # inside the assign listener: applied after its assign()
            self._paused_in_assign.extend(tps)
            return
        _call(self._c.pause, tps)

    def resume(self, *partitions: Any) -> None:
        _call(self._c.resume, [_TopicPartition(p.topic, p.partition) for p in partitions])

    def poll(self, timeout_ms: int = 0, max_records: int | None = None) -> dict[TopicPartition, list[Record]]:
        self._start()
        messages = _call(self._c.consume, max_records or self._max, timeout_ms / 1000)
        batch: dict[TopicPartition, list[Record]] = {}
        if not messages:
            return batch
        # messages come in runs of one partition: look the partition up only where a run starts
        last_topic, last_partition = None, -1
        records: list[Record] = []
        for m in messages:
            if m.error() is not None:
                err = m.error()
                if err.code() == _KafkaError._PARTITION_EOF:
                    continue
                raise error_of(err)
            partition = m.partition()
            if partition != last_partition or m.topic() != last_topic:
                last_topic, last_partition = m.topic(), partition
                records = batch.setdefault(self._tp(last_topic, partition), [])
            records.append(Record(m.offset(), m.key(), m.value()))
        for tp, records in batch.items():
            self._positions[tp] = records[-1].offset + 1
            self._seeked.discard(tp)
        return batch

    def close(self, autocommit: bool = True) -> None:
        self._c.close()


