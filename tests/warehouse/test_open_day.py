"""Continuous compaction of the open day: about one file per hour, each row exactly once, also when the
process doing it is killed (SIGKILL) at any moment while the sink keeps adding files."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from warehouse.audit_trail import AuditLog
from warehouse.compaction import compact, data_files, recover_compactions
from warehouse.layout import Layout
from warehouse.open_day import MAX_OPEN_PIECES, compact_open_days
from warehouse.writer import PartitionWriter

NOW = datetime(2025, 4, 1, 12, 30, tzinfo=UTC)
TODAY = NOW.date()


class Crash(BaseException):
    """A process killed on the spot: no except-Exception clean-up runs."""


def sink_file(layout: Layout, n: int, written: datetime, day: datetime = NOW) -> list[str]:
    """One file as the sink writes it (offsets n..n), its modification time set to ``written``."""
    ids = [f"e{n}-{r}" for r in range(3)]
    rows = pa.table({"event_id": ids, "time": pa.array([day] * 3, pa.timestamp("ms", tz="UTC"))})
    [path] = PartitionWriter(layout, fsync=False).write("http_request", "t", 0, n, n, rows)
    os.utime(path, (written.timestamp(), written.timestamp()))
    return ids


def visible(layout: Layout) -> list[str]:
    ids: list[str] = []
    for folder in (layout.root / "http_request").iterdir():
        for f in data_files(folder):
            ids += pq.read_table(f, columns=["event_id"]).column("event_id").to_pylist()
    return sorted(ids)


def names(layout: Layout) -> list[str]:
    return [p.name for p in data_files(layout.partition_dir("http_request", TODAY))]


def test_settled_files_become_one_file_per_hour_and_fresh_ones_wait(tmp_path):
    layout = Layout(tmp_path)
    expected: list[str] = []
    for n in range(10):  # 10:00-10:45: an hour that is over
        expected += sink_file(layout, n, NOW.replace(hour=10, minute=n * 5))
    for n in range(10, 14):  # 12:00-12:15: the open hour, settled
        expected += sink_file(layout, n, NOW.replace(hour=12, minute=n - 10))
    expected += sink_file(layout, 14, NOW - timedelta(seconds=30))  # too fresh
    done = compact_open_days(layout, now=NOW, audit=AuditLog(layout))
    assert sorted(len(c.merged) for c in done) == [4, 10]
    files = names(layout)
    assert sum(n.startswith("compacted~h2025040110~") for n in files) == 1
    assert sum(n.startswith("compacted~h2025040112~") for n in files) == 1
    assert sum(n.startswith("t~") for n in files) == 1  # the fresh one
    assert visible(layout) == sorted(expected)
    assert compact_open_days(layout, now=NOW) == []  # nothing new: nothing to do
    # the hour closes: its piece and its late-settled files become one file
    later = NOW.replace(hour=13, minute=5)
    done = compact_open_days(layout, now=later)
    assert [len(c.merged) for c in done] == [2]  # the 12h piece and the file written at 12:29:30
    assert sum(n.startswith("compacted~h2025040112~") for n in names(layout)) == 1
    assert len(names(layout)) == 2 and visible(layout) == sorted(expected)
    assert len(AuditLog(layout).read("compaction_open")) == 0  # audited under the job's own kind
    assert len(AuditLog(layout).read("compaction")) == 2


def test_an_open_hour_keeps_a_few_pieces_at_most(tmp_path):
    layout = Layout(tmp_path)
    expected: list[str] = []
    for step in range(20):
        for k in range(2):
            n = step * 2 + k
            expected += sink_file(layout, n, NOW.replace(hour=12, minute=0) + timedelta(seconds=n))
        compact_open_days(layout, now=NOW)
        assert len(names(layout)) <= MAX_OPEN_PIECES
    assert visible(layout) == sorted(expected)


def test_other_days_and_foreign_files_are_left_to_daily_compaction(tmp_path):
    layout = Layout(tmp_path)
    old = NOW - timedelta(days=3)
    for n in range(3):
        sink_file(layout, n, old, day=old)
    folder = layout.partition_dir("http_request", TODAY)
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"event_id": ["x"]}), folder / "handmade.parquet")
    assert compact_open_days(layout, now=NOW) == []
    assert len(data_files(layout.partition_dir("http_request", old.date()))) == 3
    assert compact(layout, now=NOW) != []  # the closed day: daily compaction


@pytest.mark.parametrize("call, n", [("write_table", 1), ("replace", 1), ("replace", 2), ("unlink", 1),
                                     ("unlink", 2), ("rmtree", 1)])
def test_a_crash_at_any_step_ends_with_each_row_once(tmp_path, monkeypatch, call, n):
    layout = Layout(tmp_path)
    expected: list[str] = []
    for k in range(3):
        expected += sink_file(layout, k, NOW.replace(hour=11, minute=k))
    module, name = {"write_table": (pq, "write_table"), "replace": (os, "replace"), "unlink": (os, "unlink"),
                    "rmtree": (shutil, "rmtree")}[call]
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
        compact_open_days(layout, now=NOW)
    monkeypatch.undo()
    assert set(visible(layout)) == set(expected)  # nothing lost at any step
    compact_open_days(layout, now=NOW)  # recovers, then merges what is left
    assert visible(layout) == sorted(expected)
    assert list(layout.compaction_dir.iterdir()) == []


_COMPACTOR = """
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from warehouse.layout import Layout
from warehouse.open_day import compact_open_days
layout = Layout(Path(sys.argv[1]))
while True:
    compact_open_days(layout, now=datetime.now(UTC), min_age=timedelta(0), fsync=False)
"""


def test_killed_again_and_again_while_the_sink_writes_no_row_is_lost_or_doubled(tmp_path):
    """A real process running continuous compaction is SIGKILLed at random moments, 12 times, while
    files keep arriving as the sink writes them; after recovery every row is there exactly once."""
    layout = Layout(tmp_path / "wh")
    layout.root.mkdir()
    writer = PartitionWriter(layout, fsync=False)
    rng = random.Random(20)
    expected: list[str] = []
    offset = 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), *sys.path])}
    for _round in range(12):
        proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(_COMPACTOR), str(layout.root)], env=env)
        try:
            deadline = time.monotonic() + rng.uniform(0.8, 2.5)
            while time.monotonic() < deadline:
                ids = [f"o{offset}-{r}" for r in range(4)]
                now = datetime.now(UTC)
                writer.write("http_request", "t", 0, offset, offset,
                             pa.table({"event_id": ids, "time": pa.array([now] * 4, pa.timestamp("ms", tz="UTC"))}))
                expected += ids
                offset += 1
                time.sleep(0.01)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
        assert set(visible(layout)) == set(expected)  # killed anywhere: nothing lost
    recover_compactions(layout)
    assert visible(layout) == sorted(expected)  # recovered: nothing doubled
    compact_open_days(layout, now=datetime.now(UTC), min_age=timedelta(0))
    assert visible(layout) == sorted(expected)
    assert offset > 50
