import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datamin.topics import MINIMISED_EVENTS
from schemas import default_registry
from warehouse import catalog as catalog_module
from warehouse.arrow import records_to_table, time_column
from warehouse.catalog import ANALYST_VIEWS, CatalogBuilder, build_catalog
from warehouse.layout import Layout
from warehouse.samples import sample_record
from warehouse.suppression import GROUPINGS
from warehouse.writer import PartitionWriter

AT = datetime(2024, 5, 17, 12, 0, tzinfo=UTC)


def load(layout, event, first, last, at=AT, partition=0):
    schema = default_registry().latest(event, "minimised")
    rows = records_to_table(schema, [sample_record(event, i, at) for i in range(first, last + 1)])
    return PartitionWriter(layout, fsync=False).write(event, f"t.minimised.{event}", partition, first, last, rows,
                                                     time_column=time_column(event))


def query(path, sql):
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_every_table_has_a_typed_view_even_without_files(tmp_path):
    report = build_catalog(Layout(tmp_path / "wh"), tmp_path / "c.duckdb")
    assert report.tables == {e: 0 for e in MINIMISED_EVENTS}
    for event in MINIMISED_EVENTS:
        assert query(tmp_path / "c.duckdb", f"SELECT count(*) FROM {event}") == [(0,)]
    types = dict((r[0], r[1]) for r in query(tmp_path / "c.duckdb", "DESCRIBE http_request"))
    assert types["time"] == "TIMESTAMP WITH TIME ZONE" and types["status"] == "INTEGER"
    assert types["event_date"] == "DATE" and types["do_not_track"] == "BOOLEAN"
    for name in [n for n, _ in ANALYST_VIEWS] + [g.name for g in GROUPINGS] + ["audit_log"]:
        assert query(tmp_path / "c.duckdb", f"SELECT count(*) FROM {name}") == [(0,)]


def test_views_read_the_parquet_partitions_with_the_same_types_as_empty_views(tmp_path):
    layout = Layout(tmp_path / "wh")
    empty_types = None
    build_catalog(layout, tmp_path / "c.duckdb")
    empty_types = query(tmp_path / "c.duckdb", "DESCRIBE http_request")
    load(layout, "http_request", 0, 99)
    load(layout, "http_request", 100, 149, at=AT + timedelta(days=1))
    for event in MINIMISED_EVENTS[1:]:
        load(layout, event, 0, 29)
    report = build_catalog(layout, tmp_path / "c.duckdb")
    assert report.tables["http_request"] == 2 and report.tables["usage_event"] == 1
    c = tmp_path / "c.duckdb"
    assert [r[:2] for r in query(c, "DESCRIBE http_request")] == [r[:2] for r in empty_types]
    assert query(c, "SELECT count(*), count(DISTINCT event_id) FROM http_request") == [(150, 150)]
    assert query(c, "SELECT count(*) FROM privacy_request WHERE event_date = DATE '2024-05-17'") == [(30,)]
    days = query(c, "SELECT date, requests FROM daily_requests")
    assert [(d.isoformat(), n) for d, n in days] == [("2024-05-17", 100), ("2024-05-18", 50)]
    assert query(c, "SELECT sum(requests) FROM browser_share") == [(150,)]
    assert query(c, "SELECT round(sum(percent)) FROM device_share") == [(100,)]
    assert ("www.google.com",) in [r[:1] for r in query(c, "SELECT domain FROM referrer_domains")]
    assert query(c, "SELECT sum(server_errors) FROM http_error_rate") == [(30,)]  # status 500 every 5th
    terms = dict(query(c, "SELECT term, searches FROM search_terms"))
    # few visitors in this data: small groups fold into (other), the total stays (warehouse.suppression)
    assert set(terms) <= {"privacy policy", "pricing", "[email] login", "(other)"} and sum(terms.values()) == 7
    errors = query(c, "SELECT sum(errors), sum(crashes), sum(reports) FROM error_rate")
    assert errors == [(10, 10, 30)]


def test_duplicate_events_lists_days_with_a_repeated_event_id(tmp_path):
    layout = Layout(tmp_path / "wh")
    c = tmp_path / "c.duckdb"
    load(layout, "http_request", 0, 9)
    load(layout, "usage_event", 0, 9)
    build_catalog(layout, c)
    assert query(c, "SELECT * FROM duplicate_events") == []
    load(layout, "http_request", 5, 7, partition=1)  # the same three events again, from another partition
    load(layout, "http_request", 20, 21, at=AT + timedelta(days=1))
    build_catalog(layout, c)
    rows = query(c, "SELECT table_name, date, events, duplicates FROM duplicate_events")
    assert [(t, d.isoformat(), n, dup) for t, d, n, dup in rows] == [("http_request", "2024-05-17", 13, 3)]


