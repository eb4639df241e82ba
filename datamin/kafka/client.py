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


TRANSACTION_WAIT_S = 30.0
"""How long a transactional call (offsets, commit, abort) may wait before it raises KafkaTimeoutError"""


class _BoundedTransactionsProducer(KafkaProducer):  # type: ignore[misc]
    """kafka-python's producer whose transactional calls wait at most ``TRANSACTION_WAIT_S``.

    kafka-python waits for them without a limit, and a transaction coordinator lost in the middle of
    one (a broker restart) can leave `send_offsets_to_transaction` waiting forever: the processor then
    stops without a word. A KafkaTimeoutError lets the caller give the transaction up; a new producer
    with the same transactional id fences it (librdkafka's transport has the same limits built in)."""

    def _bounded(self, result: Any, what: str) -> None:
        self._sender.wakeup()
        if not result.wait(timeout_ms=TRANSACTION_WAIT_S * 1000):
            raise KafkaTimeoutError(f"{what} did not complete within {TRANSACTION_WAIT_S:.0f}s")

    def send_offsets_to_transaction(self, offsets: Any, group_metadata: Any) -> None:
        if not self._transaction_manager:
            super().send_offsets_to_transaction(offsets, group_metadata)  # raises its own error
            return
        self._bounded(self._transaction_manager.send_offsets_to_transaction(offsets, group_metadata),
                      "sending the offsets to the transaction")

    def commit_transaction(self) -> None:
        if not self._transaction_manager:
            super().commit_transaction()
            return
        self._bounded(self._transaction_manager.begin_commit(), "committing the transaction")

    def abort_transaction(self) -> None:
        if not self._transaction_manager:
            super().abort_transaction()
            return
        self._bounded(self._transaction_manager.begin_abort(), "aborting the transaction")


def new_producer(config: Config, **settings: Any) -> Any:
    """A producer connected as ``config.kafka`` says, with ``settings`` (kafka-python's names) on top;
    its transactional calls wait at most ``TRANSACTION_WAIT_S``."""
    return _BoundedTransactionsProducer(**config.kafka.client_kwargs(), **settings)


def new_consumer(config: Config, *topics: str, **settings: Any) -> Any:
    """A consumer connected as ``config.kafka`` says, subscribed to ``topics`` if any are given."""
    return KafkaConsumer(*topics, **config.kafka.client_kwargs(), **settings)


def new_admin(config: Config, **settings: Any) -> Any:
    """An admin client connected as ``config.kafka`` says."""
    return KafkaAdminClient(**config.kafka.client_kwargs(), **settings)
