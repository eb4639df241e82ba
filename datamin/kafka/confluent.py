"""The confluent-kafka transport (librdkafka): adapters offering the methods of `datamin.kafka.transport`,
with settings given in kafka-python's names and errors raised as the classes `datamin.kafka` exports.

Chosen with ``kafka.client = "confluent-kafka"``; installed with ``pip install 'datamin[confluent]'``.
Differences from kafka-python that the adapters hide:

- rebalance callbacks run inside ``poll`` (in the caller's thread); a listener's seeks there become the
  offsets of the assignment, since librdkafka cannot seek a partition it has not started fetching;
- a sent record's delivery callbacks run when the producer is polled: ``send``, ``flush`` and a pending
  ``Delivery.is_done`` poll it;
- keyed records go to murmur2(key) modulo the partitions, as the Java client and kafka-python choose
  (librdkafka's ``murmur2_random``), so a subject's events stay in one partition whichever client wrote them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from confluent_kafka import Consumer as _Consumer
from confluent_kafka import KafkaError as _KafkaError
from confluent_kafka import KafkaException as _KafkaException
from confluent_kafka import Producer as _Producer
from confluent_kafka import TopicPartition as _TopicPartition
from confluent_kafka.admin import AdminClient as _AdminClient
from confluent_kafka.admin import AlterConfigOpType as _AlterConfigOpType
from confluent_kafka.admin import ConfigEntry as _ConfigEntry
from confluent_kafka.admin import ConfigResource as _ConfigResource
from confluent_kafka.admin import NewTopic as _NewTopic
from confluent_kafka.admin import ResourceType as _ResourceType

from datamin.config import Config
from datamin.kafka.client import (
    AuthorizationError,
    FatalKafkaError,
    InvalidProducerEpochError,
    KafkaError,
    KafkaTimeoutError,
    ProducerFencedError,
    TopicAlreadyExistsError,
    TopicPartition,
    UnsupportedVersionError,
)

OFFSET_BEGINNING = -2
OFFSET_INVALID = -1001
METADATA_TIMEOUT_S = 30.0

_RENAMED = {
    "acks": "acks", "enable_idempotence": "enable.idempotence", "transactional_id": "transactional.id",
    "linger_ms": "linger.ms", "batch_size": "batch.size", "compression_type": "compression.type",
    "delivery_timeout_ms": "delivery.timeout.ms", "request_timeout_ms": "request.timeout.ms",
    "retry_backoff_ms": "retry.backoff.ms", "reconnect_backoff_max_ms": "reconnect.backoff.max.ms",
    "group_id": "group.id", "isolation_level": "isolation.level", "enable_auto_commit": "enable.auto.commit",
    "auto_offset_reset": "auto.offset.reset", "group_instance_id": "group.instance.id",
    "check_crcs": "check.crcs", "max_partition_fetch_bytes": "max.partition.fetch.bytes",
    "fetch_max_bytes": "fetch.max.bytes", "session_timeout_ms": "session.timeout.ms",
    "heartbeat_interval_ms": "heartbeat.interval.ms", "max_poll_interval_ms": "max.poll.interval.ms",
    "fetch_min_bytes": "fetch.min.bytes", "fetch_max_wait_ms": "fetch.wait.max.ms",
    "transaction_timeout_ms": "transaction.timeout.ms", "client_id": "client.id",
}
"""kafka-python's setting -> librdkafka's, where only the name differs"""
_HANDLED_HERE = {"max_poll_records", "max_block_ms", "partitioner", "partition_assignment_strategy",
                 "bootstrap_timeout_ms", "consumer_timeout_ms"}


def connection_settings(config: Config) -> dict[str, Any]:
    """The ``kafka`` section of datamin.toml in librdkafka's names (TLS, SASL, client id)."""
    k = config.kafka
    conf: dict[str, Any] = {
        "bootstrap.servers": ",".join(s.strip() for s in k.bootstrap_servers.split(",") if s.strip()),
        "security.protocol": k.security_protocol.lower(),
        "client.id": k.client_id,
    }
    if k.security_protocol in ("SSL", "SASL_SSL"):
        conf["ssl.endpoint.identification.algorithm"] = "https" if k.ssl_check_hostname else "none"
        for ours, theirs in (("ssl_cafile", "ssl.ca.location"), ("ssl_certfile", "ssl.certificate.location"),
                             ("ssl_keyfile", "ssl.key.location"), ("ssl_password", "ssl.key.password")):
            if getattr(k, ours) is not None:
                conf[theirs] = getattr(k, ours)
    if k.security_protocol.startswith("SASL_"):
        conf["sasl.mechanisms"] = k.sasl_mechanism
        conf["sasl.username"] = k.sasl_username
        conf["sasl.password"] = k.sasl_password
    return conf


