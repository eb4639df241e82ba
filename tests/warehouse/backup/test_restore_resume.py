"""After a restore over the live warehouse, the real sink resumes at the backup's checkpoints and
reloads what came after from the minimised topic: nothing lost, nothing loaded twice, and the rows of
a person erased meanwhile that come back this way are deleted by the erasure sweep."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from kafka import KafkaProducer

from datamin.config import Config
from datamin.keys import KeyStore, pseudonymise, require_subject_key
from datamin.topics import Topics, provision
from schemas import default_registry, encode
from warehouse.backup import create_backup, restore_backup
from warehouse.backup.snapshot import read_checkpoints
from warehouse.layout import Layout
from warehouse.rights import rights_command
from warehouse.rights.preflight import ensure_rights_secret
from warehouse.samples import sample_record
from warehouse.scheduler import sweep_now
from warehouse.sink import run_sink

ALICE, BOB = "alice-user-81724", "bob-user-55190"


def _produce(config: Config, subjects: dict[str, str], first: int, count: int, at: datetime) -> None:
    schema = default_registry().latest("http_request", "minimised")
    producer = KafkaProducer(**config.kafka.client_kwargs(), acks="all")
    try:
        for i in range(first, first + count):
            record = sample_record("http_request", i, at + timedelta(seconds=i))
            record["subject"] = subjects[ALICE if i % 2 else BOB]
            producer.send(Topics(config).minimised("http_request"), encode(schema, record), key=str(i).encode())
        producer.flush()
    finally:
        producer.close()


def _loaded(layout: Layout) -> int:
    return sum(last + 1 for parts in read_checkpoints(layout).values() for last in parts.values())


def _wait(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 180
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


class _Sink:
    def __init__(self, config: Config) -> None:
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, args=(config,))
        self.thread.start()

    def _run(self, config: Config) -> None:
        try:
            run_sink(config, stop=self.stop)
        except BaseException as exc:
            self.errors.append(exc)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=180)
        assert not self.errors


def _subjects(layout: Layout) -> list[str | None]:
    out: list[str | None] = []
    for f in layout.data_files("http_request"):
        out += pq.read_table(f, columns=["subject"]).column(0).to_pylist()
    return out


def test_the_restored_sink_reloads_exactly_what_followed_and_the_sweep_removes_the_erased(
        kafka_config: Config, make_config: Callable[..., Config], tmp_path: Path, kit: Any) -> None:
    config = make_config(kafka=kafka_config.kafka.bootstrap_servers, **{
        "TOPICS__PREFIX": f'"{kafka_config.topics.prefix}"', "TOPICS__PARTITIONS": "2",
        "WAREHOUSE__GROUP_ID": f'"{kafka_config.warehouse.group_id}"', "WAREHOUSE__FLUSH_SECONDS": "0.2"})
    provision(config)
    now = datetime.now(UTC)
    keys = KeyStore(Path(config.pseudonymise.key_dir), "monthly", clock=lambda: now)
    ensure_rights_secret(config)  # as the processor does when it starts
    key = keys.key_for(keys.period_for(now))
    subjects = {p: pseudonymise(require_subject_key(p), key, "subject") or "" for p in (ALICE, BOB)}
    layout = Layout(Path(config.warehouse.root))
    earlier = now - timedelta(hours=2)

    sink = _Sink(config)
    try:
        _produce(config, subjects, 0, 20, earlier)
        _wait(lambda: _loaded(layout) == 20, "the first 20 rows")
        made = create_backup(config, tmp_path / "backups", now=datetime.now(UTC))
        _produce(config, subjects, 20, 20, earlier)  # after the backup, before the erasure
        _wait(lambda: _loaded(layout) == 40, "all 40 rows")
    finally:
        sink.close()
    assert rights_command(config, "erase", ALICE, now=datetime.now(UTC)) == 0
    assert _subjects(layout).count(subjects[ALICE]) == 0

    report = restore_backup(config, tmp_path / "backups" / made.backup_id, now=datetime.now(UTC), replace=True)
    assert [a.rows for a in report.reapplied.actions if a.action == "erasure"] == [10]
    assert _loaded(layout) == 20 and _subjects(layout).count(subjects[ALICE]) == 0

    sink = _Sink(config)  # resumes at the backup's checkpoints + 1
    try:
        _wait(lambda: _loaded(layout) == 40, "the reload of the 20 rows after the backup")
    finally:
        sink.close()
    reloaded = _subjects(layout)
    assert len(reloaded) == 40 - 10  # batch 1 without her 10 rows, batch 2 whole: nothing twice
    assert reloaded.count(subjects[BOB]) == 20
    assert sweep_now(config, now=datetime.now(UTC)) > 0  # the scheduler's hourly sweep
    after = _subjects(layout)
    assert after.count(subjects[ALICE]) == 0 and after.count(subjects[BOB]) == 20
