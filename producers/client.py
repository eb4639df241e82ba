"""The Kafka client the sender drives, as a small protocol (a fake stands in for it in tests), and the
factory that builds it from the config through `datamin.kafka`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from datamin.config import Config
from datamin.kafka import new_producer
from datamin.kafka.partitioner import KeyHashPartitioner


class KafkaFuture(Protocol):
    def add_callback(self, f: Callable[..., Any], *args: Any) -> Any: ...
    def add_errback(self, f: Callable[..., Any], *args: Any) -> Any: ...
    def succeeded(self) -> bool: ...
    @property
    def is_done(self) -> bool: ...


class KafkaClient(Protocol):
    """The part of kafka-python's KafkaProducer the sender uses (a fake stands in for it in tests)."""

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None) -> Any: ...
    def flush(self, timeout: float | None = None) -> None: ...
    def close(self, timeout: float | None = None) -> None: ...


def kafka_factory(config: Config, *, linger_ms: int = 5, batch_size: int = 64 * 1024,
                  compression: str = "lz4", delivery_timeout_ms: int = 15_000) -> Callable[[], KafkaClient]:
    """Builds kafka-python producers with datamin's delivery settings."""
    def make() -> KafkaClient:
        client: KafkaClient = new_producer(
            config, acks="all", enable_idempotence=True, compression_type=compression,
            linger_ms=linger_ms, batch_size=batch_size, delivery_timeout_ms=delivery_timeout_ms,
            request_timeout_ms=min(5_000, delivery_timeout_ms - linger_ms - 1), max_block_ms=1_000,
            bootstrap_timeout_ms=2_000, retry_backoff_ms=100, reconnect_backoff_max_ms=2_000,
            partitioner=KeyHashPartitioner())
        # the sender closes its client itself (at exit too, after sending what is queued); kafka-python's
        # own exit hook would run first and close it under the sender, sending the rest to the spool
        unregister = getattr(client, "_unregister_cleanup", None)
        if callable(unregister):
            unregister()
        return client

    return make


class Done:
    """Stands for a record acknowledged in an earlier replay attempt."""

    is_done = True

    def succeeded(self) -> bool:
        return True
