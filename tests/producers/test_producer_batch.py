"""EventProducer's sender working in batches: the queue between callers and sender, encoding a batch
before sending it, counting acknowledgements without a callback per record, and the partitioner that
remembers key hashes (it must place every key where kafka-python's DefaultPartitioner does)."""

from __future__ import annotations

import queue
import threading
import uuid
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

with warnings.catch_warnings():  # kafka-python's import warns (importlib.resources.read_text)
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import KafkaConsumer
    from kafka.partitioner import murmur2

import producers.sender as sender_module
from datamin.config import Config
from datamin.topics import Topics, provision
from producers.producer import EventProducer
from producers.queue import EventQueue
from schemas import decode, default_registry
from schemas import encode as real_encode


class Future:
    """A kafka-python future as the sender sees it; ``run_errbacks=False`` leaves a failure's errbacks
    to the test, as when kafka-python's I/O thread has marked the future done but not yet called them."""

    def __init__(self) -> None:
        self.is_done = False
        self.exception: BaseException | None = None
        self.errbacks: list[Callable[[BaseException], Any]] = []

    def add_callback(self, f: Callable[..., Any], *args: Any) -> None:
        if self.is_done and self.exception is None:
            f(*args, None)

    def add_errback(self, f: Callable[..., Any], *args: Any) -> None:
        self.errbacks.append(lambda e: f(*args, e))
        if self.is_done and self.exception is not None:
            f(*args, self.exception)

    def succeeded(self) -> bool:
        return self.is_done and self.exception is None

    def resolve(self, exc: BaseException | None = None, run_errbacks: bool = True) -> None:
        self.is_done, self.exception = True, exc
        if exc is not None and run_errbacks:
            for errback in self.errbacks:
                errback(exc)


class Client:
    """Logs what is sent; with ``hold`` the futures stay pending in ``pending``."""

    def __init__(self) -> None:
        self.log: list[tuple[str, bytes | None, bytes]] = []
        self.pending: list[Future] = []
        self.hold = False

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> Future:
        assert value is not None
        self.log.append((topic, key, value))
        future = Future()
        if self.hold:
            self.pending.append(future)
        else:
            future.resolve()
        return future

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        pass


def _event(i: int, subject: str = "user-1") -> dict[str, Any]:
    return {"event_id": f"id-{i}", "time": datetime(2026, 1, 1, tzinfo=UTC), "subject_key": subject,
            "url": f"/page/{i}"}


def _ids(log: list[tuple[str, bytes | None, bytes]]) -> list[str]:
    return [decode(v, default_registry())[1]["event_id"] for _, _, v in log]


@pytest.fixture
def config(make_config: Callable[..., Config]) -> Config:
    return make_config(**{"PRODUCER__QUEUE_SIZE": "100"})


# -- the queue -------------------------------------------------------------------------------------

def test_queue_is_a_bounded_fifo_taken_in_batches() -> None:
    q = EventQueue(3)
    for i in range(3):
        q.put(("http_request", {"i": i}))
    with pytest.raises(queue.Full):
        q.put(("http_request", {"i": 3}))
    with pytest.raises(queue.Full):
        q.put(("http_request", {"i": 3}), 0.01)  # waited, nobody took anything
    assert len(q) == 3
    assert q.take(2, 0.0) == [("http_request", {"i": 0}), ("http_request", {"i": 1})]
    q.put(("http_request", {"i": 3}))
    assert q.take(10, 0.0) == [("http_request", {"i": 2}), ("http_request", {"i": 3})]
    assert q.take(10, 0.0) == [] and len(q) == 0


def test_queue_put_with_timeout_gets_room_when_the_sender_takes() -> None:
    q = EventQueue(1)
    q.put(("a", {}))
    done = threading.Event()

    def put_b() -> None:
        q.put(("b", {}), 30.0)
        done.set()

    thread = threading.Thread(target=put_b)
    thread.start()
    assert not done.wait(0.05)  # full: the putter waits
    assert q.take(10, 0.0) == [("a", {})]
    thread.join(30.0)
    assert done.is_set() and q.take(10, 0.0) == [("b", {})]


