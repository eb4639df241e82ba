"""Restores that forget, against the real broker (rights requests, the erased-subjects topic) and
real Parquet, DuckDB and backup files: erased people stay gone, restricted rows stay hidden, expired
partitions stay expired, damaged backups are refused, and a running sink blocks a restore."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from datamin.config import Config
from datamin.exceptions import BackupError
from datamin.keys import subject_hash
from datamin.topics import provision
from warehouse.backup import create_backup, restore_backup, verify_backup
from warehouse.backup.manifest import FILES_DIR
from warehouse.layout import Layout
from warehouse.rights import rights_command
from warehouse.rights.erasure import publish_erased
from warehouse.sink import run_sink


def _backup(world: Any, dest: Path, k: Any) -> Path:
    manifest = create_backup(world.config, dest, now=k.TAKEN)
    return dest / manifest.backup_id


def _visible(catalog: Path, table: str, pseudonym: str) -> int:
    with duckdb.connect(str(catalog), read_only=True) as con:
        row = con.execute(f"SELECT count(*) FROM {table} WHERE subject = ?", [pseudonym]).fetchone()  # noqa: S608
    assert row is not None
    return int(row[0])


def _rights(config: Config, action: str, person: str, k: Any) -> None:
    assert rights_command(config, action, person, now=k.LATER) == 0


def test_erase_then_restore_the_person_is_gone_and_the_report_says_so(
        kafka_config: Config, world_factory: Callable[[Config], Any], tmp_path: Path, kit: Any) -> None:
    k = kit
    provision(kafka_config)
    world = world_factory(kafka_config)
    alice = world.pseudonym(k.ALICE)
    held = sum(k.rows_of(world.layout, t, alice) for t in ("http_request", "usage_event", "consent_record"))
    assert held > 0
    src = _backup(world, tmp_path / "backups", k)
    _rights(kafka_config, "erase", k.ALICE, k)
    assert k.rows_of(world.layout, "http_request", alice) == 0  # the live warehouse forgot her

    verified = verify_backup(kafka_config, src, now=k.RESTORED)
    hashed = subject_hash(kafka_config, k.ALICE)
    [line] = [line for line in verified.lines() if hashed in line]
    assert "will be removed on restore" in line and f"{held} row(s)" in line
    assert verified.ok

    soon = k.LATER + timedelta(days=1)  # within the minimised topics' 7 days after her erasure
    report = restore_backup(kafka_config, src, now=soon, to=tmp_path / "restored")
    restored = Layout(tmp_path / "restored")
    for table in ("http_request", "usage_event", "consent_record"):
        assert k.rows_of(restored, table, alice) == 0
    assert k.rows_of(restored, "http_request", world.pseudonym(k.BOB)) > 0  # nobody else was touched
    [erasure] = [a for a in report.reapplied.actions if a.action == "erasure"]
    assert erasure.subject_hash == hashed and erasure.rows == held
    assert any(hashed in line and "removed" in line for line in report.lines())
    assert k.ALICE not in "\n".join(report.lines())  # never the key in clear
    # the restored sink reloads the offsets after the backup's checkpoints from the minimised topics,
    # which may still hold her events: they are on the erasure sweep list until the window ends
    sweep = pq.read_table(restored.root / "_rights" / "erased_sweep.parquet").column("subject").to_pylist()
    assert alice in sweep


def test_restrict_then_restore_the_rows_stay_hidden(
        kafka_config: Config, world_factory: Callable[[Config], Any], tmp_path: Path, kit: Any) -> None:
    k = kit
    provision(kafka_config)
    world = world_factory(kafka_config)
    bob = world.pseudonym(k.BOB)
    src = _backup(world, tmp_path / "backups", k)
    _rights(kafka_config, "restrict", k.BOB, k)
    _rights(kafka_config, "object", k.CAROL, k)
    _rights(kafka_config, "lift", k.CAROL, k)  # lifted again: visible after the restore too

    report = restore_backup(kafka_config, src, now=k.RESTORED, to=tmp_path / "restored")
    restored = Layout(tmp_path / "restored")
    from warehouse.rights.restricted_area import area_layout
    assert k.rows_of(area_layout(restored), "http_request", bob) > 0  # kept apart (restriction is not erasure)...
    assert k.rows_of(restored, "http_request", bob) == 0
    assert _visible(report.catalog, "http_request", bob) == 0  # ...but hidden from every analyst view
    assert _visible(report.catalog, "usage_event", bob) == 0
    assert _visible(report.catalog, "http_request", world.pseudonym(k.CAROL)) > 0
    kinds = [a.action for a in report.reapplied.actions]
    assert kinds == ["restriction", "objection", "lift"]


def test_withdrawal_then_restore_strips_the_consent_only_identifiers(
        kafka_config: Config, world_factory: Callable[[Config], Any], tmp_path: Path, kit: Any) -> None:
    k = kit
    provision(kafka_config)
    world = world_factory(kafka_config)
    carol = world.pseudonym(k.CAROL)
    src = _backup(world, tmp_path / "backups", k)
    _rights(kafka_config, "withdraw", k.CAROL, k)
    restore_backup(kafka_config, src, now=k.RESTORED, to=tmp_path / "restored")
    restored = Layout(tmp_path / "restored")
    assert k.rows_of(restored, "http_request", carol) == 0  # the link to her is gone...
    assert k.rows_of(restored, "consent_record", carol) == 1  # ...consent records are kept (legal obligation)
    assert k.rows_of(restored, "http_request") == k.rows_of(world.layout, "http_request")  # rows themselves kept


def test_a_partition_expired_since_the_snapshot_does_not_come_back(
        kafka_config: Config, world_factory: Callable[[Config], Any], tmp_path: Path, kit: Any) -> None:
    k = kit
    provision(kafka_config)
    world = world_factory(kafka_config)
    src = _backup(world, tmp_path / "backups", k)
    later = k.DAY + timedelta(days=95)  # http_request keeps 90 days, consent_record 365
    report = restore_backup(kafka_config, src, now=later, to=tmp_path / "restored")
    restored = Layout(tmp_path / "restored")
    assert restored.partitions("http_request") == []
    assert k.rows_of(restored, "consent_record") == 3
    expiries = [a for a in report.reapplied.actions if a.action == "expiry"]
    assert [a.line.split(":")[1].strip() for a in expiries] == ["http_request/event_date=2026-01-15"]


def test_a_damaged_file_is_named_by_verify_and_refused_by_restore(
        kafka_config: Config, world_factory: Callable[[Config], Any], tmp_path: Path, kit: Any) -> None:
    k = kit
    provision(kafka_config)
    world = world_factory(kafka_config)
    src = _backup(world, tmp_path / "backups", k)
    victim = sorted((src / FILES_DIR / "usage_event").rglob("*.parquet"))[0]
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    rel = victim.relative_to(src / FILES_DIR).as_posix()

    verified = verify_backup(kafka_config, src, now=k.RESTORED)
    assert not verified.ok and verified.damaged == [(rel, "checksum mismatch (damaged)")]
    assert any(rel in line for line in verified.lines())
    with pytest.raises(BackupError, match="damaged") as caught:
        restore_backup(kafka_config, src, now=k.RESTORED, to=tmp_path / "restored")
    assert rel in str(caught.value)
    assert not (tmp_path / "restored").exists()
    assert not [p for p in tmp_path.iterdir() if ".restoring-" in p.name]  # no staging left behind


def test_an_erasure_the_ledger_cannot_match_stops_the_restore(
        kafka_config: Config, world_factory: Callable[[Config], Any], tmp_path: Path, kit: Any) -> None:
    k = kit
    provision(kafka_config)
    world = world_factory(kafka_config)
    src = _backup(world, tmp_path / "backups", k)
    # erased by an older datamin (or by hand): on the topic, but not in the forget ledger
    publish_erased(kafka_config, subject_hash(kafka_config, k.BOB), erased_at=k.LATER, request_id="old-1")
    verified = verify_backup(kafka_config, src, now=k.RESTORED)
    assert not verified.ok and any("UNMATCHED" in line for line in verified.lines())
    with pytest.raises(BackupError, match="cannot be found"):
        restore_backup(kafka_config, src, now=k.RESTORED, to=tmp_path / "restored")
    assert not (tmp_path / "restored").exists()


def test_restoring_over_a_warehouse_whose_sink_runs_is_refused(
        kafka_config: Config, world_factory: Callable[[Config], Any], tmp_path: Path, kit: Any) -> None:
    k = kit
    provision(kafka_config)
    world = world_factory(kafka_config)
    src = _backup(world, tmp_path / "backups", k)
    stop = threading.Event()
    started = threading.Event()
    errors: list[BaseException] = []

    def sink() -> None:
        try:
            run_sink(kafka_config, stop=stop, on_flush=lambda _f: None)
        except BaseException as exc:
            errors.append(exc)
        finally:
            started.set()

    thread = threading.Thread(target=sink)
    thread.start()
    try:
        lock = world.layout.root / "_sink" / "running.lock"
        deadline = 60.0
        import time
        t0 = time.monotonic()
        while not _held(lock) and time.monotonic() - t0 < deadline and not started.is_set():
            time.sleep(0.1)
        with pytest.raises(BackupError, match="sink is running"):
            restore_backup(kafka_config, src, now=k.RESTORED, replace=True)
    finally:
        stop.set()
        thread.join(timeout=120)
    assert not errors
    assert k.rows_of(world.layout, "http_request") == 15  # untouched
    report = restore_backup(kafka_config, src, now=k.RESTORED, replace=True)  # the sink stopped: allowed
    assert report.root == world.layout.root.resolve()


def _held(lock: Path) -> bool:
    import fcntl
    import os

    if not lock.exists():
        return False
    fd = os.open(lock, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_without_the_rights_secret_a_restore_refuses_rather_than_match_nobody(
        make_config: Callable[..., Config], world_factory: Callable[[Config], Any], tmp_path: Path, kit: Any) -> None:
    from warehouse.rights.ledger import record_action

    config = make_config()
    world = world_factory(config)
    src = _backup(world, tmp_path / "backups", kit)
    record_action(config, "erasure", "r-1", kit.ALICE, at=kit.LATER)
    (Path(config.pseudonymise.key_dir) / "rights.secret").unlink()  # key_dir lost with the disk
    with pytest.raises(BackupError, match="rights secret"):
        restore_backup(config, src, now=kit.RESTORED, to=tmp_path / "restored", use_kafka=False)
    assert not (tmp_path / "restored").exists()
    assert not (Path(config.pseudonymise.key_dir) / "rights.secret").exists()  # no new secret made up


def test_rows_restricted_before_the_backup_are_backed_up_apart_and_restored_apart(
        kafka_config: Config, world_factory: Callable[[Config], Any], tmp_path: Path, kit: Any) -> None:
    from warehouse.rights.restricted_area import area_layout

    provision(kafka_config)
    world = world_factory(kafka_config)
    bob = world.pseudonym(kit.BOB)
    held = kit.rows_of(world.layout, "http_request", bob)
    _rights(kafka_config, "restrict", kit.BOB, kit)
    manifest = create_backup(kafka_config, tmp_path / "backups", now=kit.TAKEN)
    assert any(e.kind == "restricted" for e in manifest.files)
    report = restore_backup(kafka_config, tmp_path / "backups" / manifest.backup_id, now=kit.RESTORED,
                            to=tmp_path / "restored")
    restored = Layout(tmp_path / "restored")
    assert kit.rows_of(area_layout(restored), "http_request", bob) == held  # nothing lost...
    assert kit.rows_of(restored, "http_request", bob) == 0  # ...and still apart
    assert _visible(report.catalog, "http_request", bob) == 0
