"""Erasure, access, restriction and withdrawal against real Parquet files and a real KeyStore."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from datamin.config import Config
from datamin.identity import canonical
from datamin.keys import subject_hash
from processors.transforms import KeyStore, pseudonymise
from schemas import default_registry
from warehouse.arrow import records_to_table
from warehouse.catalog import build_catalog
from warehouse.layout import Layout, parse_data_file_name
from warehouse.rights.erasure import erase_subject, sweep_erased, withdraw_subject
from warehouse.rights.export import build_export, export_subject
from warehouse.rights.restriction import lift, restrict
from warehouse.rights.trail import read_requests, record_done, record_received

ALICE = "alice-user-81724"
BOB = "bob-user-55190"
JAN = datetime(2026, 1, 15, 10, tzinfo=UTC)
JAN2 = datetime(2026, 1, 20, 9, tzinfo=UTC)
FEB = datetime(2026, 2, 10, 12, tzinfo=UTC)
NOW = datetime(2026, 2, 20, 8, tzinfo=UTC)


@dataclass
class World:
    config: Config
    layout: Layout
    keys: KeyStore
    files: dict[str, Path]

    def pseudonym(self, subject: str, when: datetime, namespace: str = "subject") -> str:
        clear = canonical(subject) if namespace == "subject" else subject  # as the processor does
        value = pseudonymise(clear, self.keys.key_for(self.keys.period_for(when)), namespace)
        assert value is not None
        return value

    def stamps(self) -> dict[str, tuple[int, int]]:
        return {name: (p.stat().st_ino, p.stat().st_mtime_ns) for name, p in self.files.items()}


def _row(table: str, world: World, subject: str | None, when: datetime, n: int) -> dict[str, object]:
    label = {ALICE: "A", BOB: "B"}.get(subject or "", "N")  # never the key itself
    base: dict[str, object] = {"event_id": f"{table}-{label}-{when:%m%d}-{n}", "time": when,
                               "subject": world.pseudonym(subject, when) if subject else None}
    if table == "http_request":
        base.update(url="/a", status=200, client_network="10.1.0.0/16", browser_family="Firefox",
                    user_id=world.pseudonym(subject, when, "user_id") if subject else None,
                    session_id=world.pseudonym(subject, when, "session_id") if subject else None)
    elif table == "usage_event":
        base.update(kind="page_view", page="/p", session_id=world.pseudonym(subject, when, "session_id")
                    if subject else None)
    else:
        base.update(statistics=True, marketing=False, necessary=True, source="banner")
    return base


def write_file(world: World, name: str, table: str, rows: list[dict[str, object]], offset: int) -> Path:
    schema = default_registry().latest(table, "minimised")
    day = rows[0]["time"].date()  # type: ignore[attr-defined]
    folder = world.layout.partition_dir(table, day)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / world.layout.data_file_name(f"t.minimised.{table}", 0, offset, offset + len(rows) - 1)
    pq.write_table(records_to_table(schema, rows), path, compression="zstd")
    world.files[name] = path
    return path


@pytest.fixture
def world(make_config: Callable[..., Config]) -> World:
    config = make_config()
    keys = KeyStore(Path(config.pseudonymise.key_dir), "monthly", clock=lambda: NOW)
    keys.key_for("2026-01")
    keys.key_for("2026-02")
    w = World(config, Layout(Path(config.warehouse.root)), keys, {})
    r = _row
    # alice: http_request in Jan and Feb, usage_event in Jan, consent_record in Jan; bob everywhere
    write_file(w, "http_jan", "http_request",
               [r("http_request", w, ALICE, JAN, 1), r("http_request", w, BOB, JAN, 2),
                r("http_request", w, None, JAN, 3)], 0)
    write_file(w, "http_jan_bob", "http_request", [r("http_request", w, BOB, JAN2, 1)], 3)
    write_file(w, "http_feb", "http_request",
               [r("http_request", w, ALICE, FEB, 1), r("http_request", w, ALICE, FEB, 2),
                r("http_request", w, BOB, FEB, 3)], 4)
    write_file(w, "usage_jan", "usage_event",
               [r("usage_event", w, ALICE, JAN2, 1), r("usage_event", w, BOB, JAN2, 2)], 0)
    write_file(w, "usage_feb_bob", "usage_event", [r("usage_event", w, BOB, FEB, 1)], 2)
    write_file(w, "consent_jan", "consent_record",
               [r("consent_record", w, ALICE, JAN, 1), r("consent_record", w, BOB, JAN, 2)], 0)
    return w


def counts(export: dict[str, object]) -> dict[str, int]:
    return {t: len(rows) for t, rows in export["tables"].items()}  # type: ignore[attr-defined]


def test_access_finds_rows_across_periods_and_tables(world: World) -> None:
    doc = build_export(world.config, ALICE, now=NOW)
    assert counts(doc) == {"http_request": 3, "usage_event": 1, "device_report": 0, "consent_record": 1,
                           "privacy_request": 0}
    assert {p["period"] for p in doc["pseudonyms"]} == {"2026-01", "2026-02"}
    assert doc["consent_history"][0]["statistics"] is True
    fields = {f["name"]: f for f in doc["schema"]["http_request"]["fields"]}
    assert fields["subject"]["doc"].startswith("Keyed, rotating pseudonym")
    assert "event_date" in doc["tables"]["http_request"][0]


def test_erasure_removes_the_subject_and_only_rewrites_affected_files(world: World) -> None:
    before = world.stamps()
    bob_before = counts(build_export(world.config, BOB, now=NOW))

    receipt = erase_subject(world.config, ALICE, now=NOW, request_id="req-1", publish=False)

    assert counts(build_export(world.config, ALICE, now=NOW)) == dict.fromkeys(bob_before, 0)
    assert counts(build_export(world.config, BOB, now=NOW)) == bob_before
    after = world.stamps()
    for name in ("http_jan_bob", "usage_feb_bob"):
        assert after[name] == before[name], f"{name} holds no row of the subject but was rewritten"
    for name in ("http_jan", "http_feb", "usage_jan", "consent_jan"):
        assert after[name] != before[name]
        assert parse_data_file_name(world.files[name].name) is not None
    assert not list(world.layout.root.rglob("*.tmp"))
    # the null-subject row stays
    assert pq.read_table(world.files["http_jan"]).num_rows == 2

    assert receipt.subject_known and receipt.request_id == "req-1" and receipt.at == NOW
    assert receipt.tables == {"http_request": 3, "usage_event": 1, "consent_record": 1}
    assert receipt.rows == 5 and receipt.periods == 2
    assert {Path(c.path).name for c in receipt.files} == {world.files[n].name for n in
                                                          ("http_jan", "http_feb", "usage_jan", "consent_jan")}
    assert "7 day(s)" in receipt.kafka_window and (NOW + timedelta(days=7)).isoformat() in receipt.kafka_window
    entries = [e for e in _audit(world) if e["action"] == "erase_rows"]
    assert sum(e["rows"] for e in entries) == 5 and all("req-1" in e["detail"] for e in entries)


def _audit(world: World) -> list[dict[str, object]]:
    files = list((world.layout.root / "_audit").rglob("*.parquet"))
    return [row for f in files for row in pq.read_table(f).to_pylist()]


def test_erasing_twice_is_harmless(world: World) -> None:
    erase_subject(world.config, ALICE, now=NOW, publish=False)
    stamps = world.stamps()
    second = erase_subject(world.config, ALICE, now=NOW + timedelta(minutes=1), publish=False)
    assert not second.subject_known and second.rows == 0 and second.files == ()
    assert world.stamps() == stamps
    assert "no rows" in second.summary()


def test_unknown_subject_succeeds_and_changes_nothing(world: World) -> None:
    stamps = world.stamps()
    receipt = erase_subject(world.config, "nobody-we-know", now=NOW, publish=False)
    assert not receipt.subject_known and receipt.tables == {} and receipt.periods == 2
    assert world.stamps() == stamps


def test_leftover_rewrite_temp_is_removed(world: World) -> None:
    tmp = world.files["http_jan"].with_name(f".{world.files['http_jan'].name}.rewrite.tmp")
    tmp.write_bytes(b"half a file")
    erase_subject(world.config, ALICE, now=NOW, publish=False)
    assert not tmp.exists()


def _analyst_view(world: World) -> duckdb.DuckDBPyConnection:
    """The analysts' own door: the real catalog, opened read-only."""
    build_catalog(world.config)
    return duckdb.connect(world.config.warehouse.catalog, read_only=True)


