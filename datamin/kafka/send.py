"""One-shot sends: a record published with acks=all and waited for (privacy requests, erased subjects)."""

from __future__ import annotations

from datamin.config import Config
from datamin.kafka.errors import require_reachable, translate_kafka_errors
from datamin.kafka.transport import new_producer


def send_and_wait(config: Config, topic: str, *, key: bytes | None, value: bytes, doing: str,
                  timeout: float = 15.0) -> None:
    """Publishes one record to ``topic`` with acks=all and idempotence, and waits until Kafka has it.
    Raises BrokerError (saying what was being ``doing``, and the fix) when Kafka does not take it."""
    require_reachable(doing, config)
    with translate_kafka_errors(doing, config):
        producer = new_producer(config, acks="all", enable_idempotence=True)
        try:
            producer.send(topic, key=key, value=value).get(timeout)
            producer.flush(timeout)
        finally:
            producer.close(timeout)