def translate_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """kafka-python's settings in librdkafka's names; a setting without a translation is a TypeError (a bug
    of datamin's, caught by the conformance tests), never silently dropped."""
    conf: dict[str, Any] = {}
    for name, value in settings.items():
        if name in _HANDLED_HERE:
            continue
        if name not in _RENAMED:
            raise TypeError(f"the confluent-kafka transport has no translation for the setting {name!r}")
        if value is None:
            continue
        conf[_RENAMED[name]] = value
    if "partition_assignment_strategy" in settings:
        names = {getattr(a, "name", str(a)) for a in settings["partition_assignment_strategy"]}
        conf["partition.assignment.strategy"] = "range" if names == {"range"} else "roundrobin"
    return conf


def error_of(err: _KafkaError | _KafkaException | BaseException) -> KafkaError:
    """A librdkafka error as the KafkaError class that kafka-python (and so datamin) uses for it."""
    if isinstance(err, _KafkaException):
        if not err.args or not isinstance(err.args[0], _KafkaError):
            return KafkaError(str(err))
        err = err.args[0]
    if not isinstance(err, _KafkaError):
        return KafkaError(f"{type(err).__name__}: {err}")
    code = err.code()
    text = f"{err.name()}: {err.str()}"
    if code in (_KafkaError._FENCED, _KafkaError.PRODUCER_FENCED, _KafkaError.TRANSACTION_COORDINATOR_FENCED):
        return ProducerFencedError(text)
    if code == _KafkaError.INVALID_PRODUCER_EPOCH:
        return InvalidProducerEpochError(text)
    if code in (_KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, _KafkaError.TOPIC_AUTHORIZATION_FAILED,
                _KafkaError.GROUP_AUTHORIZATION_FAILED, _KafkaError.CLUSTER_AUTHORIZATION_FAILED):
        return AuthorizationError(text)
    if code == _KafkaError.UNSUPPORTED_VERSION:
        return UnsupportedVersionError(text)
    if code == _KafkaError.TOPIC_ALREADY_EXISTS:
        return TopicAlreadyExistsError(text)
    if err.fatal():
        return FatalKafkaError(text)
    if code in (_KafkaError._TIMED_OUT, _KafkaError._MSG_TIMED_OUT, _KafkaError.REQUEST_TIMED_OUT):
        return KafkaTimeoutError(text)
    return KafkaError(text)


