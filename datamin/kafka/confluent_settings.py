"""The confluent-kafka transport's translations: datamin.toml's ``kafka`` section and kafka-python's setting
names into librdkafka's, and librdkafka's errors into the KafkaError classes `datamin.kafka` exports."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import KafkaError as _KafkaError
from confluent_kafka import KafkaException as _KafkaException

from datamin.config import Config
from datamin.kafka.client import (
    AuthorizationError,
    FatalKafkaError,
    InvalidProducerEpochError,
    KafkaError,
    KafkaTimeoutError,
    ProducerFencedError,
    TopicAlreadyExistsError,
    UnsupportedVersionError,
)

OFFSET_BEGINNING = -2
OFFSET_INVALID = -1001
METADATA_TIMEOUT_S = 30.0

_RENAMED = {
    "acks": "acks", "enable_idempotence": "enable.idempotence", "transactional_id": "transactional.id",
    "linger_ms": "linger.ms", "batch_size": "batch.size", "compression_type": "compression.type",
    "delivery_timeout_ms": "delivery.timeout.ms", "request_timeout_ms": "request.timeout.ms",
    "retry_backoff_ms": "retry.backoff.ms", "reconnect_backoff_max_ms": "reconnect.backoff.max.ms",
    "group_id": "group.id", "isolation_level": "isolation.level", "enable_auto_commit": "enable.auto.commit",
    "auto_offset_reset": "auto.offset.reset", "group_instance_id": "group.instance.id",
    "check_crcs": "check.crcs", "max_partition_fetch_bytes": "max.partition.fetch.bytes",
    "fetch_max_bytes": "fetch.max.bytes", "session_timeout_ms": "session.timeout.ms",
    "heartbeat_interval_ms": "heartbeat.interval.ms", "max_poll_interval_ms": "max.poll.interval.ms",
    "fetch_min_bytes": "fetch.min.bytes", "fetch_max_wait_ms": "fetch.wait.max.ms",
    "transaction_timeout_ms": "transaction.timeout.ms", "client_id": "client.id",
}
"""kafka-python's setting -> librdkafka's, where only the name differs"""
_HANDLED_HERE = {"max_poll_records", "max_block_ms", "partitioner", "partition_assignment_strategy",
                 "bootstrap_timeout_ms", "consumer_timeout_ms"}


def connection_settings(config: Config) -> dict[str, Any]:
    """The ``kafka`` section of datamin.toml in librdkafka's names (TLS, SASL, client id)."""
    k = config.kafka
    conf: dict[str, Any] = {
        "bootstrap.servers": ",".join(s.strip() for s in k.bootstrap_servers.split(",") if s.strip()),
        "security.protocol": k.security_protocol.lower(),
        "client.id": k.client_id,
    }
    if k.security_protocol in ("SSL", "SASL_SSL"):
        conf["ssl.endpoint.identification.algorithm"] = "https" if k.ssl_check_hostname else "none"
        for ours, theirs in (("ssl_cafile", "ssl.ca.location"), ("ssl_certfile", "ssl.certificate.location"),
                             ("ssl_keyfile", "ssl.key.location"), ("ssl_password", "ssl.key.password")):
            if getattr(k, ours) is not None:
                conf[theirs] = getattr(k, ours)
    if k.security_protocol.startswith("SASL_"):
        conf["sasl.mechanisms"] = k.sasl_mechanism
        conf["sasl.username"] = k.sasl_username
        conf["sasl.password"] = k.sasl_password
    return conf


def translate_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """kafka-python's settings in librdkafka's names; a setting without a translation is a TypeError (a bug
    of datamin's, caught by the conformance tests), never silently dropped."""
    conf: dict[str, Any] = {}
    for name, value in settings.items():
        if name in _HANDLED_HERE:
            continue
        if name not in _RENAMED:
            raise TypeError(f"the confluent-kafka transport has no translation for the setting {name!r}")
        if value is None:
            continue
        conf[_RENAMED[name]] = value
    if "partition_assignment_strategy" in settings:
        names = {getattr(a, "name", str(a)) for a in settings["partition_assignment_strategy"]}
        conf["partition.assignment.strategy"] = "range" if names == {"range"} else "roundrobin"
    return conf


_PASSING = frozenset({
    _KafkaError.NOT_LEADER_FOR_PARTITION, _KafkaError.LEADER_NOT_AVAILABLE, _KafkaError.UNKNOWN_TOPIC_OR_PART,
    _KafkaError._UNKNOWN_PARTITION, _KafkaError.FENCED_LEADER_EPOCH, _KafkaError.UNKNOWN_LEADER_EPOCH,
    _KafkaError.OFFSET_NOT_AVAILABLE, _KafkaError._TRANSPORT, _KafkaError._TIMED_OUT, _KafkaError.REQUEST_TIMED_OUT,
})
"""librdkafka's answers while a partition's leader moves or a new topic's leader is being elected: kafka-python
refreshes its metadata and asks again on these, so the wrapper does too (librdkafka does not always flag them
retriable, e.g. a watermark query to a broker that just stopped leading)"""


def is_passing(exc: _KafkaException) -> bool:
    """Whether asking again shortly may succeed."""
    err = exc.args[0] if exc.args else None
    return isinstance(err, _KafkaError) and (err.retriable() or err.code() in _PASSING)


def error_of(err: _KafkaError | _KafkaException | BaseException) -> KafkaError:
    """A librdkafka error as the KafkaError class that kafka-python (and so datamin) uses for it."""
    if isinstance(err, _KafkaException):
        if not err.args or not isinstance(err.args[0], _KafkaError):
            return KafkaError(str(err))
        err = err.args[0]
    if not isinstance(err, _KafkaError):
        return KafkaError(f"{type(err).__name__}: {err}")
    code = err.code()
    text = f"{err.name()}: {err.str()}"
    if code in (_KafkaError._FENCED, _KafkaError.PRODUCER_FENCED, _KafkaError.TRANSACTION_COORDINATOR_FENCED):
        return ProducerFencedError(text)
    if code == _KafkaError.INVALID_PRODUCER_EPOCH:
        return InvalidProducerEpochError(text)
    if code in (_KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, _KafkaError.TOPIC_AUTHORIZATION_FAILED,
                _KafkaError.GROUP_AUTHORIZATION_FAILED, _KafkaError.CLUSTER_AUTHORIZATION_FAILED):
        return AuthorizationError(text)
    if code == _KafkaError.UNSUPPORTED_VERSION:
        return UnsupportedVersionError(text)
    if code == _KafkaError.TOPIC_ALREADY_EXISTS:
        return TopicAlreadyExistsError(text)
    if err.fatal():
        return FatalKafkaError(text)
    if code in (_KafkaError._TIMED_OUT, _KafkaError._MSG_TIMED_OUT, _KafkaError.REQUEST_TIMED_OUT):
        return KafkaTimeoutError(text)
    return KafkaError(text)


def ask(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``call`` for a question to the broker (offsets, watermarks): asked again while the answer is a
    passing error (`is_passing`), for up to METADATA_TIMEOUT_S."""
    deadline = time.monotonic() + METADATA_TIMEOUT_S
    while True:
        try:
            return f(*args, **kwargs)
        except _KafkaException as exc:
            if not is_passing(exc) or time.monotonic() > deadline:
                raise error_of(exc) from None
        time.sleep(0.2)


def call(f: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return f(*args, **kwargs)
    except _KafkaException as exc:
        raise error_of(exc) from None


