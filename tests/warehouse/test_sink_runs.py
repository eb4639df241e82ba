"""The sink's intake without a broker: polled runs of messages are decoded, dead-lettered, buffered and
flushed exactly as if each message were added on its own (flush at ``flush_rows`` records)."""

import json
import time
import warnings
from datetime import UTC, datetime, timedelta

import pyarrow.parquet as pq

with warnings.catch_warnings():  # kafka-python 3.0 imports its protocol files with a deprecated API
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import TopicPartition
    from kafka.consumer.fetcher import ConsumerRecord

from datamin.config import load_config
from datamin.topics import Topics
from schemas import default_registry, encode
from warehouse.samples import event_id, sample_record
from warehouse.sink import _Sink, consumer_settings

AT = datetime.now(UTC) - timedelta(hours=1)  # within retention


class FakeProducer:
    def __init__(self):
        self.log = []  # ("send", note) and ("flush",) in call order

    def send(self, topic, value):
        self.log.append(("send", topic, json.loads(value)))

    def flush(self):
        self.log.append(("flush",))


def make_sink(tmp_path, flush_rows):
    config = load_config(path=None, environ={
        "DATAMIN__WAREHOUSE__ROOT": json.dumps(str(tmp_path / "wh")),
        "DATAMIN__WAREHOUSE__CATALOG": json.dumps(str(tmp_path / "catalog.duckdb")),
        "DATAMIN__WAREHOUSE__FLUSH_ROWS": str(flush_rows),
    })
    flushes = []
    sink = _Sink(config, default_registry(), None, FakeProducer(), flushes.append, time.monotonic)
    return sink, flushes


def message(topic, offset, value):
    return ConsumerRecord(topic, 0, -1, offset, 0, 0, None, value, [], None, -1, len(value or b""), -1)


def expected_flushes(offsets_good, flush_rows):
    """(first, last, rows) of each flush when messages are added one at a time (the reference)."""
    out, first, rows = [], None, 0
    for offset, good in offsets_good:
        first = offset if first is None else first
        rows += good
        if good and rows >= flush_rows:
            out.append((first, offset, rows))
            first, rows = None, 0
    return out, first


def test_polled_runs_flush_at_flush_rows_with_dead_letters_counted_in_the_range(tmp_path):
    sink, flushes = make_sink(tmp_path, flush_rows=3)
    topic = Topics(sink.config).minimised("http_request")
    schema = default_registry().latest("http_request", "minimised")
    other = default_registry().latest("usage_event", "minimised")
    bad = {12: b"garbage", 13: None, 17: encode(other, sample_record("usage_event", 1, AT))}
    offsets = [10, 11, 12, 13, 14, 16, 17, 18, 19, 21, 22, 23, 24]  # gaps, as transaction markers leave
    values = {o: bad.get(o, encode(schema, sample_record("http_request", o, AT))) for o in offsets}
    # two polls; the second continues the buffer the first left
    sink.handle({TopicPartition(topic, 0): [message(topic, o, values[o]) for o in offsets[:7]]})
    sink.handle({TopicPartition(topic, 0): [message(topic, o, values[o]) for o in offsets[7:]]})

    want, pending_first = expected_flushes([(o, o not in bad) for o in offsets], 3)
    assert [(f.first, f.last, f.rows) for f in flushes] == want == [(10, 14, 3), (16, 19, 3), (21, 23, 3)]
    assert sink.writer.checkpoint(topic, 0) == 23
    buf = sink.batcher.take((topic, 0))  # offset 24 waits for the next flush
    assert (buf.first, buf.last, len(buf.records), pending_first) == (24, 24, 1, 24)
    # every undecodable offset was dead-lettered (no value in the note), and the notes were flushed out
    # before the checkpoint moved past them
    log = sink.producer.log
    notes = [entry[2] for entry in log if entry[0] == "send"]
    assert [n["offset"] for n in notes] == [12, 13, 17] and all(n["source"] == topic for n in notes)
    assert "garbage" not in json.dumps(notes)
    assert log.index(("flush",)) > max(i for i, e in enumerate(log) if e[0] == "send" and e[2]["offset"] < 14)
    assert sink.stats.dead_letters == 3 and sink.stats.rows == 9
    loaded = []
    for path in sorted((tmp_path / "wh").glob("http_request/event_date=*/*.parquet")):
        loaded += pq.read_table(path, columns=["event_id"]).column(0).to_pylist()
    assert sorted(loaded) == sorted(event_id("http_request", o) for o in offsets if o not in bad and o <= 23)


def test_a_buffer_already_full_flushes_at_its_next_record(tmp_path):
    sink, flushes = make_sink(tmp_path, flush_rows=2)
    topic = Topics(sink.config).minimised("http_request")
    schema = default_registry().latest("http_request", "minimised")
    # a buffer at flush_rows that was not flushed (e.g. flush_rows lowered): flushes with the next record
    sink.batcher.extend(topic, 0, "http_request", 0, 1, [sample_record("http_request", i, AT) for i in (0, 1)], 0,
                        now=0.0)
    sink.handle({TopicPartition(topic, 0): [message(topic, 2, encode(schema, sample_record("http_request", 2, AT)))]})
    assert [(f.first, f.last, f.rows) for f in flushes] == [(0, 2, 3)]


def test_consumer_settings_keep_read_committed_and_manual_commits(tmp_path):
    sink, _ = make_sink(tmp_path, flush_rows=50_000)
    settings = consumer_settings(sink.config)
    assert settings["isolation_level"] == "read_committed"
    assert settings["enable_auto_commit"] is False
    assert settings["check_crcs"] is True
    assert 500 <= settings["max_poll_records"] <= 50_000
