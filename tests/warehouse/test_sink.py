"""The sink against the real broker: loading, dead letters, restart, and SIGKILL mid-stream."""

import json
import os
import signal
import subprocess
import sys
import threading
import time as clock
import warnings
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

with warnings.catch_warnings():  # kafka-python 3.0 imports its protocol files with a deprecated API
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import KafkaConsumer, KafkaProducer

from datamin.exceptions import DecodeError, EventError
from datamin.kafka import dead_letter_note
from datamin.topics import Topics, provision
from schemas import default_registry, encode
from warehouse.arrow import id_column
from warehouse.layout import Layout
from warehouse.samples import event_id, sample_record
from warehouse.sink import check_event, run_sink

ROOT = Path(__file__).resolve().parents[2]
DAY = datetime.now(UTC).date() - timedelta(days=2)  # recent: older rows would be past retention
AT = datetime.combine(DAY, time(23, 59), UTC)


def produce(config, event, first, last, *, spread=True):
    schema = default_registry().latest(event, "minimised")
    producer = KafkaProducer(**config.kafka.client_kwargs(), acks="all")
    try:
        for i in range(first, last + 1):
            at = AT + timedelta(seconds=i) if spread else AT
            producer.send(Topics(config).minimised(event), encode(schema, sample_record(event, i, at)),
                          key=str(i).encode())
        producer.flush()
    finally:
        producer.close()


def produce_raw(config, topic, values):
    producer = KafkaProducer(**config.kafka.client_kwargs(), acks="all")
    try:
        for v in values:
            producer.send(topic, v)
        producer.flush()
    finally:
        producer.close()


def loaded_ids(config, event):
    ids = []
    for path in sorted(Path(config.warehouse.root).glob(f"{event}/event_date=*/*.parquet")):
        ids += pq.read_table(path, columns=[id_column(event)]).column(0).to_pylist()
    return ids


def wait_for(condition, timeout=90.0, what="condition"):
    deadline = clock.monotonic() + timeout
    while not condition():
        if clock.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        clock.sleep(0.2)


