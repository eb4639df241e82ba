"""`datamin rights` run the wrong way: from a folder without the warehouse, against a broker without
datamin's topics, with the subject in a file or on stdin, with a key spelt differently."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from datamin.cli import main
from datamin.config import Config
from datamin.keys import KeyStore, pseudonymise
from datamin.topics import provision
from schemas import default_registry
from warehouse.arrow import records_to_table
from warehouse.layout import Layout
from warehouse.rights.preflight import ensure_rights_secret

NOW = datetime.now(UTC)


def _warehouse_with(config: Config, subject: str) -> Path:
    """A warehouse holding one usage_event row of ``subject`` (canonical), and the keys that made it."""
    keys = KeyStore(Path(config.pseudonymise.key_dir), "monthly", clock=lambda: NOW)
    ensure_rights_secret(config)
    layout = Layout(Path(config.warehouse.root))
    folder = layout.partition_dir("usage_event", NOW.date())
    folder.mkdir(parents=True)
    pseudonym = pseudonymise(subject, keys.key_for(keys.period_for(NOW)), "subject")
    rows = [{"event_id": "e1", "time": NOW, "subject": pseudonym, "kind": "search"},
            {"event_id": "e2", "time": NOW, "subject": None, "kind": "search"}]
    path = folder / layout.data_file_name("x", 0, 0, 1)
    pq.write_table(records_to_table(default_registry().latest("usage_event", "minimised"), rows), path)
    return path


def test_wrong_directory_refuses_and_creates_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for name in list(os.environ):
        if name.startswith("DATAMIN"):
            monkeypatch.delenv(name)
    for action in ("erase", "access", "status"):
        code = main(["rights", action, "--subject", "user-1"] if action != "status" else ["rights", "status"])
        err = capsys.readouterr().err
        assert code != 0, action
        assert "warehouse.root" in err and "data/warehouse" in err and "nothing" in err
    assert list(elsewhere.iterdir()) == []  # no data/, no keys, no rights.secret


def test_empty_key_folder_or_missing_secret_refuses(make_config: Callable[..., Config],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    config = make_config()
    Path(config.warehouse.root).mkdir(parents=True)
    (Path(config.warehouse.root) / "usage_event").mkdir()
    Path(config.pseudonymise.key_dir).mkdir(parents=True)
    from warehouse.rights.requests import rights_command

    assert rights_command(config, "erase", "user-1", now=NOW) == 2
    assert "pseudonymise.key_dir" in capsys.readouterr().err
    KeyStore(Path(config.pseudonymise.key_dir), "monthly", clock=lambda: NOW).key_for(NOW.strftime("%Y-%m"))
    assert rights_command(config, "erase", "user-1", now=NOW) == 2
    err = capsys.readouterr().err
    assert "rights.secret" in err and "never create" in err
    assert not (Path(config.pseudonymise.key_dir) / "rights.secret").exists()


def test_missing_topics_one_clear_error_no_log_flood(make_config: Callable[..., Config], kafka_bootstrap: str,
                                                     caplog: pytest.LogCaptureFixture,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    config = make_config(kafka=kafka_bootstrap, **{"TOPICS__PREFIX": '"never-provisioned-x9"'})
    data = _warehouse_with(config, "user:user-1")
    from warehouse.rights.requests import rights_command

    with caplog.at_level(logging.WARNING):
        assert rights_command(config, "erase", "user-1", now=NOW) == 1
    err = capsys.readouterr().err
    assert "never-provisioned-x9.privacy-requests" in err and "datamin topics" in err
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert pq.read_table(data).num_rows == 2  # nothing done
    assert not (Path(config.warehouse.root) / "_rights" / "requests").exists()  # nothing recorded as done


def test_subject_from_file_or_stdin_normalised(kafka_config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    provision(kafka_config)
    data = _warehouse_with(kafka_config, "user:user-1")
    from warehouse.rights.requests import rights_command

    out = tmp_path / "exports"
    out.mkdir()
    assert rights_command(kafka_config, "access", "USER-1 ", out_dir=out, now=NOW) == 0
    [export] = list(out.glob("*"))
    assert '"usage_event"' in export.read_text() and "e1" in export.read_text()  # found despite case and space

    subject_file = tmp_path / "subject.txt"
    subject_file.write_text("User-1\n")
    from datamin.cli import rights as cli_rights

    ns = cli_rights.argparse.Namespace(subject=None, subject_file=str(subject_file))
    assert cli_rights._read_subject(ns) == "User-1"
    monkeypatch.setattr("sys.stdin", io.StringIO(" user:USER-1\n"))
    assert cli_rights._read_subject(cli_rights.argparse.Namespace(subject="-", subject_file=None)) == " user:USER-1"
    monkeypatch.setattr("sys.stdin", io.StringIO(" user:USER-1\n"))
    assert rights_command(kafka_config, "erase", cli_rights._read_subject(
        cli_rights.argparse.Namespace(subject="-", subject_file=None)) or "", out_dir=out, now=NOW) == 0
    assert pq.read_table(data).column("event_id").to_pylist() == ["e2"]
    printed = capsys.readouterr().out
    for store in ("warehouse", "quarantine", "consent_topic", "spool", "erased_subjects", "privacy_requests"):
        assert f"  {store}: " in printed  # the receipt names every store
    assert "user-1" not in printed.lower()
