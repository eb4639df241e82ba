"""The warehouse's stores in the retention inventory, the scheduler's retention job, and `datamin retention`.

Registers with `datamin.retention` the stores the warehouse keeps:

- each table: day partitions deleted by the daily expiry once past the table's retention (see
  `warehouse.expiry`); a whole day goes at once, so its cap is the retention plus that day;
- the quarantine (``_quarantine/<table>/event_date=D/…``): files moved aside as corrupt or foreign,
  deleted when their day passes their table's retention, like the rows they would have been;
- the audit trail (``_audit/<kind>/<time>-<id>.parquet``) and the rights trail
  (``_rights/requests/<time>-<id>.json``): each file deleted once its time is past the cap;
- the forget ledger (``_rights/forget/<time>-<id>.json``), like the trails;
- the backups (`warehouse.backup.inventory`);
- the erased-subjects sweep list: pseudonyms kept only while the minimised topics may still bring a
  late row, forgotten by the hourly sweep;
- the working folders (``_staging``, ``_compaction``, ``_trash``) and the sink's checkpoints
  (`warehouse.working_folders`);
- the pseudonymisation keys: a key is deleted once its period ended longer ago than any store that
  can hold pseudonyms made with it keeps them (the longest table retention plus its day, the minimised
  topics' retention plus their segment roll); after that, no one can recompute that period's
  pseudonyms from an identifier and its rows (all expired by then anyway) are unlinkable.

`full_inventory(config)` is the whole list (datamin core's stores, these, and any other registered
provider); `run_retention(config, now)` is what the scheduler runs every hour; `report` is what
``datamin retention`` prints.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

import warehouse.backup.inventory  # noqa: F401 - registers the backups store
from datamin.clock import as_utc
from datamin.config import RETENTION_CAP_DAYS, TABLE_RETENTION_MAX_DAYS, Config
from datamin.config import retention_for as effective_retention
from datamin.keys import KeyStore
from datamin.retention import (
    SCHEDULER,
    Store,
    cap_cells,
    cap_words,
    expire_stores,
    files_matching,
    inventory,
    mtime,
    register_stores,
)
from datamin.topics import Topics
from warehouse.layout import Layout
from warehouse.working_folders import working_stores

log = logging.getLogger(__name__)

TRAIL_CAP = timedelta(days=RETENTION_CAP_DAYS - 1)
"""the trails' files are deleted by an hourly job once this old: within the year with a day to spare"""
_NAME_TIME = re.compile(r"^(\d{8}T\d{12}Z)-")
_NAME_TIME_FORMAT = "%Y%m%dT%H%M%S%fZ"
_PERIOD_WORD = {"monthly": "month", "weekly": "week", "daily": "day"}
_DAY_FOLDER = re.compile(r"^event_date=(\d{4}-\d{2}-\d{2})$")


def full_inventory(config: Config) -> list[Store]:
    """Every store datamin keeps, with its cap (core, warehouse and any registered provider)."""
    return inventory(config)


def run_retention(config: Config, now: datetime) -> dict[str, int]:
    """Deletes, in every scheduler-enforced store but the tables (the daily expiry's), what is past its
    cap at ``now``; returns the items deleted per store."""
    return expire_stores(full_inventory(config), as_utc(now))