def _visible(con: duckdb.DuckDBPyConnection, pseudonyms: list[str]) -> int:
    result = con.execute("SELECT count(*) FROM http_request WHERE subject IN (SELECT unnest($p))",
                         {"p": pseudonyms}).fetchone()
    assert result is not None
    return int(result[0])


def test_restriction_hides_rows_until_lifted(world: World) -> None:
    con = _analyst_view(world)
    alice = [world.pseudonym(ALICE, JAN), world.pseudonym(ALICE, FEB)]
    bob = [world.pseudonym(BOB, JAN), world.pseudonym(BOB, FEB)]
    total = con.execute("SELECT count(*) FROM http_request").fetchone()
    assert total == (7,) and _visible(con, alice) == 3

    assert restrict(world.config, ALICE) == 2
    assert restrict(world.config, ALICE) == 0  # idempotent
    assert _visible(con, alice) == 0 and _visible(con, bob) == 3
    assert con.execute("SELECT count(*) FROM http_request WHERE subject IS NULL").fetchone() == (1,)
    assert counts(build_export(world.config, ALICE, now=NOW))["http_request"] == 3  # rows kept
    in_files = [s for f in world.layout.table_dir("http_request").rglob("*.parquet")
                for s in pq.read_table(f, columns=["subject"]).column(0).to_pylist()]
    assert not set(alice) & set(in_files) and len(in_files) == 4  # not even in the files analysts can read

    assert lift(world.config, ALICE) == 2
    assert _visible(con, alice) == 3 and con.execute("SELECT count(*) FROM http_request").fetchone() == (7,)


