"""KeyHashPartitioner chooses exactly what kafka-python's DefaultPartitioner chooses."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.partitioner import DefaultPartitioner

from datamin.kafka.partitioner import MAX_KEYS, KeyHashPartitioner


class Cluster:
    """The two queries a partitioner makes of kafka-python's ClusterMetadata."""

    def __init__(self, partitions: dict[str, set[int]]) -> None:
        self.partitions = partitions

    def topics(self) -> set[str]:
        return set(self.partitions)

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return set(self.partitions[topic]) if topic in self.partitions else None

    def available_partitions_for_topic(self, topic: str) -> set[int] | None:
        return self.partitions_for_topic(topic)


@settings(max_examples=300, deadline=None)
@given(keys=st.lists(st.binary(min_size=1, max_size=80), min_size=1, max_size=20),
       count=st.integers(1, 64))
def test_the_same_partition_as_the_default_partitioner(keys: list[bytes], count: int) -> None:
    cluster = Cluster({"t": set(range(count)), "u": {0, 3, 7}})
    ours, default = KeyHashPartitioner(), DefaultPartitioner()
    for key in keys + keys:  # the second time from the remembered hash
        for topic in ("t", "u"):
            want = default.partition(topic, None, key, None, None, cluster)
            assert ours.partition(topic, None, key, None, None, cluster) == want
            assert ours.partition(topic, None, bytearray(key), None, None, cluster) == want


def test_a_topic_that_grows_is_partitioned_over_its_new_count() -> None:
    cluster, ours = Cluster({"t": {0, 1}}), KeyHashPartitioner()
    keys = [f"subject-{i}".encode() for i in range(200)]
    before = {ours.partition("t", None, k, None, None, cluster) for k in keys}
    cluster.partitions["t"] = set(range(6))
    after = {ours.partition("t", None, k, None, None, cluster) for k in keys}
    assert before == {0, 1}
    assert after == set(range(6))


def test_keys_beyond_the_memory_bound_are_still_partitioned_right() -> None:
    cluster, ours, default = Cluster({"t": set(range(5))}), KeyHashPartitioner(), DefaultPartitioner()
    for i in range(MAX_KEYS + 10):
        key = i.to_bytes(4, "big")
        if i % 997 == 0 or i > MAX_KEYS:
            assert ours.partition("t", None, key, None, None, cluster) == \
                default.partition("t", None, key, None, None, cluster)
        else:
            ours.partition("t", None, key, None, None, cluster)
    assert len(ours._hashes) <= MAX_KEYS


def test_unknown_topics_and_missing_keys_behave_as_the_default() -> None:
    cluster, ours = Cluster({"t": {0, 1, 2}}), KeyHashPartitioner()
    with pytest.raises(ValueError, match="not found"):
        ours.partition("nope", None, b"k", None, None, cluster)
    assert ours.partition("t", None, None, None, b"v", cluster) in {0, 1, 2}
