"""The walking skeleton on a real broker: a web server's event -> raw topic -> processor -> minimised
topic -> sink -> Parquet day partition -> DuckDB catalog, queried from a second process while the sink
is still running."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq

from datamin.config import Config
from datamin.topics import Topics, provision
from processors.loop import run_processor
from producers.producer import EventProducer
from warehouse.sink import run_sink

QUERY_IN_SECOND_PROCESS = """
import duckdb, json, sys
con = duckdb.connect(sys.argv[1], read_only=True)
rows = con.execute("SELECT client_network, url, user_id, browser_family, os_family, device_class, subject "
                   "FROM http_request WHERE event_id = ?", [sys.argv[2]]).fetchall()
print(json.dumps(rows))
"""


def _query_from_other_process(catalog: Path, event_id: str) -> list[list[object]]:
    done = subprocess.run([sys.executable, "-c", QUERY_IN_SECOND_PROCESS, str(catalog), event_id],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    result: list[list[object]] = json.loads(done.stdout)
    return result


def _stage(config: Config) -> str:
    """Where the event got to, for the failure message: is it on the minimised topic (committed)?"""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(Topics(config).minimised("http_request"), isolation_level="read_committed",
                             auto_offset_reset="earliest", consumer_timeout_ms=5000, **config.kafka.client_kwargs())
    try:
        found = sum(1 for _ in consumer)
    finally:
        consumer.close()
    return (f"the processor committed {found} minimised event(s): the sink did not load it" if found else
            "the processor committed nothing to the minimised topic")


def _groups(config: Config) -> str:
    """The processor's and the sink's consumer groups as the broker sees them, for the failure message."""
    from kafka.admin import KafkaAdminClient

    try:
        admin = KafkaAdminClient(**config.kafka.client_kwargs())
        try:
            groups = admin.describe_groups([config.processor.group_id, config.warehouse.group_id])
        finally:
            admin.close()
    except Exception as exc:  # noqa: BLE001 - a diagnostic only
        return f"groups not described: {exc!r}"
    return "; ".join(f"{g}: {d.get('group_state')}, {len(d.get('members') or [])} member(s)"
                     for g, d in groups.items())


def test_event_flows_from_web_server_to_duckdb_minimised(kafka_config: Config) -> None:
    provision(kafka_config)
    stop = threading.Event()
    workers = [
        threading.Thread(target=run_processor, args=(kafka_config,), kwargs={"stop": stop, "instance": "e2e"}),
        threading.Thread(target=run_sink, args=(kafka_config,), kwargs={"stop": stop}),
    ]
    for w in workers:
        w.start()
    try:
        producer = EventProducer(kafka_config)
        event_id = "0b7c2f4e-5d0a-4f47-9a53-7c1f0f3d2a11"
        producer.publish("http_request", {
            "event_id": event_id, "time": datetime.now(UTC), "subject_key": "user-4242",
            "client_ip": "203.0.113.77", "method": "GET", "host": "techpros.no",
            "url": "/products?id=7&email=kari@example.no&utm_source=ad", "status": 200,
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
            "user_id": "user-4242",
        })
        producer.close(timeout=30)
        assert producer.stats().sent == 1, f"the producer did not deliver the event: {producer.stats()}"

        catalog = Path(kafka_config.warehouse.catalog)
        rows: list[list[object]] = []
        deadline = time.monotonic() + 90
        while not rows and time.monotonic() < deadline:
            if catalog.exists():
                rows = _query_from_other_process(catalog, event_id)  # while the sink still runs
            if not rows:
                time.sleep(0.5)
        assert workers[1].is_alive(), "the sink stopped before the query ran"
        groups = "" if rows else _groups(kafka_config)  # while the processor and the sink still run
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=60)

    assert len(rows) == 1, f"the event did not reach the warehouse exactly once ({_stage(kafka_config)}; {groups})"
    client_network, url, user_id, browser, os_family, device, subject = rows[0]
    assert client_network == "203.0.0.0"  # truncated to /16
    assert url == "/products?utm_source=ad"  # query stripped but for the allow-list
    assert user_id is None  # no consent: no identifier, not even a pseudonym
    assert subject is None
    assert (browser, os_family, device) == ("Firefox", "Linux", "desktop")
    day = Path(kafka_config.warehouse.root) / "http_request" / f"event_date={datetime.now(UTC).date()}"
    assert any(day.glob("*.parquet")), "no Parquet file in today's partition"
    for f in Path(kafka_config.warehouse.root).rglob("*.parquet"):
        text = str(pq.read_table(f).to_pylist())  # decompressed: every value of every row
        assert "203.0.113.77" not in text and "user-4242" not in text and "kari@example.no" not in text
