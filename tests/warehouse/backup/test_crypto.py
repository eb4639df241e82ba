"""Backups encrypted at rest (AES-256-GCM): the round trip, a wrong or missing key refused, a file
moved inside a backup refused, and key files in the accepted forms."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from datamin.config import Config
from datamin.exceptions import BackupError
from warehouse.backup import create_backup, restore_backup, verify_backup
from warehouse.backup.crypto import BackupKey, load_key, write_new_key
from warehouse.backup.manifest import FILES_DIR
from warehouse.layout import Layout


def _encrypted(make_config: Callable[..., Config], key: Path) -> Config:
    return make_config(**{"BACKUP__KEY_FILE": f'"{key}"'})


def test_an_encrypted_backup_round_trips_and_is_unreadable_without_the_key(
        make_config: Callable[..., Config], world_factory: Callable[[Config], Any], tmp_path: Path, kit: Any) -> None:
    write_new_key(tmp_path / "backup.key")
    config = _encrypted(make_config, tmp_path / "backup.key")
    world = world_factory(config)
    manifest = create_backup(config, tmp_path / "backups", now=kit.TAKEN)
    src = tmp_path / "backups" / manifest.backup_id
    assert manifest.encryption is not None and manifest.encryption["algorithm"] == "AES-256-GCM"
    for entry in manifest.files:
        data = (src / FILES_DIR / entry.path).read_bytes()
        assert data.startswith(b"DMB1") and b"PAR1" not in data[:8]
        assert kit.ALICE.encode() not in data
    table_file = next(src.rglob("*.parquet"))
    with pytest.raises(Exception):  # noqa: B017 - pyarrow's own error: it is not Parquet at all
        pq.read_table(table_file)
    assert verify_backup(config, src, now=kit.RESTORED, use_kafka=False).ok
    report = restore_backup(config, src, now=kit.RESTORED, to=tmp_path / "restored", use_kafka=False)
    restored = Layout(tmp_path / "restored")
    for table in ("http_request", "usage_event", "consent_record"):
        assert kit.rows_of(restored, table) == kit.rows_of(world.layout, table)
    assert report.rows == manifest.rows_by_table()


def test_a_wrong_or_missing_key_is_refused_and_nothing_is_restored(
        make_config: Callable[..., Config], world_factory: Callable[[Config], Any], tmp_path: Path, kit: Any) -> None:
    write_new_key(tmp_path / "backup.key")
    write_new_key(tmp_path / "other.key")
    config = _encrypted(make_config, tmp_path / "backup.key")
    world_factory(config)
    manifest = create_backup(config, tmp_path / "backups", now=kit.TAKEN)
    src = tmp_path / "backups" / manifest.backup_id
    wrong = _encrypted(make_config, tmp_path / "other.key")
    with pytest.raises(BackupError, match="another key"):
        verify_backup(wrong, src, now=kit.RESTORED, use_kafka=False)
    with pytest.raises(BackupError, match="another key"):
        restore_backup(wrong, src, now=kit.RESTORED, to=tmp_path / "restored", use_kafka=False)
    with pytest.raises(BackupError, match="backup.key_file"):
        restore_backup(make_config(), src, now=kit.RESTORED, to=tmp_path / "restored", use_kafka=False)
    assert not (tmp_path / "restored").exists()


def test_a_file_moved_within_an_encrypted_backup_does_not_decrypt(
        make_config: Callable[..., Config], world_factory: Callable[[Config], Any], tmp_path: Path, kit: Any) -> None:
    write_new_key(tmp_path / "backup.key")
    config = _encrypted(make_config, tmp_path / "backup.key")
    world_factory(config)
    manifest = create_backup(config, tmp_path / "backups", now=kit.TAKEN)
    src = tmp_path / "backups" / manifest.backup_id
    [a, b] = [e for e in manifest.files if e.kind == "table"][:2]
    # swap two files and their manifest checksums too: only the associated data (the path) catches it
    pa_, pb = src / FILES_DIR / a.path, src / FILES_DIR / b.path
    da, db = pa_.read_bytes(), pb.read_bytes()
    pa_.write_bytes(db)
    pb.write_bytes(da)
    text = (src / "MANIFEST.json").read_text()
    text = text.replace(a.sha256, "X" * 64).replace(b.sha256, a.sha256).replace("X" * 64, b.sha256)
    (src / "MANIFEST.json").write_text(text)
    report = verify_backup(config, src, now=kit.RESTORED, use_kafka=False)
    assert sorted(rel for rel, _ in report.damaged) == sorted([a.path, b.path])
    assert all("decrypt" in problem for _, problem in report.damaged)


def test_key_files_raw_hex_and_base64_give_the_same_key_and_bad_ones_are_refused(tmp_path: Path) -> None:
    raw = bytes(range(32))
    (tmp_path / "raw").write_bytes(raw)
    (tmp_path / "hex").write_text(raw.hex() + "\n")
    (tmp_path / "b64").write_text(base64.b64encode(raw).decode())
    prints = {load_key(tmp_path / name).fingerprint for name in ("raw", "hex", "b64")}
    assert len(prints) == 1
    assert raw.hex() not in repr(load_key(tmp_path / "hex"))
    (tmp_path / "short").write_text("abc")
    with pytest.raises(BackupError, match="keygen"):
        load_key(tmp_path / "short")
    with pytest.raises(BackupError, match="32 bytes"):
        BackupKey(b"x" * 16)
    write_new_key(tmp_path / "new.key")
    assert (tmp_path / "new.key").stat().st_mode & 0o777 == 0o600
    with pytest.raises(BackupError, match="never overwritten"):
        write_new_key(tmp_path / "new.key")
