"""Access and portability: everything the warehouse holds linked to one subject, as one JSON document
(and, on request, one CSV per table beside it).

What is in an export:

- ``subject_key`` and ``pseudonyms`` (period -> pseudonym): the only place where a key and its
  pseudonyms appear together. The export is written with mode 0600 to a new file whose name holds no
  personal data; hand it to the person and delete it.
- ``tables``: every row of every minimised table whose ``subject`` is one of those pseudonyms (all
  key periods), with its ``event_date`` partition.
- ``consent_history``: the consent_record rows, oldest first.
- ``requests``: the person's privacy requests and their outcomes, from the rights trail.
- ``schema``: per table, each column's name, Avro type and description (from the minimised .avsc).
- ``kafka``: how long minimised Kafka topics keep events (pseudonyms may still be there).

Restricted rows are included: restriction hides rows from analysts, not from the person.
"""

from __future__ import annotations

import csv
import json
import os
import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb

from datamin.clock import as_utc, utc_now
from datamin.config import TABLES, Config
from schemas.registry import Registry, default_registry
from warehouse.arrow import time_column
from warehouse.damage import named_damage
from warehouse.layout import Layout, layout_of
from warehouse.rights.subjects import SUBJECT_COLUMN, Subject, resolve_subject
from warehouse.rights.trail import read_requests

FORMAT = "datamin-subject-export/1"


def schema_description(registry: Registry | None = None, tables: Sequence[str] = TABLES) -> dict[str, Any]:
    """``{table: {"doc", "fields": [{"name", "type", "doc"}]}}`` from the latest minimised schemas."""
    registry = registry or default_registry()
    out: dict[str, Any] = {}
    for table in tables:
        definition = registry.latest(table, "minimised").definition
        out[table] = {"doc": definition.get("doc", ""),
                      "fields": [{"name": f["name"], "type": f["type"], "doc": f.get("doc", "")}
                                 for f in definition["fields"]]
                      + [{"name": "event_date", "type": "date", "doc": "Day partition (UTC) the row is stored in."}]}
    return out


def subject_rows(layout: Layout, table: str, pseudonyms: Sequence[str]) -> list[dict[str, Any]]:
    """Every row of ``table`` whose ``subject`` is in ``pseudonyms``, with ``event_date``, oldest first."""
    files = layout.data_files(table)
    if not files or not pseudonyms:
        return []
    sql = ("SELECT * FROM read_parquet($files, hive_partitioning = true, union_by_name = true) "  # noqa: S608
           f"WHERE {SUBJECT_COLUMN} IN (SELECT unnest($pseudonyms)) ORDER BY {time_column(table)}")
    with named_damage(layout, candidates=files), duckdb.connect() as con:  # damage named, with the fix
        con.execute("SET TimeZone = 'UTC'")
        result = con.execute(sql, {"files": [str(f) for f in files], "pseudonyms": list(pseudonyms)})
        names = [d[0] for d in result.description or []]
        return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def _by_time(table: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    column = time_column(table)
    return sorted(rows, key=lambda row: (row[column] is None, row[column] or 0))


def build_export(config: Config, subject_key: str | Subject, *, now: datetime) -> dict[str, Any]:
    """The export document (see the module docstring) as a dict; no file is written."""
    layout = layout_of(config)
    subject = resolve_subject(config, subject_key)
    pseudonyms = subject.pseudonyms
    values = sorted(set(pseudonyms.values()))
    area = Layout(layout.restricted_dir)  # a restricted subject's rows are kept apart, and are theirs too
    tables = {t: _by_time(t, subject_rows(layout, t, values) + subject_rows(area, t, values)) for t in TABLES}
    requests = [r.to_dict() for r in read_requests(layout, now=now, subject_hash=subject.hash)]
    return {
        "format": FORMAT,
        "generated_at": as_utc(now).isoformat(),
        "subject_key": subject.key,
        "pseudonyms": [{"period": p, "subject": v} for p, v in pseudonyms.items()],
        "tables": tables,
        "consent_history": tables.get("consent_record", []),
        "requests": requests,
        "schema": schema_description(),
        "kafka": (f"Minimised Kafka topics keep events for {config.topics.minimised_retention_days} day(s); "
                  "events of the last days may still be there with these pseudonyms, and are not in this export."),
    }


def export_subject(config: Config, subject_key: str | Subject, out_dir: str | os.PathLike[str], *, fmt: str = "json",
                   now: datetime | None = None) -> Path:
    """Writes the export of ``subject_key`` into ``out_dir`` and returns its path.

    ``fmt="json"``: one file ``datamin-export-<time>-<id>.json``. ``fmt="csv"``: a folder of that name
    holding ``export.json`` and one ``<table>.csv`` per table with rows. Files are 0600, the folder 0700.
    Raises ValueError for another format or an empty subject key."""
    if fmt not in ("json", "csv"):
        raise ValueError(f"export format {fmt!r} is not supported: use 'json' or 'csv'")
    at = as_utc(now or utc_now())
    document = build_export(config, subject_key, now=at)
    base = Path(out_dir)
    base.mkdir(parents=True, exist_ok=True)
    stem = f"datamin-export-{at.strftime('%Y%m%dT%H%M%SZ')}-{uuid.uuid4().hex[:8]}"
    if fmt == "json":
        path = base / f"{stem}.json"
        _write_private(path, json.dumps(document, default=_jsonable, indent=2, sort_keys=True))
        return path
    folder = base / stem
    folder.mkdir(mode=0o700)
    _write_private(folder / "export.json", json.dumps(document, default=_jsonable, indent=2, sort_keys=True))
    for table, rows in document["tables"].items():
        if rows:
            _write_csv(folder / f"{table}.csv", rows)
    return folder


def _jsonable(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot write a {type(value).__name__} as JSON")


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _jsonable(v) if isinstance(v, (datetime, date, bytes)) else v
                             for k, v in row.items()})
