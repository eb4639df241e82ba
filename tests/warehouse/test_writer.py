import errno
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas import default_registry
from warehouse import writer as writer_module
from warehouse.arrow import records_to_table
from warehouse.layout import Layout, parse_data_file_name
from warehouse.samples import sample_record
from warehouse.writer import PartitionWriter, split_by_day

TOPIC = "t.minimised.http_request"
DAY1 = datetime(2024, 5, 17, 23, 59, 59, 999000, tzinfo=UTC)
DAY2 = DAY1 + timedelta(milliseconds=1)  # 2024-05-18 00:00:00.000


class Killed(BaseException):
    """Stands for SIGKILL: no except-Exception clean-up runs."""


def batch(first: int, last: int, day_of=lambda i: DAY1 if i % 2 else DAY2) -> pa.Table:
    schema = default_registry().latest("http_request", "minimised")
    return records_to_table(schema, [sample_record("http_request", i, day_of(i)) for i in range(first, last + 1)])


def visible_ids(root: Path) -> list[str]:
    ids: list[str] = []
    for path in sorted(root.glob("http_request/event_date=*/*.parquet")):
        ids += pq.read_table(path).column("event_id").to_pylist()
    return ids


def expected_ids(first: int, last: int) -> list[str]:
    return sorted(batch(first, last).column("event_id").to_pylist())


def test_write_splits_by_utc_day_and_moves_checkpoint(tmp_path):
    layout = Layout(tmp_path)
    w = PartitionWriter(layout)
    assert w.checkpoint(TOPIC, 0) is None
    files = w.write("http_request", TOPIC, 0, 0, 9, batch(0, 9))
    assert sorted(f.parent.name for f in files) == ["event_date=2024-05-17", "event_date=2024-05-18"]
    assert all(parse_data_file_name(f.name) == (TOPIC, 0, 0, 9) for f in files)
    assert w.checkpoint(TOPIC, 0) == 9
    assert w.checkpoint(TOPIC, 1) is None
    day1 = pq.read_table(layout.partition_dir("http_request", DAY1.date()) / files[0].name)
    assert all(t.date() == DAY1.date() for t in day1.column("time").to_pylist())
    assert pq.read_metadata(files[0]).row_group(0).column(0).compression == "ZSTD"
    assert sorted(visible_ids(tmp_path)) == expected_ids(0, 9)
    assert not any(layout.staging_dir.iterdir())


def test_a_range_already_loaded_is_skipped_and_an_overlap_refused(tmp_path):
    w = PartitionWriter(Layout(tmp_path))
    w.write("http_request", TOPIC, 0, 0, 9, batch(0, 9))
    assert w.write("http_request", TOPIC, 0, 0, 9, batch(0, 9)) == []
    assert w.write("http_request", TOPIC, 0, 5, 9, batch(5, 9)) == []
    with pytest.raises(ValueError, match="overlap"):
        w.write("http_request", TOPIC, 0, 5, 12, batch(5, 12))
    assert sorted(visible_ids(tmp_path)) == expected_ids(0, 9)


def test_empty_rows_move_the_checkpoint_only(tmp_path):
    w = PartitionWriter(Layout(tmp_path))
    assert w.write("http_request", TOPIC, 0, 0, 4, batch(0, 0).slice(0, 0)) == []
    assert w.checkpoint(TOPIC, 0) == 4
    assert visible_ids(tmp_path) == []


def test_split_by_day_for_privacy_requests_uses_received():
    schema = default_registry().latest("privacy_request", "minimised")
    rows = records_to_table(schema, [sample_record("privacy_request", i, DAY1 if i < 3 else DAY2) for i in range(5)])
    parts = split_by_day(rows, "received")
    assert [(d.isoformat(), t.num_rows) for d, t in parts] == [("2024-05-17", 3), ("2024-05-18", 2)]
    with pytest.raises(ValueError, match="no 'time' column"):
        split_by_day(rows)


def _steps(monkeypatch, crash_at: int, exc: BaseException) -> list[str]:
    """Counts the writer's durable steps (file writes, fsyncs, renames, removals); raises at step crash_at."""
    seen: list[str] = []
    real = {"replace": os.replace, "fsync": os.fsync, "rmtree": shutil.rmtree, "write": writer_module.pq.write_table}

    def step(name):
        def call(*args, **kwargs):
            seen.append(name)
            if len(seen) - 1 == crash_at:
                raise exc
            return real[name](*args, **kwargs)
        return call

    monkeypatch.setattr(os, "replace", step("replace"))
    monkeypatch.setattr(os, "fsync", step("fsync"))
    monkeypatch.setattr(writer_module.pq, "write_table", step("write"))
    monkeypatch.setattr(writer_module.shutil, "rmtree", step("rmtree"))
    return seen


