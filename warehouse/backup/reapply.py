"""What a restore re-applies to a backup's files before anyone can query them, and the dry run of it
that `datamin backup verify` shows.

Sources: the forget ledger (`warehouse.rights.ledger`: erasures, withdrawals, restrictions,
objections and lifts with the keyed hashes of the subject's pseudonyms), the erased-subjects topic
(every erasure by the subject's keyed hash: an erasure it names that the ledger cannot match is
reported, and a restore refuses it unless told otherwise) and the retention rules.

- erasure: rows of the subject's pseudonyms timed at or before the erasure are deleted (rows after it
  can only come from a consent given after the erasure); the pseudonyms go on the erasure sweep
  list for what is left of the minimised topics' window, since the restored sink reloads the offsets
  after the backup's checkpoints;
- withdrawal: the consent-only identifier columns of such rows are set to null;
- restriction, objection, lift: the restriction list is brought to what those requests made it,
  in their order;
- expiry: day partitions past their table's retention are deleted;
- the erasure sweep then runs over the whole restored tree.

Every action applied is appended to the restored audit trail (job ``restore``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from datamin.clock import as_utc
from datamin.config import TABLES, Config
from warehouse.audit_trail import AuditEntry, AuditLog
from warehouse.expiry import expire, plan_expiry
from warehouse.layout import Layout
from warehouse.rights.erasure import add_to_sweep, consent_only_columns, rewrite_file, sweep_erased
from warehouse.rights.ledger import ForgetAction, pseudonym_hash, read_actions, rights_secret
from warehouse.rights.restricted_area import area_layout, expire_restricted, release, sequester
from warehouse.rights.restriction import add_restricted, read_restricted, remove_restricted
from warehouse.rights.subjects import SUBJECT_COLUMN, files_holding, row_matches

AUDIT_JOB = "restore"
UNMATCHED_SLACK = timedelta(days=1)
"""erasures on the topic up to this long before the snapshot are checked too (an erasure may take
its time before the snapshot's lock lets it change the files)"""


@dataclass(frozen=True)
class Reapplied:
    """One action a restore re-applies (or, in a dry run, would re-apply). No key, no pseudonym."""

    action: str
    """erasure, withdrawal, restriction, objection, lift, expiry or sweep"""
    line: str
    rows: int = 0
    request_id: str = ""
    subject_hash: str = ""


@dataclass
class ReapplyReport:
    actions: list[Reapplied] = field(default_factory=list)
    unmatched: list[tuple[str, datetime, str]] = field(default_factory=list)
    """(subject hash, erased_at, request id) erased per the topic with no ledger record to find rows by"""

    def lines(self, *, dry_run: bool) -> list[str]:
        out = [a.line for a in self.actions]
        for hashed, at, rid in self.unmatched:
            out.append(f"UNMATCHED erasure of subject {hashed} at {at.isoformat()} (request {rid}): the forget "
                       "ledger has no record of its pseudonyms, so its rows in this backup cannot be found")
        if not out:
            out.append("nothing to re-apply: no erasure, restriction, withdrawal or expiry since the snapshot "
                       "touches this backup" if dry_run else "nothing had to be re-applied")
        return out


def distinct_subjects(layout: Layout) -> set[str]:
    """Every non-null ``subject`` value in the tables' files."""
    found: set[str] = set()
    with duckdb.connect() as con:
        for table in TABLES:
            files = [str(f) for f in layout.data_files(table)]
            if not files:
                continue
            sql = (f"SELECT DISTINCT {SUBJECT_COLUMN} FROM read_parquet($files, union_by_name = true, "  # noqa: S608
                   f"hive_partitioning = false) WHERE {SUBJECT_COLUMN} IS NOT NULL")
            found.update(r[0] for r in con.execute(sql, {"files": files}).fetchall())
    return found


def _rows_by_table(layout: Layout, cutoffs: Mapping[str, datetime | None],
                   tables: tuple[str, ...] = TABLES) -> dict[str, int]:
    found = files_holding(layout, list(tables), cutoffs)
    return {t: sum(files.values()) for t, files in sorted(found.items()) if sum(files.values())}


def _rewrite(layout: Layout, cutoffs: Mapping[str, datetime | None], tables: tuple[str, ...],
             change: Callable[[str], Callable[[pa.Table], tuple[pa.Table, int]]]) -> dict[str, int]:
    done: dict[str, int] = {}
    for table, files in sorted(files_holding(layout, list(tables), cutoffs).items()):
        for path in sorted(files):
            result = rewrite_file(path, change(table))
            if result is not None:
                done[table] = done.get(table, 0) + result[0]
    return done


def _delete(cutoffs: Mapping[str, datetime | None]) -> Callable[[str], Callable[[pa.Table], tuple[pa.Table, int]]]:
    def for_table(table: str) -> Callable[[pa.Table], tuple[pa.Table, int]]:
        def change(rows: pa.Table) -> tuple[pa.Table, int]:
            kept = rows.filter(pc.invert(row_matches(rows, table, cutoffs)))
            return kept, rows.num_rows - kept.num_rows
        return change
    return for_table


def _blank(cutoffs: Mapping[str, datetime | None],
           columns: Mapping[str, tuple[str, ...]]) -> Callable[[str], Callable[[pa.Table], tuple[pa.Table, int]]]:
    def for_table(table: str) -> Callable[[pa.Table], tuple[pa.Table, int]]:
        def change(rows: pa.Table) -> tuple[pa.Table, int]:
            hit = row_matches(rows, table, cutoffs)
            affected = int(pc.sum(pc.cast(hit, pa.int64())).as_py() or 0)
            for name in columns.get(table, ()):
                if name in rows.column_names:
                    i = rows.column_names.index(name)
                    col = rows.column(i)
                    rows = rows.set_column(i, rows.field(i), pc.if_else(hit, pa.scalar(None, col.type), col))
            return rows, affected
        return change
    return for_table


def _counts(tables: Mapping[str, int]) -> str:
    return ", ".join(f"{t}: {n}" for t, n in sorted(tables.items())) or "none held"


def reapply(layout: Layout, config: Config, *, since: datetime, now: datetime,
            erased_topic: Mapping[str, tuple[datetime, str]] | None, dry_run: bool) -> ReapplyReport:
    """Re-applies (or with ``dry_run`` only reports) what was recorded since ``since`` (the snapshot)
    to the warehouse tree ``layout``, which nobody else may be using. ``erased_topic`` is the
    erased-subjects topic read whole (None: not consulted)."""
    since, now = as_utc(since), as_utc(now)
    report = ReapplyReport()
    audit = AuditLog(layout)
    entries: list[AuditEntry] = []
    ledger = read_actions(layout)
    secret = rights_secret(config, create=False) if ledger else b""
    by_hash = {pseudonym_hash(secret, s): s for s in distinct_subjects(layout)} if ledger else {}

    def present(action: ForgetAction) -> list[str]:
        return sorted(by_hash[h] for h in action.pseudonym_hashes if h in by_hash)

    verb = "will be" if dry_run else "were"
    consent_columns = consent_only_columns()
    for action in ledger:
        pseudonyms = present(action)
        recent = action.at > since
        who = f"subject {action.subject_hash} ({action.action} request {action.request_id}, {action.at.isoformat()})"
        if action.action in ("erasure", "withdrawal"):
            cutoffs: dict[str, datetime | None] = dict.fromkeys(pseudonyms, action.at)
            erase = action.action == "erasure"
            tables = TABLES if erase else tuple(consent_columns)
            counts: dict[str, int] = {}
            for where in (layout, area_layout(layout)):  # the tables and the restricted area
                if not cutoffs:
                    break
                if dry_run:
                    found = _rows_by_table(where, cutoffs, tables)
                else:
                    change = _delete(cutoffs) if erase else _blank(cutoffs, consent_columns)
                    found = _rewrite(where, cutoffs, tables, change)
                for t, n in found.items():
                    counts[t] = counts.get(t, 0) + n
            rows = sum(counts.values())
            if erase and pseudonyms and not dry_run:
                until = action.at + timedelta(days=config.topics.minimised_retention_days)
                if until > now:
                    add_to_sweep(layout, pseudonyms, erased_at=action.at, until=until)
            if not (recent or rows):
                continue  # applied before the snapshot, nothing of it in the backup
            what = ("will be removed on restore" if dry_run else "removed") if erase else \
                f"{verb} stripped of consent-only identifiers"
            report.actions.append(Reapplied(action.action, f"{action.action}: {who}: {rows} row(s) {what} "
                                            f"({_counts(counts)})", rows, action.request_id, action.subject_hash))
            entries.append(AuditEntry(at=now, job=AUDIT_JOB, action=f"reapply_{action.action}", table_name="*",
                                      partition=None, rows=rows, bytes=0, detail=f"request {action.request_id}"))
        else:
            current = read_restricted(layout)
            if action.action == "lift":
                gone = {p for p in current if pseudonym_hash(secret, p) in action.pseudonym_hashes}
                if not dry_run and gone:
                    remove_restricted(layout, gone)
                    release(layout, gone)  # the rows back from the restricted area
                if not (recent or gone):
                    continue
                line = f"lift: {who}: {len(gone)} pseudonym(s) {verb} taken off the restriction list"
            else:
                new = set(pseudonyms) - current
                if not dry_run and new:
                    add_restricted(layout, new)
                if not dry_run and pseudonyms:
                    sequester(layout, pseudonyms)  # out of the analyst-readable files
                if not (recent or new):
                    continue
                rows = sum(_rows_by_table(layout, dict.fromkeys(pseudonyms)).values()) if pseudonyms else 0
                line = (f"{action.action}: {who}: {rows} row(s) {verb} hidden from analysts "
                        f"({len(new)} pseudonym(s) added to the restriction list)")
            report.actions.append(Reapplied(action.action, line, 0, action.request_id, action.subject_hash))
            entries.append(AuditEntry(at=now, job=AUDIT_JOB, action=f"reapply_{action.action}", table_name="*",
                                      partition=None, rows=0, bytes=0, detail=f"request {action.request_id}"))
    if erased_topic is not None:
        ledger_erased = {a.subject_hash for a in ledger if a.action == "erasure"}
        for hashed, (at, rid) in sorted(erased_topic.items()):
            if at > since - UNMATCHED_SLACK and hashed not in ledger_erased:
                report.unmatched.append((hashed, at, rid))
    retention = config.warehouse.retention_days
    expired = plan_expiry(layout, retention, now.date()) if dry_run else \
        expire(layout, retention, now=now, audit=audit, job=AUDIT_JOB)
    if not dry_run:
        expire_restricted(layout, retention, now=now, audit=audit, job=AUDIT_JOB)
    for e in expired:
        report.actions.append(Reapplied("expiry", f"expiry: {e.table}/{e.partition}: {e.rows} row(s) {verb} deleted "
                                        f"(past {e.retention_days} days' retention)", e.rows))
    if not dry_run:
        swept = sweep_erased(layout, now=now)
        if swept:
            rows = sum(c.rows for c in swept)
            report.actions.append(Reapplied("sweep", f"sweep: {rows} late row(s) of erased subjects deleted "
                                            f"in {len(swept)} file(s)", rows))
        if entries:
            audit.append(entries, kind=AUDIT_JOB)
    return report