def test_erasure_takes_the_subject_off_the_restricted_list(world: World) -> None:
    restrict(world.config, ALICE)
    restrict(world.config, BOB)
    erase_subject(world.config, ALICE, now=NOW, publish=False)
    listed = set(pq.read_table(world.layout.root / "_rights" / "restricted.parquet").column(0).to_pylist())
    assert listed == {world.pseudonym(BOB, JAN), world.pseudonym(BOB, FEB)}
    kept_apart = [s for f in world.layout.restricted_dir.rglob("*.parquet")
                  for s in pq.read_table(f, columns=["subject"]).column(0).to_pylist()]
    assert kept_apart and not {world.pseudonym(ALICE, JAN), world.pseudonym(ALICE, FEB)} & set(kept_apart)


def test_withdrawal_strips_consent_only_identifiers_and_keeps_consent_records(world: World) -> None:
    stamps = world.stamps()
    receipt = withdraw_subject(world.config, ALICE, now=NOW, request_id="req-w")
    assert receipt.tables == {"http_request": 3, "usage_event": 1}
    http = pq.read_table(world.files["http_feb"]).to_pylist()
    assert len(http) == 3
    stripped = [r for r in http if r["event_id"].startswith("http_request-A")]
    assert all(r["subject"] is None and r["user_id"] is None and r["session_id"] is None for r in stripped)
    assert all(r["url"] == "/a" and r["client_network"] == "10.1.0.0/16" for r in stripped)
    kept = [r for r in http if r["event_id"].startswith("http_request-B")]
    assert kept[0]["subject"] == world.pseudonym(BOB, FEB) and kept[0]["user_id"] is not None
    doc = build_export(world.config, ALICE, now=NOW)
    assert counts(doc)["consent_record"] == 1 and counts(doc)["http_request"] == 0
    assert world.stamps()["consent_jan"] == stamps["consent_jan"]
    assert world.stamps()["http_jan_bob"] == stamps["http_jan_bob"]


def test_withdrawal_blanks_the_identifiers_in_a_quarantined_copy_too(world: World) -> None:
    """A file set aside in the quarantine still holds the person's rows: withdrawal blanks them there, as
    in the tables (rows kept, other people untouched), and the receipt says so."""
    source = world.files["http_feb"]
    aside = world.layout.quarantine_dir / "http_request" / source.parent.name / f"{source.name}.q1"
    aside.parent.mkdir(parents=True)
    shutil.copy(source, aside)
    receipt = withdraw_subject(world.config, ALICE, now=NOW, request_id="req-wq")
    rows = pq.read_table(aside).to_pylist()
    assert len(rows) == 3
    alice = [r for r in rows if r["event_id"].startswith("http_request-A")]
    assert alice and all(r["subject"] is None and r["user_id"] is None and r["session_id"] is None for r in alice)
    bob = [r for r in rows if r["event_id"].startswith("http_request-B")]
    assert bob[0]["subject"] == world.pseudonym(BOB, FEB)
    assert any(f"{len(alice)} row(s) blanked in 1 file(s)" in note for note in receipt.notes)


def test_sweep_deletes_late_rows_timed_before_the_erasure_only(world: World) -> None:
    erase_subject(world.config, ALICE, now=NOW, publish=False)
    late_day = NOW - timedelta(hours=1)
    later = NOW + timedelta(days=1)  # a new relationship after the erasure
    path = write_file(world, "late", "http_request",
                      [_row("http_request", world, ALICE, late_day, 1), _row("http_request", world, BOB, late_day, 2)],
                      100)
    new = write_file(world, "new", "http_request", [_row("http_request", world, ALICE, later, 1)], 200)
    new_stamp = world.stamps()["new"]

    changes = sweep_erased(world.layout, now=NOW + timedelta(days=1, hours=1))
    assert [Path(c.path).name for c in changes] == [path.name]
    assert [r["event_id"] for r in pq.read_table(path).to_pylist()] == [f"http_request-B-{late_day:%m%d}-2"]
    assert world.stamps()["new"] == new_stamp and pq.read_table(new).num_rows == 1

    sweep_erased(world.layout, now=NOW + timedelta(days=8))  # the Kafka window is over
    assert pq.read_table(world.layout.root / "_rights" / "erased_sweep.parquet").num_rows == 0


