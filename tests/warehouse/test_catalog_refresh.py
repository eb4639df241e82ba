"""A catalog refresh costs in proportion to what changed, not to the number of files: what it rebuilds,
lists and reads is counted, never timed."""

import os
from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from schemas import default_registry
from warehouse.arrow import records_to_table, time_column
from warehouse.catalog import CatalogBuilder
from warehouse.layout import Layout
from warehouse.samples import sample_record
from warehouse.writer import PartitionWriter

AT = datetime(2024, 5, 17, 12, 0, tzinfo=UTC)


def load(layout, event, first, last, at=AT, partition=0):
    schema = default_registry().latest(event, "minimised")
    rows = records_to_table(schema, [sample_record(event, i, at) for i in range(first, last + 1)])
    return PartitionWriter(layout, fsync=False).write(event, f"t.minimised.{event}", partition, first, last, rows,
                                                     time_column=time_column(event))


def load_files(layout, count, start=0, at=AT):
    for n in range(start, start + count):
        load(layout, "http_request", n * 2, n * 2 + 1, at=at)


def count(catalog, table="http_request"):
    con = duckdb.connect(str(catalog), read_only=True)
    try:
        return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        con.close()


def settle(layout):
    """Ages every folder's modification time past SETTLE_S, as a sink that flushed a while ago would."""
    old = (AT - timedelta(hours=1)).timestamp()
    for folder in [layout.root, *[p for p in layout.root.rglob("*") if p.is_dir()]]:
        os.utime(folder, (old, old))


def test_more_files_in_known_partitions_do_not_rebuild_yet_are_queryable(tmp_path):
    layout = Layout(tmp_path / "wh")
    catalog = tmp_path / "c.duckdb"
    load_files(layout, 3)
    builder = CatalogBuilder(layout, catalog)
    first = builder.build()
    assert first.rebuilt and first.statements > 0
    written = catalog.stat().st_mtime_ns
    load_files(layout, 40, start=3)
    load_files(layout, 5, start=43, at=AT + timedelta(days=1))  # a new day partition: the glob covers it
    report = builder.refresh()
    assert not report.rebuilt and report.statements == 0
    assert report.cost.footers_read == 45  # the new files only, once each
    assert report.tables["http_request"] == 48
    assert catalog.stat().st_mtime_ns == written
    assert count(catalog) == 96  # 48 files of 2 rows, through the unchanged views
    settle(layout)
    builder.refresh()  # notes the settled stamps
    quiet = builder.refresh()
    assert not quiet.rebuilt and quiet.cost.footers_read == 0
    assert quiet.cost.folders_listed == 0  # nothing changed: nothing listed, however many files


def test_a_refresh_lists_only_the_partition_that_changed(tmp_path):
    layout = Layout(tmp_path / "wh")
    catalog = tmp_path / "c.duckdb"
    for day in range(10):
        load_files(layout, 20, start=day * 20, at=AT + timedelta(days=day))
    builder = CatalogBuilder(layout, catalog)
    builder.build()
    settle(layout)
    builder.refresh()
    load_files(layout, 1, start=1000, at=AT + timedelta(days=9))
    report = builder.refresh()
    assert report.cost.footers_read == 1
    assert report.cost.folders_listed <= 2  # the day's folder (and at most the table's), not ten days
    assert not report.rebuilt


def test_a_full_build_executes_the_same_statements_whatever_the_file_count(tmp_path):
    small, big = Layout(tmp_path / "small"), Layout(tmp_path / "big")
    load_files(small, 2)
    load_files(big, 300)
    a = CatalogBuilder(small, tmp_path / "a.duckdb").build()
    b = CatalogBuilder(big, tmp_path / "b.duckdb").build()
    assert a.statements == b.statements > 0
    assert count(tmp_path / "b.duckdb") == 600


def test_first_file_last_file_and_a_new_schema_rebuild(tmp_path):
    layout = Layout(tmp_path / "wh")
    catalog = tmp_path / "c.duckdb"
    builder = CatalogBuilder(layout, catalog)
    assert builder.build().rebuilt
    assert not builder.refresh().rebuilt
    files = load(layout, "usage_event", 0, 4)  # the table's first file: the empty view must go
    assert builder.refresh().rebuilt
    assert count(catalog, "usage_event") == 5
    assert not builder.refresh().rebuilt
    # a file with a column the views have not seen (a newer writer): the views must show it
    part = layout.partition_dir("usage_event", AT.date())
    table = pq.read_table(files[0]).append_column("extra", pa.array(["x"] * 5))
    pq.write_table(table, part / "newer.parquet")
    assert builder.refresh().rebuilt
    con = duckdb.connect(str(catalog), read_only=True)
    try:
        assert con.execute("SELECT count(extra) FROM usage_event").fetchone()[0] == 5
    finally:
        con.close()
    for f in part.iterdir():  # every file gone (expired): back to the typed empty view
        f.unlink()
    assert builder.refresh().rebuilt
    assert count(catalog, "usage_event") == 0


def test_a_missing_catalog_is_written_by_a_refresh(tmp_path):
    layout = Layout(tmp_path / "wh")
    catalog = tmp_path / "c.duckdb"
    builder = CatalogBuilder(layout, catalog)
    builder.build()
    catalog.unlink()
    assert builder.refresh().rebuilt and catalog.exists()
