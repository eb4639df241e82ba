"""datamin's one Kafka boundary: nothing outside this package imports a Kafka client library.

    client        the transport (kafka-python): clients made from the config, the types and errors used
    errors        the transport's errors become BrokerError with the fix; fail fast when no broker answers
    send          send_and_wait: one record, acks=all, waited for
    dead_letter   the one format of a dead-letter note
    partitioner   the partition of a keyed record, as the Java client chooses it
"""

from datamin.kafka.client import (
    AuthorizationError,
    ConsumerRebalanceListener,
    InvalidProducerEpochError,
    KafkaError,
    OffsetAndMetadata,
    ProducerFencedError,
    RangePartitionAssignor,
    TopicPartition,
    UnsupportedVersionError,
    new_admin,
    new_consumer,
    new_producer,
)
from datamin.kafka.dead_letter import dead_letter_note
from datamin.kafka.errors import require_reachable, translate_kafka_errors
from datamin.kafka.send import send_and_wait

__all__ = [
    "AuthorizationError",
    "ConsumerRebalanceListener",
    "InvalidProducerEpochError",
    "KafkaError",
    "OffsetAndMetadata",
    "ProducerFencedError",
    "RangePartitionAssignor",
    "TopicPartition",
    "UnsupportedVersionError",
    "dead_letter_note",
    "new_admin",
    "new_consumer",
    "new_producer",
    "require_reachable",
    "send_and_wait",
    "translate_kafka_errors",
]