# -- the warehouse's stores ------------------------------------------------------------------------
@register_stores
def warehouse_stores(config: Config) -> list[Store]:
    layout = Layout(Path(config.warehouse.root))
    retention = config.warehouse.retention_days
    stores = [_table_store(layout, table, effective_retention(table, retention))
              for table in sorted(set(retention) | set(layout.tables()))]
    longest = max((effective_retention(t, retention) for t in retention), default=TABLE_RETENTION_MAX_DAYS)
    stores.append(Store(
        name="quarantine", kind="files", location=str(layout.quarantine_dir),
        holds="warehouse files set aside as corrupt or foreign (minimised rows)",
        cap=timedelta(days=longest + 1), enforced_by=SCHEDULER,
        how="a file goes when its day partition passes its table's retention, like the rows it held",
        setting="warehouse.retention_days",
        oldest=lambda now: _oldest_quarantined(layout),
        expire=lambda now: _expire_quarantine(layout, retention, as_utc(now))))
    stores.append(_restricted_store(layout, retention, longest))
    stores.append(_named_by_time("audit trail", layout.audit_dir, "*/*.parquet",
                                 "what expiry, compaction, erasure and leak scans did: tables, partitions, "
                                 "counts; no personal data"))
    stores.append(_named_by_time("rights trail", layout.rights_requests_dir, "*.json",
                                 "privacy requests: keyed subject hash, kind, dates, outcome; no subject key"))
    stores.append(_named_by_time("forget ledger", layout.rights_dir / "forget", "*.json",
                                 "what each erasure, withdrawal, restriction, objection and lift did, for restores "
                                 "of backups: keyed hashes of the subject's pseudonyms; no key, no pseudonym"))
    stores.append(_sweep_store(layout, config))
    stores.append(_key_store(config))
    stores += working_stores(config, layout)
    return stores


def _table_store(layout: Layout, table: str, days: int) -> Store:
    def oldest(now: datetime) -> datetime | None:
        parts = layout.partitions(table)
        return datetime.combine(parts[0][0], datetime.min.time(), UTC) if parts else None

    return Store(name=f"table {table}", kind="warehouse_table", location=str(layout.table_dir(table)),
                 holds="minimised rows: truncated IP addresses, pseudonyms, coarse device data, scrubbed text",
                 cap=timedelta(days=days + 1), enforced_by=SCHEDULER,
                 how=f"day partitions deleted by the daily expiry (00:05 UTC) once past {days} days",
                 setting=f"warehouse.retention_days.{table}", oldest=oldest)


def _restricted_store(layout: Layout, retention: Any, longest: int) -> Store:
    area = Layout(layout.restricted_dir)  # shaped like the warehouse (warehouse.rights.restricted_area)

    def oldest(now: datetime) -> datetime | None:
        days = [parts[0][0] for table in area.tables() if (parts := area.partitions(table))]
        return datetime.combine(min(days), datetime.min.time(), UTC) if days else None

    def expire(now: datetime) -> int:
        from warehouse.rights.restricted_area import expire_restricted

        return len(expire_restricted(layout, retention, now=as_utc(now)))

    return Store(name="restricted rows", kind="files", location=str(layout.restricted_dir),
                 holds="minimised rows of subjects whose processing is restricted, kept apart from the tables",
                 cap=timedelta(days=longest + 1), enforced_by=SCHEDULER,
                 how="day partitions deleted with their table's, by the daily expiry and the hourly job",
                 setting="warehouse.retention_days", oldest=oldest, expire=expire)


def _quarantined(layout: Layout) -> list[tuple[Path, str, date | None]]:
    """Every quarantined file with its table and the day of the partition it came from (if known)."""
    out = []
    for path in files_matching(layout.quarantine_dir, "**/*"):
        rel = path.relative_to(layout.quarantine_dir).parts
        day = None
        if len(rel) >= 3 and (m := _DAY_FOLDER.match(rel[1])):
            day = date.fromisoformat(m.group(1))
        out.append((path, rel[0], day))
    return out


def _oldest_quarantined(layout: Layout) -> datetime | None:
    times = []
    for path, _, day in _quarantined(layout):
        when = datetime.combine(day, datetime.min.time(), UTC) if day else mtime(path)
        if when is not None:
            times.append(when)
    return min(times, default=None)


def _expire_quarantine(layout: Layout, retention: Any, now: datetime) -> int:
    deleted = 0
    for path, table, day in _quarantined(layout):
        days = effective_retention(table, retention)
        if day is not None:
            due = day < now.date() - timedelta(days=days) or day > now.date() + timedelta(days=1)
        else:  # no day to judge by: by its last write, within the cap
            written = mtime(path)
            due = written is not None and written < now - timedelta(days=days)
        if due:
            path.unlink(missing_ok=True)
            deleted += 1
            log.info("retention: deleted quarantined %s (%s, past %d days)", path.name, table, days)
    return deleted


