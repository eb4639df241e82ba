"""A real Apache Kafka broker for machines without Docker: fetched from Maven Central, run on Java."""

from datamin.cli.broker.local import KAFKA_VERSION, BrokerStatus, LocalBroker

__all__ = ["KAFKA_VERSION", "BrokerStatus", "LocalBroker"]
