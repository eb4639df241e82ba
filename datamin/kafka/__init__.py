"""datamin's one Kafka boundary: nothing outside this package imports a Kafka client library.

    transport     the interface (the operations datamin uses) and the factories: new_producer, new_consumer,
                  new_admin make clients of the transport ``kafka.client`` names
    client        the kafka-python transport, and the value types and errors both transports use
    confluent     the confluent-kafka (librdkafka) transport: adapters offering the same operations
                  (confluent_clients: producer and consumer; confluent_settings: settings and errors translated)
    errors        the transport's errors become BrokerError with the fix; fail fast when no broker answers
    send          send_and_wait: one record, acks=all, waited for
    dead_letter   the one format of a dead-letter note
    partitioner   the partition of a keyed record, as the Java client chooses it
    whole_topic   read_to_end: a small topic read from its beginning to its end
"""

from datamin.kafka.client import (
    AuthorizationError,
    ConsumerRebalanceListener,
    FatalKafkaError,
    InvalidProducerEpochError,
    KafkaError,
    KafkaTimeoutError,
    OffsetAndMetadata,
    ProducerFencedError,
    RangePartitionAssignor,
    TopicPartition,
    UnsupportedVersionError,
)
from datamin.kafka.dead_letter import dead_letter_note
from datamin.kafka.errors import require_reachable, translate_kafka_errors
from datamin.kafka.send import send_and_wait
from datamin.kafka.transport import new_admin, new_consumer, new_producer
from datamin.kafka.whole_topic import read_to_end

__all__ = [
    "AuthorizationError",
    "ConsumerRebalanceListener",
    "FatalKafkaError",
    "InvalidProducerEpochError",
    "KafkaError",
    "KafkaTimeoutError",
    "OffsetAndMetadata",
    "ProducerFencedError",
    "RangePartitionAssignor",
    "TopicPartition",
    "UnsupportedVersionError",
    "dead_letter_note",
    "new_admin",
    "new_consumer",
    "new_producer",
    "read_to_end",
    "require_reachable",
    "send_and_wait",
    "translate_kafka_errors",
]
