"""Erasure (right to deletion) and withdrawal of consent in the warehouse's Parquet files.

`erase_subject` removes every row whose ``subject`` is one of the person's pseudonyms (all key
periods, all tables), publishes the person's keyed hash on the compacted erased-subjects topic so no
replay or backfill brings them back, and writes the audit trail. Guarantees:

- Only files that hold the person's rows are rewritten; every other file keeps its inode and mtime.
- A rewrite is atomic (`datamin.files.replace_file`): the new content goes to ``.<name>.<random>.tmp``
  in the same partition folder (a dot-file not ending in ``.parquet``: the views' glob, the sink and
  compaction never read it), is fsynced, then ``os.replace``d over the original, keeping its name
  (so the sink's offset-range name stays parseable) and the folder fsynced. A reader sees the old
  file or the new one, never half.
  A file left with no rows stays as an empty file with the same columns.
- A leftover ``.<name>.<random>.tmp`` (a crash mid-rewrite; the original is intact) is removed by the next run.
- Erasing twice is harmless (the second finds nothing); an unknown subject succeeds with a receipt
  saying nothing was held.
- No subject key is written anywhere: the audit trail gets tables, partitions, counts and the
  request id; the topic gets the keyed hash.

Crypto-shredding is not used per person: pseudonymisation keys are per period and shared by all
subjects, so deleting one would unlink everyone. Keys expire with their period's data instead.

Known window: minimised Kafka topics keep events (with pseudonyms) for
``topics.minimised_retention_days``; the receipt says so. Events the processor minimised *before*
the erasure may still reach the warehouse during that window: the erased pseudonyms are kept (no
key, no hash beside them) in ``_rights/erased_sweep.parquet`` until the window ends, and
`sweep_erased` (run it from the scheduler, e.g. hourly) deletes such late rows.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from datamin.clock import as_utc
from datamin.config import TABLES, Config
from datamin.files import replace_file
from datamin.kafka import send_and_wait
from datamin.topics import Topics
from schemas.registry import Registry, default_registry
from warehouse.audit_trail import AuditEntry, AuditLog
from warehouse.damage import named_damage
from warehouse.layout import Layout, layout_of
from warehouse.rights.quarantine import QuarantineErasure, withdraw_quarantine
from warehouse.rights.subjects import Subject, files_holding, resolve_subject, row_matches

log = logging.getLogger(__name__)

AUDIT_KIND = "erasure"
REWRITE_TEMP = ".*.parquet.*.tmp"
"""what `datamin.files.replace_file` leaves behind a data file when a crash interrupts a rewrite"""
COMPRESSION = "zstd"
_SWEEP_SCHEMA = pa.schema([pa.field("subject", pa.string(), nullable=False),
                           pa.field("erased_at", pa.timestamp("us", tz="UTC"), nullable=False),
                           pa.field("until", pa.timestamp("us", tz="UTC"), nullable=False)])
_CONSENT_ONLY_TABLES = ("http_request", "usage_event", "device_report")


@dataclass(frozen=True)
class FileChange:
    """One data file rewritten: its path relative to the warehouse root, and the rows affected."""

    table: str
    path: str
    rows: int
    bytes_before: int
    bytes_after: int


@dataclass(frozen=True)
class Receipt:
    """What an erasure (or withdrawal) did. Holds no subject key and no pseudonym."""

    request_id: str
    action: str
    """"erasure" or "withdrawal\""""
    at: datetime
    subject_known: bool
    """False when the warehouse held no row of the subject (then nothing was changed)"""
    tables: dict[str, int] = field(default_factory=dict)
    """table -> rows deleted (erasure) or stripped of identifiers (withdrawal)"""
    files: tuple[FileChange, ...] = ()
    periods: int = 0
    """key periods whose pseudonym of the subject was looked for"""
    kafka_window: str = ""
    """until when minimised Kafka topics may still hold the subject's pseudonyms"""
    notes: tuple[str, ...] = ()

    @property
    def rows(self) -> int:
        return sum(self.tables.values())

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form (times as ISO 8601)."""
        out = asdict(self)
        out["at"] = self.at.isoformat()
        out["rows"] = self.rows
        return out

    def summary(self) -> str:
        """One line for people: what was done, without personal data."""
        if not self.subject_known:
            return f"{self.action} {self.request_id}: the warehouse held no rows of this subject; nothing to change"
        tables = ", ".join(f"{t}: {n}" for t, n in sorted(self.tables.items()))
        verb = "deleted" if self.action == "erasure" else "stripped of identifiers"
        return f"{self.action} {self.request_id}: {self.rows} row(s) {verb} in {len(self.files)} file(s) ({tables})"


# -- rewriting one file ----------------------------------------------------------------------------

Change = Callable[[pa.Table], tuple[pa.Table, int]]
"""Rows of a file -> (the rows to keep, how many rows were deleted or changed)."""


def rewrite_file(path: Path, change: Change, *, fsync: bool = True) -> tuple[int, int, int] | None:
    """Replaces ``path`` by ``change(its rows)``, atomically (see the module docstring); returns
    (rows affected, bytes before, bytes after), or None without writing when nothing was affected.
    Columns, their types and the schema metadata are kept."""
    with named_damage(Layout(path.parents[2]), path):  # <root>/<table>/<day>/<file>: a damaged file, named
        source = pq.ParquetFile(path)
        before = path.stat().st_size
        rows = source.read()
    new, affected = change(rows)
    if affected == 0:
        return None
    group = source.metadata.row_group(0).num_rows if source.metadata.num_row_groups else 0
    replace_file(path, lambda f: pq.write_table(new.cast(rows.schema), f, compression=COMPRESSION,
                                                row_group_size=max(1, group) or None), fsync=fsync)
    after = path.stat().st_size
    return affected, before, after


def _without(table: str, pseudonyms: Mapping[str, datetime | None]) -> Change:
    def keep(rows: pa.Table) -> tuple[pa.Table, int]:
        hit = row_matches(rows, table, pseudonyms)
        kept = rows.filter(pc.invert(hit))
        return kept, rows.num_rows - kept.num_rows
    return keep


def _blanked(table: str, pseudonyms: Mapping[str, datetime | None], columns: Sequence[str]) -> Change:
    def blank(rows: pa.Table) -> tuple[pa.Table, int]:
        hit = row_matches(rows, table, pseudonyms)
        affected = pc.sum(pc.cast(hit, pa.int64())).as_py() or 0
        for name in columns:
            if name in rows.column_names:
                i = rows.column_names.index(name)
                col = rows.column(i)
                rows = rows.set_column(i, rows.field(i), pc.if_else(hit, pa.scalar(None, col.type), col))
        return rows, int(affected)
    return blank


def _blanker(pseudonyms: Mapping[str, datetime | None], columns: Sequence[str]) -> Callable[[str], Change]:
    return lambda table: _blanked(table, pseudonyms, columns)


def remove_leftovers(layout: Layout, tables: Iterable[str]) -> int:
    """Deletes ``.<name>.parquet.<random>.tmp`` files a crashed rewrite left behind; returns how many."""
    removed = 0
    for table in tables:
        folder = layout.table_dir(table)
        if folder.is_dir():
            for tmp in folder.glob(f"*/{REWRITE_TEMP}"):
                tmp.unlink(missing_ok=True)
                removed += 1
    return removed


def _apply(layout: Layout, tables: Sequence[str], pseudonyms: Mapping[str, datetime | None],
           change: Callable[[str], Change], *, fsync: bool, rounds: int = 3) -> list[FileChange]:
    """Rewrites every file holding rows of ``pseudonyms`` with ``change(table)``, then scans the files
    added or replaced meanwhile (by the sink or compaction) until a scan finds nothing, at most
    ``rounds`` times."""
    changes: list[FileChange] = []
    remove_leftovers(layout, tables)
    seen: dict[Path, tuple[int, int]] = {}
    for _ in range(rounds):
        found = files_holding(layout, tables, pseudonyms, seen=seen)
        if not found:
            break
        for table, files in sorted(found.items()):
            for path in sorted(files):
                try:
                    done = rewrite_file(path, change(table), fsync=fsync)
                except FileNotFoundError:
                    continue  # expired or compacted away meanwhile; the next scan looks again
                with contextlib.suppress(FileNotFoundError):
                    st = path.stat()
                    seen[path] = (st.st_ino, st.st_mtime_ns)  # our own rewrite needs no second look
                if done is not None:
                    rows, before, after = done
                    changes.append(FileChange(table, os.path.relpath(path, layout.root), rows, before, after))
    return changes


# -- erasure ---------------------------------------------------------------------------------------

def kafka_window(config: Config, at: datetime) -> str:
    """The statement of how long minimised Kafka topics may still hold the subject's pseudonyms."""
    days = config.topics.minimised_retention_days
    until = as_utc(at) + timedelta(days=days)
    return (f"Minimised Kafka topics keep events for {days} day(s): events minimised before "
            f"{as_utc(at).isoformat()} may hold this subject's pseudonyms there until {until.isoformat()}, "
            "when Kafka deletes them; rows that reach the warehouse meanwhile are deleted by the erasure sweep.")


