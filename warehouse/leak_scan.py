"""The leak scan: looks through what datamin keeps for personal data that minimisation should have removed.

``scan_warehouse`` scans every Parquet file of every table with DuckDB (a few queries per table, over
all its files at once; no Python loop over rows), ``scan_topics`` reads the minimised Kafka topics from
the beginning and applies the same detectors to the decoded records, and ``run_leak_scan`` (behind
``datamin audit [--topics]`` and the scheduler's daily job) does both and writes the run to the audit
trail (``_audit/leak_audit/``): one ``leak_found`` entry per finding, or one ``clean`` entry.

What counts as a leak, per column role, is ``warehouse.leak_detectors``. A finding names table,
partition (event_date), column, file (for topics: ``<topic>~p<partition>``), kind and the number of
rows: never the value found, so that the report does not spread the leak.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import duckdb

from datamin.clock import as_utc, utc_now
from datamin.config import Config
from datamin.exceptions import BrokerError, DecodeError
from schemas import Registry, decode, default_registry
from warehouse.audit_trail import AuditEntry, AuditLog
from warehouse.layout import PARTITION_KEY, Layout, layout_of
from warehouse.leak_detectors import (
    UNDECODABLE,
    UUID_PATTERN,
    Detector,
    Detectors,
    Finding,
    column_roles,
    merge_findings,
    scan_records,
)
from warehouse.sql import quote_identifier, quote_literal

JOB: Final = "leak_audit"
"""job name and audit-trail kind of every leak scan"""


@dataclass(frozen=True)
class LeakReport:
    """What one audit found and how much it looked at. ``clean`` only when nothing was found or skipped."""

    at: datetime
    findings: tuple[Finding, ...] = ()
    files_scanned: int = 0
    rows_scanned: int = 0
    messages_scanned: int = 0
    unreadable: tuple[str, ...] = ()
    """``<table>/event_date=…/<file>`` of data files that could not be read (so were not checked)"""

    @property
    def clean(self) -> bool:
        return not self.findings and not self.unreadable

    def merge(self, other: LeakReport) -> LeakReport:
        """Both reports' findings and counts, at this report's time."""
        return replace(self, findings=self.findings + other.findings,
                       files_scanned=self.files_scanned + other.files_scanned,
                       rows_scanned=self.rows_scanned + other.rows_scanned,
                       messages_scanned=self.messages_scanned + other.messages_scanned,
                       unreadable=self.unreadable + other.unreadable)

    def format(self) -> str:
        """The report for people: a summary line, then one line per finding and unreadable file."""
        scanned = f"{self.files_scanned:,} files, {self.rows_scanned:,} rows"
        if self.messages_scanned:
            scanned += f", {self.messages_scanned:,} topic messages"
        if self.clean:
            return f"leak scan {self.at.isoformat()}: clean ({scanned} scanned)"
        lines = [f"leak scan {self.at.isoformat()}: {len(self.findings)} finding"
                 f"{'' if len(self.findings) == 1 else 's'} ({scanned} scanned); values are not shown"]
        if self.findings:
            header = ("table", "partition", "column", "kind", "rows", "file")
            rows = [(f.table, f.partition or "-", f.column, f.kind, f"{f.count:,}", f.file) for f in self.findings]
            widths = [max(len(r[i]) for r in (header, *rows)) for i in range(5)]
            for r in (header, *rows):
                cells = [r[i].ljust(widths[i]) if i != 4 else r[i].rjust(widths[i]) for i in range(5)]
                lines.append("  ".join([*cells, r[5]]))
        lines += [f"unreadable, not checked: {name}" for name in self.unreadable]
        return "\n".join(lines)


# -- the warehouse ------------------------------------------------------------------------------------
_FILE_COL: Final = "__leak_audit_file"


def scan_warehouse(layout: Layout, *, now: datetime, tables: Sequence[str] | None = None,
                    ipv4_prefix: int = 16, ipv6_prefix: int = 32, id_patterns: Sequence[str] = (),
                    detectors: Detectors | None = None) -> LeakReport:
    """Scans every data file of ``tables`` (default: all) under ``layout``; reads only, writes nothing.

    ``ipv4_prefix``/``ipv6_prefix`` are the deployment's truncation (config.minimise): an address with
    host bits set beyond them is a finding. A file that vanishes during the scan (expiry, compaction)
    is skipped; one that cannot be read is listed in ``unreadable``. ``detectors``, when given, replaces
    the prefixes and id patterns. Raises ValueError for a bad prefix or id pattern, or a naive ``now``."""
    detectors = detectors or Detectors(ipv4_prefix=ipv4_prefix, ipv6_prefix=ipv6_prefix, id_patterns=id_patterns)
    report = LeakReport(at=as_utc(now))
    wanted = layout.tables() if tables is None else [t for t in layout.tables() if t in set(tables)]
    con = duckdb.connect()
    try:
        for table in wanted:
            files = [p for _, folder in layout.partitions(table) for p in sorted(folder.glob("*.parquet"))
                     if not p.name.startswith(".") and p.is_file()]
            if files:
                report = report.merge(_scan_files(con, detectors, table, files, report.at))
    finally:
        con.close()
    return report


def _scan_files(con: duckdb.DuckDBPyConnection, detectors: Detectors, table: str, files: list[Path],
                at: datetime) -> LeakReport:
    """All files of a table in one go; on a read error, file by file to find the one at fault."""
    try:
        return _TableScan(con, detectors, table, files).run(at)
    except duckdb.Error:
        if len(files) > 1:
            report = LeakReport(at=at)
            for path in files:
                report = report.merge(_scan_files(con, detectors, table, [path], at))
            return report
        if not files[0].exists():
            return LeakReport(at=at)  # expired or compacted away while we looked
        return LeakReport(at=at, unreadable=(f"{table}/{files[0].parent.name}/{files[0].name}",))


class _TableScan:
    """The DuckDB side of a table's scan: query 1 counts rows and search/format matches per file;
    query 2 collects the distinct candidates of extract/whole detectors, which Python checks; query 3
    (only when some candidate is a leak) counts the rows holding one, per file."""

    def __init__(self, con: duckdb.DuckDBPyConnection, detectors: Detectors, table: str, files: list[Path]) -> None:
        self.con, self.detectors, self.table = con, detectors, table
        self.files = [str(p) for p in files]
        self.source = (f"read_parquet($files, filename={quote_literal(_FILE_COL)}, union_by_name=true, "
                       "hive_partitioning=false)")

    def run(self, at: datetime) -> LeakReport:
        columns = self._string_columns()
        counted: list[tuple[str, str, str]] = []  # (column, kind, SQL) of search/format detectors
        extracted: dict[tuple[str, str], list[Detector]] = {}  # (column, candidate SQL) -> detectors
        for column in columns:
            value = self._value_sql(column)
            for d in self.detectors.for_column(column):
                if d.mode == "search":
                    counted.append((column, d.kind, f"regexp_matches({value}, {quote_literal(d.pattern)})"))
                elif d.mode == "format":
                    counted.append((column, d.kind, f"({value} <> '' AND NOT regexp_full_match({value}, "
                                                    f"{quote_literal(d.pattern)}))"))
                else:
                    candidates = (f"list_value({value})" if d.mode == "whole"
                                  else f"regexp_extract_all({value}, {quote_literal(d.pattern)})")
                    extracted.setdefault((column, candidates), []).append(d)
        select = ", ".join(["count(*) AS n"] + [f"count(*) FILTER (WHERE {sql}) AS a{i}"
                                                for i, (_, _, sql) in enumerate(counted)])
        per_file = self._query(f"SELECT {quote_identifier(_FILE_COL)}, {select} FROM {self.source} GROUP BY 1")  # noqa: S608
        counts: Counter[tuple[str, str, str]] = Counter()
        rows = 0
        for name, n, *hits in per_file:
            rows += n
            for (column, kind, _), hit in zip(counted, hits, strict=True):
                counts[(name, column, kind)] += hit
        for (name, column, kind), hit in self._extracted_counts(extracted).items():
            counts[(name, column, kind)] += hit
        findings = tuple(Finding(self.table, _partition_of(name), column, Path(name).name, kind, hit)
                         for (name, column, kind), hit in sorted(counts.items()) if hit)
        return LeakReport(at=at, findings=findings, files_scanned=len(self.files), rows_scanned=rows)

    def _query(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, {"files": self.files, **(params or {})}).fetchall()

    def _string_columns(self) -> list[str]:
        described = self._query(f"DESCRIBE SELECT * FROM {self.source}")  # noqa: S608 - quoted literals
        return [row[0] for row in described if row[1] == "VARCHAR" and row[0] != _FILE_COL]

    def _value_sql(self, column: str) -> str:
        col = quote_identifier(column)
        if column in self.detectors.roles.event_id:  # a random UUID is what belongs there
            return f"(CASE WHEN regexp_full_match({col}, {quote_literal(UUID_PATTERN)}) THEN NULL ELSE {col} END)"
        return col

    def _extracted_counts(self, extracted: Mapping[tuple[str, str], list[Detector]]) -> Counter[tuple[str, str, str]]:
        if not extracted:
            return Counter()
        keys = list(extracted)
        union = " UNION ALL ".join(f"SELECT DISTINCT {i} AS k, unnest({sql}) AS m FROM {self.source}"  # noqa: S608
                                   for i, (_, sql) in enumerate(keys))
        leaky: dict[tuple[int, str], set[str]] = {}
        for k, candidate in self._query(union):
            if candidate is None:
                continue
            for d in extracted[keys[k]]:
                assert d.check is not None
                if d.check(candidate):
                    leaky.setdefault((k, d.kind), set()).add(candidate)
        if not leaky:
            return Counter()
        order = sorted(leaky)
        select = ", ".join(f"count(*) FILTER (WHERE list_has_any({keys[k][1]}, $v{i}::VARCHAR[])) AS b{i}"
                           for i, (k, _) in enumerate(order))
        params = {f"v{i}": sorted(leaky[key]) for i, key in enumerate(order)}
        counts: Counter[tuple[str, str, str]] = Counter()
        sql = f"SELECT {quote_identifier(_FILE_COL)}, {select} FROM {self.source} GROUP BY 1"  # noqa: S608
        for name, *hits in self._query(sql, params):
            for (k, kind), hit in zip(order, hits, strict=True):
                counts[(name, keys[k][0], kind)] += hit
        return counts




def _partition_of(file_name: str) -> str | None:
    folder = Path(file_name).parent.name
    prefix = f"{PARTITION_KEY}="
    return folder[len(prefix):] if folder.startswith(prefix) else None


# -- the minimised topics -----------------------------------------------------------------------------
def scan_topics(config: Config, *, max_messages_per_partition: int = 1_000_000,
                 id_patterns: Sequence[str] = (), registry: Registry | None = None, timeout_s: float = 300.0,
                 now: datetime | None = None) -> LeakReport:
    """Reads every minimised topic from the beginning (committed messages only; no consumer group, so
    no offsets are committed), at most ``max_messages_per_partition`` per partition, and checks each
    decoded record with the same detectors as the warehouse (prefixes from config.minimise). A message
    that does not decode is an ``undecodable`` finding. Raises BrokerError when Kafka cannot be reached
    or the read takes longer than ``timeout_s``."""

    from datamin.kafka import TopicPartition, new_consumer, require_reachable, translate_kafka_errors
    from datamin.topics import MINIMISED_EVENTS, Topics

    if max_messages_per_partition < 1:
        raise ValueError("max_messages_per_partition must be at least 1")
    registry = registry if registry is not None else default_registry()
    detectors = Detectors(ipv4_prefix=config.minimise.ipv4_prefix, ipv6_prefix=config.minimise.ipv6_prefix,
                          id_patterns=id_patterns, roles=column_roles(registry))
    at = as_utc(now if now is not None else utc_now())
    topics = Topics(config)
    doing = "auditing the minimised topics"
    require_reachable(doing, config)
    findings: list[Finding] = []
    scanned = 0
    undecodable: Counter[tuple[str, str]] = Counter()
    with translate_kafka_errors(doing, config):
        consumer = new_consumer(config, group_id=None, isolation_level="read_committed", enable_auto_commit=False)
        try:
            tps = [TopicPartition(topic, p) for topic in (topics.minimised(e) for e in MINIMISED_EVENTS)
                   for p in sorted(consumer.partitions_for_topic(topic) or ())]
            if not tps:
                return LeakReport(at=at)
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            start = {tp: consumer.position(tp) for tp in tps}
            ends = consumer.end_offsets(tps)
            stop = {tp: min(ends[tp], start[tp] + max_messages_per_partition) for tp in tps}
            pending = {tp for tp in tps if start[tp] < stop[tp]}
            deadline = time.monotonic() + timeout_s
            while pending:
                if time.monotonic() > deadline:
                    raise BrokerError(f"{doing} took over {timeout_s:.0f}s; lower max_messages_per_partition "
                                      "or check the broker")
                batch: list[tuple[str, str, Mapping[str, Any]]] = []
                for tp, messages in consumer.poll(timeout_ms=500).items():
                    source = f"{tp.topic}~p{tp.partition}"
                    for message in messages:
                        if message.offset >= stop[tp] or message.value is None:
                            continue
                        scanned += 1
                        try:
                            schema, record = decode(message.value, registry)
                        except DecodeError:
                            undecodable[(tp.topic.rsplit(".", 1)[-1], source)] += 1
                            continue
                        batch.append((schema.name, source, record))
                findings += scan_records(detectors, batch)
                for tp in list(pending):
                    if consumer.position(tp) >= stop[tp]:
                        pending.discard(tp)
                        consumer.pause(tp)
        finally:
            consumer.close(autocommit=False)
    findings += [Finding(table, None, "(message)", source, UNDECODABLE, n)
                 for (table, source), n in undecodable.items()]
    return LeakReport(at=at, findings=merge_findings(findings), messages_scanned=scanned)


# -- the entry point ----------------------------------------------------------------------------------
def record_report(audit: AuditLog, report: LeakReport) -> Path | None:
    """Writes ``report`` to the audit trail (kind ``leak_audit``): a ``leak_found`` entry per finding
    (rows = its count), an ``unreadable`` entry per unreadable file, or one ``clean`` entry (rows = rows
    and messages scanned). Idempotent per report time: writing the same run again adds nothing."""
    at = report.at
    entries = [AuditEntry(at, JOB, "leak_found", f.table, f.partition, f.count, 0,
                          f"{f.kind} in column {f.column} of {f.file}") for f in report.findings]
    entries += [AuditEntry(at, JOB, "unreadable", name.split("/", 1)[0], _partition_of(name), 0, 0,
                           f"could not read {name}; not checked") for name in report.unreadable]
    if not entries:
        entries = [AuditEntry(at, JOB, "clean", "*", None, report.rows_scanned + report.messages_scanned, 0,
                              f"no leak found in {report.files_scanned} files, {report.rows_scanned} rows, "
                              f"{report.messages_scanned} topic messages")]
    return audit.append(entries, kind=JOB, key=at.isoformat())


def run_leak_scan(config: Config, *, now: datetime, include_topics: bool = False,
                   id_patterns: Sequence[str] = (), max_messages_per_partition: int = 1_000_000) -> LeakReport:
    """The audit behind ``datamin audit [--topics]``: the warehouse (and with ``include_topics`` the
    minimised topics), with the configured prefixes, recorded in the audit trail. The command exits
    with 1 unless ``report.clean``."""
    layout = layout_of(config)
    m = config.minimise
    report = scan_warehouse(layout, now=now, ipv4_prefix=m.ipv4_prefix, ipv6_prefix=m.ipv6_prefix,
                             id_patterns=id_patterns)
    if include_topics:
        report = report.merge(scan_topics(config, max_messages_per_partition=max_messages_per_partition,
                                           id_patterns=id_patterns, now=now))
    record_report(AuditLog(layout), report)
    return report