def test_queue_put_all_keeps_order_waits_for_room_and_says_how_many_went_in() -> None:
    q = EventQueue(3)
    assert q.put_all([("a", {}), ("b", {})]) == 2
    assert q.put_all([("c", {}), ("d", {}), ("e", {})], 0.01) == 1  # room for one; nobody took more
    taker = threading.Timer(0.05, lambda: got.extend(q.take(2, 0.0)))
    got: list[object] = []
    taker.start()
    assert q.put_all([("d", {}), ("e", {})], 30.0) == 2  # waited for the taker
    taker.join()
    assert got + q.take(10, 0.0) == [("a", {}), ("b", {}), ("c", {}), ("d", {}), ("e", {})]


def test_queue_take_wakes_up_for_a_put() -> None:
    q = EventQueue(10)
    got: list[object] = []
    thread = threading.Thread(target=lambda: got.extend(q.take(10, 30.0)))
    thread.start()
    q.put(("a", {}))
    thread.join(30.0)
    assert not thread.is_alive() and got == [("a", {})]


def test_publish_with_timeout_waits_for_the_sender_instead_of_dropping(make_config: Callable[..., Config]) -> None:
    client = Client()
    p = EventProducer(make_config(**{"PRODUCER__QUEUE_SIZE": "5"}), kafka=lambda: client)
    assert all(p.publish("http_request", _event(i), timeout=30.0) for i in range(300))
    assert p.flush(30) and p.close(10)
    assert _ids(client.log) == [f"id-{i}" for i in range(300)]
    assert p.stats().sent == 300 and p.stats().dropped == 0


# -- the sender's batches --------------------------------------------------------------------------

def test_a_bad_record_in_a_batch_is_counted_and_the_rest_sent_in_order(config: Config) -> None:
    client = Client()
    p = EventProducer(config, kafka=lambda: client, start=False)
    p.publish("http_request", _event(0))
    p.publish("http_request", {"time": "not a datetime"})
    p.publish("http_request", _event(2))
    p.publish_bytes("datamin.dead", b"{}", b"k")
    p.publish("http_request", _event(4))
    p._step(block=False)  # one batch
    assert [t for t, _, _ in client.log][2] == "datamin.dead"  # in its place in the order
    assert _ids([m for m in client.log if m[0] != "datamin.dead"]) == ["id-0", "id-2", "id-4"]
    assert p.stats().invalid == 1 and p.stats().sent == 4
    p.close()