def erase_rows(layout: Layout, pseudonyms: Iterable[str], *, tables: Sequence[str] = TABLES,
               fsync: bool = True) -> list[FileChange]:
    """Deletes every row whose ``subject`` is in ``pseudonyms`` from ``tables``; file I/O only.
    Returns the files rewritten (none when no file held such a row)."""
    wanted = dict.fromkeys(pseudonyms)
    if not wanted:
        return []
    return _apply(layout, tables, wanted, lambda table: _without(table, wanted), fsync=fsync)


def key_note(config: Config) -> str:
    """What the receipt says about pseudonymisation keys: what the scheduler really does with them."""
    from warehouse.retention import key_retention

    days = key_retention(config).days
    return ("Pseudonymisation keys are per period and shared by all subjects, so no key was deleted for this "
            f"person (no crypto-shredding per person). The scheduler deletes each period's key {days} days after "
            "the period ends, when no store can still hold data of that period; from then on no one can link "
            "that period's pseudonyms to anyone.")


def erase_subject(config: Config, subject_key: str | Subject, *, now: datetime, request_id: str | None = None,
                  publish: bool = True, fsync: bool = True) -> Receipt:
    """Erases everything the warehouse holds linked to ``subject_key``; see the module docstring.

    Order: the erased-subjects record is published first (with ``publish``; acks=all), so the
    processor stops keeping identifiers before the files are rewritten; then the rows are deleted,
    the subject's pseudonyms leave the restricted list, the sweep list gets them until the Kafka
    window ends, and the audit trail gets one entry per file. Raises BrokerError when Kafka cannot
    take the record (nothing is changed then; run it again)."""
    import uuid

    from warehouse.rights.restriction import remove_restricted

    at = as_utc(now)
    request_id = request_id or str(uuid.uuid4())
    layout = layout_of(config)
    subject = resolve_subject(config, subject_key)
    pseudonyms = subject.pseudonyms
    if publish:
        publish_erased(config, subject.hash, erased_at=at, request_id=request_id)
    wanted = frozenset(pseudonyms.values())
    changes = erase_rows(layout, wanted, fsync=fsync)
    changes += erase_rows(Layout(layout.restricted_dir), wanted, fsync=fsync)  # restricted rows too
    remove_restricted(layout, wanted)
    add_to_sweep(layout, wanted, erased_at=at, until=at + timedelta(days=config.topics.minimised_retention_days))
    _audit(layout, changes, at=at, action="erase_rows", request_id=request_id)
    tables: dict[str, int] = {}
    for c in changes:
        tables[c.table] = tables.get(c.table, 0) + c.rows
    notes = (key_note(config),)
    return Receipt(request_id=request_id, action="erasure", at=at, subject_known=bool(changes), tables=tables,
                   files=tuple(changes), periods=_periods(pseudonyms), kafka_window=kafka_window(config, at),
                   notes=notes)


