"""Small-cell suppression: the analyst views that group people hide groups of fewer than k visitors.

A page, a referrer, a search term or a country seen by one or two visitors can single a person out,
so every analyst view that groups people (pages, referrer domains, search terms, countries,
browsers, operating systems, device classes, app versions with hardware models) shows a group only
when at least ``k`` distinct visitors are in it (``warehouse.min_visitors``, default 10, never below
2). The rows of smaller groups are folded into one ``(other)`` row, so totals (requests, searches,
reports) still add up to the table's; ``(other)`` comes last. The views are pure SQL in the catalog:
analysts and the report read the same thing, and DuckDB does the work.

Each view also exists as a table macro ``<view>_between(date_from, date_to)`` (inclusive days,
``event_date``), which suppresses within the period asked for: suppressing per day and adding the
days up would show what the whole period hides, and the reverse would hide what it shows.

**Who is a distinct visitor** (what k counts), from the columns the minimised tables have:

- ``http_request``: the pseudonymous ``subject`` where present (consent or another basis); else a
  surrogate of the truncated client network with the user agent's class (``client_network``,
  ``browser_family``, ``os_family``, ``device_class``). Everyone behind one /16 with the same
  browser, OS and device class counts as one visitor: the surrogate undercounts, so it suppresses
  more, never less.
- ``usage_event``: ``subject``, else the pseudonymous ``session_id``; events with neither count
  together as a single visitor per group (they cannot be told apart, so they are not counted apart).
- ``device_report``: ``subject``, else ``app_instance_id``, else ``advertising_id``, else a surrogate
  of the device's class (hardware model, OS and version, browser, country, language).

Pseudonyms rotate with their key (``pseudonymise.rotation``), so one person seen across a rotation
counts twice, as does one seen with and without a subject; a period within one key's life counts
exactly. The day views (``daily_requests``, ``http_error_rate``) group by date only, a grouping of
time and not of people, and are not suppressed; ``datamin query`` on the tables is unchanged
(analysts with table access are trusted).
"""

from __future__ import annotations

from dataclasses import dataclass

from datamin.config import check_min_visitors
from warehouse.layout import PARTITION_KEY

OTHER = "(other)"
"""The label of the row that holds every suppressed group"""


def _surrogate(prefix: str, *columns: str) -> str:
    parts = " || '|' || ".join(f"coalesce({c}, '?')" for c in columns)
    return f"'{prefix}:' || {parts}"


_DEVICE_CLASS = ("hardware_model", "os_name", "os_major", "browser_family", "country", "language")

VISITOR: dict[str, str] = {
    "http_request": f"coalesce('s:' || subject, "
                    f"{_surrogate('n', 'client_network', 'browser_family', 'os_family', 'device_class')})",
    "usage_event": "coalesce('s:' || subject, 'x:' || session_id, 'anonymous')",
    "device_report": f"coalesce('s:' || subject, 'a:' || app_instance_id, 'd:' || advertising_id, "
                     f"{_surrogate('h', *_DEVICE_CLASS)})",
}
"""table -> SQL expression of the distinct visitor a row belongs to (see the module's docstring)"""


@dataclass(frozen=True)
class Grouping:
    """One suppressed view: a GROUP BY over one table whose groups are people."""

    name: str
    """the view's name in the catalog (its macro is ``<name>_between``)"""
    table: str
    """the table view it reads"""
    dims: tuple[tuple[str, str], ...]
    """(column, SQL expression over the table) the rows are grouped by"""
    totals: tuple[tuple[str, str], ...]
    """(column, aggregate) that add up across groups, so across the ``(other)`` row too"""
    derived: tuple[tuple[str, str], ...] = ()
    """(column, expression over the folded rows' columns), e.g. a percentage of the total"""
    where: str = "true"
    """which rows of the table count"""


def _share(dim: str, column: str) -> Grouping:
    return Grouping(f"{dim}_share", "http_request", ((dim, f"coalesce({column}, 'unknown')"),),
                    (("requests", "count(*)"),),
                    (("percent", "round(100.0 * requests / sum(requests) OVER (), 2)"),))