def test_corrupt_and_foreign_files_are_quarantined_not_breaking_views(tmp_path, caplog):
    layout = Layout(tmp_path / "wh")
    load(layout, "http_request", 0, 9)
    part = layout.partition_dir("http_request", AT.date())
    (part / "garbage.parquet").write_bytes(b"this is not parquet at all")
    good = next(part.glob("t.*.parquet"))
    (part / "truncated.parquet").write_bytes(good.read_bytes()[:-20])
    pq.write_table(pa.table({"x": [1, 2]}), part / "foreign.parquet")
    report = build_catalog(layout, tmp_path / "c.duckdb")
    assert sorted(p.name.split(".parquet")[0] for p in report.quarantined) == ["foreign", "garbage", "truncated"]
    assert all(layout.quarantine_dir in p.parents and p.exists() for p in report.quarantined)
    assert sorted(p.name for p in part.iterdir()) == [good.name]
    assert query(tmp_path / "c.duckdb", "SELECT count(*) FROM http_request") == [(10,)]
    assert "garbage.parquet" in caplog.text and "not a readable Parquet file" in caplog.text


def test_a_rebuild_reads_only_new_footers(tmp_path):
    layout = Layout(tmp_path / "wh")
    load(layout, "http_request", 0, 9)
    load(layout, "usage_event", 0, 9)
    builder = CatalogBuilder(layout, tmp_path / "c.duckdb")
    assert builder.build().cost.footers_read == 2
    load(layout, "http_request", 10, 19)
    assert builder.build().cost.footers_read == 1
    assert query(tmp_path / "c.duckdb", "SELECT count(*) FROM http_request") == [(20,)]


def test_audit_log_view_reads_audit_files_when_present(tmp_path):
    layout = Layout(tmp_path / "wh")
    (layout.audit_dir / "expiry").mkdir(parents=True)
    pq.write_table(pa.table({
        "at": pa.array([AT], pa.timestamp("ms", tz="UTC")), "job": ["expiry"], "action": ["delete_partition"],
        "table_name": ["http_request"], "partition": ["2024-01-01"], "rows": [10], "bytes": [2048], "detail": [""],
    }), layout.audit_dir / "expiry" / "a.parquet")
    build_catalog(layout, tmp_path / "c.duckdb")
    assert query(tmp_path / "c.duckdb", "SELECT job, rows FROM audit_log") == [("expiry", 10)]


def test_build_catalog_from_config(make_config, tmp_path):
    config = make_config()
    report = build_catalog(config)
    assert report.path == tmp_path / "catalog.duckdb" and report.path.is_file()


def test_another_process_queries_while_files_arrive_and_the_catalog_is_rebuilt(tmp_path):
    """A stock duckdb reader in a second process opens the catalog read-only, again and again, while
    this process writes files and replaces the catalog; it never fails and never sees counts drop."""
    layout = Layout(tmp_path / "wh")
    catalog = tmp_path / "c.duckdb"
    builder = CatalogBuilder(layout, catalog)
    load(layout, "http_request", 0, 99)
    builder.build()
    reader = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import duckdb, sys
        seen = []
        for line in sys.stdin:
            if line.strip() == "stop":
                break
            con = duckdb.connect({str(catalog)!r}, read_only=True)
            seen.append(con.execute("SELECT count(*) FROM http_request").fetchone()[0])
            held = con.execute("SELECT sum(requests) FROM daily_requests").fetchone()[0]
            assert held == seen[-1], (held, seen[-1])
            try:
                con.execute("CREATE TABLE x (a INT)")
                raise SystemExit("a write succeeded on a read-only catalog")
            except duckdb.Error:
                pass
            con.close()
            print(seen[-1], flush=True)
        assert seen == sorted(seen), seen
        print("ok", len(seen), flush=True)
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    counts = []
    try:
        for step in range(1, 16):
            load(layout, "http_request", step * 100, step * 100 + 99)
            reader.stdin.write("go\n")
            reader.stdin.flush()
            builder.build()  # replaced while the reader may have the old one open
            counts.append(int(reader.stdout.readline()))
        reader.stdin.write("stop\n")
        reader.stdin.flush()
        tail = reader.stdout.read()
    finally:
        reader.stdin.close()
        reader.stdout.close()
        assert reader.wait(timeout=60) == 0
    assert tail.startswith("ok 15")
    assert counts == sorted(counts) and counts[-1] >= 1500 and all(c % 100 == 0 and c >= 100 for c in counts)
    assert query(catalog, "SELECT count(*) FROM http_request") == [(1600,)]


def test_catalog_error_names_the_problem(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(catalog_module.CatalogError, match="could not"):
        build_catalog(Layout(tmp_path / "wh"), blocker / "c.duckdb")