def _periods(pseudonyms: Mapping[str, str]) -> int:
    """Key periods looked at (a period's pseudonym of the subject's hash is not another period)."""
    return len({period.split("/")[0] for period in pseudonyms})


def _audit(layout: Layout, changes: Sequence[FileChange], *, at: datetime, action: str, request_id: str) -> None:
    entries = [AuditEntry(at=at, job=AUDIT_KIND, action=action, table_name=c.table,
                          partition=Path(c.path).parent.name, rows=c.rows, bytes=c.bytes_before - c.bytes_after
                          if c.bytes_before >= c.bytes_after else 0, detail=f"request {request_id}")
               for c in changes]
    if not entries:
        entries = [AuditEntry(at=at, job=AUDIT_KIND, action=action, table_name="*", partition=None, rows=0,
                              bytes=0, detail=f"request {request_id}: no rows held")]
    AuditLog(layout).append(entries, kind=AUDIT_KIND, key=f"{action}/{request_id}/{at.isoformat()}")


def publish_erased(config: Config, hashed: str, *, erased_at: datetime, request_id: str,
                   timeout: float = 15.0) -> None:
    """Publishes ``{"erased_at", "request_id"}`` keyed by the keyed hash to the compacted
    erased-subjects topic, and waits for acks=all. Raises BrokerError when Kafka does not take it."""
    value = json.dumps({"erased_at": as_utc(erased_at).isoformat(), "request_id": request_id}).encode()
    send_and_wait(config, Topics(config).erased_subjects, key=hashed.encode("ascii"), value=value,
                  doing="publishing to the erased-subjects topic", timeout=timeout)


