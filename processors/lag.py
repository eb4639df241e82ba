"""The consumer group's real lag: per input partition, how far its committed offset is behind the
partition's end (read_committed: the last stable offset), whichever instance owns it.

The processor's own position says little: it moves before the transaction commits, and an instance
knows nothing of partitions it does not own (the gauge once showed 1,173 while the group was 24,185
behind). `GroupLag` asks the broker instead, every ``interval`` seconds from a daemon thread (never
from the loop), with its own consumer that joins no group. A partition the group never committed
counts from its earliest offset.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from datamin.config import Config
from datamin.kafka import KafkaError, TopicPartition, new_consumer

log = logging.getLogger("datamin.processor")

LAG_INTERVAL_S = 5.0
"""seconds between two readings of the group's lag"""


class GroupLag:
    """Reads the lag of ``group_id`` on ``topics`` and hands each reading to ``publish``."""

    def __init__(self, config: Config, group_id: str, topics: list[str],
                 publish: Callable[[dict[tuple[str, int], int]], None], interval: float = LAG_INTERVAL_S) -> None:
        self.config = config
        self.group_id = group_id
        self.topics = topics
        self.publish = publish
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer: Any = None

    def read(self) -> dict[tuple[str, int], int]:
        """One reading: (topic, partition) -> records the group has not committed yet."""
        consumer = self._consumer or self._connect()
        tps = [TopicPartition(t, p) for t in self.topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        if not tps:
            return {}
        end = consumer.end_offsets(tps)
        start = consumer.beginning_offsets(tps)
        lag = {}
        for tp in tps:
            committed = consumer.committed(tp)
            base = start[tp] if committed is None else max(committed, start[tp])
            lag[(tp.topic, tp.partition)] = max(0, end[tp] - base)
        return lag

    def start(self) -> None:
        self._thread = threading.Thread(target=self._follow, name="group-lag", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._consumer is not None:
            self._consumer.close(autocommit=False)
            self._consumer = None

    def _connect(self) -> Any:
        # group_id names whose committed offsets to read; this consumer never subscribes, so never joins
        self._consumer = new_consumer(self.config, group_id=self.group_id, enable_auto_commit=False,
                                      isolation_level="read_committed")
        return self._consumer

    def _follow(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.publish(self.read())
            except KafkaError as exc:  # the broker away: keep the last reading, try again
                log.warning("reading the group's lag: %s; retrying", type(exc).__name__)
