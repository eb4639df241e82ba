"""Against the real broker: every topic datamin provisions keeps retention.ms + segment.ms within its
cap and ages records by log-append time, and `datamin topics` corrects a topic whose settings drifted."""

from __future__ import annotations

import time
from collections.abc import Callable

from datamin.config import Config
from datamin.kafka.client import ConfigResource, ConfigResourceType, new_admin, new_producer
from datamin.retention import CAP, RAW_CAP
from datamin.topics import Topics, provision

KEYS = ["retention.ms", "segment.ms", "message.timestamp.type", "cleanup.policy"]


def _describe(config: Config, names: list[str]) -> dict[str, dict[str, str]]:
    admin = new_admin(config)
    try:
        result = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, n) for n in names],
                                        config_filter="all")
    finally:
        admin.close()
    topics = result["topic"]
    return {name: {k: str(topics[name][k]["value"]) for k in KEYS} for name in names}


def _eventually(config: Config, name: str, key: str, value: str) -> dict[str, str]:
    """The topic's settings once ``key`` reads ``value`` (an alteration reaches the broker's metadata
    shortly after the controller accepted it), else the last read, after a generous wait."""
    deadline = time.monotonic() + 60
    while True:
        got = _describe(config, [name])[name]
        if got[key] == value or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def test_provisioned_topics_are_within_their_caps_and_drift_is_corrected(kafka_config: Config) -> None:
    config = kafka_config
    specs = Topics(config).all()
    assert set(provision(config)) == {s.name for s in specs}
    found = _describe(config, [s.name for s in specs])
    for spec in specs:
        got = found[spec.name]
        cap = RAW_CAP if spec.role in ("raw", "dead-letter") else CAP
        assert int(got["retention.ms"]) + int(got["segment.ms"]) <= cap.total_seconds() * 1000, (spec.name, got)
        assert got["message.timestamp.type"] == "LogAppendTime", spec.name
        assert got["cleanup.policy"] == ("compact,delete" if spec.compacted else "delete"), spec.name

    # an operator (or an older datamin) left a raw topic with Kafka's 7-day segments and a week's retention
    raw = Topics(config).raw("http_request")
    admin = new_admin(config)
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, raw, configs={
            "segment.ms": str(7 * 24 * 3600 * 1000), "retention.ms": str(7 * 24 * 3600 * 1000),
            "message.timestamp.type": "CreateTime"})])
    finally:
        admin.close()
    drifted = _eventually(config, raw, "message.timestamp.type", "CreateTime")
    assert drifted["segment.ms"] == str(7 * 24 * 3600 * 1000)  # the drift is real before the fix

    assert provision(config) == []  # nothing new to create; existing topics corrected
    fixed = _eventually(config, raw, "message.timestamp.type", "LogAppendTime")
    assert int(fixed["retention.ms"]) == config.topics.raw_retention_hours * 3600 * 1000
    assert int(fixed["segment.ms"]) == 3600 * 1000
    assert fixed["message.timestamp.type"] == "LogAppendTime"


def test_datamin_topics_prints_what_each_topic_keeps(kafka_config: Config, capsys: Callable[..., object]) -> None:
    from datamin.cli.pipeline import _topics

    assert _topics(None, kafka_config) == 0  # type: ignore[arg-type]
    out = capsys.readouterr().out  # type: ignore[attr-defined]
    assert "segment 1 h" in out and "at most 25 h" in out


def test_datamin_retention_reads_each_topics_oldest_record(kafka_config: Config) -> None:
    import json
    from datetime import UTC, datetime, timedelta

    from warehouse.retention import report

    config = kafka_config
    provision(config)
    before = datetime.now(UTC) - timedelta(seconds=5)
    producer = new_producer(config, acks="all")
    # a producer's timestamp years back is ignored: the broker stamps log-append time
    producer.send(Topics(config).dead_letter, b'{"reason": "x"}', timestamp_ms=0).get(timeout=30)
    producer.close()
    doc = json.loads(report(config, datetime.now(UTC), fmt="json", kafka=True))
    rows = {r["store"]: r for r in doc["stores"]}
    letter = rows[f"topic {Topics(config).dead_letter}"]
    assert letter["oldest"] is not None and datetime.fromisoformat(letter["oldest"]) >= before
    assert datetime.fromisoformat(letter["next_deletion"]) - datetime.fromisoformat(letter["oldest"]) == \
        timedelta(hours=config.topics.dead_letter_retention_hours + 1)
    assert rows[f"topic {Topics(config).consent}"]["oldest"] is None  # empty