# -- the sweep of late rows ------------------------------------------------------------------------

def _sweep_path(layout: Layout) -> Path:
    return layout.erased_sweep_file


def _read_sweep(layout: Layout) -> dict[str, tuple[datetime, datetime]]:
    path = _sweep_path(layout)
    if not path.exists():
        return {}
    return {r["subject"]: (r["erased_at"], r["until"]) for r in pq.read_table(path).to_pylist()}


def _write_sweep(layout: Layout, entries: Mapping[str, tuple[datetime, datetime]]) -> None:
    from warehouse.rights.restriction import write_atomically

    table = pa.Table.from_pylist([{"subject": s, "erased_at": e, "until": u} for s, (e, u) in sorted(entries.items())],
                                 schema=_SWEEP_SCHEMA)
    write_atomically(_sweep_path(layout), table)


def add_to_sweep(layout: Layout, pseudonyms: Iterable[str], *, erased_at: datetime, until: datetime) -> None:
    """Keeps ``pseudonyms`` on the sweep list until ``until`` (the end of the Kafka window): rows of
    theirs timed at or before ``erased_at`` that arrive later are deleted by `sweep_erased`. (Rows timed
    after it can only come from a consent given after the erasure: a new relationship, kept.)"""
    entries = _read_sweep(layout)
    changed = False
    for p in pseudonyms:
        old = entries.get(p)
        entries[p] = (max(erased_at, old[0]), max(until, old[1])) if old else (erased_at, until)
        changed = True
    if changed:
        _write_sweep(layout, entries)


def sweep_erased(layout: Layout, *, now: datetime, fsync: bool = True) -> list[FileChange]:
    """Deletes rows of erased pseudonyms, timed before their erasure, that reached the warehouse after
    it (from minimised topics), then forgets pseudonyms whose Kafka window has ended. Rewrites only
    files holding such rows; safe to run at any time, as often as wished (e.g. hourly)."""
    at = as_utc(now)
    entries = _read_sweep(layout)
    if not entries:
        return []
    cutoffs: dict[str, datetime | None] = {s: e for s, (e, _) in entries.items()}
    changes = _apply(layout, TABLES, cutoffs, lambda table: _without(table, cutoffs), fsync=fsync)
    if changes:
        _audit(layout, changes, at=at, action="sweep_rows", request_id="erasure sweep")
    live = {s: v for s, v in entries.items() if v[1] > at}
    if live != entries:
        _write_sweep(layout, live)
    return changes