def test_a_kill_at_every_step_loses_and_duplicates_nothing(tmp_path, monkeypatch):
    crash_at = 0
    while True:
        root = tmp_path / f"run{crash_at}"
        PartitionWriter(Layout(root)).write("http_request", TOPIC, 0, 0, 9, batch(0, 9))
        with monkeypatch.context() as m:
            seen = _steps(m, crash_at, Killed())
            try:
                PartitionWriter(Layout(root)).write("http_request", TOPIC, 0, 10, 29, batch(10, 29))
                finished = True
            except Killed:
                finished = False
        # restart: a new writer recovers, then the consumer resumes at checkpoint + 1
        w = PartitionWriter(Layout(root))
        w.recover()
        resume = w.checkpoint(TOPIC, 0) + 1
        assert resume in (10, 30), f"step {crash_at}: checkpoint moved to {resume - 1}"
        if resume == 10:
            w.write("http_request", TOPIC, 0, 10, 29, batch(10, 29))
        ids = visible_ids(root)
        assert len(ids) == len(set(ids)), f"duplicates after a kill at step {crash_at} ({seen[-1]})"
        assert sorted(ids) == expected_ids(0, 29), f"rows lost after a kill at step {crash_at} ({seen[-1]})"
        assert w.checkpoint(TOPIC, 0) == 29
        assert not any(Layout(root).staging_dir.iterdir())
        assert not [p for p in root.rglob("*") if p.is_file() and p.name.endswith(".tmp")]
        if finished:
            break
        crash_at += 1
    assert crash_at > 8  # two data files, fsyncs, MANIFEST, two renames, checkpoint, clean-up


def test_a_retry_with_other_batch_bounds_after_a_failed_checkpoint_duplicates_nothing(tmp_path, monkeypatch):
    """The MANIFEST decides: a flush that got past it counts as done, whatever the next flush's bounds."""
    layout = Layout(tmp_path)
    w = PartitionWriter(layout)
    calls = []
    real_replace = os.replace

    def replace(src, dst):
        calls.append(dst)
        if "checkpoints" in str(dst):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst)

    with monkeypatch.context() as m:
        m.setattr(os, "replace", replace)
        with pytest.raises(OSError):
            w.write("http_request", TOPIC, 0, 0, 9, batch(0, 9))
    assert w.checkpoint(TOPIC, 0) is None
    w.write("http_request", TOPIC, 0, 10, 14, batch(10, 14))  # recovers 0..9 first
    assert w.checkpoint(TOPIC, 0) == 14
    ids = visible_ids(tmp_path)
    assert len(ids) == len(set(ids)) and sorted(ids) == expected_ids(0, 14)


@pytest.mark.parametrize("failing", ["write", "manifest"])
def test_disk_full_leaves_nothing_visible_and_the_checkpoint_unmoved(tmp_path, monkeypatch, failing):
    layout = Layout(tmp_path)
    w = PartitionWriter(layout)
    w.write("http_request", TOPIC, 0, 0, 9, batch(0, 9))
    real_write, real_replace = writer_module.pq.write_table, os.replace
    writes = []

    def write_table(table, where, **kwargs):
        writes.append(1)
        if len(writes) == 2:
            where.write(b"PAR1 half a file")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(table, where, **kwargs)

    def replace(src, dst):
        if Path(dst).name == "MANIFEST":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst)

    with monkeypatch.context() as m:
        if failing == "write":
            m.setattr(writer_module.pq, "write_table", write_table)
        else:
            m.setattr(os, "replace", replace)
        with pytest.raises(OSError) as info:
            w.write("http_request", TOPIC, 0, 10, 29, batch(10, 29))
    assert info.value.errno == errno.ENOSPC
    assert w.checkpoint(TOPIC, 0) == 9
    assert sorted(visible_ids(tmp_path)) == expected_ids(0, 9)
    assert not any(layout.staging_dir.iterdir())
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]


def test_recover_discards_a_flush_without_manifest_and_completes_one_with(tmp_path):
    layout = Layout(tmp_path)
    w = PartitionWriter(layout)
    junk = layout.staging_dir / f"{TOPIC}~p1~dead"
    junk.mkdir(parents=True)
    (junk / "0.parquet").write_bytes(b"half")
    assert w.recover() == 0
    assert not junk.exists()
    assert visible_ids(tmp_path) == []
