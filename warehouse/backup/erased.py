"""The erased-subjects topic, read whole: every subject erased (by keyed hash) and when."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from datamin.config import Config
from datamin.kafka import new_consumer, read_to_end, require_reachable, translate_kafka_errors
from datamin.topics import Topics

READ_TIMEOUT_S = 120.0


def read_erased_subjects(config: Config) -> dict[str, tuple[datetime, str]]:
    """``{subject hash: (erased_at, request id)}`` from the compacted erased-subjects topic (the last
    record per key; a tombstone removes it). Raises BrokerError when Kafka or the topic is missing."""
    doing = "reading the erased-subjects topic"
    require_reachable(doing, config)
    topic = Topics(config).erased_subjects
    found: dict[str, tuple[datetime, str]] = {}

    def apply(_partition: int, key: bytes | None, value: bytes | None) -> None:
        if not key:
            return
        hashed = key.decode("ascii", "replace")
        if value is None:
            found.pop(hashed, None)
            return
        try:
            doc = json.loads(value)
            found[hashed] = (datetime.fromisoformat(doc["erased_at"]).astimezone(UTC),
                             str(doc.get("request_id") or ""))
        except (ValueError, KeyError, TypeError):
            return

    with translate_kafka_errors(doing, config):
        consumer = new_consumer(config, group_id=None, enable_auto_commit=False, isolation_level="read_committed")
        try:
            read_to_end(consumer, topic, apply, timeout_s=READ_TIMEOUT_S)
        finally:
            consumer.close()
    return found
