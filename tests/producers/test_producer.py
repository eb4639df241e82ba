"""EventProducer against a fake Kafka (deterministic outages) and against the real broker."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

with warnings.catch_warnings():  # kafka-python's import warns (importlib.resources.read_text)
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import KafkaConsumer

from datamin.config import Config
from datamin.topics import Topics, provision
from producers.producer import EventProducer
from schemas import decode, default_registry


class FakeFuture:
    def __init__(self) -> None:
        self.is_done = False
        self.exception: BaseException | None = None
        self._callbacks: list[Callable[..., Any]] = []
        self._errbacks: list[Callable[..., Any]] = []

    def add_callback(self, f: Callable[..., Any], *args: Any) -> None:
        self._callbacks.append(lambda v: f(*args, v))
        if self.is_done and self.exception is None:
            f(*args, None)

    def add_errback(self, f: Callable[..., Any], *args: Any) -> None:
        self._errbacks.append(lambda e: f(*args, e))
        if self.is_done and self.exception is not None:
            f(*args, self.exception)

    def succeeded(self) -> bool:
        return self.is_done and self.exception is None

    def resolve(self, exc: BaseException | None = None) -> None:
        self.is_done, self.exception = True, exc
        for cb in (self._errbacks if exc else self._callbacks):
            cb(exc)


class FakeBroker:
    """Accepts sends while up; while down, send raises like kafka-python's metadata timeout.
    With ``hold`` set, futures stay pending until ``settle()``."""

    def __init__(self) -> None:
        self.up = True
        self.hold = False
        self.log: list[tuple[str, bytes | None, bytes]] = []
        self.pending: list[tuple[FakeFuture, tuple[str, bytes | None, bytes]]] = []
        self.clients = 0

    def factory(self) -> Any:
        if not self.up:
            raise ConnectionError("no broker")
        self.clients += 1
        return _FakeClient(self)

    def settle(self, ok: bool) -> None:
        for future, record in self.pending:
            if ok:
                self.log.append(record)
            future.resolve(None if ok else TimeoutError("delivery timeout"))
        self.pending = []


class _FakeClient:
    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> FakeFuture:
        if not self.broker.up:
            raise TimeoutError("metadata not available")
        assert value is not None
        future = FakeFuture()
        if self.broker.hold:
            self.broker.pending.append((future, (topic, key, value)))
        else:
            self.broker.log.append((topic, key, value))
            future.resolve()
        return future

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _event(i: int, subject: str | None = "user-1") -> dict[str, Any]:
    return {"event_id": f"id-{i}", "time": datetime(2026, 1, 1, tzinfo=UTC), "subject_key": subject,
            "url": f"/page/{i}"}


def _ids(log: list[tuple[str, bytes | None, bytes]]) -> list[str]:
    return [decode(v, default_registry())[1]["event_id"] for _, _, v in log]


def _drive(p: EventProducer, rounds: int = 20) -> None:
    for _ in range(rounds):
        p._step(block=False)


@pytest.fixture
def config(make_config: Callable[..., Config]) -> Config:
    return make_config(**{"PRODUCER__QUEUE_SIZE": "100"})


def test_publish_sends_keyed_by_subject_to_the_raw_topic(config: Config) -> None:
    broker = FakeBroker()
    p = EventProducer(config, kafka=broker.factory, start=False)
    assert p.publish("http_request", _event(1))
    assert p.publish("http_request", _event(2, subject=None))
    assert p.publish("consent_record", {"time": datetime(2026, 1, 1, tzinfo=UTC), "subject_key": "c-1",
                                        "statistics": True})
    _drive(p)
    topics = Topics(config)
    assert [(t, k) for t, k, _ in broker.log] == [(topics.raw("http_request"), b"user-1"),
                                                  (topics.raw("http_request"), None), (topics.consent, b"c-1")]
    schema, record = decode(broker.log[2][2], default_registry())
    assert schema.name == "consent_record" and record["statistics"] is True
    uuid.UUID(record["event_id"])  # filled in when left out
    assert p.stats().sent == 3
    assert p.close()


def test_unknown_type_and_bad_record_are_counted_never_raised(config: Config) -> None:
    broker = FakeBroker()
    p = EventProducer(config, kafka=broker.factory, start=False)
    assert not p.publish("no_such_event", {})
    assert not p.publish("http_request", "not a dict")  # type: ignore[arg-type]
    assert p.publish("http_request", {"time": "not a datetime"})  # found out by the sender
    _drive(p)
    assert p.stats().invalid == 3 and broker.log == []
    p.close()


def test_full_queue_drops_and_counts(config: Config) -> None:
    p = EventProducer(config, kafka=FakeBroker().factory, start=False)
    results = [p.publish("http_request", _event(i)) for i in range(101)]
    assert results.count(False) == 1 and not results[-1]
    assert p.stats().dropped == 1
    p.close()


def test_outage_spools_then_replays_in_order_exactly_once(config: Config) -> None:
    broker = FakeBroker()
    clock = Clock()
    p = EventProducer(config, kafka=broker.factory, clock=clock, start=False, replay_batch=3)
    p.publish("http_request", _event(0))
    _drive(p)
    broker.up = False
    for i in range(1, 8):
        p.publish("http_request", _event(i))
    _drive(p)
    assert p.stats().spooled == 7 and _ids(broker.log) == ["id-0"]
    broker.up = True
    clock.now += 60  # past any back-off
    p.publish("http_request", _event(8))  # published after the outage: goes behind the spool
    _drive(p, 50)
    assert _ids(broker.log) == [f"id-{i}" for i in range(9)]
    stats = p.stats()
    assert stats.replayed == 8 and stats.sent == 1 and stats.dropped == 0
    p.publish("http_request", _event(9))
    _drive(p)
    assert _ids(broker.log)[-1] == "id-9" and p.stats().sent == 2  # direct again
    p.close()


def test_failed_deliveries_are_spooled_and_replayed(config: Config) -> None:
    broker = FakeBroker()
    clock = Clock()
    p = EventProducer(config, kafka=broker.factory, clock=clock, start=False)
    broker.hold = True
    for i in range(3):
        p.publish("http_request", _event(i))
    _drive(p)
    broker.settle(ok=False)  # kafka-python gave up on them (delivery timeout)
    broker.hold = False
    _drive(p)
    assert p.stats().failed == 3 and p.stats().spooled == 3
    clock.now += 60
    _drive(p, 50)
    assert _ids(broker.log) == ["id-0", "id-1", "id-2"]
    p.close()


def test_replay_batch_partly_acked_is_not_sent_twice(config: Config) -> None:
    broker = FakeBroker()
    clock = Clock()
    p = EventProducer(config, kafka=broker.factory, clock=clock, start=False, replay_batch=4)
    broker.up = False
    for i in range(4):
        p.publish("http_request", _event(i))
    _drive(p)
    broker.up, broker.hold = True, True
    clock.now += 60
    _drive(p)
    assert len(broker.pending) == 4
    first, second, third, fourth = broker.pending
    broker.pending = []
    for future, record in (first, third):
        broker.log.append(record)
        future.resolve()
    for future, _ in (second, fourth):
        future.resolve(TimeoutError("lost"))
    broker.hold = False
    _drive(p)  # the batch completes with failures: back off
    assert p.stats().replayed == 2
    clock.now += 60
    _drive(p, 50)
    assert sorted(_ids(broker.log)) == ["id-0", "id-1", "id-2", "id-3"]  # id-2 not sent again
    assert p.stats().replayed == 4
    p.close()


def test_spool_survives_restart_and_is_replayed_by_the_next_process(config: Config) -> None:
    broker = FakeBroker()
    broker.up = False
    p = EventProducer(config, kafka=broker.factory, start=False)
    for i in range(3):
        p.publish("http_request", _event(i))
    _drive(p)
    p._spool.sync()
    p._spool.close()  # the process dies without replaying
    broker.up = True
    q = EventProducer(config, kafka=broker.factory)
    q.publish("http_request", _event(3))
    assert q.flush(10)
    assert q.close(10)
    assert _ids(broker.log) == ["id-0", "id-1", "id-2", "id-3"]


def test_close_spools_what_kafka_did_not_take(config: Config) -> None:
    broker = FakeBroker()
    broker.hold = True
    p = EventProducer(config, kafka=broker.factory)
    for i in range(3):
        p.publish("http_request", _event(i))

    assert not p.flush(0.2) or broker.pending  # pending futures: not flushed
    broker.settle(ok=False)  # what a forced close does to pending batches
    assert p.close(5)
    assert p.stats().spooled == 3
    broker.hold = False
    q = EventProducer(config, kafka=broker.factory)
    assert q.close(10)
    assert _ids(broker.log) == ["id-0", "id-1", "id-2"]


def test_real_broker_receives_events(kafka_config: Config) -> None:
    provision(kafka_config)
    p = EventProducer(kafka_config)
    for i in range(20):
        assert p.publish("http_request", _event(i, subject=f"user-{i % 3}"))
    assert p.flush(30)
    assert p.close(10)
    assert p.stats().sent == 20
    consumer = KafkaConsumer(Topics(kafka_config).raw("http_request"), **kafka_config.kafka.client_kwargs(),
                             auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=5000)
    try:
        got = [(m.key, decode(m.value, default_registry())[1]["event_id"]) for m in consumer]
    finally:
        consumer.close()
    assert sorted(e for _, e in got) == sorted(f"id-{i}" for i in range(20))
    assert {k for k, _ in got} == {b"user-0", b"user-1", b"user-2"}


def test_more_events_than_one_sender_round_all_arrive_in_order(make_config: Callable[..., Config]) -> None:
    # regression: the sender took up to 1,000 queued events a round and lost the one it fetched last
    config = make_config(**{"PRODUCER__QUEUE_SIZE": "5000"})
    broker = FakeBroker()
    p = EventProducer(config, kafka=broker.factory, start=False)
    for i in range(2500):
        assert p.publish("http_request", _event(i))
    _drive(p, rounds=5)
    assert _ids(broker.log) == [f"id-{i}" for i in range(2500)]
    assert p.stats().sent == 2500
    assert p.close()


class _StallingClient(_FakeClient):
    """kafka-python's idempotent producer after a batch expired: nothing sent on it completes any more."""

    stalled = False

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> FakeFuture:
        if self.stalled:
            return FakeFuture()  # never resolved
        return super().send(topic, value, key)


