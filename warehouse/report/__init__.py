"""`datamin report`: one self-contained HTML page of charts from the analysts' (suppressed) views.

    queries   what the page shows, read from the catalog (aggregates only; DuckDB does the work)
    charts    Vega-Lite specs (altair) drawn to static SVG (vl-convert)
    page      the HTML: inline SVG and CSS, no script, nothing fetched when it is opened

`write_report` ties them together and reports progress on each step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from datamin.config import Config
from datamin.files import replace_file
from warehouse.errors import QueryError
from warehouse.report.page import CHARTS, render_page
from warehouse.report.queries import read_report_data


@dataclass(frozen=True)
class ReportResult:
    """What one report run wrote."""

    path: Path
    bytes: int
    query_seconds: float
    """time spent in DuckDB"""
    seconds: float
    """the whole run: queries, charts, writing"""
    min_visitors: int
    """the k of the suppressed views it read"""


def write_report(config: Config, out: Path, *, now: datetime, date_from: date | None = None,
                 date_to: date | None = None, progress: Callable[[str], None] = lambda _: None) -> ReportResult:
    """Writes the report for ``date_from``..``date_to`` (default: all days with data) to ``out``
    (replaced whole or not at all). Raises QueryError when the catalog is missing or the period empty."""
    if date_from and date_to and date_from > date_to:
        raise QueryError(f"the period {date_from} – {date_to} ends before it starts: swap --from and --to")
    started = time.monotonic()
    catalog = Path(config.warehouse.catalog)
    data = read_report_data(catalog, date_from=date_from, date_to=date_to, now=now, progress=progress)
    queried = time.monotonic() - started
    if data.min_visitors != config.warehouse.min_visitors:
        progress(f"note: the catalog suppresses groups below {data.min_visitors} visitors, the config says "
                 f"{config.warehouse.min_visitors}; the sink's next start rebuilds it with the new value")
    drawn = iter(range(1, len(CHARTS) + 1))
    html = render_page(data, {t: config.warehouse.retention_for(t) for t in (r["table_name"] for r in data.freshness)},
                       now, on_chart=lambda title: progress(f"chart {next(drawn)}/{len(CHARTS)}: {title}"))
    payload = html.encode("utf-8")
    out.parent.mkdir(parents=True, exist_ok=True)
    replace_file(out, lambda f: f.write(payload))
    return ReportResult(out, len(payload), queried, time.monotonic() - started, data.min_visitors)


__all__ = ["ReportResult", "write_report"]
