"""Corrupt and torn files: a named error (file, table, fix) instead of a traceback; every quarantine in
the audit trail; quarantined files expire with their day."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schemas import default_registry
from warehouse.arrow import records_to_table, time_column
from warehouse.catalog import build_catalog
from warehouse.errors import DamagedFileError
from warehouse.layout import Layout
from warehouse.query import run_query
from warehouse.samples import sample_record
from warehouse.writer import PartitionWriter

AT = datetime(2024, 5, 17, 12, tzinfo=UTC)


def load(layout: Layout, first: int, last: int, at: datetime = AT) -> Path:
    schema = default_registry().latest("http_request", "minimised")
    rows = records_to_table(schema, [sample_record("http_request", i, at) for i in range(first, last + 1)])
    written = PartitionWriter(layout, fsync=False).write("http_request", "t.minimised.http_request", 0, first, last,
                                                         rows, time_column=time_column("http_request"))
    return Path(written[0])


def flip_a_data_page(path: Path) -> None:
    """Damage inside the data, footer intact: the catalog's footer check cannot see it."""
    data = bytearray(path.read_bytes())
    for i in range(8, len(data) // 2, 7):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


def test_a_file_damaged_after_the_catalog_was_built_is_named_by_query(tmp_path):
    layout = Layout(tmp_path / "wh")
    load(layout, 0, 499)
    victim = load(layout, 500, 999)
    build_catalog(layout, tmp_path / "c.duckdb")
    flip_a_data_page(victim)
    with pytest.raises(DamagedFileError) as err:
        run_query(tmp_path / "c.duckdb", "SELECT sum(length(url)), count(DISTINCT event_id) FROM http_request",
                  out=io.StringIO())
    assert err.value.path == str(victim) and err.value.table == "http_request"
    assert "_quarantine" in err.value.fix and "Traceback" not in str(err.value)


def test_every_quarantine_is_in_the_audit_log_view(tmp_path):
    layout = Layout(tmp_path / "wh")
    good = load(layout, 0, 9)
    torn = load(layout, 10, 19, at=AT + timedelta(days=1))
    torn.write_bytes(torn.read_bytes()[: torn.stat().st_size // 2])
    report = build_catalog(layout, tmp_path / "c.duckdb")
    assert len(report.quarantined) == 1 and not torn.exists() and good.exists()
    out = io.StringIO()
    run_query(tmp_path / "c.duckdb", "SELECT action, table_name, partition, bytes > 0, detail FROM audit_log",
              "csv", out)
    rows = out.getvalue().splitlines()[1:]
    assert len(rows) == 1
    assert rows[0].startswith("quarantine,http_request,event_date=2024-05-18,True,")
    assert "_quarantine/http_request/event_date=2024-05-18/" in rows[0]


def test_compaction_skips_a_day_with_a_damaged_data_page(tmp_path):
    from warehouse.compaction import compact

    layout = Layout(tmp_path / "wh")
    load(layout, 0, 499)
    victim = load(layout, 500, 999)
    flip_a_data_page(victim)
    before = sorted(p.name for p in victim.parent.iterdir())
    assert compact(layout, now=AT + timedelta(days=2), fsync=False) == []
    assert sorted(p.name for p in victim.parent.iterdir()) == before  # nothing merged, nothing lost


def test_datamin_query_refuses_copy_at_the_command_line(tmp_path, monkeypatch, capsys):
    import os

    from datamin.cli import main

    layout = Layout(tmp_path / "wh")
    load(layout, 0, 9)
    monkeypatch.setenv("DATAMIN__WAREHOUSE__ROOT", f'"{layout.root}"')
    monkeypatch.setenv("DATAMIN__WAREHOUSE__CATALOG", f'"{tmp_path / "c.duckdb"}"')
    monkeypatch.setenv("DATAMIN__PSEUDONYMISE__KEY_DIR", f'"{tmp_path / "keys"}"')
    monkeypatch.setenv("DATAMIN__PRODUCER__SPOOL_DIR", f'"{tmp_path / "sp"}"')
    monkeypatch.chdir(tmp_path)
    build_catalog(layout, tmp_path / "c.duckdb")
    umask = os.umask(0o022)
    os.umask(umask)
    try:
        assert main(["query", f"COPY (SELECT * FROM http_request) TO '{tmp_path / 'out.csv'}'"]) == 2
        assert main(["query", "SELECT count(*) AS n FROM http_request", "--format", "csv"]) == 0
    finally:
        os.umask(umask)
    out, err = capsys.readouterr()
    assert "COPY statements are refused" in err and "Traceback" not in err
    assert out == "n\n10\n" and not (tmp_path / "out.csv").exists()
