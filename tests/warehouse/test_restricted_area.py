"""Restricted rows are physically out of the analyst-readable files: reading the Parquet files directly
cannot see them; lift brings them back; access, erasure and expiry still reach them."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from datamin.config import load_config
from schemas import default_registry
from warehouse.arrow import records_to_table, time_column
from warehouse.catalog import build_catalog
from warehouse.layout import Layout
from warehouse.query import run_query
from warehouse.rights.erasure import erase_rows
from warehouse.rights.restricted_area import area_layout, release, sequester
from warehouse.samples import sample_record
from warehouse.scheduler import expire_now
from warehouse.writer import PartitionWriter

AT = datetime(2024, 5, 17, 12, tzinfo=UTC)


def load(layout: Layout, first: int, last: int, at: datetime = AT) -> None:
    schema = default_registry().latest("http_request", "minimised")
    rows = records_to_table(schema, [sample_record("http_request", i, at) for i in range(first, last + 1)])
    PartitionWriter(layout, fsync=False).write("http_request", "t.minimised.http_request", 0, first, last, rows,
                                              time_column=time_column("http_request"))


def subjects_in_files(folder: Path) -> list[str | None]:
    """What anyone who can read the folder's Parquet files sees, bypassing every view."""
    found: list[str | None] = []
    for path in sorted(folder.rglob("*.parquet")):
        found += pq.read_table(path, columns=["subject"]).column(0).to_pylist()
    return found


def count_in_view(catalog: Path, subject: str) -> str:
    out = io.StringIO()
    run_query(catalog, f"SELECT count(*) FROM http_request WHERE subject = '{subject}'", "csv", out)
    return out.getvalue().splitlines()[1]


@pytest.fixture
def world(tmp_path):
    layout = Layout(tmp_path / "wh")
    load(layout, 0, 49)
    load(layout, 50, 99, at=AT + timedelta(days=1))
    build_catalog(layout, tmp_path / "c.duckdb")
    subjects = [s for s in subjects_in_files(layout.table_dir("http_request")) if s]
    target = max(set(subjects), key=subjects.count)
    return layout, tmp_path / "c.duckdb", target, subjects.count(target)


def test_restricted_rows_cannot_be_read_from_the_table_files(world):
    layout, catalog, target, held = world
    total = len(subjects_in_files(layout.table_dir("http_request")))
    changes = sequester(layout, [target])
    assert sum(c.rows for c in changes) == held
    in_tables = subjects_in_files(layout.table_dir("http_request"))
    assert target not in in_tables and len(in_tables) == total - held  # nobody else's rows moved
    with duckdb.connect() as con:  # the stock duckdb tool over the table folder sees nothing of them
        glob = str(layout.table_dir("http_request") / "*" / "*.parquet")
        sql = f"SELECT count(*) FROM read_parquet('{glob}') WHERE subject = ?"
        assert con.execute(sql, [target]).fetchone() == (0,)
    assert count_in_view(catalog, target) == "0"
    assert subjects_in_files(area_layout(layout).table_dir("http_request")).count(target) == held
    assert layout.restricted_dir.name.startswith("_")  # never a table, never in a view


def test_sequester_is_idempotent_and_release_brings_every_row_back(world):
    layout, catalog, target, held = world
    sequester(layout, [target])
    assert sequester(layout, [target]) == []
    assert subjects_in_files(area_layout(layout).table_dir("http_request")).count(target) == held
    changes = release(layout, [target])
    assert sum(c.rows for c in changes) == held
    assert subjects_in_files(layout.table_dir("http_request")).count(target) == held
    assert target not in subjects_in_files(area_layout(layout).table_dir("http_request"))
    build_catalog(layout, catalog)
    assert count_in_view(catalog, target) == str(held)
    assert release(layout, [target]) == []


def test_a_crash_between_the_two_writes_duplicates_nothing(world, monkeypatch):
    layout, _, target, held = world
    from warehouse.rights import restricted_area

    def crash(*args, **kwargs):
        raise OSError("power cut")

    real = restricted_area.rewrite_file

    def area_written_then_crash(path, change, **kwargs):
        change(pq.read_table(path))  # the destination is written, the source is not rewritten
        crash()

    monkeypatch.setattr(restricted_area, "rewrite_file", area_written_then_crash)
    with pytest.raises(OSError):
        sequester(layout, [target])
    monkeypatch.setattr(restricted_area, "rewrite_file", real)
    sequester(layout, [target])  # the officer runs the command again
    assert subjects_in_files(area_layout(layout).table_dir("http_request")).count(target) == held
    assert target not in subjects_in_files(layout.table_dir("http_request"))


def test_erasure_and_expiry_reach_the_restricted_area(world, tmp_path):
    layout, _, target, _ = world
    sequester(layout, [target])
    erase_rows(area_layout(layout), [target])
    assert target not in subjects_in_files(layout.restricted_dir)
    other = next(s for s in subjects_in_files(layout.table_dir("http_request")) if s)
    sequester(layout, [other])
    config = load_config(path=None, environ={
        "DATAMIN__WAREHOUSE__ROOT": f'"{layout.root}"', "DATAMIN__WAREHOUSE__CATALOG": f'"{tmp_path / "c.duckdb"}"',
        "DATAMIN__PSEUDONYMISE__KEY_DIR": f'"{tmp_path / "keys"}"',
        "DATAMIN__PRODUCER__SPOOL_DIR": f'"{tmp_path / "sp"}"'})
    from warehouse.retention import full_inventory

    [store] = [s for s in full_inventory(config) if s.name == "restricted rows"]  # in `datamin retention`
    assert store.oldest is not None and store.oldest(AT) is not None and store.expire is not None
    expire_now(config, dry_run=False, now=AT + timedelta(days=400))
    assert subjects_in_files(layout.restricted_dir) == []
    assert store.oldest(AT) is None
