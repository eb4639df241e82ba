"""The working folders (_staging, _compaction, _trash), the sink's checkpoints, the secrets and the spool's
honest age in the retention inventory: what is stale is finished the way its owner would, nothing in use is
touched, and every store is declared."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datamin.config import Config
from datamin.retention import SPOOL_SEGMENT_ROLL, Store, check_cap
from producers.spool import Spool
from warehouse.audit_trail import AuditLog
from warehouse.layout import Layout
from warehouse.retention import full_inventory, inventory_rows
from warehouse.scheduler import retention_now
from warehouse.writer import MANIFEST, PartitionWriter

NOW = datetime(2027, 6, 15, 12, 0, tzinfo=UTC)
STALE, FRESH = NOW - timedelta(days=2), NOW - timedelta(hours=2)


def _age(path: Path, when: datetime) -> Path:
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(p, (when.timestamp(), when.timestamp()))
    return path


@pytest.fixture
def config(make_config: Callable[..., Config], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("DATAMIN_HOME", str(tmp_path / "home"))
    return make_config(**{"PRODUCER__SHIPPER_STATE_DIR": f'"{tmp_path / "shipper"}"',
                          "IDENTITY__SECRET_FILE": f'"{tmp_path / "identity.secret"}"'})


def _stage(layout: Layout, name: str, *, committed: bool, rows: list[str]) -> tuple[Path, Path]:
    """A sink staging folder with one staged file (and its MANIFEST when committed); returns it and the
    file's target in the table."""
    stage = layout.staging_dir / name
    stage.mkdir(parents=True)
    pq.write_table(pa.table({"subject": rows}), stage / "0.parquet")
    target = layout.partition_dir("http_request", NOW.date()) / layout.data_file_name("t", 0, 5, 9)
    if committed:
        (stage / MANIFEST).write_text(json.dumps({"files": [["0.parquet", str(target.relative_to(layout.root))]],
                                                  "topic": "t", "partition": 0, "last": 9}))
    return stage, target


def test_stale_sink_stages_are_finished_as_the_sinks_recovery_would_and_fresh_ones_left(config: Config) -> None:
    layout = Layout(Path(config.warehouse.root))
    committed, target = _stage(layout, "t~p0~aaa", committed=True, rows=["p1_a"])
    uncommitted, _ = _stage(layout, "t~p1~bbb", committed=False, rows=["p1_b"])
    in_flight, _ = _stage(layout, "t~p2~ccc", committed=False, rows=["p1_c"])
    _age(committed, STALE), _age(uncommitted, STALE), _age(in_flight, FRESH)
    deleted = retention_now(config, now=NOW)
    assert deleted["sink staging"] == 2
    assert not committed.exists() and not uncommitted.exists() and in_flight.exists()  # a running flush: left
    assert pq.read_table(target).column("subject").to_pylist() == ["p1_a"]              # committed: completed
    assert PartitionWriter(layout).checkpoint("t", 0) == 9


def test_stale_compaction_and_trash_are_finished_under_the_maintenance_lock(config: Config) -> None:
    layout = Layout(Path(config.warehouse.root))
    merge = layout.compaction_dir / "m1"
    merge.mkdir(parents=True)
    (merge / "compacted~m1.parquet").write_bytes(b"half a merge")  # never committed: abandoned
    trashed = layout.trash_dir / f"http_request~2027-01-01~90d~{STALE:%Y%m%dT%H%M%S%fZ}~{'a' * 32}"
    trashed.mkdir(parents=True)
    pq.write_table(pa.table({"subject": ["p1_a", "p1_b"]}), trashed / "f.parquet")
    foreign = layout.trash_dir / "something-else"
    foreign.write_bytes(b"?")
    fresh = layout.trash_dir / "fresh-else"
    fresh.write_bytes(b"?")
    for p in (merge, trashed, foreign):
        _age(p, STALE)
    _age(fresh, FRESH)
    # while another process's job holds the lock, the hourly job waits for it (nothing is touched meanwhile)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(layout.maintenance_lock_file)!r}, os.O_RDWR | os.O_CREAT, 0o600)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('held', flush=True)\nsys.stdin.readline()\n")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdin is not None
    assert holder.stdout.readline().strip() == "held"
    result: dict[str, int] = {}
    worker = threading.Thread(target=lambda: result.update(retention_now(config, now=NOW)))
    worker.start()
    worker.join(timeout=1.0)
    assert worker.is_alive() and merge.exists() and trashed.exists()
    holder.stdin.write("go\n")
    holder.stdin.flush()
    holder.wait(timeout=60)
    holder.stdin.close()
    holder.stdout.close()
    worker.join(timeout=120)
    assert not worker.is_alive()
    assert result["compaction staging"] == 1 and result["expiry trash"] == 2
    assert not merge.exists() and not trashed.exists() and not foreign.exists() and fresh.exists()
    entries = AuditLog(layout).read("expiry")
    assert any(e.table_name == "http_request" and e.rows == 2 for e in entries)  # the trashed day, audited