def test_client_that_failed_a_delivery_is_replaced_before_the_replay(config: Config) -> None:
    """Regression (bench/faults.py): an outage longer than the delivery timeout left the producer
    replaying its spool on a stalled client forever; it must build a new client instead."""
    broker = FakeBroker()
    clients: list[_StallingClient] = []

    def factory() -> Any:
        broker.factory()  # counts, and raises while down
        clients.append(_StallingClient(broker))
        return clients[-1]

    clock = Clock()
    p = EventProducer(config, kafka=factory, clock=clock, start=False)
    broker.hold = True
    for i in range(3):
        p.publish("http_request", _event(i))
    _drive(p)
    broker.settle(ok=False)  # delivery timeout: from now on the first client completes nothing
    clients[0].stalled = True
    broker.hold = False
    _drive(p)
    clock.now += 60
    _drive(p, 50)
    assert p.stats().failed == 3
    assert _ids(broker.log) == ["id-0", "id-1", "id-2"]
    assert len(clients) == 2
    p.close()


def test_replay_on_a_stalled_client_is_abandoned_and_sent_on_a_new_one(config: Config) -> None:
    """Regression (bench/faults.py): after a second outage a client built while Kafka came back never
    completed its replay batch, and the spool was never replayed; a batch that does not complete within
    REPLAY_STALL_SECONDS now replaces the client and is sent again."""
    broker = FakeBroker()
    clients: list[_StallingClient] = []

    def factory() -> Any:
        broker.factory()
        clients.append(_StallingClient(broker))
        clients[-1].stalled = len(clients) == 1
        return clients[-1]

    clock = Clock()
    p = EventProducer(config, kafka=factory, clock=clock, start=False)
    broker.up = False
    for i in range(3):
        p.publish("http_request", _event(i))
    _drive(p)
    assert p.stats().spooled == 3
    broker.up = True
    clock.now += 60
    _drive(p)  # replay sent on the stalled client: nothing completes
    assert broker.log == [] and len(clients) == 1
    clock.now += 60
    _drive(p)  # the stalled batch is abandoned and the client dropped; a new one after the back-off
    clock.now += 60
    _drive(p, 50)
    assert _ids(broker.log) == ["id-0", "id-1", "id-2"]
    assert len(clients) == 2 and p.stats().replayed == 3
    p.close()
