"""The manifest: written last, read back exactly, and a damaged or missing one refused."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from datamin.config import Config
from datamin.exceptions import BackupError
from warehouse.backup import create_backup, list_backups, restore_backup
from warehouse.backup.manifest import MANIFEST_NAME, Manifest


def test_the_manifest_round_trips_and_names_offsets_and_checksums(
        make_config: Callable[..., Config], world_factory: Callable[[Config], Any], tmp_path: Path, kit: Any) -> None:
    config = make_config()
    world_factory(config)
    made = create_backup(config, tmp_path / "backups", now=kit.TAKEN)
    text = (tmp_path / "backups" / made.backup_id / MANIFEST_NAME).read_bytes()
    again = Manifest.from_json(text, "here")
    assert again == made
    assert made.offsets == {f"{config.topics.prefix}.minimised.{t}": parts for t, parts in
                            (("http_request", {0: 11, 1: 2}), ("usage_event", {0: 3}), ("consent_record", {0: 2}))}
    assert all(len(e.sha256) == 64 for e in made.files)
    assert kit.ALICE.encode() not in text


def test_a_backup_without_or_with_a_damaged_manifest_is_refused(
        make_config: Callable[..., Config], world_factory: Callable[[Config], Any], tmp_path: Path, kit: Any) -> None:
    config = make_config()
    world_factory(config)
    made = create_backup(config, tmp_path / "backups", now=kit.TAKEN)
    src = tmp_path / "backups" / made.backup_id
    (src / MANIFEST_NAME).write_text('{"format": 1, "backup_id": "x"')
    with pytest.raises(BackupError, match="manifest is damaged"):
        restore_backup(config, src, now=kit.RESTORED, to=tmp_path / "restored", use_kafka=False)
    (src / MANIFEST_NAME).unlink()
    with pytest.raises(BackupError, match="incomplete"):
        restore_backup(config, src, now=kit.RESTORED, to=tmp_path / "restored", use_kafka=False)
    [entry] = list_backups(tmp_path / "backups", now=kit.RESTORED)
    assert not entry.complete
