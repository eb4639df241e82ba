"""Expiry with an injected clock: boundaries, the cap, dry runs, audit, idempotence, crash recovery."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datamin.config import TABLE_RETENTION_MAX_DAYS as RETENTION_CAP_DAYS  # 364: + the partition day = the year
from datamin.config import retention_for
from datamin.exceptions import ConfigError
from warehouse.audit_trail import AuditLog
from warehouse.expiry import expire, oldest_kept_day, plan_expiry
from warehouse.layout import Layout

NOW = datetime(2025, 4, 1, 3, 15, tzinfo=UTC)
TODAY = NOW.date()


def put(layout: Layout, table: str, day: date, files: int = 2, rows: int = 3) -> Path:
    """Writes ``files`` Parquet files of ``rows`` rows into the partition of ``day``."""
    folder = layout.partition_dir(table, day)
    folder.mkdir(parents=True, exist_ok=True)
    time_col = "received" if table == "privacy_request" else "time"
    for f in range(files):
        ids = [f"{day.isoformat()}-{f}-{r}" for r in range(rows)]
        t = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
        pq.write_table(pa.table({"event_id": ids, time_col: pa.array([t] * rows, pa.timestamp("us", tz="UTC"))}),
                       folder / f"t~p0~o{f:019d}-{f:019d}.parquet")
    return folder


def days_of(layout: Layout, table: str) -> list[date]:
    return [d for d, _ in layout.partitions(table)]


def test_boundary_partition_is_kept_and_the_day_before_goes(tmp_path):
    layout = Layout(tmp_path)
    boundary = TODAY - timedelta(days=90)
    for d in (boundary - timedelta(days=1), boundary, boundary + timedelta(days=1), TODAY):
        put(layout, "http_request", d)
    assert oldest_kept_day("http_request", {"http_request": 90}, TODAY) == boundary
    plan = plan_expiry(layout, {"http_request": 90}, TODAY)
    assert [(e.table, e.day, e.files, e.rows) for e in plan] == [("http_request", boundary - timedelta(days=1), 2, 6)]
    assert plan[0].bytes == sum(p.stat().st_size for p in plan[0].path.iterdir())
    assert plan[0].partition == f"event_date={(boundary - timedelta(days=1)).isoformat()}"
    done = expire(layout, {"http_request": 90}, now=NOW, audit=None)
    assert [e.day for e in done] == [boundary - timedelta(days=1)]
    assert days_of(layout, "http_request") == [boundary, boundary + timedelta(days=1), TODAY]


def test_day_is_taken_in_utc(tmp_path):
    layout = Layout(tmp_path)
    gone = TODAY - timedelta(days=91)
    put(layout, "http_request", gone)
    # 2025-04-01 03:15 UTC is still 2025-03-31 in New York, where this partition would be kept
    from zoneinfo import ZoneInfo
    local = NOW.astimezone(ZoneInfo("America/New_York"))
    assert local.date() == TODAY - timedelta(days=1)
    assert [e.day for e in expire(layout, {"http_request": 90}, now=local)] == [gone]


def test_naive_now_is_refused(tmp_path):
    with pytest.raises(ValueError, match="naive"):
        expire(Layout(tmp_path), {}, now=datetime(2025, 4, 1))


def test_retention_above_the_cap_is_clamped(tmp_path):
    layout = Layout(tmp_path)
    cap_boundary = TODAY - timedelta(days=RETENTION_CAP_DAYS)
    put(layout, "consent_record", cap_boundary)
    put(layout, "consent_record", cap_boundary - timedelta(days=1))
    put(layout, "consent_record", cap_boundary - timedelta(days=500))
    assert retention_for("consent_record", {"consent_record": 10_000}) == RETENTION_CAP_DAYS
    plan = plan_expiry(layout, {"consent_record": 10_000}, TODAY)
    assert [e.day for e in plan] == [cap_boundary - timedelta(days=500), cap_boundary - timedelta(days=1)]
    assert all(e.retention_days == RETENTION_CAP_DAYS for e in plan)


def test_table_without_retention_uses_the_cap(tmp_path):
    layout = Layout(tmp_path)
    cap_boundary = TODAY - timedelta(days=RETENTION_CAP_DAYS)
    put(layout, "some_new_table", cap_boundary)
    put(layout, "some_new_table", cap_boundary - timedelta(days=1))
    assert [e.day for e in plan_expiry(layout, {}, TODAY)] == [cap_boundary - timedelta(days=1)]


@pytest.mark.parametrize("days", [0, -5])
def test_retention_below_one_day_is_a_config_error(tmp_path, days):
    put(Layout(tmp_path), "http_request", TODAY)
    with pytest.raises(ConfigError, match="retention_days.http_request"):
        plan_expiry(Layout(tmp_path), {"http_request": days}, TODAY)


def test_dry_run_deletes_nothing_and_audits_nothing(tmp_path):
    layout = Layout(tmp_path)
    old = TODAY - timedelta(days=200)
    put(layout, "http_request", old)
    audit = AuditLog(layout)
    plan = expire(layout, {"http_request": 90}, now=NOW, dry_run=True, audit=audit)
    assert [e.day for e in plan] == [old]
    assert days_of(layout, "http_request") == [old]
    assert audit.read() == []
    assert not layout.trash_dir.exists()


def test_each_deletion_is_audited_without_personal_data(tmp_path):
    layout = Layout(tmp_path)
    put(layout, "http_request", TODAY - timedelta(days=100), files=3, rows=4)
    put(layout, "privacy_request", TODAY - timedelta(days=400), files=1, rows=2)
    put(layout, "privacy_request", TODAY - timedelta(days=1))
    audit = AuditLog(layout)
    done = expire(layout, {"http_request": 90, "privacy_request": 365}, now=NOW, audit=audit)
    entries = audit.read("expiry")
    assert sorted((e.table_name, e.partition, e.rows, e.bytes) for e in entries) == \
        sorted((x.table, x.partition, x.rows, x.bytes) for x in done)
    assert {(e.table_name, e.rows) for e in entries} == {("http_request", 12), ("privacy_request", 2)}
    assert all(e.at == NOW and e.job == "expiry" and e.action == "delete_partition" for e in entries)
    for e in entries:
        assert "-0-" not in e.detail  # no event ids (or any row value) leak into the trail


def test_rerun_is_idempotent(tmp_path):
    layout = Layout(tmp_path)
    put(layout, "usage_event", TODAY - timedelta(days=181))
    audit = AuditLog(layout)
    assert len(expire(layout, {"usage_event": 180}, now=NOW, audit=audit)) == 1
    assert expire(layout, {"usage_event": 180}, now=NOW, audit=audit) == []
    assert expire(layout, {"usage_event": 180}, now=NOW + timedelta(hours=1), audit=audit) == []
    assert len(audit.read()) == 1
    assert days_of(layout, "usage_event") == []


def test_catch_up_after_a_week_down_expires_everything_due(tmp_path):
    layout = Layout(tmp_path)
    start = TODAY - timedelta(days=100)
    for i in range(100):
        put(layout, "http_request", start + timedelta(days=i), files=1, rows=1)
    audit = AuditLog(layout)
    expire(layout, {"http_request": 90}, now=NOW, audit=audit)  # the last run before the outage
    assert days_of(layout, "http_request")[0] == TODAY - timedelta(days=90)
    week_later = NOW + timedelta(days=7)
    done = expire(layout, {"http_request": 90}, now=week_later, audit=audit)
    assert [e.day for e in done] == [TODAY - timedelta(days=90 - i) for i in range(7)]
    assert days_of(layout, "http_request")[0] == week_later.date() - timedelta(days=90)


def test_crash_after_the_rename_is_finished_by_the_rerun(tmp_path, monkeypatch):
    layout = Layout(tmp_path)
    old = TODAY - timedelta(days=120)
    put(layout, "http_request", old, files=2, rows=5)
    put(layout, "http_request", TODAY)
    audit = AuditLog(layout)
    real_rmtree = shutil.rmtree

    def crash(*_a: object, **_k: object) -> None:
        raise KeyboardInterrupt("killed mid-delete")

    monkeypatch.setattr(shutil, "rmtree", crash)
    with pytest.raises(KeyboardInterrupt):
        expire(layout, {"http_request": 90}, now=NOW, audit=audit)
    monkeypatch.setattr(shutil, "rmtree", real_rmtree)
    # the partition is no longer visible to readers, though its files still exist in _trash
    assert days_of(layout, "http_request") == [TODAY]
    assert len(list(layout.trash_dir.iterdir())) == 1
    done = expire(layout, {"http_request": 90}, now=NOW + timedelta(hours=1), audit=audit)
    assert [(e.day, e.rows) for e in done] == [(old, 10)]
    assert list(layout.trash_dir.iterdir()) == []
    assert [(e.partition, e.rows, e.at) for e in audit.read()] == [(f"event_date={old.isoformat()}", 10, NOW)]


def test_crash_before_the_audit_is_audited_by_the_rerun(tmp_path, monkeypatch):
    layout = Layout(tmp_path)
    old = TODAY - timedelta(days=120)
    put(layout, "http_request", old, files=1, rows=7)
    audit = AuditLog(layout)

    def crash(*_a: object, **_k: object) -> None:
        raise OSError("killed before the audit")

    monkeypatch.setattr(audit, "append", crash)
    with pytest.raises(OSError):
        expire(layout, {"http_request": 90}, now=NOW, audit=audit)
    monkeypatch.undo()
    assert audit.read() == []
    done = expire(layout, {"http_request": 90}, now=NOW, audit=audit)
    assert [e.rows for e in done] == [7]
    assert [(e.rows, e.detail.endswith("1 files")) for e in audit.read()] == [(7, True)]
    assert not any(layout.trash_dir.iterdir())


def test_unreadable_file_still_expires(tmp_path):
    layout = Layout(tmp_path)
    folder = put(layout, "http_request", TODAY - timedelta(days=100), files=1, rows=2)
    (folder / "broken.parquet").write_bytes(b"not parquet")
    done = expire(layout, {"http_request": 90}, now=NOW)
    assert (done[0].files, done[0].rows) == (2, 2)
    assert not folder.exists()


def test_cost_does_not_read_surviving_partitions(tmp_path, monkeypatch):
    layout = Layout(tmp_path)
    for i in range(10):
        put(layout, "http_request", TODAY - timedelta(days=95 + i), files=1)
    for i in range(50):
        put(layout, "http_request", TODAY - timedelta(days=i), files=1)
    opened: list[str] = []
    real = pq.read_metadata

    def spy(path, *a, **k):  # type: ignore[no-untyped-def]
        opened.append(str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(pq, "read_metadata", spy)
    assert len(expire(layout, {"http_request": 90}, now=NOW)) == 10
    assert len(opened) == 10
