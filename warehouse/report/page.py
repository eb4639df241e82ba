"""The report as one self-contained HTML page: inline SVG charts, inline CSS, no script, no font or
file to fetch. Pure: data in, text out."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from html import escape
from typing import Any

from warehouse.report import charts
from warehouse.report.queries import ReportData, Rows
from warehouse.suppression import OTHER

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; margin: 0;
       background: #f4f5f7; }
header { background: #24344d; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 2px 0; color: #d6deea; }
main { display: grid; grid-template-columns: repeat(auto-fit, minmax(660px, 1fr)); gap: 16px; padding: 16px 32px; }
section { background: #fff; border-radius: 6px; padding: 12px 16px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
section.wide { grid-column: 1 / -1; }
h2 { font-size: 16px; margin: 0 0 8px; }
figure { margin: 0; overflow-x: auto; }
figcaption, .note { color: #666; font-size: 12px; margin-top: 4px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { text-align: left; padding: 3px 12px 3px 0; border-bottom: 1px solid #eee; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.empty { color: #888; font-style: italic; }
"""

Chart = tuple[str, str, str, Callable[[Rows], dict[str, Any]], str]
"""(section key, title, what the chart is, rows -> spec, caption)"""

CHARTS: tuple[Chart, ...] = (
    ("daily", "Requests and visitors per day", "daily", charts.daily_chart,
     "visitors: distinct pseudonymous subjects, or network + browser/OS/device class where there is none"),
    ("daily", "Server errors (5xx) per day", "http_errors", charts.error_rate_chart, "share of all requests"),
    ("pages", "Top pages", "pages", lambda r: charts.bar_chart(r, "url", "requests"), "successful requests"),
    ("referrers", "Referrer domains", "referrers", lambda r: charts.bar_chart(r, "domain", "requests"), ""),
    ("browsers", "Browsers", "browsers", lambda r: charts.bar_chart(r, "browser", "percent", percent=True),
     "share of requests"),
    ("oses", "Operating systems", "oses", lambda r: charts.bar_chart(r, "os", "percent", percent=True),
     "share of requests"),
    ("devices", "Device classes", "devices", lambda r: charts.bar_chart(r, "device", "percent", percent=True),
     "share of requests"),
    ("countries", "Countries", "countries", lambda r: charts.bar_chart(r, "country", "requests"), ""),
    ("searches", "Search terms", "searches", lambda r: charts.bar_chart(r, "term", "searches", color=charts.SECOND),
     "scrubbed of e-mail addresses, numbers and tokens before they were stored"),
    ("device_errors", "Device error rates (app version · model)", "device_errors",
     lambda r: charts.bar_chart(r, "version_model", "error_rate", rate=True, color=charts.ERROR),
     "error reports and crashes per device report"),
)
"""Every chart of the page, in order"""


def render_page(data: ReportData, retention_days: Mapping[str, int], generated: datetime,
                on_chart: Callable[[str], None] = lambda _: None) -> str:
    """The whole page; ``on_chart`` hears of each chart as it is drawn."""
    body = [_header(data, generated), "<main>", _freshness(data, retention_days)]
    for key, title, name, spec_of, caption in CHARTS:
        rows = data.sections[key]
        on_chart(title)
        wide = " wide" if key == "daily" else ""
        if not rows:
            body.append(f'<section class="{wide.strip()}"><h2>{escape(title)}</h2>'
                        '<p class="empty">No data in this period.</p></section>')
            continue
        svg = charts.render_svg(spec_of(rows), name)
        notes = [caption] if caption else []
        if any(OTHER in (str(v) for v in r.values()) for r in rows):
            notes.append(f"{OTHER}: groups of fewer than {data.min_visitors} visitors, folded together")
        body.append(f'<section class="{wide.strip()}"><h2>{escape(title)}</h2>'
                    f'<figure class="chart" data-chart="{name}">{svg}'
                    f'<figcaption>{escape("; ".join(notes))}</figcaption></figure></section>')
    body.append("</main>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>datamin report {data.date_from} – {data.date_to}</title><style>{CSS}</style></head>"
            f"<body>{''.join(body)}</body></html>\n")


def _header(data: ReportData, generated: datetime) -> str:
    return (f"<header><h1>Traffic report · {data.date_from:%d %b %Y} – {data.date_to:%d %b %Y}</h1>"
            f"<p>Generated {generated:%Y-%m-%d %H:%M} UTC by datamin from the analysts' views of the warehouse.</p>"
            f"<p>Small groups stay hidden: a page, referrer, search term, country, browser, OS or device "
            f"seen by fewer than {data.min_visitors} distinct visitors is folded into “{OTHER}”.</p></header>")


def _freshness(data: ReportData, retention_days: Mapping[str, int]) -> str:
    rows = []
    for r in data.freshness:
        newest = r["newest"].astimezone(UTC).strftime("%Y-%m-%d %H:%M") if r["newest"] else "—"
        rows.append(f"<tr><td>{escape(r['table_name'])}</td><td class=\"n\">{r['rows']:,}</td>"
                    f"<td>{r['first_day'] or '—'}</td><td>{r['last_day'] or '—'}</td><td>{newest}</td>"
                    f"<td class=\"n\">{retention_days.get(r['table_name'], '—')} days</td></tr>")
    return ('<section class="wide"><h2>Data: freshness and retention</h2><table><tr><th>table</th><th>rows</th>'
            "<th>first day</th><th>last day</th><th>newest event (UTC)</th><th>kept for</th></tr>"
            + "".join(rows) + "</table><p class=\"note\">Each table's day partitions are deleted once older than "
            "its retention window (never more than 365 days).</p></section>")
