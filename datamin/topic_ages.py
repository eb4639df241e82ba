"""How old the oldest record of each datamin topic is, asked of the broker (for `datamin retention`).

Records carry log-append time (the topics are provisioned so), so the oldest record of a partition is
the first at or after timestamp 0: one ``offsets_for_times`` call per topic, no record is read.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from datamin.config import Config
from datamin.kafka import TopicPartition, new_consumer, require_reachable, translate_kafka_errors


def oldest_records(config: Config, topics: Iterable[str]) -> dict[str, datetime | None]:
    """``{topic: time of its oldest record, or None when empty or missing}``. Raises BrokerError when
    Kafka cannot be reached."""
    names = list(topics)
    require_reachable("reading the topics' oldest records", config)
    with translate_kafka_errors("reading the topics' oldest records", config):
        consumer = new_consumer(config, group_id=None, enable_auto_commit=False)
        try:
            out: dict[str, datetime | None] = {}
            for name in names:
                partitions = consumer.partitions_for_topic(name) or set()
                found = consumer.offsets_for_times({TopicPartition(name, p): 0 for p in partitions}) \
                    if partitions else {}
                stamps = [o.timestamp for o in found.values() if o is not None]
                out[name] = datetime.fromtimestamp(min(stamps) / 1000, UTC) if stamps else None
            return out
        finally:
            consumer.close()
