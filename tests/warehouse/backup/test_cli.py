"""`datamin backup`: keygen, create, list, verify and restore from the command line, with real files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from datamin.cli import main
from datamin.config import load_config


def test_backup_commands_round_trip(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                    world_factory: Callable[..., Any]) -> None:
    toml = tmp_path / "datamin.toml"
    toml.write_text(f'[pseudonymise]\nkey_dir = "{tmp_path / "keys"}"\n'
                    f'[warehouse]\nroot = "{tmp_path / "warehouse"}"\ncatalog = "{tmp_path / "catalog.duckdb"}"\n'
                    f'[backup]\ndest = "{tmp_path / "backups"}"\nretention_days = 14\n')
    assert main(["--config", str(toml), "backup", "keygen", str(tmp_path / "secret" / "backup.key")]) == 0
    out = capsys.readouterr().out
    key_text = (tmp_path / "secret" / "backup.key").read_text().strip()
    assert "fingerprint" in out and key_text not in out
    toml.write_text(toml.read_text() + f'key_file = "{tmp_path / "secret" / "backup.key"}"\n')
    world_factory(load_config(toml))

    assert main(["--config", str(toml), "backup", "create"]) == 0
    out = capsys.readouterr().out
    assert "encrypted" in out and "NOT encrypted" not in out and "http_request: 15" in out
    assert main(["--config", str(toml), "backup", "list"]) == 0
    [line] = capsys.readouterr().out.strip().splitlines()
    backup_id = line.split()[0]
    assert backup_id.startswith("datamin-backup-") and "age" in line and "encrypted" in line
    src = str(tmp_path / "backups" / backup_id)

    assert main(["--config", str(toml), "backup", "verify", src, "--no-kafka"]) == 0
    out = capsys.readouterr().out
    assert "files intact" in out and "past 90 days' retention" in out  # the rows of Jan 2026 are old now

    assert main(["--config", str(toml), "backup", "restore", src, "--no-kafka"]) == 2  # over the live one
    assert "--replace" in capsys.readouterr().err
    assert main(["--config", str(toml), "backup", "restore", src, "--to", str(tmp_path / "copy"), "--no-kafka"]) == 0
    out = capsys.readouterr().out
    assert "re-applied before anything was queryable" in out and (tmp_path / "copy" / "catalog.duckdb").is_file()


def test_backup_help_says_what_a_backup_never_holds(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["backup", "--help"])
    out = capsys.readouterr().out
    assert "never holds the pseudonymisation keys" in out and "re-applies" in out
