"""Erasure on the Kafka topics that hold a subject under their key: the compacted consent topic.

The consent topic is keyed by the subject (so that compaction keeps each person's latest choice and a
processor instance owns the consent of its partitions). Erasing a person writes a tombstone (a null
value) for every key of theirs found on it -- the canonical key and any older spelling that the
identity rule maps onto it -- and waits for acks=all. Then:

- every processor instance that reads the tombstone forgets the person's consent history in its
  ledger (restrictions and the erasure itself stay: the erased-subjects topic keeps them out);
- Kafka's log cleaner removes the older records of those keys at its next compaction of the
  partition, and the tombstone itself after ``delete.retention.ms``; until then the records are on
  the broker's disk, unreadable to any datamin consumer that honours the tombstone.

`records_with_key` reads a topic from its start to its end: the scan used by tests and by
`tombstone_consent` to find the person's keys.
"""

from __future__ import annotations

from collections.abc import Callable

from datamin.config import Config
from datamin.identity import subject_of_raw
from datamin.topics import Topics

Record = tuple[int, bytes | None, bytes | None]
"""(partition, key, value)"""


def records_with_key(config: Config, topic: str, wanted: Callable[[bytes | None, bytes | None], bool],
                     *, timeout_s: float = 60.0) -> list[Record]:
    """Every record of ``topic`` (from its start to at least its end now) for which ``wanted(key, value)``."""
    from datamin.kafka import new_consumer, read_to_end, translate_kafka_errors

    found: list[Record] = []

    def apply(partition: int, key: bytes | None, value: bytes | None) -> None:
        if wanted(key, value):
            found.append((partition, key, value))

    with translate_kafka_errors(f"reading {topic}", config):
        consumer = new_consumer(config, group_id=None, enable_auto_commit=False, isolation_level="read_committed")
        try:
            read_to_end(consumer, topic, apply, timeout_s=timeout_s, missing_ok=True)
        finally:
            consumer.close()
    return found


def consent_keys(config: Config, subject: str) -> list[bytes]:
    """The keys of ``subject`` (canonical) on the consent topic: the canonical key and any spelling
    the identity rule maps onto it."""
    def is_subject(key: bytes | None, _value: bytes | None) -> bool:
        return key is not None and subject_of_raw(key.decode("utf-8", "replace")) == subject

    keys = {key for _, key, _ in records_with_key(config, Topics(config).consent, is_subject) if key is not None}
    keys.add(subject.encode("utf-8"))
    return sorted(keys)


def tombstone_consent(config: Config, subject: str, *, timeout: float = 15.0) -> int:
    """Writes a tombstone for every consent-topic key of ``subject``; returns how many keys."""
    from datamin.kafka import new_producer, require_reachable, translate_kafka_errors
    from datamin.kafka.partitioner import KeyHashPartitioner

    keys = consent_keys(config, subject)
    doing = "writing consent tombstones"
    require_reachable(doing, config)
    with translate_kafka_errors(doing, config):
        producer = new_producer(config, acks="all", enable_idempotence=True, partitioner=KeyHashPartitioner())
        try:
            futures = [producer.send(Topics(config).consent, key=key, value=None) for key in keys]
            for future in futures:
                future.get(timeout)
            producer.flush(timeout)
        finally:
            producer.close(timeout)
    return len(keys)
