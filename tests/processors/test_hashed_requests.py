"""Requests on the privacy-requests topic name the subject only by its keyed hash; every processor
still applies them to the right person's events."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer

from datamin.config import Config
from datamin.keys import load_secret, subject_hash
from datamin.topics import Topics, provision
from processors.hashed_requests import HashedRequests
from processors.loop import run_processor
from processors.pipeline import new_ledger
from schemas import decode, default_registry, encode
from warehouse.rights.requests import publish_request

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def _raw(name: str) -> Any:
    return default_registry().latest(name, "raw")


def _consent(subject: str, when: datetime) -> dict[str, Any]:
    return {"time": when, "subject_key": subject, "necessary": True, "statistics": True, "marketing": True,
            "feedback": True, "policy_version": "1", "source": "banner", "event_id": f"c-{subject}"}


def _http(subject: str, n: int, when: datetime) -> dict[str, Any]:
    return {"event_id": f"e-{n}", "time": when, "subject_key": subject, "client_ip": "198.51.100.7",
            "url": "/", "status": 200, "user_id": subject.split(":", 1)[1]}


def test_a_hashed_request_reaches_the_ledger(make_config: Any) -> None:
    config = make_config()
    load_secret(Path(config.pseudonymise.key_dir))
    requests = HashedRequests(config)
    hashed = subject_hash(config, "user:ola")
    value = encode(_raw("privacy_request"), {"request_id": "r-1", "subject_key": hashed, "kind": "restriction",
                                             "received": T0, "channel": "self_service"})
    requests.apply(hashed.encode(), value)
    requests.apply(hashed.encode(), value)  # twice: one request
    assert len(requests) == 1 and len(requests.requests_of("user:ola")) == 1
    assert requests.requests_of("USER:Ola ") == requests.requests_of("user:ola")  # the hash is of the canonical form
    assert requests.requests_of("user:kari") == [] and requests.requests_of(None) == []
    ledger = new_ledger(config)
    ledger.apply_consent("user:ola", _consent("user:ola", T0 - timedelta(days=1)))
    requests.mark(ledger, "user:ola")
    requests.mark(ledger, "user:ola")
    assert ledger.state("user:ola", T0 + timedelta(minutes=1)).restricted
    assert not ledger.state("user:ola", T0 - timedelta(minutes=1)).restricted
    assert not ledger.state("user:kari", T0 + timedelta(minutes=1)).restricted


def test_the_processor_applies_hashed_requests(kafka_config: Config) -> None:
    provision(kafka_config)
    topics = Topics(kafka_config)
    load_secret(Path(kafka_config.pseudonymise.key_dir))
    hashed = subject_hash(kafka_config, "user:ola")
    publish_request(kafka_config, request_id="r-1", hashed=hashed, kind="objection", received=T0,
                    channel="self_service")
    producer = KafkaProducer(acks="all", **kafka_config.kafka.client_kwargs())
    for who in ("user:ola", "user:kari"):
        producer.send(topics.consent, key=who.encode(),
                      value=encode(_raw("consent_record"), _consent(who, T0 - timedelta(days=1))))
    for n, who in enumerate(["user:ola", "user:kari"] * 2):
        producer.send(topics.raw("http_request"), key=who.encode(),
                      value=encode(_raw("http_request"), _http(who, n, T0 + timedelta(minutes=n + 1))))
    producer.flush()
    producer.close()

    stop = threading.Event()
    worker = threading.Thread(target=run_processor, args=(kafka_config,), kwargs={"stop": stop, "instance": "hr"})
    worker.start()
    rows: list[dict[str, Any]] = []
    try:
        consumer = KafkaConsumer(topics.minimised("http_request"), group_id=None, isolation_level="read_committed",
                                 auto_offset_reset="earliest", enable_auto_commit=False,
                                 **kafka_config.kafka.client_kwargs())
        deadline = time.monotonic() + 120
        while len(rows) < 4 and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                rows += [decode(r.value, default_registry())[1] for r in records]
        consumer.close()
    finally:
        stop.set()
        worker.join(timeout=60)
    assert len(rows) == 4
    by_event = {r["event_id"]: r for r in rows}
    assert by_event["e-0"]["user_id"] is None and by_event["e-2"]["user_id"] is None  # ola objected
    assert by_event["e-1"]["user_id"] is not None and by_event["e-3"]["user_id"] is not None  # kari did not
