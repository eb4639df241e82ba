"""What the sink holds between flushes: per (topic, partition), the decoded records and the offset range
they came from. Pure: no Kafka, no files; the clock is passed in.

A buffer covers a contiguous run of offsets as the consumer delivered them; offsets whose values were
dead-lettered count towards the range (so the checkpoint moves past them) but hold no record.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

TopicPartition = tuple[str, int]


@dataclass
class Buffer:
    """The records of one (topic, partition) waiting to be written."""

    topic: str
    partition: int
    event: str
    first: int
    last: int
    since: float
    """clock reading when its first message arrived"""
    records: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: int = 0

    @property
    def messages(self) -> int:
        return self.last - self.first + 1


class Batcher:
    """Buffers per (topic, partition) and says which are due: ``flush_rows`` records, or the oldest
    message ``flush_seconds`` old."""

    def __init__(self, flush_rows: int, flush_seconds: float) -> None:
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._buffers: dict[TopicPartition, Buffer] = {}

    def add(self, topic: str, partition: int, event: str, offset: int, record: dict[str, Any] | None,
            now: float) -> None:
        """Adds the message at ``offset``; ``record`` None means it was dead-lettered.

        Offsets must grow within a partition (gaps are fine: transaction markers, compaction)."""
        if record is None:
            self.extend(topic, partition, event, offset, offset, [], 1, now)
        else:
            self.extend(topic, partition, event, offset, offset, [record], 0, now)

    def extend(self, topic: str, partition: int, event: str, first: int, last: int,
               records: list[dict[str, Any]], dead_letters: int, now: float) -> None:
        """Adds a run of messages at once: those at offsets ``first..last`` as the consumer delivered them
        (gaps are fine), of which ``records`` (in offset order) were decodable and ``dead_letters`` were
        dead-lettered. One call per polled run instead of one per message; the caller flushes when
        ``rows`` reaches ``flush_rows``.

        Raises ValueError when ``first`` is not after the buffer's last offset (the consumer went back
        without the buffer being dropped) or the run is empty or inconsistent."""
        if last < first or dead_letters < 0 or len(records) + dead_letters > last - first + 1 \
                or len(records) + dead_letters == 0:
            raise ValueError(f"offsets {first}..{last} of {topic}[{partition}] cannot hold {len(records)} "
                             f"record(s) and {dead_letters} dead letter(s)")
        buf = self._buffers.get((topic, partition))
        if buf is None:
            buf = self._buffers[(topic, partition)] = Buffer(topic, partition, event, first, last, now)
        elif first <= buf.last:
            raise ValueError(f"offset {first} of {topic}[{partition}] is not after {buf.last}: "
                             "the consumer went back without the buffer being dropped")
        buf.last = last
        buf.dead_letters += dead_letters
        buf.records.extend(records)

    def due(self, now: float) -> list[TopicPartition]:
        """The buffers to flush now, oldest first."""
        ready = [b for b in self._buffers.values()
                 if len(b.records) >= self.flush_rows or now - b.since >= self.flush_seconds]
        return [(b.topic, b.partition) for b in sorted(ready, key=lambda b: b.since)]

    def take(self, tp: TopicPartition) -> Buffer | None:
        """Removes and returns the buffer of ``tp``, if any."""
        return self._buffers.pop(tp, None)

    def drop(self, tps: Iterable[TopicPartition]) -> int:
        """Forgets the buffers of ``tps`` (they will be consumed again); returns the records dropped."""
        dropped = 0
        for tp in tps:
            buf = self._buffers.pop(tp, None)
            dropped += len(buf.records) if buf else 0
        return dropped

    def rows(self, tp: TopicPartition) -> int:
        """Records waiting for ``tp``."""
        buf = self._buffers.get(tp)
        return len(buf.records) if buf else 0

    def partitions(self) -> list[TopicPartition]:
        return sorted(self._buffers)

    @property
    def pending_rows(self) -> int:
        return sum(len(b.records) for b in self._buffers.values())
