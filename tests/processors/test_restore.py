"""Restoring a large consent ledger never stops the processor's heartbeats: the restore runs beside the
loop while the partitions' events wait, so the instance stays in its group, and no event is minimised
without its consent state (real broker)."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer

from datamin.config import Config
from datamin.topics import Topics, provision
from processors import restore as restore_module
from processors.loop import ProcessorLoop
from schemas import decode, default_registry, encode

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
SUBJECTS = 1500
SLOW_S = 0.004
"""each consent record restored takes this long more: the ledger behaves as one ~100 times larger"""


def _raw(name: str) -> Any:
    return default_registry().latest(name, "raw")


def _consent(subject: str, when: datetime, statistics: bool) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "time": when, "subject_key": subject, "necessary": True,
            "statistics": statistics, "marketing": False, "feedback": False, "policy_version": "1",
            "source": "banner"}


def _http(subject: str, n: int) -> dict[str, Any]:
    return {"event_id": f"restore-{n}", "time": T0 + timedelta(minutes=30), "subject_key": subject,
            "client_ip": "198.51.100.7", "method": "GET", "host": "example.no", "url": "/", "status": 200,
            "bytes_sent": 100, "duration_ms": 1.0, "referrer": None, "user_agent": "curl/8.0",
            "accept_language": None, "client_hints": None, "do_not_track": None, "global_privacy_control": None,
            "cdn_country": "NO", "session_id": f"sess-{n}", "user_id": None, "client_id": None}


def test_a_slow_restore_keeps_the_instance_in_its_group_and_events_wait_for_consent(
        kafka_config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    config = kafka_config
    provision(config)
    topics = Topics(config)
    producer = KafkaProducer(acks="all", linger_ms=20, **config.kafka.client_kwargs())
    for n in range(SUBJECTS):  # a refusal, then (last in the topic) the consent every event depends on
        subject = f"subject-{n}"
        producer.send(topics.consent, key=subject.encode(),
                      value=encode(_raw("consent_record"), _consent(subject, T0, False)))
    for n in range(SUBJECTS):
        subject = f"subject-{n}"
        producer.send(topics.consent, key=subject.encode(),
                      value=encode(_raw("consent_record"), _consent(subject, T0 + timedelta(minutes=1), True)))
        producer.send(topics.raw("http_request"), key=subject.encode(),
                      value=encode(_raw("http_request"), _http(subject, n)))
    producer.flush()
    producer.close()

    restored = Counter[str]()
    real = restore_module._apply_control

    def slow(*args: Any) -> int:
        time.sleep(SLOW_S)
        restored["records"] += 1
        return real(*args)

    monkeypatch.setattr(restore_module, "_apply_control", slow)
    stop = threading.Event()
    # a member that does not poll within 4 s, or heartbeat within 6 s, is put out of the group
    loop = ProcessorLoop(config, "restore", stop, log_interval=1.0, consumer_options={
        "max_poll_interval_ms": 4000, "session_timeout_ms": 6000, "heartbeat_interval_ms": 1000})
    errors: list[BaseException] = []

    def run() -> None:
        try:
            loop.run()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    out: list[Any] = []
    try:
        reader = KafkaConsumer(topics.minimised("http_request"), group_id=None, isolation_level="read_committed",
                               auto_offset_reset="earliest", enable_auto_commit=False, **config.kafka.client_kwargs())
        try:
            deadline = time.monotonic() + 240
            while len(out) < SUBJECTS and time.monotonic() < deadline and not errors:
                for records in reader.poll(timeout_ms=500).values():
                    out.extend(records)
            for records in reader.poll(timeout_ms=2000).values():  # duplicates, if any, would show here
                out.extend(records)
        finally:
            reader.close()
    finally:
        stop.set()
        thread.join(timeout=120)
    assert not errors, errors
    assert restored["records"] >= 2 * SUBJECTS  # the restore took at least 2 * 1500 * 4 ms = 12 s
    events = [decode(r.value, default_registry())[1] for r in out]
    seen = Counter(e["event_id"] for e in events)
    assert len(seen) == SUBJECTS and max(seen.values()) == 1, "events lost or duplicated"
    # every event was minimised with the consent restored for it (statistics: the session id is kept)
    assert [e["event_id"] for e in events if e["session_id"] is None] == []
    assert loop.assignments == 1, "the instance left its group during the restore and rejoined"
