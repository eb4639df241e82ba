"""The transport's errors become datamin's BrokerError, with the fix."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

from datamin.config import Config
from datamin.exceptions import BrokerError
from datamin.kafka.client import KafkaError, KafkaTimeoutError


def _no_broker(doing: str, config: Config) -> BrokerError:
    return BrokerError(
        f"{doing}: no Kafka broker answers at {config.kafka.bootstrap_servers}. Start one with "
        "`datamin kafka start`, or point KAFKA_BOOTSTRAP_SERVERS (or kafka.bootstrap_servers) at yours"
    )


def require_reachable(doing: str, config: Config, timeout: float = 3.0) -> None:
    """Fails fast, with the fix, when no bootstrap server accepts a TCP connection
    (kafka-python itself would wait half a minute and then say only 'Unable to bootstrap')."""
    for server in config.kafka.client_kwargs()["bootstrap_servers"]:
        host, _, port = server.rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=timeout):
                return
        except (OSError, ValueError):
            continue
    raise _no_broker(doing, config)


@contextmanager
def translate_kafka_errors(doing: str, config: Config) -> Iterator[None]:
    """Turns kafka-python's exceptions into BrokerError saying what was being done and what to check."""
    try:
        yield
    except KafkaTimeoutError as exc:
        if "bootstrap" in str(exc).lower():
            raise _no_broker(doing, config) from None
        raise BrokerError(f"{doing}: Kafka did not answer in time ({exc}); is the broker overloaded?") from exc
    except KafkaError as exc:
        raise BrokerError(f"{doing}: Kafka said {type(exc).__name__}: {exc}") from exc
