"""The partition of a keyed record, as kafka-python's DefaultPartitioner (and the Java client) choose it,
with each key's hash remembered.

kafka-python computes murmur2 in pure Python at every send: about 11 µs for a 67-byte pseudonym key,
as much as the rest of a send. Keys repeat (a person sends many events), so the hash is remembered
for the most recent keys. The choice is unchanged — murmur2(key) & 0x7fffffff modulo the partition
count, over the sorted partition ids — so that a subject's events and consent land in the same
partition whichever producer (datamin's, the Java client, kafka-python's default) wrote them.
"""

from __future__ import annotations

import warnings
from typing import Any

with warnings.catch_warnings():  # kafka-python 3.0's import-time DeprecationWarning (importlib.resources)
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.partitioner import DefaultPartitioner
    from kafka.partitioner.default import murmur2

MAX_KEYS = 65_536
"""keys remembered; all are forgotten at once when full"""


class KeyHashPartitioner(DefaultPartitioner):  # type: ignore[misc]
    """DefaultPartitioner's choice, faster for keys seen before. Pass as KafkaProducer(partitioner=...)."""

    def __init__(self) -> None:
        self._hashes: dict[bytes, int] = {}
        self._sorted: dict[str, tuple[Any, list[int]]] = {}

    def partition(self, topic: str, key: Any, serialized_key: bytes | bytearray | None, value: Any,
                  serialized_value: Any, cluster: Any) -> int:
        if serialized_key is None:
            return int(super().partition(topic, key, serialized_key, value, serialized_value, cluster))
        known = cluster.partitions_for_topic(topic)
        if not known:  # unknown topic: the default raises the error kafka-python expects
            return int(super().partition(topic, key, serialized_key, value, serialized_value, cluster))
        cached = self._sorted.get(topic)
        if cached is None or cached[0] != known:
            cached = self._sorted[topic] = (known, sorted(known))
        partitions = cached[1]
        if type(serialized_key) is not bytes:  # a serializer may give a bytearray
            serialized_key = bytes(serialized_key)
        h = self._hashes.get(serialized_key)
        if h is None:
            if len(self._hashes) >= MAX_KEYS:
                self._hashes.clear()
            h = self._hashes[serialized_key] = murmur2(serialized_key) & 0x7FFFFFFF
        return partitions[h % len(partitions)]
