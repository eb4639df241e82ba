"""The lag gauge is the group's real lag per partition: end offset minus the group's committed offset,
read from the broker, whichever instance owns the partition (real broker)."""

from __future__ import annotations

import threading

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

from datamin.config import Config
from datamin.topics import Topics, provision
from processors.lag import GroupLag


def test_lag_is_end_minus_the_groups_committed_offset_per_partition(kafka_config: Config) -> None:
    config = kafka_config
    provision(config)
    topic = Topics(config).raw("http_request")
    producer = KafkaProducer(acks="all", **config.kafka.client_kwargs())
    for _n in range(30):
        producer.send(topic, value=b"x", partition=0)
    for _n in range(12):
        producer.send(topic, value=b"x", partition=1)
    producer.flush()
    producer.close()
    group = config.processor.group_id
    # another member of the group committed partition 0 up to 20; partition 1 was never committed
    committer = KafkaConsumer(group_id=group, enable_auto_commit=False, **config.kafka.client_kwargs())
    try:
        committer.commit({TopicPartition(topic, 0): OffsetAndMetadata(20, "", -1)})
    finally:
        committer.close(autocommit=False)
    readings: list[dict[tuple[str, int], int]] = []
    got = threading.Event()
    lag = GroupLag(config, group, [topic], lambda r: (readings.append(r), got.set()), interval=0.2)
    try:
        assert lag.read() == {(topic, 0): 10, (topic, 1): 12}
        lag.start()
        assert got.wait(timeout=60)
        assert readings[0] == {(topic, 0): 10, (topic, 1): 12}
    finally:
        lag.stop()