GROUPINGS: tuple[Grouping, ...] = (
    Grouping("top_pages", "http_request", (("host", "host"), ("url", "url")), (("requests", "count(*)"),),
             where="status < 400 OR status IS NULL"),
    Grouping("referrer_domains", "http_request",
             (("domain", "regexp_extract(referrer_origin, '^[A-Za-z][A-Za-z0-9+.-]*://([^/:]+)', 1)"),),
             (("requests", "count(*)"),), where="referrer_origin IS NOT NULL"),
    _share("browser", "browser_family"),
    _share("os", "os_family"),
    _share("device", "device_class"),
    Grouping("countries", "http_request", (("country", "coalesce(country, 'unknown')"),),
             (("requests", "count(*)"),)),
    Grouping("search_terms", "usage_event", (("term", "lower(trim(search_terms))"),), (("searches", "count(*)"),),
             where="kind = 'search' AND search_terms IS NOT NULL AND trim(search_terms) <> ''"),
    Grouping("error_rate", "device_report",
             (("app_version", "app_version"), ("hardware_model", "hardware_model")),
             (("reports", "count(*)"), ("errors", "count(*) FILTER (WHERE event_kind = 'error_report')"),
              ("crashes", "count(*) FILTER (WHERE event_kind = 'crash')")),
             (("error_rate", "round((errors + crashes) / reports, 4)"),)),
)
"""Every analyst view that groups people; each is suppressed"""


def suppressed_select(grouping: Grouping, k: int, period: tuple[str, str] | None = None) -> str:
    """The SELECT of ``grouping`` with groups of fewer than ``k`` visitors folded into ``(other)``;
    ``period`` is a pair of SQL expressions (first and last day) that limits the rows first."""
    check_min_visitors(k)
    where = f"({grouping.where})"
    if period:
        where += f" AND {PARTITION_KEY} BETWEEN {period[0]} AND {period[1]}"
    dims = [d for d, _ in grouping.dims]
    groups = [f"_g_{d}" for d in dims]
    on = " AND ".join(f"r.{g} IS NOT DISTINCT FROM s.{g}" for g in groups)
    folded = ", ".join(f"CASE WHEN _kept THEN _g_{d} ELSE '{OTHER}' END AS {d}" for d in dims)
    totals = ", ".join(f"{agg} AS {col}" for col, agg in grouping.totals)
    columns = dims + [c for c, _ in grouping.totals] + ["visitors"]
    derived = "".join(f", {expr} AS {col}" for col, expr in grouping.derived)
    first = grouping.totals[0][0]
    keys = ", ".join(f"{expr} AS _g_{d}" for d, expr in grouping.dims)
    return f"""
        WITH rows AS (
            SELECT {keys}, {VISITOR[grouping.table]} AS _visitor, *
            FROM {grouping.table} WHERE {where}),
        sizes AS (SELECT {", ".join(groups)}, count(DISTINCT _visitor) AS _visitors FROM rows GROUP BY ALL),
        marked AS (SELECT r.*, s._visitors >= {k} AS _kept FROM rows r JOIN sizes s ON {on}),
        folded AS (
            SELECT {folded}, _kept, {totals}, count(DISTINCT _visitor) AS visitors FROM marked GROUP BY ALL)
        SELECT {", ".join(columns)}{derived} FROM folded
        ORDER BY _kept DESC, {first} DESC, {", ".join(dims)}"""  # noqa: S608 - names and SQL of this module


def suppressed_view_statements(k: int) -> list[str]:
    """The catalog's statements for every suppressed view and its ``_between`` macro, and the view
    ``small_cell_suppression`` that tells which k they use."""
    statements = [f"CREATE VIEW small_cell_suppression AS SELECT {check_min_visitors(k)} AS min_visitors"]
    for g in GROUPINGS:
        statements.append(f"CREATE VIEW {g.name} AS {suppressed_select(g, k)}")
        statements.append(f"CREATE MACRO {g.name}_between(date_from, date_to) AS TABLE "
                          f"{suppressed_select(g, k, ('CAST(date_from AS DATE)', 'CAST(date_to AS DATE)'))}")
    return statements


__all__ = ["GROUPINGS", "OTHER", "VISITOR", "Grouping", "suppressed_select",
           "suppressed_view_statements"]