# -- withdrawal of consent -------------------------------------------------------------------------

def consent_only_columns(registry: Registry | None = None) -> dict[str, tuple[str, ...]]:
    """``{table: columns}``: the minimised identifier columns that only consent allows, read from the
    schema annotations (a pseudonymised field every purpose of which needs a consent). With the
    shipped schemas: ``subject``, ``user_id``, ``client_id``, ``session_id``, ``advertising_id`` and
    ``app_instance_id`` of http_request, usage_event and device_report."""
    registry = registry or default_registry()
    out: dict[str, tuple[str, ...]] = {}
    for table in _CONSENT_ONLY_TABLES:
        if table not in registry.event_types("raw"):
            continue
        columns: list[str] = []
        for version in registry.versions(table, "raw"):
            for p in version.policies:
                if p.rule == "pseudonymise" and p.purposes and all(
                        registry.purposes[name].consent is not None for name in p.purposes):
                    columns += [c for c in p.into if c not in columns]
        out[table] = tuple(columns)
    return out


def withdraw_subject(config: Config, subject_key: str | Subject, *, now: datetime, request_id: str | None = None,
                     fsync: bool = True) -> Receipt:
    """Erases what was kept on the basis of consent alone: on the subject's rows of http_request,
    usage_event and device_report, the identifier columns of `consent_only_columns` are set to null.

    Why blank rather than delete: the rest of such a row (a truncated network, a browser family, a
    page, a time) is exactly what the pipeline keeps for everyone without consent, on legitimate
    interest (security, aggregate usage patterns); only the link to the person rested on the consent.
    Blanking removes that link and keeps the aggregates honest; deleting would also destroy data the
    consent never covered. consent_record and privacy_request rows are kept: they rest on a legal
    obligation (showing which consent was given and when, answering requests), and the withdrawal
    does not affect the lawfulness of what came before. Future events lose their identifiers in the
    processor (the withdrawal request on the privacy-requests topic)."""
    import uuid

    at = as_utc(now)
    request_id = request_id or str(uuid.uuid4())
    layout = layout_of(config)
    pseudonyms = resolve_subject(config, subject_key).pseudonyms
    wanted: dict[str, datetime | None] = dict.fromkeys(pseudonyms.values())
    changes: list[FileChange] = []
    quarantine = QuarantineErasure()
    if wanted:
        consent_only = consent_only_columns()
        for table, columns in consent_only.items():
            if columns:
                for where in (layout, Layout(layout.restricted_dir)):  # the tables and restricted rows
                    changes += _apply(where, [table], wanted, _blanker(wanted, columns), fsync=fsync)
        quarantine = withdraw_quarantine(layout, wanted, consent_only)  # files set aside hold them too
    _audit(layout, changes, at=at, action="withdraw_identifiers", request_id=request_id)
    tables: dict[str, int] = {}
    for c in changes:
        tables[c.table] = tables.get(c.table, 0) + c.rows
    notes = ("Rows kept, identifiers set to null: the rest of each row rests on legitimate interest. "
             "consent_record and privacy_request rows are kept (legal obligation).",
             f"Quarantine: {quarantine.files_checked} file(s) checked, {quarantine.rows_blanked} row(s) blanked in "
             f"{quarantine.files_rewritten} file(s), {quarantine.unreadable_deleted} unreadable file(s) deleted.")
    return Receipt(request_id=request_id, action="withdrawal", at=at, subject_known=bool(changes), tables=tables,
                   files=tuple(changes), periods=_periods(pseudonyms), kafka_window=kafka_window(config, at),
                   notes=notes)
