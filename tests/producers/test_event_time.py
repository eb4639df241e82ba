"""Event time where events enter: the collector rejects, and the shipper dead-letters, an event dated
beyond the clock skew in the future or older than its table keeps; nothing reaches Kafka for them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from datamin.config import Config
from producers.collector import Collector, CollectorSettings
from producers.shipper import ship_logs

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


class Publisher:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.dead: list[dict[str, Any]] = []

    def publish(self, event_type: str, record: dict[str, Any], *, timeout: float = 0.0) -> bool:
        self.events.append((event_type, record))
        return True

    def publish_bytes(self, topic: str, value: bytes, key: bytes | None = None, *, timeout: float = 0.0) -> bool:
        self.dead.append(json.loads(value))
        return True

    def flush(self, timeout: float | None = None) -> bool:
        return True


def test_the_collector_rejects_far_future_and_too_old_events() -> None:
    publisher = Publisher()
    collector = Collector(publisher, CollectorSettings(clock=NOW.timestamp, max_age_days={"usage_event": 180}))
    body = json.dumps([
        {"event": "usage_event", "time": "2026-11-25T12:04:00Z", "kind": "page_view", "page": "/ok"},
        {"event": "usage_event", "time": "2300-01-01T00:00:00Z", "kind": "page_view", "page": "/far"},
        {"event": "usage_event", "time": "2026-11-25T12:06:00Z", "kind": "page_view", "page": "/soon"},
        {"event": "usage_event", "time": "2026-05-01T00:00:00Z", "kind": "page_view", "page": "/old"},
    ]).encode()
    status, response = collector.handle(body, {})
    assert status == 400 and response["accepted"] == 1
    errors = {r["index"]: r["error"] for r in response["rejected"]}
    assert set(errors) == {1, 2, 3}
    assert "in the future" in errors[1] and "in the future" in errors[2]
    assert "older than its table's retention of 180 days" in errors[3]
    assert [r["page"] for _, r in publisher.events] == ["/ok"]


def test_collector_settings_from_config_take_the_configured_window(make_config: Any) -> None:
    config: Config = make_config(**{"MINIMISE__CLOCK_SKEW_SECONDS": "60",
                                    "WAREHOUSE__RETENTION_DAYS__USAGE_EVENT": "30"})
    settings = CollectorSettings.from_config(config, clock=NOW.timestamp)
    collector = Collector(Publisher(), settings)
    body = json.dumps([
        {"event": "usage_event", "time": "2026-11-25T12:02:00Z", "kind": "page_view", "page": "/2-minutes-ahead"},
        {"event": "usage_event", "time": "2026-10-01T00:00:00Z", "kind": "page_view", "page": "/55-days-ago"},
    ]).encode()
    status, response = collector.handle(body, {})
    assert status == 400 and response["accepted"] == 0
    assert "1 minute in the future" in response["rejected"][0]["error"]
    assert "retention of 30 days" in response["rejected"][1]["error"]


def test_the_shipper_dead_letters_lines_out_of_the_time_window(make_config: Any, tmp_path: Path) -> None:
    config: Config = make_config()
    log = tmp_path / "access.log"
    log.write_text('198.51.100.7 - - [25/Nov/2026:11:00:00 +0000] "GET /ok HTTP/1.1" 200 1 "-" "UA"\n'
                   '198.51.100.7 - - [01/Jan/2300:00:00:00 +0000] "GET /far HTTP/1.1" 200 1 "-" "UA"\n'
                   '198.51.100.7 - - [01/Jan/2024:00:00:00 +0000] "GET /old HTTP/1.1" 200 1 "-" "UA"\n')
    sink = Publisher()
    result = ship_logs(config, [log], state_dir=tmp_path / "s", producer=sink, clock=lambda: NOW)
    assert [r["url"] for _, r in sink.events] == ["/ok"]
    assert result.events == 1 and result.bad_lines == 2
    assert [d["line_number"] for d in sink.dead] == [2, 3]
    assert "in the future" in sink.dead[0]["reason"] and "older than" in sink.dead[1]["reason"]
    assert "198.51.100.7" not in json.dumps(sink.dead)
