"""The erased-subjects topic, read whole: every subject erased (by keyed hash) and when."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from datamin.config import Config
from datamin.exceptions import BrokerError
from datamin.kafka import TopicPartition, new_consumer, require_reachable, translate_kafka_errors
from datamin.topics import Topics

READ_TIMEOUT_S = 120.0


def read_erased_subjects(config: Config) -> dict[str, tuple[datetime, str]]:
    """``{subject hash: (erased_at, request id)}`` from the compacted erased-subjects topic (the last
    record per key; a tombstone removes it). Raises BrokerError when Kafka or the topic is missing."""
    doing = "reading the erased-subjects topic"
    require_reachable(doing, config)
    topic = Topics(config).erased_subjects
    found: dict[str, tuple[datetime, str]] = {}
    with translate_kafka_errors(doing, config):
        consumer = new_consumer(config, group_id=None, enable_auto_commit=False, isolation_level="read_committed")
        try:
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                raise BrokerError(f"the topic {topic} does not exist: run `datamin topics` first")
            tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            end = consumer.end_offsets(tps)
            started = time.monotonic()
            while any(consumer.position(tp) < end[tp] for tp in tps):
                if time.monotonic() - started > READ_TIMEOUT_S:
                    raise BrokerError(f"reading {topic} took over {READ_TIMEOUT_S:.0f}s; check the broker")
                for records in consumer.poll(timeout_ms=500).values():
                    for r in records:
                        if not r.key:
                            continue
                        hashed = r.key.decode("ascii", "replace")
                        if r.value is None:
                            found.pop(hashed, None)
                            continue
                        try:
                            doc = json.loads(r.value)
                            found[hashed] = (datetime.fromisoformat(doc["erased_at"]).astimezone(UTC),
                                             str(doc.get("request_id") or ""))
                        except (ValueError, KeyError, TypeError):
                            continue
        finally:
            consumer.close()
    return found