def test_sink_checkpoints_go_only_when_kafka_holds_nothing_they_cover(config: Config) -> None:
    layout = Layout(Path(config.warehouse.root))
    (store,) = [s for s in full_inventory(config) if s.name == "sink checkpoints"]
    assert timedelta(0) < store.cap <= timedelta(days=365)
    old = layout.checkpoint_file("gone-topic", 0)
    new = layout.checkpoint_file("live-topic", 0)
    for path, when in ((old, NOW - store.cap - timedelta(hours=1)), (new, NOW - timedelta(days=30))):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("41")
        _age(path, when)
    assert retention_now(config, now=NOW)["sink checkpoints"] == 1
    assert not old.exists() and new.exists()


def test_the_secrets_are_declared_with_why_they_are_not_aged(config: Config) -> None:
    rows = {r["store"]: r for r in inventory_rows(full_inventory(config), NOW)}
    for name in ("rights secret", "identity secret"):
        assert rows[name]["kind"] == "secret" and rows[name]["cap_days"] is None
        assert "no personal data" in rows[name]["not_aged_because"] and rows[name]["next_deletion"] is None
    for name in ("sink staging", "compaction staging", "expiry trash", "sink checkpoints"):
        assert rows[name]["cap_days"] is not None and rows[name]["cap_days"] <= 365
    # only a secret may go unaged, and only with its reason
    with pytest.raises(ValueError, match="only a secret"):
        check_cap(Store(name="x", kind="files", location="x", holds="x", cap=timedelta(days=1),
                        enforced_by="x", how="x", unaged="why not"))


def test_the_spool_is_aged_by_its_oldest_possible_record(config: Config, tmp_path: Path) -> None:
    """A segment takes appends for at most SPOOL_SEGMENT_ROLL (and never after a restart), so the
    inventory ages it by last write minus that roll and deletes it before any record passes the cap."""
    ticks = [0.0]
    spool = Spool.open(config.producer.spool_dir, 10_000_000, monotonic=lambda: ticks[0])
    spool.append("t", None, b"first")
    ticks[0] += SPOOL_SEGMENT_ROLL.total_seconds() - 1
    spool.append("t", None, b"same segment")
    ticks[0] += 2
    spool.append("t", None, b"rolled by age")
    spool.close()
    again = Spool.open(config.producer.spool_dir, 10_000_000)
    again.append("t", None, b"after a restart")
    again.close()
    segments = sorted(Path(spool.folder).glob("seg-*.spool"))
    assert len(segments) == 3  # [first, same segment], [rolled by age], [after a restart]
    reader = Spool.open(config.producer.spool_dir, 10_000_000)
    assert [v.value for v in reader.peek(10)] == [b"first", b"same segment", b"rolled by age", b"after a restart"]
    reader.close()
    cap = timedelta(days=config.producer.spool_retention_days)
    last_write = NOW - cap + timedelta(minutes=30)  # inside the cap by last write, not by its first record
    _age(segments[0], last_write)
    for s in segments[1:]:
        _age(s, FRESH)
    (row,) = [r for r in inventory_rows(full_inventory(config), NOW) if r["store"] == "producer spool"]
    assert row["oldest"] == (last_write - SPOOL_SEGMENT_ROLL).isoformat()
    assert retention_now(config, now=NOW)["producer spool"] == 1
    assert not segments[0].exists() and all(s.exists() for s in segments[1:])

