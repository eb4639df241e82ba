"""Broker outage end to end: stop the broker, publish, start it again, find every event exactly once.

Needs the `kafka_broker_control` fixture (a broker of its own with .stop(), .start(), .bootstrap),
which the lead provides; skipped until it exists. Never stops the shared broker."""

from __future__ import annotations

import gc
import warnings
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from datamin.config import Config
from datamin.topics import Topics, provision
from producers.producer import EventProducer
from schemas import decode, default_registry

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    broker_control = pytest.mark.broker_control  # registered by the lead with the fixture
    from kafka import KafkaConsumer


@broker_control
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_outage_spools_and_replays_exactly_once(request: pytest.FixtureRequest, make_config: Callable[..., Config],
                                                unique: Callable[[str], str]) -> None:
    try:
        control = request.getfixturevalue("kafka_broker_control")
    except pytest.FixtureLookupError:
        pytest.skip("needs the kafka_broker_control fixture (a broker this test may stop and start)")
    config = make_config(kafka=control.bootstrap, **{"TOPICS__PREFIX": f'"{unique("outage")}"',
                                                     "TOPICS__PARTITIONS": "2"})
    provision(config)
    producer = EventProducer(config)

    def event(i: int) -> dict[str, object]:
        return {"event_id": f"e-{i}", "time": datetime.now(UTC), "subject_key": f"s-{i % 5}", "url": f"/{i}"}

    for i in range(100):
        assert producer.publish("http_request", event(i))
    assert producer.flush(30)
    control.stop()
    try:
        for i in range(100, 300):
            assert producer.publish("http_request", event(i))
        assert producer.flush(60)  # spooled to disk: confirmed without a broker
        assert producer.stats().spooled > 0
    finally:
        control.start()
    for i in range(300, 400):
        assert producer.publish("http_request", event(i))
    assert producer.close(120)
    stats = producer.stats()
    assert stats.dropped == 0
    consumer = KafkaConsumer(Topics(config).raw("http_request"), **config.kafka.client_kwargs(),
                             auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=10_000)
    try:
        ids = [decode(m.value, default_registry())[1]["event_id"] for m in consumer]
    finally:
        consumer.close()
    missing = sorted(set(f"e-{i}" for i in range(400)) - set(ids), key=lambda s: int(s[2:]))
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    assert (missing, dupes, stats) == ([], [], stats)
    assert sorted(ids) == sorted(f"e-{i}" for i in range(400))  # every event, exactly once
    gc.collect()  # kafka-python leaks the sockets of refused connects; collect them here, not in a later test
