"""Against the real broker: an event dated far in the future (or older than its table keeps) goes to
the dead-letter topic with the reason, and never reaches the minimised topic or the warehouse."""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from datamin.config import Config
from datamin.kafka import new_consumer, new_producer
from datamin.topics import Topics, provision
from processors.loop import run_processor
from schemas import decode, default_registry, encode
from warehouse.sink import run_sink


def _usage(when: datetime, page: str) -> dict[str, Any]:
    schema = default_registry().latest("usage_event", "raw")
    record: dict[str, Any] = {f["name"]: None for f in schema.definition["fields"]}
    return {**record, "event_id": str(uuid.uuid4()), "time": when, "kind": "page_view", "page": page}


def _consume(config: Config, topic: str, until: int, timeout: float = 90.0) -> list[Any]:
    consumer = new_consumer(config, topic, group_id=None, isolation_level="read_committed",
                            auto_offset_reset="earliest", enable_auto_commit=False)
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and len(out) < until:
            for records in consumer.poll(timeout_ms=500).values():
                out.extend(records)
        for records in consumer.poll(timeout_ms=1500).values():  # anything more would show here
            out.extend(records)
    finally:
        consumer.close()
    return out


def test_a_far_future_event_is_dead_lettered_not_warehoused(kafka_config: Config) -> None:
    config = kafka_config
    provision(config)
    topics = Topics(config)
    schema = default_registry().latest("usage_event", "raw")
    now = datetime.now(UTC)
    events = [_usage(now, "/today"), _usage(datetime(2300, 1, 1, tzinfo=UTC), "/year-2300"),
              _usage(now + timedelta(days=400), "/next-year"), _usage(now - timedelta(days=400), "/long-ago")]
    producer = new_producer(config, acks="all")
    for event in events:
        producer.send(topics.raw("usage_event"), value=encode(schema, event))
    producer.flush()
    producer.close()

    stop = threading.Event()
    errors: list[BaseException] = []

    def guard(target: Any, **kwargs: Any) -> None:
        try:
            target(config, stop=stop, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=guard, args=(run_processor,), kwargs={"instance": "time"}),
               threading.Thread(target=guard, args=(run_sink,))]
    for t in threads:
        t.start()
    try:
        letters = [json.loads(r.value) for r in _consume(config, topics.dead_letter, until=3)]
        minimised = _consume(config, topics.minimised("usage_event"), until=1)
        root = Path(config.warehouse.root)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not list(root.glob("usage_event/event_date=*/*.parquet")):
            time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=60)
    assert not errors, errors
    reasons = sorted(d["reason"] for d in letters)
    assert len(letters) == 3 and all(d["stage"] == "processor" for d in letters), letters
    assert sum("in the future" in r for r in reasons) == 2 and sum("older than" in r for r in reasons) == 1, reasons
    assert [decode(r.value, default_registry())[1]["page"] for r in minimised] == ["/today"]
    days = sorted(p.name for p in (root / "usage_event").glob("event_date=*"))
    assert days == [f"event_date={now.date().isoformat()}"], days
