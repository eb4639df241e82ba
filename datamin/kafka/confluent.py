"""The confluent-kafka transport (librdkafka): adapters offering the methods of `datamin.kafka.transport`,
with settings given in kafka-python's names and errors raised as the classes `datamin.kafka` exports.

Chosen with ``kafka.client = "confluent-kafka"``; installed with ``pip install 'datamin[confluent]'``.
Differences from kafka-python that the adapters hide:

- rebalance callbacks run inside ``poll`` (in the caller's thread); a listener's seeks there become the
  offsets of the assignment, since librdkafka cannot seek a partition it has not started fetching;
- a sent record's delivery callbacks run when the producer is polled: ``send``, ``flush`` and a pending
  ``Delivery.is_done`` poll it;
- keyed records go to murmur2(key) modulo the partitions, as the Java client and kafka-python choose
  (librdkafka's ``murmur2_random``), so a subject's events stay in one partition whichever client wrote them.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaException as _KafkaException
from confluent_kafka.admin import AdminClient as _AdminClient
from confluent_kafka.admin import AlterConfigOpType as _AlterConfigOpType
from confluent_kafka.admin import ConfigEntry as _ConfigEntry
from confluent_kafka.admin import ConfigResource as _ConfigResource
from confluent_kafka.admin import NewTopic as _NewTopic
from confluent_kafka.admin import ResourceType as _ResourceType

from datamin.config import Config
from datamin.kafka.client import TopicAlreadyExistsError
from datamin.kafka.confluent_clients import ConfluentConsumer, ConfluentProducer, Delivery, Record
from datamin.kafka.confluent_settings import METADATA_TIMEOUT_S, connection_settings, error_of, translate_settings
from datamin.kafka.confluent_settings import call as _call

__all__ = ["ConfluentAdmin", "ConfluentConsumer", "ConfluentProducer", "Delivery", "Record", "connection_settings",
           "error_of", "new_admin", "new_consumer", "new_producer", "translate_settings"]


# -- admin --------------------------------------------------------------------------------------------
class ConfluentAdmin:
    """librdkafka's admin client with kafka-python's ``list_topics``, ``create_topics``, ``alter_configs``."""

    def __init__(self, conf: dict[str, Any]) -> None:
        self._a = _call(_AdminClient, conf)

    def list_topics(self) -> list[str]:
        return list(_call(self._a.list_topics, timeout=METADATA_TIMEOUT_S).topics)

    def _wait(self, futures: Mapping[Any, Any]) -> None:
        exists: list[str] = []
        for name, future in futures.items():
            try:
                future.result(timeout=METADATA_TIMEOUT_S)
            except _KafkaException as exc:
                error = error_of(exc)
                if isinstance(error, TopicAlreadyExistsError):
                    exists.append(str(name))
                    continue
                raise error from None
        if exists:
            raise TopicAlreadyExistsError(", ".join(exists))

    def create_topics(self, new_topics: list[Any]) -> None:
        self._wait(_call(self._a.create_topics, [
            _NewTopic(t.name, num_partitions=t.num_partitions, replication_factor=t.replication_factor,
                      config=dict(t.topic_configs or {})) for t in new_topics], operation_timeout=METADATA_TIMEOUT_S))

    def alter_configs(self, config_resources: list[Any]) -> None:
        self._wait(_call(self._a.incremental_alter_configs, [
            _ConfigResource(_ResourceType.TOPIC, r.name, incremental_configs=[
                _ConfigEntry(k, str(v), incremental_operation=_AlterConfigOpType.SET)
                for k, v in (r.configs or {}).items()]) for r in config_resources]))

    def delete_topics(self, topics: list[str]) -> None:
        self._wait(_call(self._a.delete_topics, list(topics), operation_timeout=METADATA_TIMEOUT_S))

    def close(self) -> None:
        """Nothing to release: librdkafka's admin client closes when it is collected."""


# -- the transport's three factories --------------------------------------------------------------------
def new_producer(config: Config, **settings: Any) -> ConfluentProducer:
    """A producer connected as ``config.kafka`` says, with ``settings`` (kafka-python's names) on top."""
    conf = connection_settings(config) | translate_settings(settings)
    if "partitioner" in settings:  # keyed records: the Java client's choice (kafka-python's too)
        conf["partitioner"] = "murmur2_random"
    conf.setdefault("partitioner", "murmur2_random")
    return ConfluentProducer(conf, settings.get("max_block_ms", 60_000) / 1000)


def new_consumer(config: Config, *topics: str, **settings: Any) -> ConfluentConsumer:
    """A consumer connected as ``config.kafka`` says, subscribed to ``topics`` if any are given."""
    settings = dict(settings)
    conf = connection_settings(config) | translate_settings(settings)
    if not conf.get("group.id"):  # librdkafka needs a group even to read assigned partitions; never committed to
        conf["group.id"] = f"datamin-reader-{uuid.uuid4().hex}"
        conf["enable.auto.commit"] = False
    conf.setdefault("auto.offset.reset", "latest")
    conf.setdefault("enable.partition.eof", False)
    consumer = ConfluentConsumer(conf, int(settings.get("max_poll_records", 500)))
    if topics:
        consumer.subscribe(list(topics))
    return consumer


def new_admin(config: Config, **settings: Any) -> ConfluentAdmin:
    """An admin client connected as ``config.kafka`` says (each operation waits METADATA_TIMEOUT_S at most)."""
    settings = {k: v for k, v in settings.items() if k != "request_timeout_ms"}  # a producer setting in librdkafka
    return ConfluentAdmin(connection_settings(config) | translate_settings(settings))
