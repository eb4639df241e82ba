"""kafka-python waits for a transactional call without a limit; with the transaction coordinator gone in
the middle of one (a broker restart), `send_offsets_to_transaction` waited forever and the processor
stopped without a word (the fault run lost every event after its broker outage). The boundary's
producer gives up after TRANSACTION_WAIT_S instead."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from datamin.config import Config
from datamin.kafka import KafkaError, OffsetAndMetadata, TopicPartition, new_admin, new_consumer, new_producer
from datamin.kafka import client as kafka_client_module
from datamin.kafka.client import NewTopic


@pytest.mark.broker_control
def test_a_transaction_whose_broker_went_away_raises_instead_of_waiting_forever(
        request: pytest.FixtureRequest, make_config: Callable[..., Config], unique: Callable[[str], str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    control: Any = request.getfixturevalue("kafka_broker_control")
    monkeypatch.setattr(kafka_client_module, "TRANSACTION_WAIT_S", 5.0)
    config = make_config(kafka=control.bootstrap)
    topic = unique("tx")
    admin = new_admin(config)
    try:
        admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        admin.close()
    producer = new_producer(config, transactional_id=unique("tx-id"), enable_idempotence=True, acks="all")
    producer.init_transactions()
    producer.begin_transaction()
    producer.send(topic, b"v", key=b"k").get(timeout=60)
    consumer = new_consumer(config, group_id=unique("group"), enable_auto_commit=False)
    group = consumer.group_metadata()
    control.stop()
    outcome: list[BaseException | None] = []

    def call() -> None:
        try:
            producer.send_offsets_to_transaction({TopicPartition(topic, 0): OffsetAndMetadata(1, "", -1)}, group)
            producer.commit_transaction()
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            outcome.append(exc)

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(timeout=180)  # the limit is 5 s (librdkafka's transport: 60 s); kafka-python's own wait had none
    try:
        assert not worker.is_alive(), "the transactional call is still waiting with the broker gone"
        assert outcome and isinstance(outcome[0], KafkaError), outcome
    finally:
        control.start()
        producer.close(timeout=5)
        consumer.close(autocommit=False)
