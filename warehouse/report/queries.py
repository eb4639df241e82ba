"""What the report shows, read from the catalog's views: aggregates only, DuckDB does the work.

Every figure that groups people comes from a suppressed view's ``_between`` macro
(`warehouse.suppression`); the day series come from ``daily_requests`` and ``http_error_rate``
(grouped by day, not by people); freshness from ``table_freshness``. No row of a table is read
into Python, so the time a report takes depends on the warehouse only through DuckDB's scans.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import duckdb

from warehouse.boundary import open_analyst_connection
from warehouse.errors import QueryError
from warehouse.suppression import OTHER

Rows = list[dict[str, Any]]
Progress = Callable[[str], None]
"""called with one line per step ("[3/12] top pages … 0.21 s")"""

def _top(view: str, columns: str, label: str, total: str = "requests") -> str:
    """The ``$3`` largest groups of ``view`` in the period, then its ``(other)`` row (the suppressed
    groups together), which a plain LIMIT would cut off."""
    return (f"WITH v AS (SELECT * FROM {view}_between($1, $2)) "  # noqa: S608 - this module's names
            f"SELECT * EXCLUDE (_part) FROM (SELECT 0 AS _part, {columns} FROM (SELECT * FROM v "
            f"WHERE {label} IS DISTINCT FROM '{OTHER}' ORDER BY {total} DESC, {label} LIMIT $3) "
            f"UNION ALL SELECT 1 AS _part, {columns} FROM v WHERE {label} = '{OTHER}') ORDER BY _part, {total} DESC")


SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("daily", "requests and visitors per day",
     "SELECT d.date, d.requests, d.visitors, e.server_errors, e.error_rate FROM daily_requests d "
     "JOIN http_error_rate e USING (date) WHERE d.date BETWEEN $1 AND $2 ORDER BY d.date"),
    ("pages", "top pages", _top("top_pages", "host, url, requests, visitors", "url")),
    ("referrers", "referrer domains", _top("referrer_domains", "domain, requests, visitors", "domain")),
    ("browsers", "browser share", "SELECT browser, requests, percent FROM browser_share_between($1, $2)"),
    ("oses", "operating system share", "SELECT os, requests, percent FROM os_share_between($1, $2)"),
    ("devices", "device share", "SELECT device, requests, percent FROM device_share_between($1, $2)"),
    ("countries", "countries", _top("countries", "country, requests, visitors", "country")),
    ("searches", "search terms", _top("search_terms", "term, searches, visitors", "term", "searches")),
    ("device_errors", "device error rates", _top(
        "error_rate", f"CASE WHEN app_version = '{OTHER}' THEN app_version ELSE coalesce(app_version, '?') || ' · ' "
        "|| coalesce(hardware_model, '?') END AS version_model, reports, errors, crashes, error_rate",
        "app_version", "reports")),
)
"""(key, what it is, SQL with $1 first day, $2 last day, $3 most groups listed); the report's data"""


@dataclass
class ReportData:
    """Everything the page shows."""

    date_from: date
    date_to: date
    min_visitors: int
    """the k the catalog's suppressed views use"""
    freshness: Rows
    """per table: rows, first_day, last_day, newest (event time)"""
    sections: dict[str, Rows] = field(default_factory=dict)
    """key of `SECTIONS` -> its rows"""
    seconds: dict[str, float] = field(default_factory=dict)
    """key -> seconds its query took"""


def connect(catalog: Path) -> duckdb.DuckDBPyConnection:
    """An analyst's connection to the catalog (read-only, inside the analyst boundary, as
    `datamin query`'s); QueryError when there is none."""
    if not catalog.is_file():
        raise QueryError(f"no catalog at {catalog}: run `datamin sink` or `datamin demo` first "
                         "(or point warehouse.catalog at the catalog file)")
    return open_analyst_connection(catalog)


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> Rows:
    """The result of ``sql`` as dicts; QueryError (naming the view to rebuild) when it fails."""
    try:
        result = con.execute(sql, params or [])
    except duckdb.Error as exc:
        raise QueryError(f"the report's query failed ({exc}); a catalog from an older datamin lacks the "
                         "suppressed views: rebuild it (`datamin sink` does on start)") from None
    names = [d[0] for d in result.description or []]
    return [dict(zip(names, r, strict=True)) for r in result.fetchall()]


def default_period(freshness: Rows, today: date) -> tuple[date, date]:
    """From the first to the last day any table of visits has data; today alone when none has."""
    days = [(r["first_day"], r["last_day"]) for r in freshness
            if r["table_name"] in ("http_request", "usage_event", "device_report") and r["first_day"]]
    if not days:
        return today, today
    return min(d[0] for d in days), max(d[1] for d in days)


def read_report_data(catalog: Path, *, date_from: date | None, date_to: date | None, now: datetime,
                     top: int = 15, progress: Progress = lambda _: None) -> ReportData:
    """Runs the report's queries on the catalog; ``progress`` hears of each step."""
    steps = len(SECTIONS) + 1
    started = time.monotonic()
    con = connect(catalog)
    try:
        progress(f"[1/{steps}] data freshness and retention …")
        freshness = rows(con, "SELECT * FROM table_freshness ORDER BY table_name")
        k = rows(con, "SELECT min_visitors FROM small_cell_suppression")[0]["min_visitors"]
        first, last = default_period(freshness, now.date())
        data = ReportData(date_from or first, date_to or last, int(k), freshness)
        data.seconds["freshness"] = time.monotonic() - started
        for i, (key, what, sql) in enumerate(SECTIONS, start=2):
            t0 = time.monotonic()
            params: list[Any] = [data.date_from, data.date_to] + ([top] if "$3" in sql else [])
            data.sections[key] = rows(con, sql, params)
            data.seconds[key] = time.monotonic() - t0
            progress(f"[{i}/{steps}] {what}: {len(data.sections[key])} rows, {data.seconds[key]:.2f} s")
    finally:
        con.close()
    return data
