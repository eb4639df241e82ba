"""The stream processor on the real broker: exactly once through a SIGKILL, consent joined, bad bytes
dead-lettered with no payload."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, KafkaProducer

from datamin.config import Config
from datamin.topics import Topics, provision
from processors.loop import run_processor
from schemas import decode, default_registry, encode

ROOT = Path(__file__).resolve().parents[2]
def _recent_tenth() -> datetime:
    """10:00 UTC on the 10th of this month (of last month before the 14th): the processor judges event
    times by the real clock, so the events here are dated from it (days to six weeks ago, within every
    table's retention, the days around T0 in one key period), never from a date that falls out of the
    window as time passes."""
    today = datetime.now(UTC)
    month = today if today.day >= 14 else today.replace(day=1) - timedelta(days=1)
    return month.replace(day=10, hour=10, minute=0, second=0, microsecond=0)


T0 = _recent_tenth()
BAD = [b"not avro at all", b"\xc3\x01" + b"\x00" * 8 + b"body", b""]


def _raw(name: str) -> Any:
    return default_registry().latest(name, "raw")


def http_event(subject: str, n: int, when: datetime) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "time": when, "subject_key": subject,
            "client_ip": f"198.51.{n % 250}.{n % 200 + 1}", "method": "GET", "host": "example.no",
            "url": f"/search?q=secret{n}&utm_source=news", "status": 200, "bytes_sent": 100, "duration_ms": 1.5,
            "referrer": None, "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
            "accept_language": "nb-NO", "client_hints": None, "do_not_track": None,
            "global_privacy_control": None, "cdn_country": "NO", "session_id": f"sess-{subject}",
            "user_id": subject, "client_id": None}


def consent(subject: str, when: datetime, statistics: bool) -> dict[str, Any]:
    return {"event_id": str(uuid.uuid4()), "time": when, "subject_key": subject, "necessary": True,
            "statistics": statistics, "marketing": False, "feedback": False, "policy_version": "1",
            "source": "banner"}


def _producer(config: Config) -> KafkaProducer:
    return KafkaProducer(acks="all", **config.kafka.client_kwargs())


def _consume_all(config: Config, topics: list[str], *, until: int, timeout: float = 60.0) -> list[Any]:
    """read_committed records of ``topics`` from the beginning, until ``until`` or quiet after it."""
    consumer = KafkaConsumer(*topics, group_id=None, isolation_level="read_committed",
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             **config.kafka.client_kwargs())
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                out.extend(records)
            if len(out) >= until:
                # a little more, so that duplicates (if any) would be seen
                for records in consumer.poll(timeout_ms=1500).values():
                    out.extend(records)
                break
    finally:
        consumer.close()
    return out


def _env(config: Config, instance: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({
        "KAFKA_BOOTSTRAP_SERVERS": config.kafka.bootstrap_servers,
        "DATAMIN__TOPICS__PREFIX": json.dumps(config.topics.prefix),
        "DATAMIN__TOPICS__PARTITIONS": str(config.topics.partitions),
        "DATAMIN__PROCESSOR__GROUP_ID": json.dumps(config.processor.group_id),
        "DATAMIN__PROCESSOR__TRANSACTIONAL_ID": json.dumps(config.processor.transactional_id),
        "DATAMIN__PSEUDONYMISE__KEY_DIR": json.dumps(config.pseudonymise.key_dir),
        "DATAMIN_INSTANCE": instance,
        "PYTHONPATH": str(ROOT),
    })
    return env


DATAMIN = [sys.executable, "-c", "import sys; from datamin.cli import main; sys.exit(main())"]
"""the `datamin` command, run by this interpreter"""


def _start(config: Config, instance: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([*DATAMIN, "process"], cwd=ROOT, env=_env(config, instance),
                                stdout=out, stderr=subprocess.STDOUT)


def _count_committed(config: Config, topic: str) -> int:
    consumer = KafkaConsumer(group_id=None, isolation_level="read_committed", enable_auto_commit=False,
                             **config.kafka.client_kwargs())
    try:
        from kafka import TopicPartition
        tps = [TopicPartition(topic, p) for p in range(config.topics.partitions)]
        return sum(consumer.end_offsets(tps).values())  # an upper bound incl. markers: enough to see progress
    finally:
        consumer.close()


@pytest.fixture
def processor_log(tmp_path: Path) -> Iterator[Path]:
    log = tmp_path / "processor.log"
    yield log
    if log.exists():  # shown on failure by pytest's captured output
        sys.stdout.write(log.read_text(errors="replace")[-4000:])


def test_exactly_once_through_sigkill_with_consent_and_dead_letters(kafka_config: Config,
                                                                      processor_log: Path) -> None:
    config = kafka_config
    provision(config)
    topics = Topics(config)
    http = _raw("http_request")
    producer = _producer(config)
    consented = [f"user-{i}" for i in range(20)]
    late = [f"late-{i}" for i in range(10)]  # consent given only after their events
    for s in consented:
        producer.send(topics.consent, key=s.encode(), value=encode(_raw("consent_record"),
                                                                   consent(s, T0 - timedelta(days=1), True)))
    expected: dict[str, str] = {}
    bad_sent: list[tuple[int, int]] = []

    def send_events(count: int, offset_minutes: int) -> None:
        for n in range(count):
            subject = (consented + late)[n % 30]
            event = http_event(subject, n, T0 + timedelta(minutes=offset_minutes, seconds=n))
            expected[event["event_id"]] = subject
            producer.send(topics.raw("http_request"), key=subject.encode(), value=encode(http, event))

    send_events(20000, 0)
    for s in late:
        producer.send(topics.consent, key=s.encode(), value=encode(_raw("consent_record"),
                                                                   consent(s, T0 + timedelta(days=2), True)))
    for i, junk in enumerate(BAD):
        meta = producer.send(topics.raw("usage_event"), key=f"junk-{i}".encode(), value=junk).get(timeout=30)
        bad_sent.append((meta.partition, meta.offset))
    producer.flush()

    first = _start(config, "a", processor_log)
    try:
        deadline = time.monotonic() + 60
        while (done := _count_committed(config, topics.minimised("http_request"))) < 500:
            assert first.poll() is None, "processor exited early"
            assert time.monotonic() < deadline, "no output from the processor within 60s"
            time.sleep(0.05)
        first.send_signal(signal.SIGKILL)  # mid-stream: whatever was open must be aborted, not duplicated
        assert done < 20000, "the processor finished before the kill: the test proves nothing"
        first.wait(timeout=30)
    finally:
        if first.poll() is None:
            first.kill()
    send_events(2000, 200)
    producer.flush()
    producer.close()

    second = _start(config, "a", processor_log)
    try:
        out = _consume_all(config, [topics.minimised("http_request")], until=len(expected), timeout=120)
        dead = _consume_all(config, [topics.dead_letter], until=len(BAD), timeout=30)
        consents_out = _consume_all(config, [topics.minimised("consent_record")], until=len(consented) + len(late))
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0, "SIGTERM must finish the batch and exit cleanly"

    registry = default_registry()
    seen: Counter[str] = Counter()
    for record in out:
        schema, event = decode(record.value, registry)
        seen[event["event_id"]] += 1
        subject = expected[event["event_id"]]
        assert event["client_network"].endswith(".0.0")
        assert "secret" not in (event["url"] or "")
        if subject in consented:
            assert event["subject"] and event["subject"] != subject and event["user_id"]
            assert record.key == event["subject"].encode()
        else:
            assert event["subject"] is None and event["user_id"] is None and record.key is None
    assert set(seen) == set(expected), f"{len(set(expected) - set(seen))} events lost"
    assert [k for k, c in seen.items() if c > 1] == [], "events duplicated"
    assert len(consents_out) == len(consented) + len(late)

    letters = [json.loads(r.value) for r in dead]
    assert sorted((d["partition"], d["offset"]) for d in letters) == sorted(bad_sent)
    for d in letters:
        assert d["source"] == topics.raw("usage_event") and d["stage"] == "processor" and d["reason"]
        assert set(d) == {"source", "partition", "offset", "reason", "stage", "schema"}
    assert {d["schema"] for d in letters} == {None, "00" * 8}


def test_privacy_requests_restore_and_metrics_in_thread(kafka_config: Config) -> None:
    """A restarted processor restores consent and requests from their topics before the events."""
    config = kafka_config
    provision(config)
    topics = Topics(config)
    producer = _producer(config)
    restricted, fine = "restricted-user", "fine-user"
    for s in (restricted, fine):
        producer.send(topics.consent, key=s.encode(),
                      value=encode(_raw("consent_record"), consent(s, T0 - timedelta(days=1), True)))
    request = {"request_id": str(uuid.uuid4()), "subject_key": restricted, "kind": "objection",
               "received": T0 - timedelta(hours=1), "channel": "self_service"}
    producer.send(topics.privacy_requests, key=restricted.encode(),
                  value=encode(_raw("privacy_request"), request))
    producer.flush()

    def run_until(expected_out: int, topic: str) -> list[Any]:
        stop = threading.Event()
        errors: list[BaseException] = []

        def target() -> None:
            try:
                run_processor(config, instance="t", stop=stop, metrics_port=0, log_interval=0.5)
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=target)
        thread.start()
        try:
            return _consume_all(config, [topic], until=expected_out, timeout=60)
        finally:
            stop.set()
            thread.join(timeout=60)
            assert not errors, errors

    first = run_until(1, topics.minimised("privacy_request"))
    assert len(first) == 1
    # the events arrive after a restart: the ledger must come from the topics, not from memory
    producer.send(topics.raw("http_request"), key=restricted.encode(),
                  value=encode(_raw("http_request"), http_event(restricted, 1, T0)))
    producer.send(topics.raw("http_request"), key=fine.encode(),
                  value=encode(_raw("http_request"), http_event(fine, 2, T0)))
    producer.flush()
    producer.close()
    out = run_until(2, topics.minimised("http_request"))
    events = {decode(r.value, default_registry())[1]["session_id"] is not None: r for r in out}
    assert len(out) == 2 and set(events) == {True, False}  # the objecting subject lost its identifiers


def test_metrics_endpoint_serves_prometheus_text() -> None:
    from collections import Counter as C

    from processors.metrics import Metrics, serve_metrics

    metrics = Metrics(C({"dropped.http_request.client_hints": 3}))
    metrics.add(10, 9, 1)
    metrics.lag = {("t.raw.http_request", 0): 5}
    server = serve_metrics(metrics, 0)
    try:
        port = server.server_address[1]
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    finally:
        server.shutdown()
        server.server_close()
    assert "datamin_processor_events_in_total 10" in body
    assert "datamin_processor_dead_lettered_total 1" in body
    assert 'datamin_processor_fields_total{outcome="dropped",event="http_request",field="client_hints"} 3' in body
    assert 'datamin_processor_consumer_lag{topic="t.raw.http_request",partition="0"} 5' in body


def test_a_second_instance_joining_takes_partitions_without_loss_duplicates_or_a_crash(
        kafka_config: Config, processor_log: Path) -> None:
    config = kafka_config
    assert config.topics.partitions >= 2
    provision(config)
    topics = Topics(config)
    http = _raw("http_request")
    producer = _producer(config)
    sent: set[str] = set()

    def send(count: int, minute: int) -> None:
        for n in range(count):
            event = http_event(f"user-{n % 40}", n, T0 + timedelta(minutes=minute, seconds=n))  # both partitions
            sent.add(event["event_id"])
            producer.send(topics.raw("http_request"), key=event["subject_key"].encode(), value=encode(http, event))
        producer.flush()

    send(3000, 0)
    first = _start(config, "a", processor_log)
    second = None
    try:
        deadline = time.monotonic() + 60
        while _count_committed(config, topics.minimised("http_request")) < 3000:
            assert first.poll() is None, "the first instance exited"
            assert time.monotonic() < deadline, "no output from the first instance within 60s"
            time.sleep(0.1)
        second = _start(config, "b", processor_log)  # the group rebalances: partitions move to it
        for minute in range(1, 6):  # events keep coming during and after the rebalance
            send(1000, minute)
            time.sleep(0.5)
        out = _consume_all(config, [topics.minimised("http_request")], until=len(sent), timeout=120)
        assert first.poll() is None, "the first instance died in the rebalance"
        assert second.poll() is None, "the second instance died"
    finally:
        producer.close()
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in (first, second):
            if proc is not None:
                assert proc.wait(timeout=60) == 0, "an instance did not stop cleanly on SIGTERM"
    seen = Counter(decode(r.value, default_registry())[1]["event_id"] for r in out)
    assert set(seen) == sent, f"{len(sent - set(seen))} events lost"
    assert [k for k, c in seen.items() if c > 1] == [], "events duplicated"
    log = processor_log.read_text(errors="replace")
    assert "assigned partitions" in log and "Traceback" not in log
