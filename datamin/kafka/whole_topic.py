"""Reading a small topic whole: every partition from its beginning to its end offsets as of the call."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from datamin.exceptions import BrokerError
from datamin.kafka.client import TopicPartition


def read_to_end(consumer: Any, topic: str, apply: Callable[[int, bytes | None, bytes | None], None], *,
                timeout_s: float, missing_ok: bool = False) -> None:
    """Assigns every partition of ``topic`` to ``consumer`` (a consumer without a group), reads them from
    the beginning until each is at the end offset it had when this began, and hands every record read to
    ``apply(partition, key, value)`` (records written meanwhile may be among them). The consumer stays
    where it is, for whoever follows the topic on. Raises BrokerError when the topic does not exist
    (unless ``missing_ok``: nothing is read) or the end is not reached within ``timeout_s``."""
    partitions = consumer.partitions_for_topic(topic)
    if not partitions:
        if missing_ok:
            return
        raise BrokerError(f"the topic {topic} does not exist: run `datamin topics` first")
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    end = consumer.end_offsets(tps)
    deadline = time.monotonic() + timeout_s
    while any(consumer.position(tp) < end[tp] for tp in tps):
        if time.monotonic() > deadline:
            raise BrokerError(f"reading {topic} took over {timeout_s:.0f}s; check the broker")
        for tp, records in consumer.poll(timeout_ms=500).items():
            for record in records:
                apply(tp.partition, record.key, record.value)