def test_an_unexpected_error_in_a_batch_loses_only_that_event(config: Config,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    client = Client()

    def encode(schema: Any, record: dict[str, Any]) -> bytes:
        if record["event_id"] == "id-1":
            raise RuntimeError("boom")
        return real_encode(schema, record)

    monkeypatch.setattr(sender_module, "encode", encode)
    p = EventProducer(config, kafka=lambda: client, start=False)
    for i in range(3):
        p.publish("http_request", _event(i))
    p._step(block=False)
    assert _ids(client.log) == ["id-0", "id-2"]
    p.close()


def test_publish_later_builds_in_the_sender_and_a_failing_build_loses_only_that_event(config: Config) -> None:
    client = Client()
    built: list[int] = []

    def build(i: int) -> dict[str, Any]:
        built.append(i)
        if i == 1:
            raise RuntimeError("boom")
        record = _event(i)
        del record["event_id"]  # the sender gives it one
        return record

    p = EventProducer(config, kafka=lambda: client, start=False)
    assert all(p.publish_later("http_request", build, i) for i in range(3))
    assert not p.publish_later("no_such_event", build, 9)
    assert built == []  # nothing built on the caller's side
    p._step(block=False)
    assert built == [0, 1, 2]
    ids = _ids(client.log)
    assert len(ids) == 2 and all(uuid.UUID(i).version == 4 for i in ids) and ids[0] != ids[1]
    assert [decode(v, default_registry())[1]["url"] for _, _, v in client.log] == ["/page/0", "/page/2"]
    assert p.stats().invalid == 2 and p.stats().sent == 2
    p.close()


def test_uuid4_strings_are_distinct_version_4_uuids() -> None:
    ids = sender_module.uuid4_strings(500)
    assert len(set(ids)) == 500
    for text in ids:
        value = uuid.UUID(text)
        assert value.version == 4 and value.variant == uuid.RFC_4122 and str(value) == text


def test_sent_counts_acknowledgements_not_sends(config: Config) -> None:
    client = Client()
    client.hold = True
    p = EventProducer(config, kafka=lambda: client, start=False)
    for i in range(3):
        p.publish("http_request", _event(i))
    p._step(block=False)
    assert len(client.log) == 3 and p.stats().sent == 0
    assert not p.flush(0)  # sent, not yet acknowledged
    client.pending[1].resolve()
    p._step(block=False)
    assert p.stats().sent == 0  # counted oldest first: the first one holds the count back
    client.pending[0].resolve()
    client.pending[2].resolve()
    p._step(block=False)
    assert p.stats().sent == 3
    assert p.flush(0)
    p.close()


def test_flush_waits_for_the_errback_of_a_failed_send_and_spools_it(config: Config) -> None:
    client = Client()
    client.hold = True
    p = EventProducer(config, kafka=lambda: client, start=False)
    p.publish("http_request", _event(0))
    p._step(block=False)
    (future,) = client.pending
    future.resolve(TimeoutError("delivery timeout"), run_errbacks=False)  # done, errback not yet run
    assert not p.flush(0)  # the record is neither acknowledged nor spooled yet
    assert p.stats().spooled == 0
    for errback in future.errbacks:
        errback(TimeoutError("delivery timeout"))
    assert p.flush(0)
    stats = p.stats()
    assert stats.failed == 1 and stats.spooled == 1 and stats.sent == 0
    p.close()


# -- the partitioner -------------------------------------------------------------------------------

class Cluster:
    def __init__(self, topic: str, partitions: int, available: set[int] | None = None) -> None:
        self.topic = topic
        self.partitions = set(range(partitions))
        self.available = self.partitions if available is None else available

    def topics(self, exclude_internal_topics: bool = True) -> set[str]:
        return {self.topic}

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return set(self.partitions) if topic == self.topic else None

    def available_partitions_for_topic(self, topic: str) -> set[int] | None:
        return set(self.available) if topic == self.topic else None


def test_real_broker_places_each_subject_where_the_default_partitioner_would(kafka_config: Config) -> None:
    provision(kafka_config)
    topic = Topics(kafka_config).raw("http_request")
    p = EventProducer(kafka_config)
    subjects = [f"user-{i}" for i in range(12)]
    for i in range(60):
        assert p.publish("http_request", _event(i, subject=subjects[i % 12]))
    assert p.flush(30) and p.close(10)
    assert p.stats().sent == 60
    consumer = KafkaConsumer(topic, **kafka_config.kafka.client_kwargs(), auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=5000)
    try:
        placed = {(m.key, m.partition) for m in consumer}
        partitions = len(consumer.partitions_for_topic(topic) or ())
    finally:
        consumer.close()
    assert partitions == 2
    assert placed == {(s.encode(), (murmur2(s.encode()) & 0x7FFFFFFF) % partitions) for s in subjects}


def test_a_slow_send_the_sender_has_caught_up_with_does_not_spool_the_next_burst(config: Config) -> None:
    """Regression (bench/producer_throughput.py): the first send blocks on the topic's metadata; a burst
    published after the sender had caught up went to the spool as if Kafka stalled."""
    client = Client()
    p = EventProducer(config, kafka=lambda: client, start=False)
    p.publish("http_request", _event(0))
    p._step(block=False)
    p._slow_send = True  # that send blocked > 100 ms
    p._step(block=False)  # the queue is empty: caught up
    for i in range(1, 96):  # a burst: the queue over 90 percent full
        assert p.publish("http_request", _event(i))
    p._step(block=False)
    stats = p.stats()
    assert stats.spooled == 0 and stats.sent == 96
    p.close()


def test_a_slow_send_with_the_queue_over_90_percent_full_spools(config: Config) -> None:
    client = Client()
    p = EventProducer(config, kafka=lambda: client, start=False)
    p.publish("http_request", _event(0))
    p._step(block=False)
    for i in range(1, 96):
        assert p.publish("http_request", _event(i))
    p._slow_send = True  # the last send blocked > 100 ms, and the sender is behind
    p._step(block=False)
    stats = p.stats()
    assert stats.sent == 1 and stats.spooled == 95
    p.close()