def test_rights_trail_states_and_deadline(world: World) -> None:
    h = subject_hash(world.config, ALICE)
    record_received(world.layout, request_id="r1", subject_hash=h, kind="access", channel="officer", received=JAN)
    record_received(world.layout, request_id="r2", subject_hash=h, kind="erasure", channel="email", received=FEB)
    record_received(world.layout, request_id="r3", subject_hash=subject_hash(world.config, BOB), kind="restriction",
                    channel="officer", received=FEB)
    record_done(world.layout, request_id="r2", at=FEB + timedelta(days=1), outcome="erasure r2: 5 row(s) deleted")
    mine = read_requests(world.layout, now=NOW, subject_hash=h)
    assert [(r.request_id, r.state) for r in mine] == [("r1", "overdue"), ("r2", "done")]
    assert mine[0].deadline == JAN + timedelta(days=30)
    assert read_requests(world.layout, now=FEB + timedelta(days=2))[-1].state == "open"
    assert subject_hash(world.config, ALICE) == h and h != subject_hash(world.config, BOB)
    secret = Path(world.config.pseudonymise.key_dir) / "rights.secret"
    assert secret.stat().st_mode & 0o777 == 0o600


def test_no_clear_subject_key_is_stored(world: World, tmp_path: Path) -> None:
    h = subject_hash(world.config, ALICE)
    record_received(world.layout, request_id="r1", subject_hash=h, kind="erasure", channel="officer", received=NOW)
    restrict(world.config, ALICE)
    withdraw_subject(world.config, ALICE, now=NOW)
    receipt = erase_subject(world.config, ALICE, now=NOW, request_id="r1", publish=False)
    record_done(world.layout, request_id="r1", at=NOW, outcome=receipt.summary(), receipt=receipt.to_dict())
    out = tmp_path / "exports"
    export = export_subject(world.config, ALICE, out, now=NOW)
    assert ALICE.encode() in export.read_bytes()  # the export, and only the export, holds the key
    for base in (world.layout.root, Path(world.config.pseudonymise.key_dir)):
        for path in base.rglob("*"):
            if path.is_file():
                assert ALICE.encode() not in path.read_bytes(), f"{path} holds the clear subject key"
    assert json.dumps(receipt.to_dict()).find(world.pseudonym(ALICE, JAN)) == -1


def test_export_csv_and_json(world: World, tmp_path: Path) -> None:
    path = export_subject(world.config, ALICE, tmp_path / "out", fmt="json", now=NOW)
    assert ALICE not in path.name and path.stat().st_mode & 0o777 == 0o600
    doc = json.loads(path.read_text())
    assert doc["subject_key"] == canonical(ALICE) and len(doc["tables"]["http_request"]) == 3
    assert doc["tables"]["http_request"][0]["time"].startswith("2026-01-15T10:00:00")
    folder = export_subject(world.config, ALICE, tmp_path / "out", fmt="csv", now=NOW)
    assert sorted(p.name for p in folder.iterdir()) == ["consent_record.csv", "export.json", "http_request.csv",
                                                       "usage_event.csv"]
    lines = (folder / "http_request.csv").read_text().splitlines()
    assert len(lines) == 4 and "subject" in lines[0].split(",")
    with pytest.raises(ValueError, match="xml"):
        export_subject(world.config, ALICE, tmp_path / "out", fmt="xml", now=NOW)


def test_files_left_empty_keep_their_columns(world: World) -> None:
    only = write_file(world, "only_alice", "usage_event", [_row("usage_event", world, ALICE, FEB, 9)], 50)
    erase_subject(world.config, ALICE, now=NOW, publish=False)
    table = pq.read_table(only)
    assert table.num_rows == 0 and "subject" in table.column_names
    assert os.path.exists(only)


# -- damaged files and the quarantine ------------------------------------------------------------------


def _flip_data_pages(path: Path) -> None:
    data = bytearray(path.read_bytes())
    for i in range(8, len(data) // 2, 5):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["torn", "flipped"])
def test_access_and_erasure_name_a_damaged_file(world: World, damage: str) -> None:
    from warehouse.errors import DamagedFileError

    victim = world.files["http_feb"]
    if damage == "torn":
        victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    else:
        _flip_data_pages(victim)
    for attempt in (lambda: build_export(world.config, ALICE, now=NOW),
                    lambda: erase_subject(world.config, ALICE, now=NOW, publish=False)):
        with pytest.raises(DamagedFileError) as err:
            attempt()
        assert err.value.path == str(victim) and err.value.table == "http_request"
        assert "_quarantine" in err.value.fix