def _file_time(path: Path) -> datetime | None:
    """The time in a trail file's name (``<YYYYMMDDTHHMMSSffffffZ>-…``), else its last write."""
    m = _NAME_TIME.match(path.name)
    if m:
        return datetime.strptime(m.group(1), _NAME_TIME_FORMAT).replace(tzinfo=UTC)
    return mtime(path)


def _named_by_time(name: str, folder: Path, pattern: str, holds: str) -> Store:
    def oldest(now: datetime) -> datetime | None:
        return min((t for t in map(_file_time, files_matching(folder, pattern)) if t is not None), default=None)

    def expire(now: datetime) -> int:
        cutoff = as_utc(now) - TRAIL_CAP
        deleted = 0
        for path in list(files_matching(folder, pattern)):
            when = _file_time(path)
            if when is not None and (when < cutoff or when > as_utc(now) + timedelta(days=1)):
                path.unlink(missing_ok=True)
                deleted += 1
        if deleted:
            log.info("retention: deleted %d file(s) of the %s older than %s", deleted, name, cap_words(TRAIL_CAP))
        return deleted

    return Store(name=name, kind="trail", location=str(folder / pattern), holds=holds, cap=TRAIL_CAP,
                 enforced_by=SCHEDULER, how=f"entries deleted hourly once {cap_words(TRAIL_CAP)} old",
                 oldest=oldest, expire=expire)


def _sweep_store(layout: Layout, config: Config) -> Store:
    from warehouse.rights.erasure import sweep_erased

    window = timedelta(days=config.topics.minimised_retention_days + 1)

    def oldest(now: datetime) -> datetime | None:
        path = layout.erased_sweep_file
        if not path.exists():
            return None
        column = pq.read_table(path, columns=["erased_at"]).column("erased_at").to_pylist()
        return min((as_utc(t) for t in column), default=None)

    return Store(name="erased-subjects sweep list", kind="files", location=str(layout.erased_sweep_file),
                 holds="pseudonyms of erased subjects, while late rows may still arrive from the minimised topics",
                 cap=window, enforced_by=SCHEDULER,
                 how="each pseudonym forgotten by the hourly sweep when the minimised topics' window ends",
                 setting="topics.minimised_retention_days", oldest=oldest,
                 expire=lambda now: len(sweep_erased(layout, now=now)))


# -- keys ------------------------------------------------------------------------------------------
def key_retention(config: Config) -> timedelta:
    """How long after its period ends a pseudonymisation key may still be needed: the longest any store
    keeps pseudonyms (a table's retention plus its day; a minimised topic's retention plus its roll)."""
    tables = max((effective_retention(t, config.warehouse.retention_days) for t in config.warehouse.retention_days),
                 default=TABLE_RETENTION_MAX_DAYS)
    topics = max(timedelta(milliseconds=s.max_age_ms) for s in Topics(config).all() if s.role == "minimised")
    return max(timedelta(days=tables + 1), topics)


def delete_expired_keys(config: Config, now: datetime) -> list[str]:
    """Deletes every key whose period ended at least `key_retention` before ``now``; returns the periods.

    Its pseudonyms were kept nowhere longer (events older than a table's retention are refused where
    they enter, so no new row can need it), and without it they are unlinkable (crypto-shredding)."""
    store = KeyStore(Path(config.pseudonymise.key_dir), config.pseudonymise.rotation)
    cutoff = as_utc(now) - key_retention(config)
    # a daily period id whose start is the cutoff day: delete_before removes keys ending on or before it
    deleted = store.delete_before(cutoff.strftime("%Y-%m-%d"))
    for period in deleted:
        log.info("retention: deleted the pseudonymisation key of %s (its pseudonyms are now unlinkable)", period)
    return deleted