def _call(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return f(*args, **kwargs)
    except _KafkaException as exc:
        raise error_of(exc) from None


# -- producer -----------------------------------------------------------------------------------------
class Delivery:
    """The future of one record: done when librdkafka reports its delivery (when the producer is polled)."""

    __slots__ = ("_producer", "_error", "_done", "_callbacks", "_errbacks", "_metadata")

    def __init__(self, producer: ConfluentProducer) -> None:
        self._producer = producer
        self._done = False
        self._error: KafkaError | None = None
        self._metadata: Any = None
        self._callbacks: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self._errbacks: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def _complete(self, err: _KafkaError | None, msg: Any) -> None:
        self._done = True
        if err is not None:
            self._error = error_of(err)
            for f, args in self._errbacks:
                f(*args, self._error)
        else:
            self._metadata = (msg.topic(), msg.partition(), msg.offset())
            for f, args in self._callbacks:
                f(*args, self._metadata)

    def add_callback(self, f: Callable[..., Any], *args: Any) -> Delivery:
        if self._done and self._error is None:
            f(*args, self._metadata)
        elif not self._done:
            self._callbacks.append((f, args))
        return self

    def add_errback(self, f: Callable[..., Any], *args: Any) -> Delivery:
        if self._done and self._error is not None:
            f(*args, self._error)
        elif not self._done:
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
        return self._metadata


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
        left = _call(self._p.flush, timeout if timeout is not None else -1)
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
        self._c = _call(_Consumer, conf)
        self._max = max_poll_records
        self._tps: dict[tuple[str, int], TopicPartition] = {}
        self._assigned: set[TopicPartition] = set()
        self._manual = False
        self._pending: dict[TopicPartition, int] | None = None
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
        try:
            if self._listener is not None:
                self._listener.on_partitions_assigned(assigned)
            offsets = self._pending
        finally:
            self._pending = None
        self._assigned = assigned
        for tp, offset in offsets.items():
            self._note_seek(tp, offset)
        consumer.assign([_TopicPartition(tp.topic, tp.partition, offsets.get(tp, OFFSET_INVALID))
                         for tp in assigned])

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
        committed = _call(self._c.committed, [_TopicPartition(tp.topic, tp.partition)], timeout=METADATA_TIMEOUT_S)
        if committed and committed[0].offset >= 0:
            return int(committed[0].offset)
        low, high = self._watermarks(tp)
        return low

    def _watermarks(self, tp: TopicPartition) -> tuple[int, int]:
        low, high = _call(self._c.get_watermark_offsets, _TopicPartition(tp.topic, tp.partition),
                          timeout=METADATA_TIMEOUT_S)
        self._lows[tp] = int(low)  # a broker round trip each: the low one is kept for seek_to_beginning
        return int(low), int(high)

    def end_offsets(self, partitions: Iterable[Any]) -> dict[TopicPartition, int]:
        return {self._tp(p.topic, p.partition): self._watermarks(self._tp(p.topic, p.partition))[1]
                for p in partitions}

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

    def pause(self, *partitions: Any) -> None:
        _call(self._c.pause, [_TopicPartition(p.topic, p.partition) for p in partitions])

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


# -- admin --------------------------------------------------------------------------------------------
class ConfluentAdmin:
    """librdkafka's admin client with kafka-python's ``list_topics``, ``create_topics``, ``alter_configs``."""

    def __init__(self, conf: dict[str, Any]) -> None:
        self._a = _call(_AdminClient, conf)

    def list_topics(self) -> list[str]:
        return list(_call(self._a.list_topics, timeout=METADATA_TIMEOUT_S).topics)

    def _wait(self, futures: Mapping[Any, Any]) -> None:
        exists: list[str] = []
        for name, future in futures.items():
            try:
                future.result(timeout=METADATA_TIMEOUT_S)
            except _KafkaException as exc:
                error = error_of(exc)
                if isinstance(error, TopicAlreadyExistsError):
                    exists.append(str(name))
                    continue
                raise error from None
        if exists:
            raise TopicAlreadyExistsError(", ".join(exists))

    def create_topics(self, new_topics: list[Any]) -> None:
        self._wait(_call(self._a.create_topics, [
            _NewTopic(t.name, num_partitions=t.num_partitions, replication_factor=t.replication_factor,
                      config=dict(t.topic_configs or {})) for t in new_topics], operation_timeout=METADATA_TIMEOUT_S))

    def alter_configs(self, config_resources: list[Any]) -> None:
        self._wait(_call(self._a.incremental_alter_configs, [
            _ConfigResource(_ResourceType.TOPIC, r.name, incremental_configs=[
                _ConfigEntry(k, str(v), incremental_operation=_AlterConfigOpType.SET)
                for k, v in (r.configs or {}).items()]) for r in config_resources]))

    def delete_topics(self, topics: list[str]) -> None:
        self._wait(_call(self._a.delete_topics, list(topics), operation_timeout=METADATA_TIMEOUT_S))

    def close(self) -> None:
        """Nothing to release: librdkafka's admin client closes when it is collected."""


# -- the transport's three factories --------------------------------------------------------------------
def new_producer(config: Config, **settings: Any) -> ConfluentProducer:
    """A producer connected as ``config.kafka`` says, with ``settings`` (kafka-python's names) on top."""
    conf = connection_settings(config) | translate_settings(settings)
    if "partitioner" in settings:  # keyed records: the Java client's choice (kafka-python's too)
        conf["partitioner"] = "murmur2_random"
    conf.setdefault("partitioner", "murmur2_random")
    return ConfluentProducer(conf, settings.get("max_block_ms", 60_000) / 1000)


def new_consumer(config: Config, *topics: str, **settings: Any) -> ConfluentConsumer:
    """A consumer connected as ``config.kafka`` says, subscribed to ``topics`` if any are given."""
    settings = dict(settings)
    conf = connection_settings(config) | translate_settings(settings)
    if not conf.get("group.id"):  # librdkafka needs a group even to read assigned partitions; never committed to
        conf["group.id"] = f"datamin-reader-{uuid.uuid4().hex}"
        conf["enable.auto.commit"] = False
    conf.setdefault("auto.offset.reset", "latest")
    conf.setdefault("enable.partition.eof", False)
    consumer = ConfluentConsumer(conf, int(settings.get("max_poll_records", 500)))
    if topics:
        consumer.subscribe(list(topics))
    return consumer


def new_admin(config: Config, **settings: Any) -> ConfluentAdmin:
    """An admin client connected as ``config.kafka`` says."""
    return ConfluentAdmin(connection_settings(config) | translate_settings(settings))
