"""Every scheduler-enforced store loses what is past its cap, moved by an injected clock; future-dated
partitions go too; keys go once no retention needs them; `datamin retention` shows the proof."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from datamin.cli import main
from datamin.config import Config
from datamin.keys import KeyStore
from warehouse.audit_trail import AuditEntry, AuditLog
from warehouse.expiry import expire
from warehouse.layout import Layout
from warehouse.retention import full_inventory, inventory_rows, key_retention
from warehouse.rights.trail import record_received, requests_dir
from warehouse.scheduler import run_maintenance

NOW = datetime(2027, 6, 15, 12, 0, tzinfo=UTC)


def _age(path: Path, when: datetime) -> Path:
    os.utime(path, (when.timestamp(), when.timestamp()))
    return path


def _file(path: Path, when: datetime, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return _age(path, when)


def _partition(layout: Layout, table: str, day: date) -> Path:
    folder = layout.partition_dir(table, day)
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"n": [1]}), folder / "t~p0~o0000000000000000000-0000000000000000000.parquet")
    return folder


@pytest.fixture
def config(make_config: Callable[..., Config], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("DATAMIN_HOME", str(tmp_path / "home"))
    return make_config(**{"PRODUCER__SHIPPER_STATE_DIR": f'"{tmp_path / "shipper"}"'})


def test_the_scheduler_expires_every_store_past_its_cap(config: Config, tmp_path: Path) -> None:
    layout = Layout(Path(config.warehouse.root))
    old, recent = NOW - timedelta(days=400), NOW - timedelta(hours=2)
    spool = Path(config.producer.spool_dir) / "p-0"
    spool_old = _file(spool / f"seg-{0:020d}.spool", NOW - timedelta(days=8))
    spool_new = _file(spool / f"seg-{1:020d}.spool", recent)
    shipper = Path(config.producer.shipper_state_dir)
    state_old, state_new = _file(shipper / "a.log.1.state", old), _file(shipper / "b.log.2.state", recent)
    home = tmp_path / "home" / "kafka"
    log_old = _file(home / "server.log.2027-01-01", NOW - timedelta(days=31))
    log_new = _file(home / "server.log", recent)
    q = layout.quarantine_dir / "http_request"
    q_old = _file(q / "event_date=2027-03-01" / "f.parquet.1a2b", recent)   # its day is past 90 days
    q_new = _file(q / "event_date=2027-06-01" / "f.parquet.3c4d", recent)
    q_future = _file(q / "event_date=2300-01-01" / "f.parquet.5e6f", recent)
    audit = AuditLog(layout)
    a_old = audit.append([AuditEntry(at=old, job="expiry", action="delete_partition", table_name="t",
                                     partition=None, rows=1, bytes=1)])
    a_new = audit.append([AuditEntry(at=recent, job="expiry", action="delete_partition", table_name="t",
                                     partition=None, rows=1, bytes=1)])
    r_old = record_received(layout, request_id="r1", subject_hash="h1_x", kind="access", channel="officer",
                            received=old)
    r_new = record_received(layout, request_id="r2", subject_hash="h1_y", kind="access", channel="officer",
                            received=recent)
    keys_dir = Path(config.pseudonymise.key_dir)
    for when in (NOW - timedelta(days=500), NOW - timedelta(days=380), NOW - timedelta(days=300), NOW):
        KeyStore(keys_dir, "monthly", clock=lambda when=when: when).current_key()
    stale = _partition(layout, "http_request", (NOW - timedelta(days=91)).date())
    kept = _partition(layout, "http_request", (NOW - timedelta(days=90)).date())
    future = _partition(layout, "http_request", date(2300, 1, 1))

    run_maintenance(config, now=NOW)

    for gone in (spool_old, state_old, log_old, q_old, q_future, a_old, r_old, stale, future):
        assert gone is not None and not gone.exists(), gone
    for there in (spool_new, state_new, log_new, q_new, a_new, r_new, kept):
        assert there is not None and there.exists(), there
    # keys: only those whose period ended longer ago than the longest retention (364 + 1 days) went
    periods = KeyStore(keys_dir, "monthly").periods()
    assert periods == ["2026-08", "2027-06"], periods
    assert key_retention(config) == timedelta(days=365)
    # the expiry of the future-dated partition is audited as such
    assert any("future" in e.detail for e in audit.read("expiry"))


def test_a_spool_a_running_producer_holds_is_left_to_it(config: Config) -> None:
    import fcntl

    folder = Path(config.producer.spool_dir) / "p-0"
    segment = _file(folder / f"seg-{0:020d}.spool", NOW - timedelta(days=30))
    with open(folder / "lock", "ab") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        run_maintenance(config, now=NOW)
        assert segment.exists()
    run_maintenance(config, now=NOW)
    assert not segment.exists()


def test_expiry_removes_future_partitions_already_on_disk(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    today = NOW.date()
    tomorrow = _partition(layout, "usage_event", today + timedelta(days=1))
    later = _partition(layout, "usage_event", today + timedelta(days=2))
    far = _partition(layout, "usage_event", date(2031, 1, 1))
    done = expire(layout, {"usage_event": 180}, now=NOW)
    assert sorted(e.day for e in done) == [today + timedelta(days=2), date(2031, 1, 1)]
    assert tomorrow.exists() and not later.exists() and not far.exists()


def test_datamin_retention_prints_the_inventory(config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    layout = Layout(Path(config.warehouse.root))
    _partition(layout, "http_request", date(2027, 6, 1))
    rows = {r["store"]: r for r in inventory_rows(full_inventory(config), NOW)}
    assert rows["table http_request"]["oldest"] == "2027-06-01T00:00:00+00:00"
    assert rows["table http_request"]["next_deletion"] == "2027-08-31T00:00:00+00:00"  # 91 days later
    assert rows["table http_request"]["cap_days"] == 91
    toml = tmp_path / "datamin.toml"
    toml.write_text(f'[warehouse]\nroot = "{config.warehouse.root}"\n[pseudonymise]\nkey_dir = "{tmp_path / "k"}"\n')
    assert main(["--config", str(toml), "retention", "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["format"] == "datamin.retention-inventory/1"
    assert all(s["cap_days"] <= 365 for s in doc["stores"] if s["kind"] != "secret")
    assert all(s["not_aged_because"] for s in doc["stores"] if s["cap_days"] is None)
    assert {"store", "cap", "oldest", "next_deletion", "enforced_by", "how"} <= set(doc["stores"][0])
    assert main(["--config", str(toml), "retention"]) == 0
    text = capsys.readouterr().out
    assert "table http_request" in text and "2027-06-01" in text and "pseudonymisation keys" in text
    assert requests_dir(layout).name == "requests"


def test_the_erasure_receipt_states_when_keys_really_go(config: Config) -> None:
    from warehouse.rights.erasure import key_note

    note = key_note(config)
    assert f"{key_retention(config).days} days after the period ends" in note
    shorter = config.__class__(**{**config.__dict__, "warehouse": config.warehouse.__class__(
        **{**config.warehouse.__dict__, "retention_days": {"http_request": 30, "usage_event": 30,
                                                          "device_report": 30, "consent_record": 30,
                                                          "privacy_request": 30}})})
    assert key_retention(shorter) == timedelta(days=31)
    assert "31 days after the period ends" in key_note(shorter)


@pytest.mark.parametrize(("rotation", "word"), [("monthly", "month"), ("weekly", "week"), ("daily", "day")])
def test_the_key_store_names_its_period(make_config: Callable[..., Config], rotation: str, word: str) -> None:
    config = make_config(**{"PSEUDONYMISE__ROTATION": f'"{rotation}"'})
    keys = next(s for s in full_inventory(config) if s.name == "pseudonymisation keys")
    assert keys.holds.startswith(f"one secret key per {word};")
