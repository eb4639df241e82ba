"""The report's charts: Vega-Lite specifications (altair) rendered to static SVG (vl-convert).

Why these: altair writes Vega-Lite, a declarative grammar of charts that is well kept and widely
used; vl-convert renders it to SVG in-process (Vega itself, embedded with its own JavaScript engine,
installed from PyPI as a wheel), so the page carries finished drawings: no script, no style sheet,
no font to fetch, nothing that could fail to load or phone home when the report is opened.

Pure apart from the rendering call: each ``*_chart`` function turns rows into a spec.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from typing import Any

import altair as alt
import vl_convert as vlc

from warehouse.report.queries import Rows

WIDTH = 340
"""pixels of a bar chart's plot (two fit side by side on a 1400-pixel screen)"""
WIDE = 1120
"""pixels of a day series' plot (the full width)"""
ACCENT = "#3b6ea5"
SECOND = "#d9822b"
ERROR = "#b03a2e"


def _plain(rows: Rows) -> list[dict[str, Any]]:
    """Rows as JSON values (dates as ISO text, decimals as floats)."""
    out = []
    for r in rows:
        item = {}
        for k, v in r.items():
            if isinstance(v, dt.date | dt.datetime):
                v = v.isoformat()
            elif isinstance(v, decimal.Decimal):
                v = float(v)
            item[k] = v
        out.append(item)
    return out


def _base(rows: Rows, width: int = WIDTH) -> alt.Chart:
    return alt.Chart(alt.InlineData(values=_plain(rows))).properties(width=width)


def daily_chart(rows: Rows) -> dict[str, Any]:
    """Requests and visitors per day, two lines on one time axis."""
    folded = _base(rows, WIDE).transform_fold(["requests", "visitors"], as_=["measure", "count"])
    chart = folded.mark_line(point=True).encode(
        x=alt.X("date:T", title=None, axis=alt.Axis(format="%b %d")),
        y=alt.Y("count:Q", title=None),
        color=alt.Color("measure:N", title=None, scale=alt.Scale(range=[ACCENT, SECOND]),
                        legend=alt.Legend(orient="top")),
    ).properties(height=220)
    return _spec(chart)


def error_rate_chart(rows: Rows) -> dict[str, Any]:
    """Share of requests answered with a server error (5xx), a bar per day (one day draws too)."""
    chart = _base(rows, WIDE).mark_bar(color=ERROR).encode(
        x=alt.X("yearmonthdate(date):O", title=None, axis=alt.Axis(format="%b %d", labelAngle=0)),
        y=alt.Y("error_rate:Q", title="5xx share of requests", axis=alt.Axis(format="%")),
    ).properties(height=160)
    return _spec(chart)


def bar_chart(rows: Rows, label: str, value: str, *, percent: bool = False, rate: bool = False,
              color: str = ACCENT) -> dict[str, Any]:
    """Horizontal bars in the rows' order (largest first, ``(other)`` last); ``percent``: values are
    percentages, ``rate``: fractions shown as percentages."""
    order = [str(r[label]) for r in rows]
    fmt = ".1%" if rate else ".1f" if percent else ","
    bars = _base(rows).encode(
        y=alt.Y(f"{label}:N", sort=order, title=None, axis=alt.Axis(labelLimit=220)),
        x=alt.X(f"{value}:Q", title="percent" if percent else value.replace("_", " "),
                axis=alt.Axis(format="%") if rate else alt.Axis()),
    )
    text = alt.Text(f"{value}:Q", format=fmt)
    chart = bars.mark_bar(color=color) + bars.mark_text(align="left", dx=3, fontSize=10).encode(text=text)
    return _spec(chart.properties(height=max(40, 18 * len(rows))))


def _spec(chart: alt.TopLevelMixin) -> dict[str, Any]:
    return dict(chart.to_dict())


def render_svg(spec: dict[str, Any], prefix: str) -> str:
    """The spec drawn as one SVG element; ids (if any) prefixed so that charts inlined in one page
    cannot refer to each other's."""
    svg = vlc.vegalite_to_svg(spec)
    svg = re.sub(r'id="([^"]+)"', lambda m: f'id="{prefix}-{m.group(1)}"', svg)
    return re.sub(r'(url\(#|href="#)([^)"]+)', lambda m: f"{m.group(1)}{prefix}-{m.group(2)}", svg)
