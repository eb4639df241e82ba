"""The transport interface under the transport under test (--kafka-client): the same operations, values and
errors on the real broker; and the confluent transport's translation of settings (pure)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.partitioner.default import murmur2

from datamin.config import Config
from datamin.exceptions import ConfigError
from datamin.kafka import (
    ConsumerRebalanceListener,
    KafkaError,
    OffsetAndMetadata,
    ProducerFencedError,
    TopicPartition,
    new_admin,
    new_consumer,
    new_producer,
)
from datamin.topics import Topics, provision


def test_an_unknown_transport_stops_start_up_naming_the_key(make_config: Callable[..., Config]) -> None:
    with pytest.raises(ConfigError) as caught:
        make_config(**{"KAFKA__CLIENT": '"librdkafka"'})
    assert caught.value.key == "kafka.client" and "confluent-kafka" in str(caught.value)


def test_confluent_settings_are_translated_and_an_unknown_one_is_refused(make_config: Callable[..., Config]) -> None:
    from datamin.kafka.confluent import connection_settings, translate_settings

    config = make_config(**{"KAFKA__SECURITY_PROTOCOL": '"SASL_SSL"', "KAFKA__SASL_MECHANISM": '"SCRAM-SHA-512"',
                            "KAFKA__SASL_USERNAME": '"app"', "KAFKA__SASL_PASSWORD": '"secret"',
                            "KAFKA__SSL_CHECK_HOSTNAME": "false"})
    conf = connection_settings(config)
    assert conf["security.protocol"] == "sasl_ssl" and conf["sasl.mechanisms"] == "SCRAM-SHA-512"
    assert (conf["sasl.username"], conf["sasl.password"]) == ("app", "secret")
    assert conf["ssl.endpoint.identification.algorithm"] == "none"
    assert translate_settings({"acks": "all", "enable_idempotence": True, "isolation_level": "read_committed",
                               "max_poll_records": 10}) == {
        "acks": "all", "enable.idempotence": True, "isolation.level": "read_committed"}
    with pytest.raises(TypeError, match="api_version"):
        translate_settings({"api_version": (2, 0)})


def test_a_moving_leader_is_asked_again_and_a_refusal_is_not() -> None:
    from confluent_kafka import KafkaError as RdKafkaError
    from confluent_kafka import KafkaException

    from datamin.kafka.confluent_settings import is_passing

    # a watermark query to a broker that has just stopped leading: librdkafka does not flag it retriable
    assert is_passing(KafkaException(RdKafkaError(RdKafkaError.NOT_LEADER_FOR_PARTITION)))
    assert is_passing(KafkaException(RdKafkaError(RdKafkaError.LEADER_NOT_AVAILABLE)))
    assert not is_passing(KafkaException(RdKafkaError(RdKafkaError.TOPIC_AUTHORIZATION_FAILED)))
    assert not is_passing(KafkaException("no error object"))


def test_a_question_is_asked_again_through_a_leader_election_but_not_after_a_refusal(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from confluent_kafka import KafkaError as RdKafkaError
    from confluent_kafka import KafkaException

    from datamin.kafka import AuthorizationError, confluent_settings

    monkeypatch.setattr("datamin.kafka.confluent_settings.time.sleep", lambda _s: None)
    answers: list[object] = [KafkaException(RdKafkaError(RdKafkaError.NOT_LEADER_FOR_PARTITION)),
                             KafkaException(RdKafkaError(RdKafkaError.LEADER_NOT_AVAILABLE)), (0, 42)]

    def watermarks() -> object:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert confluent_settings.ask(watermarks) == (0, 42)

    def refused() -> object:
        raise KafkaException(RdKafkaError(RdKafkaError.TOPIC_AUTHORIZATION_FAILED))

    with pytest.raises(AuthorizationError):
        confluent_settings.ask(refused)


def test_keyed_records_land_where_the_java_client_puts_them(kafka_config: Config) -> None:
    """Both transports partition a key as murmur2 (kafka-python's DefaultPartitioner, the Java client), so a
    subject's events and consent meet in one partition whichever client wrote them."""
    provision(kafka_config)
    topic = Topics(kafka_config).raw("http_request")
    producer = new_producer(kafka_config, acks="all", enable_idempotence=True)
    keys = [f"user-{i}".encode() for i in range(40)]
    try:
        for key in keys:
            producer.send(topic, value=b"v", key=key)
        producer.flush(30)
    finally:
        producer.close(10)
    reader = KafkaConsumer(topic, **kafka_config.kafka.client_kwargs(), auto_offset_reset="earliest",
                           consumer_timeout_ms=10_000)
    try:
        where = {r.key: r.partition for r in reader}
    finally:
        reader.close()
    n = kafka_config.topics.partitions
    assert where == {k: (murmur2(k) & 0x7FFFFFFF) % n for k in keys}


def test_transactions_carry_offsets_and_an_aborted_one_is_never_read(kafka_config: Config) -> None:
    provision(kafka_config)
    topics = Topics(kafka_config)
    source, target = topics.raw("usage_event"), topics.raw("device_report")
    seed = KafkaProducer(**kafka_config.kafka.client_kwargs(), acks="all")
    for i in range(10):
        seed.send(source, key=b"k", value=str(i).encode())
    seed.flush()
    seed.close()
    group = f"{kafka_config.topics.prefix}-tx-test"
    tx = new_producer(kafka_config, transactional_id=f"{group}-{uuid.uuid4().hex[:6]}", enable_idempotence=True,
                      acks="all")
    tx.init_transactions()
    consumer = new_consumer(kafka_config, group_id=group, isolation_level="read_committed",
                            enable_auto_commit=False, auto_offset_reset="earliest")

    class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
        assigned: set[TopicPartition] = set()

        def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
            Listener.assigned = set(assigned)

        def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
            pass

    consumer.subscribe([source], listener=Listener())
    try:
        got = []
        for _ in range(120):
            got += [(tp, r) for tp, rs in consumer.poll(timeout_ms=500).items() for r in rs]
            if len(got) >= 10:
                break
        assert len(got) == 10 and {tp.topic for tp, _ in got} == {source}
        assert Listener.assigned == {TopicPartition(source, p) for p in range(kafka_config.topics.partitions)}
        tx.begin_transaction()
        tx.send(target, value=b"aborted", key=b"k")
        tx.abort_transaction()
        tx.begin_transaction()
        for _, r in got:
            tx.send(target, value=b"copy-" + r.value, key=r.key)
        last = {tp: OffsetAndMetadata(r.offset + 1, "", -1) for tp, r in got}
        tx.send_offsets_to_transaction(last, consumer.group_metadata())
        tx.commit_transaction()
    finally:
        consumer.close(autocommit=False)
        tx.close(10)
    reader = KafkaConsumer(target, **kafka_config.kafka.client_kwargs(), auto_offset_reset="earliest",
                           isolation_level="read_committed", consumer_timeout_ms=10_000)
    try:
        values = sorted(r.value for r in reader)
    finally:
        reader.close()
    assert values == sorted(b"copy-" + str(i).encode() for i in range(10))
    committed = KafkaConsumer(**kafka_config.kafka.client_kwargs(), group_id=group, enable_auto_commit=False)
    try:
        assert sum(committed.committed(tp) or 0 for tp in last) == 10  # the offsets went with the transaction
    finally:
        committed.close()


def test_a_second_producer_with_the_same_transactional_id_fences_the_first(kafka_config: Config) -> None:
    provision(kafka_config)
    topic = Topics(kafka_config).raw("usage_event")
    tx_id = f"{kafka_config.topics.prefix}-fence"
    first = new_producer(kafka_config, transactional_id=tx_id, enable_idempotence=True, acks="all")
    first.init_transactions()
    second = new_producer(kafka_config, transactional_id=tx_id, enable_idempotence=True, acks="all")
    second.init_transactions()
    try:
        with pytest.raises(KafkaError) as caught:
            first.begin_transaction()
            first.send(topic, value=b"x")
            first.commit_transaction()
        assert isinstance(caught.value, ProducerFencedError) or "fenc" in str(caught.value).lower() or \
            "epoch" in type(caught.value).__name__.lower()
    finally:
        second.close(5)
        try:
            first.close(0)
        except KafkaError:
            pass


def test_admin_creates_topics_with_their_retention(kafka_config: Config) -> None:
    created = provision(kafka_config)
    specs = {s.name: s for s in Topics(kafka_config).all()}
    assert set(created) == set(specs)
    assert provision(kafka_config) == []  # already there: nothing created, retention re-applied
    admin = new_admin(kafka_config)
    try:
        assert set(specs) <= set(admin.list_topics())
    finally:
        admin.close()
    from confluent_kafka.admin import AdminClient, ConfigResource

    name = Topics(kafka_config).raw("http_request")
    check = AdminClient({"bootstrap.servers": kafka_config.kafka.bootstrap_servers})
    [future] = check.describe_configs([ConfigResource("topic", name)]).values()
    assert future.result(timeout=30)["retention.ms"].value == str(specs[name].retention_ms)


def test_the_transport_under_test_is_the_one_configured(kafka_config: Config, kafka_client: str) -> None:
    assert kafka_config.kafka.client == kafka_client
    producer = new_producer(kafka_config, acks="all")
    try:
        if kafka_client == "confluent-kafka":
            assert type(producer).__module__.startswith("datamin.kafka.confluent")
        else:  # kafka-python's producer (its transactional waits bounded in datamin.kafka.client)
            from kafka import KafkaProducer

            assert isinstance(producer, KafkaProducer)
    finally:
        producer.close(5)
    assert json.dumps(kafka_client)
