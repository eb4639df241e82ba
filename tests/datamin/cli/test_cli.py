"""The `datamin` command line: help that teaches, errors that say the fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from datamin.cli import main

SUBCOMMANDS = ("demo", "kafka", "topics", "process", "sink", "scheduler", "expire", "query", "minimise",
               "schemas", "policy", "ship-logs", "agent", "collector", "rights", "audit", "config", "report")


def test_help_lists_every_subcommand_with_a_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert f"    {name} " in out, name
    assert "quick start" in out


def test_console_script_runs() -> None:
    script = Path(sys.executable).with_name("datamin")  # the console script pip installed beside this interpreter
    done = subprocess.run([str(script), "kafka", "--help"], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0
    assert "Maven Central" in done.stdout


def test_bad_config_stops_with_key_and_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "datamin.toml"
    bad.write_text("[warehouse.retention_days]\nhttp_request = 400\n")
    assert main(["--config", str(bad), "config"]) == 2
    err = capsys.readouterr().err
    assert "warehouse.retention_days.http_request" in err and "Fix:" in err


def test_unreachable_broker_says_how_to_get_one(capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    assert main(["topics"]) == 2
    err = capsys.readouterr().err
    assert "datamin kafka start" in err and "KAFKA_BOOTSTRAP_SERVERS" in err


def test_config_hides_secrets(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATAMIN__KAFKA__SASL_PASSWORD", '"hunter2"')
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "hunter2" not in out and "***" in out


def test_an_agent_without_a_socket_says_which_key_to_set(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATAMIN__PRODUCER__AGENT_SOCKET", raising=False)
    assert main(["agent"]) == 2
    err = capsys.readouterr().err
    assert "producer.agent_socket" in err and "--socket" in err
    (tmp_path / "taken").write_text("")
    assert main(["agent", "--socket", str(tmp_path / "taken")]) == 2
    assert "is not a socket" in capsys.readouterr().err
    assert (tmp_path / "taken").read_text() == ""  # left alone
