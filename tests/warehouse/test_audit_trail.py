"""The audit trail: one atomic Parquet file per append, exact columns, readable back, keyed appends once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pyarrow.parquet as pq
import pytest

from warehouse.audit_trail import SCHEMA, AuditEntry, AuditLog
from warehouse.layout import Layout

AT = datetime(2025, 3, 1, 3, 15, tzinfo=UTC)


def entry(**kw: object) -> AuditEntry:
    base: dict[str, object] = dict(at=AT, job="expiry", action="delete_partition", table_name="http_request",
                                   partition="event_date=2024-12-01", rows=10, bytes=1234, detail="past 90 days")
    base.update(kw)
    return AuditEntry(**base)  # type: ignore[arg-type]


def test_append_writes_one_file_with_exact_columns(tmp_path):
    log = AuditLog(Layout(tmp_path))
    path = log.append([entry(), entry(partition="event_date=2024-12-02", rows=3)])
    assert path is not None and path.parent == tmp_path / "_audit" / "expiry"
    assert path.name.startswith("20250301T031500000000Z-") and path.suffix == ".parquet"
    table = pq.read_table(path)
    assert table.column_names == ["at", "job", "action", "table_name", "partition", "rows", "bytes", "detail"]
    assert table.schema.equals(SCHEMA)
    assert table.num_rows == 2
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp file left behind


def test_read_returns_entries_oldest_first_and_by_kind(tmp_path):
    log = AuditLog(Layout(tmp_path))
    later = entry(at=AT + timedelta(days=1))
    log.append([later])
    log.append([entry(job="compaction", action="merge_files", partition="event_date=2025-02-28", detail="")])
    log.append([entry(at=AT.astimezone(timezone(timedelta(hours=2))))])  # any zone in, UTC out
    everything = log.read()
    assert len(everything) == 3
    assert [e.at for e in everything] == sorted(e.at for e in everything)
    expiries = log.read("expiry")
    assert expiries == [entry(), later]
    assert all(e.at.tzinfo is not None and e.at.utcoffset() == timedelta(0) for e in expiries)
    assert [e.action for e in log.read("compaction")] == ["merge_files"]
    assert log.read("erasure") == []


def test_partition_may_be_null(tmp_path):
    log = AuditLog(Layout(tmp_path))
    log.append([entry(job="leak_audit", action="scan", partition=None, rows=0, bytes=0)])
    assert log.read("leak_audit")[0].partition is None


def test_keyed_append_writes_once(tmp_path):
    log = AuditLog(Layout(tmp_path))
    first = log.append([entry()], key="http_request~2024-12-01~abc")
    again = log.append([entry(rows=999)], key="http_request~2024-12-01~abc")
    assert first == again
    assert [e.rows for e in log.read()] == [10]


def test_empty_append_writes_nothing(tmp_path):
    log = AuditLog(Layout(tmp_path))
    assert log.append([]) is None
    assert not (tmp_path / "_audit").exists()


@pytest.mark.parametrize("bad, message", [
    (dict(at=datetime(2025, 1, 1)), "naive"),
    (dict(rows=-1), "negative"),
    (dict(job="Bad Kind"), "lower-case"),
])
def test_bad_entries_are_refused(tmp_path, bad, message):
    with pytest.raises(ValueError, match=message):
        AuditLog(Layout(tmp_path)).append([entry(**bad)])
    assert not list((tmp_path).rglob("*.parquet"))


def test_mixed_jobs_need_a_kind(tmp_path):
    log = AuditLog(Layout(tmp_path))
    with pytest.raises(ValueError, match="kind="):
        log.append([entry(), entry(job="compaction")])
    assert log.append([entry(), entry(job="compaction")], kind="maintenance") is not None
    assert len(log.read("maintenance")) == 2


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    log = AuditLog(Layout(tmp_path))

    def boom(*_a: object, **_k: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("datamin.files.os.replace", boom)  # the audit log writes through replace_file
    with pytest.raises(OSError):
        log.append([entry()])
    assert list((tmp_path / "_audit" / "expiry").iterdir()) == []
