"""Backups within the one-year cap: the config refuses more, expiry deletes them on time (and
unfinished ones after a day), the inventory lists them with their age, the ledger is pruned."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from datamin.config import Config
from datamin.exceptions import ConfigError
from warehouse.backup import backup_inventory, create_backup, expire_backups, list_backups
from warehouse.rights.ledger import ledger_dir, prune, read_actions, record_action


def test_backup_retention_beyond_the_cap_stops_start_up(make_config: Callable[..., Config], tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        make_config(**{"BACKUP__RETENTION_DAYS": "366"})
    assert caught.value.key == "backup.retention_days" and "365" in caught.value.fix
    with pytest.raises(ConfigError) as missing:
        make_config(**{"BACKUP__KEY_FILE": f'"{tmp_path / "nope.key"}"'})
    assert missing.value.key == "backup.key_file" and "keygen" in missing.value.fix


def test_backups_expire_on_time_and_unfinished_ones_after_a_day(
        make_config: Callable[..., Config], world_factory: Callable[[Config], Any], tmp_path: Path, kit: Any) -> None:
    dest = tmp_path / "backups"
    config = make_config(**{"BACKUP__RETENTION_DAYS": "30", "BACKUP__DEST": f'"{dest}"'})
    world_factory(config)
    old = create_backup(config, dest, now=kit.TAKEN)
    new = create_backup(config, dest, now=kit.TAKEN + timedelta(days=20))
    unfinished = dest / "datamin-backup-20260205T000000Z-abcdef"
    unfinished.mkdir()
    (dest / "not-a-backup").mkdir()
    at = kit.TAKEN + timedelta(days=31)
    listed = list_backups(dest, now=at)
    assert [e.backup_id for e in listed] == [old.backup_id, unfinished.name, new.backup_id]
    assert [round(e.age_days) for e in listed] == [31, 27, 11]
    assert [e.complete for e in listed] == [True, False, True]
    assert backup_inventory(config, now=at) == listed
    gone = expire_backups(dest, now=at, retention_days=config.backup.retention_days)
    assert {e.backup_id for e in gone} == {old.backup_id, unfinished.name}
    assert sorted(p.name for p in dest.iterdir()) == sorted([new.backup_id, "not-a-backup"])
    # the scheduler's hourly retention job, through the inventory: backup.dest expired at the configured age
    from warehouse.retention import run_retention
    assert run_retention(config, kit.TAKEN + timedelta(days=51))["backups"] == 1
    assert not (dest / new.backup_id).exists()


def test_a_shorter_retention_later_expires_older_backups_sooner(
        make_config: Callable[..., Config], world_factory: Callable[[Config], Any], tmp_path: Path, kit: Any) -> None:
    dest = tmp_path / "backups"
    config = make_config(**{"BACKUP__RETENTION_DAYS": "365"})
    world_factory(config)
    made = create_backup(config, dest, now=kit.TAKEN)
    manifest = json.loads((dest / made.backup_id / "MANIFEST.json").read_text())
    assert manifest["expires_at"].startswith("2027-02-01")
    gone = expire_backups(dest, now=kit.TAKEN + timedelta(days=8), retention_days=7)
    assert [e.backup_id for e in gone] == [made.backup_id]


def test_the_forget_ledger_keeps_keyed_hashes_only_and_is_pruned(
        make_config: Callable[..., Config], world_factory: Callable[[Config], Any], kit: Any) -> None:
    config = make_config()
    world = world_factory(config)
    record_action(config, "erasure", "r-1", kit.ALICE, at=kit.LATER)
    [path] = list(ledger_dir(world.layout).glob("*.json"))
    text = path.read_text()
    assert kit.ALICE not in text and world.pseudonym(kit.ALICE) not in text
    [action] = read_actions(world.layout)
    from warehouse.rights.ledger import pseudonym_hash, rights_secret
    assert action.action == "erasure"
    assert pseudonym_hash(rights_secret(config), world.pseudonym(kit.ALICE)) in action.pseudonym_hashes
    assert prune(world.layout, before=kit.LATER - timedelta(days=1)) == 0
    assert prune(world.layout, before=kit.LATER + timedelta(days=1)) == 1
    assert read_actions(world.layout) == []


def test_backups_are_in_the_retention_inventory_with_their_age_and_expired_by_the_scheduler(
        make_config: Callable[..., Config], world_factory: Callable[[Config], Any], tmp_path: Path, kit: Any) -> None:
    from warehouse.audit_trail import AuditLog
    from warehouse.retention import full_inventory, inventory_rows
    from warehouse.scheduler import build_scheduler

    dest = tmp_path / "backups"
    config = make_config(**{"BACKUP__RETENTION_DAYS": "7", "BACKUP__DEST": f'"{dest}"'})
    world = world_factory(config)
    made = create_backup(config, dest, now=kit.TAKEN)
    stores = {s.name: s for s in full_inventory(config)}
    assert {"backups", "forget ledger"} <= set(stores)
    [row] = [r for r in inventory_rows([stores["backups"]], kit.TAKEN + timedelta(days=2))]
    assert row["oldest"].startswith("2026-02-01") and row["next_deletion"].startswith("2026-02-08")
    now = [kit.TAKEN + timedelta(days=6)]
    job = {j.id: j for j in build_scheduler(config, clock=lambda: now[0]).get_jobs()}["retention"]
    job.func()
    assert (dest / made.backup_id).is_dir()
    now[0] = kit.TAKEN + timedelta(days=7, minutes=1)
    job.func()
    assert not (dest / made.backup_id).exists()
    assert [e.action for e in AuditLog(world.layout).read("backup")] == ["create_backup", "expire_backup"]
