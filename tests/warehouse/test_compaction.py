"""Compaction keeps every row exactly once: on success, on a crash at any step, and on reruns."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from warehouse import compaction
from warehouse.audit_trail import AuditLog
from warehouse.compaction import compact, data_files, recover_compactions
from warehouse.layout import Layout

NOW = datetime(2025, 4, 1, 3, 45, tzinfo=UTC)
YESTERDAY = NOW.date() - timedelta(days=1)


class Crash(BaseException):
    """A process killed on the spot: no except-Exception clean-up runs."""


def put(layout: Layout, table: str, day: date, files: int = 3, rows: int = 4, start: int = 0) -> list[dict]:
    folder = layout.partition_dir(table, day)
    folder.mkdir(parents=True, exist_ok=True)
    written: list[dict] = []
    for f in range(start, start + files):
        base = datetime(day.year, day.month, day.day, tzinfo=UTC)
        part = {
            "event_id": [f"{day}-{f}-{r}" for r in range(rows)],
            "time": pa.array([base + timedelta(seconds=f * 100 + r) for r in range(rows)],
                             pa.timestamp("us", tz="UTC")),
            "status": pa.array([200 + r if r % 3 else None for r in range(rows)], pa.int32()),
            "path": [f"/p/{f}/{r}" for r in range(rows)],
        }
        t = pa.table(part)
        pq.write_table(t, folder / f"t~p0~o{f:019d}-{f:019d}.parquet")
        written += t.to_pylist()
    return written


def visible_rows(layout: Layout, table: str, day: date) -> list[dict]:
    """What a reader globbing the partition sees, sorted."""
    rows: list[dict] = []
    for f in data_files(layout.partition_dir(table, day)):
        rows += pq.ParquetFile(f).read().to_pylist()
    return sorted(rows, key=lambda r: (r["event_id"], str(r)))


def test_merge_keeps_the_exact_rows_in_one_file(tmp_path):
    layout = Layout(tmp_path)
    expected = sorted(put(layout, "http_request", YESTERDAY, files=5, rows=7), key=lambda r: r["event_id"])
    audit = AuditLog(layout)
    [done] = compact(layout, now=NOW, audit=audit)
    files = data_files(layout.partition_dir("http_request", YESTERDAY))
    assert files == [done.path] and done.path.name.startswith("compacted~")
    assert visible_rows(layout, "http_request", YESTERDAY) == expected
    assert pq.read_schema(done.path).field("status").type == pa.int32()
    assert (done.rows, len(done.merged)) == (35, 5)
    [entry] = audit.read("compaction")
    assert (entry.table_name, entry.partition, entry.rows, entry.action) == \
        ("http_request", f"event_date={YESTERDAY}", 35, "merge_files")
    assert not any(layout.compaction_dir.iterdir())


def test_today_and_single_file_partitions_are_left_alone(tmp_path):
    layout = Layout(tmp_path)
    put(layout, "http_request", NOW.date(), files=4)
    put(layout, "http_request", YESTERDAY - timedelta(days=3), files=1)
    put(layout, "http_request", YESTERDAY, files=3)
    before_today = sorted(p.name for p in data_files(layout.partition_dir("http_request", NOW.date())))
    done = compact(layout, now=NOW)
    assert [d.day for d in done] == [YESTERDAY]
    assert sorted(p.name for p in data_files(layout.partition_dir("http_request", NOW.date()))) == before_today
    assert len(data_files(layout.partition_dir("http_request", YESTERDAY - timedelta(days=3)))) == 1
    assert compact(layout, now=NOW, min_files=5) == []


def test_rerun_is_idempotent_and_late_files_merge_next_time(tmp_path):
    layout = Layout(tmp_path)
    rows = put(layout, "usage_event", YESTERDAY, files=3)
    [first] = compact(layout, now=NOW)
    assert compact(layout, now=NOW) == []
    assert data_files(layout.partition_dir("usage_event", YESTERDAY)) == [first.path]
    rows += put(layout, "usage_event", YESTERDAY, files=1, start=10)  # a late event arrives
    [second] = compact(layout, now=NOW + timedelta(hours=1))
    assert first.path.name in second.merged
    key = lambda r: r["event_id"]  # noqa: E731
    assert visible_rows(layout, "usage_event", YESTERDAY) == sorted(rows, key=key)


def test_a_file_added_during_the_merge_is_kept(tmp_path, monkeypatch):
    layout = Layout(tmp_path)
    rows = put(layout, "http_request", YESTERDAY, files=2)
    real_write = pq.write_table

    def write_and_race(table, where, *a, **k):  # type: ignore[no-untyped-def]
        nonlocal rows
        monkeypatch.setattr(pq, "write_table", real_write)
        rows += put(layout, "http_request", YESTERDAY, files=1, start=50)  # the sink, meanwhile
        return real_write(table, where, *a, **k)

    monkeypatch.setattr(pq, "write_table", write_and_race)
    [done] = compact(layout, now=NOW)
    assert len(done.merged) == 2
    assert len(data_files(layout.partition_dir("http_request", YESTERDAY))) == 2
    assert visible_rows(layout, "http_request", YESTERDAY) == sorted(rows, key=lambda r: r["event_id"])


def test_row_count_mismatch_aborts_and_keeps_the_originals(tmp_path, monkeypatch):
    layout = Layout(tmp_path)
    put(layout, "http_request", YESTERDAY, files=3)
    before = visible_rows(layout, "http_request", YESTERDAY)
    real_concat = pa.concat_tables
    monkeypatch.setattr(compaction.pa, "concat_tables", lambda ts, **k: real_concat(ts, **k).slice(1))
    assert compact(layout, now=NOW) == []
    monkeypatch.undo()
    assert visible_rows(layout, "http_request", YESTERDAY) == before
    assert len(data_files(layout.partition_dir("http_request", YESTERDAY))) == 3
    assert not layout.compaction_dir.exists() or not any(layout.compaction_dir.iterdir())


def test_incompatible_files_are_left_alone(tmp_path):
    layout = Layout(tmp_path)
    put(layout, "http_request", YESTERDAY, files=1)
    folder = layout.partition_dir("http_request", YESTERDAY)
    pq.write_table(pa.table({"event_id": ["x"], "status": pa.array(["not a number"])}), folder / "odd.parquet")
    assert compact(layout, now=NOW) == []
    assert len(data_files(folder)) == 2


def test_an_error_before_commit_cleans_up_and_propagates(tmp_path, monkeypatch):
    layout = Layout(tmp_path)
    put(layout, "http_request", YESTERDAY)
    before = visible_rows(layout, "http_request", YESTERDAY)

    def disk_full(*_a: object, **_k: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq, "write_table", disk_full)
    with pytest.raises(OSError):
        compact(layout, now=NOW)
    assert visible_rows(layout, "http_request", YESTERDAY) == before
    assert list(layout.compaction_dir.iterdir()) == []


# Calls, in order, of one merge of 3 files with an audit log:
#   write_table 1 (the staged file)      replace 1 (MANIFEST)   replace 2 (into the partition)
#   unlink 1..3 (the merged files)       replace 3 (the audit file)   rmtree (the staging folder)
@pytest.mark.parametrize("call, n, twice", [("write_table", 1, False), ("replace", 1, False), ("replace", 2, False),
                                            ("unlink", 1, True), ("unlink", 3, True), ("replace", 3, False),
                                            ("rmtree", 1, False)])
def test_crash_at_any_step_ends_with_each_row_once(tmp_path, monkeypatch, call, n, twice):
    layout = Layout(tmp_path)
    expected = sorted(put(layout, "http_request", YESTERDAY, files=3), key=lambda r: r["event_id"])
    audit = AuditLog(layout)
    targets = {"write_table": (pq, "write_table"), "replace": (os, "replace"), "unlink": (os, "unlink"),
               "rmtree": (shutil, "rmtree")}
    module, name = targets[call]
    real = getattr(module, name)
    count = 0

    def crashing(*a, **k):  # type: ignore[no-untyped-def]
        nonlocal count
        count += 1
        if count == n:
            raise Crash(f"killed at {call} #{n}")
        return real(*a, **k)

    monkeypatch.setattr(module, name, crashing)
    with pytest.raises(Crash):
        compact(layout, now=NOW, audit=audit)
    monkeypatch.undo()
    seen = visible_rows(layout, "http_request", YESTERDAY)
    # every row is still there; only between the rename and the deletes can a reader see some twice
    assert {r["event_id"] for r in seen} == {r["event_id"] for r in expected}
    assert (len(seen) > len(expected)) is twice

    recover_compactions(layout, audit=audit)
    assert visible_rows(layout, "http_request", YESTERDAY) == expected
    assert list(layout.compaction_dir.iterdir()) == []
    compact(layout, now=NOW, audit=audit)  # the next scheduled run
    assert visible_rows(layout, "http_request", YESTERDAY) == expected
    assert len(data_files(layout.partition_dir("http_request", YESTERDAY))) == 1
    assert len(audit.read("compaction")) == 1
    assert compact(layout, now=NOW, audit=audit) == []


def test_recovery_after_the_partition_was_expired_does_nothing(tmp_path, monkeypatch):
    layout = Layout(tmp_path)
    put(layout, "http_request", YESTERDAY)
    real = os.replace
    count = 0

    def crashing(*a, **k):  # type: ignore[no-untyped-def]
        nonlocal count
        count += 1
        if count == 2:
            raise Crash("killed before the rename")
        return real(*a, **k)

    monkeypatch.setattr(os, "replace", crashing)
    with pytest.raises(Crash):
        compact(layout, now=NOW)
    monkeypatch.undo()
    shutil.rmtree(layout.partition_dir("http_request", YESTERDAY))  # expiry ran meanwhile
    assert recover_compactions(layout) == 0
    assert list(layout.compaction_dir.iterdir()) == []
    assert not layout.partition_dir("http_request", YESTERDAY).exists()


def test_min_files_below_two_is_refused(tmp_path):
    with pytest.raises(ValueError, match="min_files"):
        compact(Layout(tmp_path), now=NOW, min_files=1)


def test_naive_now_is_refused(tmp_path):
    with pytest.raises(ValueError, match="naive"):
        compact(Layout(tmp_path), now=datetime(2025, 4, 1))
