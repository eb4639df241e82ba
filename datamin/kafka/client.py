"""The kafka-python transport, and the value types and errors both transports use. The only module (with
`datamin.kafka.partitioner`) that imports the ``kafka`` package; everything else reaches Kafka through
`datamin.kafka`, which picks this transport or `datamin.kafka.confluent` as ``kafka.client`` says.

kafka-python's clients offer the operations of `datamin.kafka.transport` as they are.
"""

from __future__ import annotations

import warnings
from typing import Any

from datamin.config import Config

with warnings.catch_warnings():  # kafka-python 3.0's import-time DeprecationWarning (importlib.resources),
    warnings.simplefilter("ignore", DeprecationWarning)  # an error under -W error in whichever thread imports first
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
    from kafka.consumer.subscription_state import ConsumerRebalanceListener
    from kafka.coordinator.assignors.range import RangePartitionAssignor
    from kafka.errors import (
        AuthorizationError,
        InvalidProducerEpochError,
        KafkaError,
        KafkaTimeoutError,
        ProducerFencedError,
        TopicAlreadyExistsError,
        UnsupportedVersionError,
    )
    from kafka.structs import OffsetAndMetadata, TopicPartition



class FatalKafkaError(KafkaError):  # type: ignore[misc]
    """The client can never be used again (librdkafka's fatal errors other than fencing)."""


__all__ = [
    "AuthorizationError",
    "ConfigResource",
    "ConfigResourceType",
    "ConsumerRebalanceListener",
    "FatalKafkaError",
    "InvalidProducerEpochError",
    "KafkaError",
    "KafkaTimeoutError",
    "NewTopic",
    "OffsetAndMetadata",
    "ProducerFencedError",
    "RangePartitionAssignor",
    "TopicAlreadyExistsError",
    "TopicPartition",
    "UnsupportedVersionError",
    "new_admin",
    "new_consumer",
    "new_producer",
]


def new_producer(config: Config, **settings: Any) -> Any:
    """A producer connected as ``config.kafka`` says, with ``settings`` (kafka-python's names) on top."""
    return KafkaProducer(**config.kafka.client_kwargs(), **settings)


def new_consumer(config: Config, *topics: str, **settings: Any) -> Any:
    """A consumer connected as ``config.kafka`` says, subscribed to ``topics`` if any are given."""
    return KafkaConsumer(*topics, **config.kafka.client_kwargs(), **settings)


def new_admin(config: Config, **settings: Any) -> Any:
    """An admin client connected as ``config.kafka`` says."""
    return KafkaAdminClient(**config.kafka.client_kwargs(), **settings)