def run_in_thread(config, flushes):
    stop = threading.Event()
    result = {}

    def target():
        try:
            result["stats"] = run_sink(config, stop=stop, on_flush=flushes.append)
        except BaseException as exc:  # surfaced by the test
            result["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    return stop, thread, result


def read_dead_letters(config, expect):
    consumer = KafkaConsumer(Topics(config).dead_letter, **config.kafka.client_kwargs(),
                             auto_offset_reset="earliest", consumer_timeout_ms=10_000)
    notes = []
    try:
        for msg in consumer:
            notes.append(json.loads(msg.value))
            if len(notes) >= expect:
                break
    finally:
        consumer.close()
    return notes


def test_check_event_accepts_only_minimised_events_of_the_topic_type():
    registry = default_registry()
    good = encode(registry.latest("usage_event", "minimised"), sample_record("usage_event", 1))
    assert check_event("usage_event", good, registry)["event_id"] == event_id("usage_event", 1)
    with pytest.raises(EventError, match="on the http_request topic"):
        check_event("http_request", good, registry)
    with pytest.raises(DecodeError):
        check_event("http_request", b"\x00not avro", registry)
    with pytest.raises(DecodeError, match="empty"):
        check_event("http_request", None, registry)


def test_dead_letter_note_carries_no_payload():
    note = json.loads(dead_letter_note("sink", "t.minimised.x", "undecodable: bad header", partition=1, offset=42))
    assert note == {"source": "t.minimised.x", "partition": 1, "offset": 42,
                    "reason": "undecodable: bad header", "stage": "sink"}


def test_sink_loads_every_minimised_topic_exactly_once_across_restarts(kafka_config):
    config = kafka_config
    provision(config)
    produce(config, "http_request", 0, 299)
    produce(config, "usage_event", 0, 49)
    produce(config, "privacy_request", 0, 9)
    raw = default_registry().latest("http_request", "raw")
    raw_record = {f["name"]: None for f in raw.definition["fields"]}
    produce_raw(config, Topics(config).minimised("http_request"), [b"garbage, not an event"])
    flushes = []
    stop, thread, result = run_in_thread(config, flushes)
    try:
        wait_for(lambda: len(loaded_ids(config, "http_request")) >= 300 and len(loaded_ids(config, "usage_event")) >= 50
                 and len(loaded_ids(config, "privacy_request")) >= 10 or "error" in result, what="first load")
    finally:
        stop.set()
        thread.join(timeout=60)
    assert "error" not in result, result.get("error")
    assert sorted(loaded_ids(config, "http_request")) == sorted(event_id("http_request", i) for i in range(300))
    assert sorted(loaded_ids(config, "usage_event")) == sorted(event_id("usage_event", i) for i in range(50))
    assert result["stats"].rows == 360 and result["stats"].dead_letters == 1
    assert sum(f.rows for f in flushes) == 360
    # rows land in the UTC day of their time: the events span midnight
    days = {p.name for p in Path(config.warehouse.root).glob("http_request/event_date=*")}
    assert days == {f"event_date={DAY}", f"event_date={DAY + timedelta(days=1)}"}
    # queryable through the catalog
    con = duckdb.connect(config.warehouse.catalog, read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM http_request").fetchone() == (300,)
        assert con.execute("SELECT sum(requests) FROM daily_requests").fetchone() == (300,)
    finally:
        con.close()
    notes = read_dead_letters(config, 1)
    assert len(notes) == 1 and notes[0]["source"] == Topics(config).minimised("http_request")
    assert notes[0]["stage"] == "sink" and "garbage" not in json.dumps(notes[0])
    assert raw_record  # (a raw event on a minimised topic is refused by check_event, tested above)

    # a restart with more events: only the new ones are loaded
    produce(config, "http_request", 300, 399)
    flushes.clear()
    stop, thread, result = run_in_thread(config, flushes)
    try:
        wait_for(lambda: len(loaded_ids(config, "http_request")) >= 400 or "error" in result, what="second load")
    finally:
        stop.set()
        thread.join(timeout=60)
    assert "error" not in result, result.get("error")
    ids = loaded_ids(config, "http_request")
    assert len(ids) == len(set(ids)) == 400
    assert result["stats"].rows == 100


def _env(config, **extra):
    env = dict(os.environ)
    env.update({
        "KAFKA_BOOTSTRAP_SERVERS": config.kafka.bootstrap_servers,
        "DATAMIN__TOPICS__PREFIX": json.dumps(config.topics.prefix),
        "DATAMIN__WAREHOUSE__ROOT": json.dumps(config.warehouse.root),
        "DATAMIN__WAREHOUSE__CATALOG": json.dumps(config.warehouse.catalog),
        "DATAMIN__WAREHOUSE__GROUP_ID": json.dumps(config.warehouse.group_id),
        "PYTHONPATH": str(ROOT),
    })
    env.update(extra)
    return env


DATAMIN = [sys.executable, "-c", "import sys; from datamin.cli import main; sys.exit(main())"]
"""the `datamin` command, run by this interpreter"""


def test_sigkill_mid_stream_then_restart_loads_every_event_exactly_once(kafka_config, tmp_path):
    config = kafka_config
    provision(config)
    n = 30_000
    produce(config, "http_request", 0, n - 1)
    env = _env(config, DATAMIN__WAREHOUSE__FLUSH_ROWS="700")
    log1 = open(tmp_path / "sink1.log", "wb")
    first = subprocess.Popen([*DATAMIN, "sink"], cwd=tmp_path, env=env,
                             stdout=log1, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: len(list(Path(config.warehouse.root).glob("http_request/*/*.parquet"))) >= 3
                 or first.poll() is not None, what="some files from the first sink")
        assert first.poll() is None, (tmp_path / "sink1.log").read_text()
        os.kill(first.pid, signal.SIGKILL)
        assert first.wait(timeout=30) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
        log1.close()
    loaded_before = len(loaded_ids(config, "http_request"))
    assert loaded_before < n, "the sink finished before it was killed; nothing was tested"

    log2 = open(tmp_path / "sink2.log", "wb")
    second = subprocess.Popen([*DATAMIN, "sink"], cwd=tmp_path, env=env,
                              stdout=log2, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: len(loaded_ids(config, "http_request")) >= n or second.poll() is not None,
                 what="the restarted sink to load everything")
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=60) == 0, (tmp_path / "sink2.log").read_text()
    finally:
        if second.poll() is None:
            second.kill()
            second.wait()
        log2.close()
    ids = loaded_ids(config, "http_request")
    assert len(ids) == len(set(ids)), f"{len(ids) - len(set(ids))} duplicates"
    assert set(ids) == {event_id("http_request", i) for i in range(n)}
    assert not any(Layout(Path(config.warehouse.root)).staging_dir.iterdir())


def test_rows_already_past_retention_are_counted_and_never_written(kafka_config):
    # a late or replayed event for a day that expiry has already deleted must not bring the day back
    config = kafka_config
    provision(config)
    schema = default_registry().latest("http_request", "minimised")
    old = datetime.now(UTC) - timedelta(days=config.warehouse.retention_days["http_request"] + 2)
    producer = KafkaProducer(**config.kafka.client_kwargs(), acks="all")
    try:
        topic = Topics(config).minimised("http_request")
        for i, at in enumerate([old, old, AT]):
            producer.send(topic, encode(schema, sample_record("http_request", i, at)))
        producer.flush()
    finally:
        producer.close()
    stop, thread, result = run_in_thread(config, flushes := [])
    try:
        wait_for(lambda: sum(f.rows for f in flushes) >= 3 or "error" in result, what="the flush")
    finally:
        stop.set()
        thread.join(timeout=60)
    assert "error" not in result, result.get("error")
    assert loaded_ids(config, "http_request") == [event_id("http_request", 2)]
    assert result["stats"].expired_on_arrival == 2
    days = {p.name for p in Path(config.warehouse.root).glob("http_request/event_date=*")}
    assert days == {f"event_date={DAY}"}


def test_two_sinks_of_one_group_on_one_root_neither_duplicate_nor_corrupt(kafka_config):
    config = kafka_config
    provision(config)
    produce(config, "http_request", 0, 1999)
    first_flushes, second_flushes = [], []
    stop_a, thread_a, result_a = run_in_thread(config, first_flushes)
    try:
        wait_for(lambda: first_flushes or "error" in result_a, what="the first sink's first flush")
        stop_b, thread_b, result_b = run_in_thread(config, second_flushes)  # joins: partitions move
        try:
            produced = 2000
            while not second_flushes and produced < 20_000:  # until the group has rebalanced onto both
                produce(config, "http_request", produced, produced + 199)
                produced += 200
                clock.sleep(0.5)
            wait_for(lambda: len(loaded_ids(config, "http_request")) >= produced
                     or "error" in result_a or "error" in result_b, what="all rows", timeout=120)
        finally:
            stop_b.set()
            thread_b.join(timeout=60)
    finally:
        stop_a.set()
        thread_a.join(timeout=60)
    assert "error" not in result_a, result_a.get("error")
    assert "error" not in result_b, result_b.get("error")
    ids = loaded_ids(config, "http_request")
    assert sorted(ids) == sorted(event_id("http_request", i) for i in range(produced))  # each exactly once
    assert second_flushes, "the second sink never took over a partition"
    for path in Path(config.warehouse.root).glob("http_request/event_date=*/*.parquet"):
        pq.read_metadata(path)  # every visible file is a whole Parquet file
