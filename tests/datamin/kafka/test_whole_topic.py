"""read_to_end: a small topic read whole, from the beginning of every partition to its end."""

from __future__ import annotations

from typing import Any

import pytest

from datamin.config import Config
from datamin.exceptions import BrokerError
from datamin.kafka import new_consumer, new_producer, read_to_end
from datamin.topics import Topics, provision


def _consumer(config: Config) -> Any:
    return new_consumer(config, group_id=None, enable_auto_commit=False, isolation_level="read_committed")


def test_every_record_of_every_partition_is_read_tombstones_too(kafka_config: Config) -> None:
    provision(kafka_config)
    topic = Topics(kafka_config).erased_subjects
    producer = new_producer(kafka_config, acks="all")
    try:
        for i in range(20):
            producer.send(topic, key=f"k{i}".encode(), value=None if i % 5 == 0 else f"v{i}".encode())
        producer.flush(30)
    finally:
        producer.close(30)
    seen: list[tuple[int, bytes | None, bytes | None]] = []
    consumer = _consumer(kafka_config)
    try:
        read_to_end(consumer, topic, lambda p, k, v: seen.append((p, k, v)), timeout_s=60)
    finally:
        consumer.close()
    assert sorted(k or b"" for _, k, _ in seen) == sorted(f"k{i}".encode() for i in range(20))
    assert {k for _, k, v in seen if v is None} == {b"k0", b"k5", b"k10", b"k15"}
    assert {p for p, _, _ in seen} == {0, 1}  # both partitions of the test's topics


def test_a_missing_topic_names_the_fix_unless_allowed(kafka_config: Config) -> None:
    consumer = _consumer(kafka_config)
    try:
        with pytest.raises(BrokerError, match="datamin topics"):
            read_to_end(consumer, "t-no-such-topic-here", lambda *_: None, timeout_s=10)
        seen: list[bytes | None] = []
        read_to_end(consumer, "t-no-such-topic-here", lambda p, k, v: seen.append(k), timeout_s=10, missing_ok=True)
        assert seen == []
    finally:
        consumer.close()
