"""The erased-subjects topic: once a person is erased, no replay of a raw topic brings their
identifiers back, even when their consent and privacy requests are still on record."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from kafka import KafkaConsumer, KafkaProducer

from datamin.config import Config
from datamin.keys import subject_hash
from datamin.topics import Topics, provision
from processors.erased import ErasedSubjects
from processors.loop import run_processor
from processors.pipeline import new_ledger
from schemas import decode, default_registry, encode
from warehouse.rights.erasure import publish_erased

T0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def _raw(name: str) -> Any:
    return default_registry().latest(name, "raw")


def consent(subject: str, when: datetime, statistics: bool) -> dict[str, Any]:
    return {"time": when, "subject_key": subject, "necessary": True, "statistics": statistics,
            "marketing": False, "feedback": False, "policy_version": "1", "source": "banner",
            "event_id": f"c-{subject}-{when.timestamp()}"}


def http_event(subject: str, n: int, when: datetime) -> dict[str, Any]:
    return {"event_id": f"e-{n}", "time": when, "subject_key": subject, "client_ip": "198.51.100.7",
            "url": "/", "status": 200, "user_id": subject}


def _consume(config: Config, topic: str, until: int, timeout: float = 60.0) -> list[Any]:
    consumer = KafkaConsumer(topic, group_id=None, isolation_level="read_committed", auto_offset_reset="earliest",
                             enable_auto_commit=False, **config.kafka.client_kwargs())
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while len(out) < until and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                out.extend(records)
        for records in consumer.poll(timeout_ms=1500).values():  # duplicates, if any, would show here
            out.extend(records)
    finally:
        consumer.close()
    return out


def test_a_known_erasure_marks_the_ledger_and_a_tombstone_lifts_it(make_config: Callable[..., Config]) -> None:
    config = make_config()
    erased = ErasedSubjects(config)
    key = subject_hash(config, "alice").encode()
    ledger = new_ledger(config)
    ledger.apply_consent("alice", consent("alice", T0 - timedelta(days=1), statistics=True))
    assert "statistics" in ledger.state("alice", T0).granted

    erased.apply(key, json.dumps({"erased_at": T0.isoformat(), "request_id": "r1"}).encode())
    assert erased.erased_at("alice") == (T0, "r1") and erased.erased_at("bob") is None
    erased.mark(ledger, "alice")
    erased.mark(ledger, "alice")  # idempotent
    assert ledger.state("alice", T0 + timedelta(hours=1)).erased
    assert ledger.state("alice", T0 - timedelta(hours=1)).erased  # earlier events too

    erased.apply(key, None)
    assert erased.erased_at("alice") is None
    erased.apply(key, b"not json")  # unreadable: skipped, not raised
    assert len(erased) == 0


def test_replay_after_erasure_keeps_the_person_out(kafka_config: Config) -> None:
    provision(kafka_config)
    topics = Topics(kafka_config)
    publish_erased(kafka_config, subject_hash(kafka_config, "erased-user"), erased_at=T0, request_id="r-1")
    producer = KafkaProducer(acks="all", **kafka_config.kafka.client_kwargs())
    for who in ("erased-user", "kept-user"):  # both consented before; the consent topic still says so
        producer.send(topics.consent, key=who.encode(),
                      value=encode(_raw("consent_record"), consent(who, T0 - timedelta(days=2), True)))
    for n, who in enumerate(["erased-user", "kept-user"] * 3):  # a replay: events before and after
        when = T0 + timedelta(minutes=n - 3)
        producer.send(topics.raw("http_request"), key=who.encode(),
                      value=encode(_raw("http_request"), http_event(who, n, when)))
    producer.flush()
    producer.close()

    stop = threading.Event()
    worker = threading.Thread(target=run_processor, args=(kafka_config,), kwargs={"stop": stop, "instance": "erased"})
    worker.start()
    try:
        records = _consume(kafka_config, topics.minimised("http_request"), until=6)
    finally:
        stop.set()
        worker.join(timeout=60)
    rows = [decode(r.value, default_registry())[1] for r in records]
    assert len(rows) == 6
    with_subject = [r for r in rows if r["subject"] is not None]
    assert len(with_subject) == 3  # the kept user's, pseudonymised by consent
    assert all(r["user_id"] is not None for r in with_subject)
    assert sum(r["user_id"] is None and r["subject"] is None for r in rows) == 3  # the erased user's
