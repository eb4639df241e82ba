"""The officer's door on a real broker: requests and erasures reach their topics."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from kafka import KafkaConsumer

from datamin.config import Config
from datamin.identity import canonical
from datamin.keys import subject_hash
from datamin.topics import Topics, provision
from processors.transforms import KeyStore, pseudonymise
from schemas import decode, default_registry
from warehouse.arrow import records_to_table
from warehouse.layout import Layout
from warehouse.rights import subjects
from warehouse.rights.preflight import ensure_rights_secret
from warehouse.rights.requests import rights_command, status_report, submit_request

KEY = "carol-user-30391"
CANONICAL = "user:carol-user-30391"
NOW = (datetime.now(UTC) - timedelta(days=2)).replace(hour=9, minute=30, second=0, microsecond=0)
"""a recent time (from the clock): the rights commands get it injected, but the trail, the topics and the
keys they touch are aged by the real clock too, so a fixed date would fall out of their caps one day"""
PERIOD = f"{NOW:%Y-%m}"


def _read_all(config: Config, topic: str, expected: int) -> list[tuple[bytes, bytes]]:
    consumer = KafkaConsumer(topic, **config.kafka.client_kwargs(), auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None, consumer_timeout_ms=10_000)
    try:
        out: list[tuple[bytes, bytes]] = []
        for message in consumer:
            out.append((message.key, message.value))
            if len(out) >= expected:
                break
        return out
    finally:
        consumer.close()


def test_submit_request_publishes_a_decodable_privacy_request(kafka_config: Config) -> None:
    provision(kafka_config)
    request_id = submit_request(kafka_config, "restriction", KEY, channel="email", now=NOW)
    [(key, value)] = _read_all(kafka_config, Topics(kafka_config).privacy_requests, 1)
    schema, record = decode(value, default_registry())
    hashed = subject_hash(kafka_config, KEY)
    assert key == hashed.encode() and hashed.startswith("h1_")  # never the clear key
    assert schema.name == "privacy_request" and schema.kind == "raw"
    assert record["request_id"] == request_id and record["subject_key"] == hashed
    assert record["kind"] == "restriction" and record["channel"] == "email" and record["received"] == NOW


def test_erase_command_publishes_the_keyed_hash_and_records_the_request(kafka_config: Config,
                                                                        tmp_path: Path) -> None:
    provision(kafka_config)
    keys = KeyStore(Path(kafka_config.pseudonymise.key_dir), "monthly", clock=lambda: NOW)
    ensure_rights_secret(kafka_config)  # as the processor does when it starts
    layout = Layout(Path(kafka_config.warehouse.root))
    folder = layout.partition_dir("usage_event", NOW.date())
    folder.mkdir(parents=True)
    subject = pseudonymise(canonical(KEY), keys.key_for(keys.period_for(NOW)), "subject")
    rows = [{"event_id": "e1", "time": NOW, "subject": subject, "kind": "search"},
            {"event_id": "e2", "time": NOW, "subject": None, "kind": "search"}]
    path = folder / layout.data_file_name("x", 0, 0, 1)
    pq.write_table(records_to_table(default_registry().latest("usage_event", "minimised"), rows), path)

    assert rights_command(kafka_config, "erase", KEY, out_dir=tmp_path, now=NOW) == 0

    assert pq.read_table(path).column("event_id").to_pylist() == ["e2"]
    [(key, value)] = _read_all(kafka_config, Topics(kafka_config).erased_subjects, 1)
    assert key == subject_hash(kafka_config, KEY).encode()
    body = json.loads(value)
    assert body["erased_at"] == NOW.isoformat() and body["request_id"]
    [(rkey, rvalue)] = _read_all(kafka_config, Topics(kafka_config).privacy_requests, 1)
    assert rkey == subject_hash(kafka_config, KEY).encode()
    assert decode(rvalue, default_registry())[1]["request_id"] == body["request_id"]
    report = status_report(kafka_config, NOW)
    assert "0 overdue, 0 open, 1 done" in report and "1 row(s) deleted" in report and KEY not in report


def test_a_command_resolves_its_subject_once(kafka_config: Config, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The subject key's pseudonyms are recomputed from every key file once per command, not once per
    step (request, export, trail); the keyed hash likewise."""
    provision(kafka_config)
    KeyStore(Path(kafka_config.pseudonymise.key_dir), "monthly", clock=lambda: NOW).key_for(PERIOD)
    ensure_rights_secret(kafka_config)  # as the processor does when it starts
    Layout(Path(kafka_config.warehouse.root)).table_dir("usage_event").mkdir(parents=True)  # a warehouse
    calls = {"pseudonyms": 0, "hash": 0}
    real_pseudonyms, real_hash = subjects.subject_pseudonyms, subjects.subject_hash

    def counted_pseudonyms(*args: Any, **kwargs: Any) -> dict[str, str]:
        calls["pseudonyms"] += 1
        return real_pseudonyms(*args, **kwargs)

    def counted_hash(*args: Any, **kwargs: Any) -> str:
        calls["hash"] += 1
        return real_hash(*args, **kwargs)

    monkeypatch.setattr(subjects, "subject_pseudonyms", counted_pseudonyms)
    monkeypatch.setattr(subjects, "subject_hash", counted_hash)
    assert rights_command(kafka_config, "access", KEY, out_dir=tmp_path, now=NOW) == 0
    assert calls == {"pseudonyms": 1, "hash": 1}
    [export] = tmp_path.glob("datamin-export-*.json")
    assert json.loads(export.read_text())["pseudonyms"][0]["period"] == PERIOD