def _key_store(config: Config) -> Store:
    keep = key_retention(config)

    def oldest(now: datetime) -> datetime | None:
        from datamin.keys import _bounds  # the one parser of period ids

        store = KeyStore(Path(config.pseudonymise.key_dir), config.pseudonymise.rotation)
        ends = [b[1] for b in map(_bounds, store.periods()) if b is not None]
        return min(ends, default=None)

    return Store(name="pseudonymisation keys", kind="keys", location=config.pseudonymise.key_dir,
                 holds=f"one secret key per {_PERIOD_WORD[config.pseudonymise.rotation]}; "
                       "no personal data, but it links a period's pseudonyms to identifiers",
                 cap=keep, enforced_by=SCHEDULER,
                 how=f"a key is deleted hourly once its period ended {cap_words(keep)} ago (counted from the "
                     "period's end), when no store can hold its pseudonyms any more",
                 setting="warehouse.retention_days", oldest=oldest,
                 expire=lambda now: len(delete_expired_keys(config, now)))


# -- `datamin retention` ---------------------------------------------------------------------------
def inventory_rows(stores: Sequence[Store], now: datetime) -> list[dict[str, Any]]:
    """The inventory as plain data: one row per store with its cap, oldest item and next deletion."""
    rows = []
    for store in stores:
        oldest = store.oldest(now) if store.oldest is not None else None
        nxt = store.next_deletion(now)
        rows.append({
            "store": store.name, "kind": store.kind, "location": store.location, "holds": store.holds,
            **cap_cells(store),
            "enforced_by": store.enforced_by, "how": store.how, "setting": store.setting,
            "oldest": oldest.isoformat() if oldest else None,
            "next_deletion": nxt.isoformat() if nxt else None,
        })
    return rows


def report(config: Config, now: datetime, fmt: str = "table", *, kafka: bool = False) -> str:
    """The inventory for the privacy officer: a table (default) or JSON (``fmt="json"``). With ``kafka``
    the topics' oldest records are asked of the broker (else they show as unknown)."""
    now = as_utc(now)
    stores = full_inventory(config)
    if kafka:
        stores = with_topic_ages(config, stores)
    rows = inventory_rows(stores, now)
    if fmt == "json":
        return json.dumps({"format": "datamin.retention-inventory/1", "at": now.isoformat(),
                           "cap_days": RETENTION_CAP_DAYS, "stores": rows}, indent=2) + "\n"
    header = ("store", "cap", "oldest now", "next deletion", "enforced by")
    cells = [(r["store"], r["cap"], _day(r["oldest"]), _day(r["next_deletion"]) if r["oldest"] else "—",
              r["enforced_by"]) for r in rows]
    widths = [max(len(c[i]) for c in (header, *cells)) for i in range(len(header))]
    lines = [f"Retention inventory at {now.isoformat(timespec='seconds')}: every store datamin keeps, each "
             f"capped within {RETENTION_CAP_DAYS} days (data in clear within 7 days).", ""]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in (header, *cells)]
    lines += ["", "how each cap is enforced:"]
    lines += [f"  {r['store']}: {r['how']}" + (f" (not aged: {r['not_aged_because']})" if r["not_aged_because"] else "")
              for r in rows]
    return "\n".join(lines) + "\n"


def with_topic_ages(config: Config, stores: Sequence[Store]) -> list[Store]:
    """``stores`` with each topic's oldest record time filled in from the broker."""
    import dataclasses

    from datamin.topic_ages import oldest_records

    ages = oldest_records(config, [s.location for s in stores if s.kind == "topic"])

    def fixed(when: datetime | None) -> Any:
        return lambda now: when

    return [dataclasses.replace(s, oldest=fixed(ages.get(s.location))) if s.kind == "topic" else s for s in stores]


def _day(value: str | None) -> str:
    return "—" if value is None else value[:16].replace("T", " ")

