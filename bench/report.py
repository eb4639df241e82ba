"""Benchmark of `datamin report` on a warehouse of N rows (default 1M; --quick 100k).

Fills a throwaway warehouse with synthetic minimised traffic (long-tailed pages, search terms and
countries, a population of visitors with and without pseudonyms, over 30 days), builds the catalog,
then times, in the same run:

- baseline: the report's aggregate queries alone (the same SQL on the same suppressed views, no
  charts, no page), after one untimed run that warms the file cache for both;
- the report: queries, charts drawn to SVG, the page written.

Ends with ``RESULT report_seconds <s> s ratio=<report/baseline> baseline=<the queries alone>`` and
prints the page's size. `fill_warehouse` is also what the report's browser test uses for its data.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from datamin.config import load_config  # noqa: E402
from schemas import default_registry  # noqa: E402
from warehouse.arrow import records_to_table, time_column  # noqa: E402
from warehouse.catalog import build_catalog  # noqa: E402
from warehouse.layout import Layout  # noqa: E402
from warehouse.samples import sample_record  # noqa: E402
from warehouse.writer import PartitionWriter  # noqa: E402

SHARE = {"http_request": 0.8, "usage_event": 0.15, "device_report": 0.05}
_TERMS = ("pricing", "privacy policy", "login", "contact", "invoice", "careers", "api docs", "refund")
_COUNTRIES = (("NO",) * 30 + ("SE",) * 10 + ("DK",) * 8 + ("DE",) * 5 + ("US",) * 4
              + ("GB", "FI", "NL", "FR", "IS", "PL"))


def _tail(rng: random.Random, n: int) -> int:
    """A long-tailed index in 0..n-1: a few values are common, most are rare."""
    return min(n - 1, int(n * rng.random() ** 4))


def fill_warehouse(layout: Layout, rows: int, *, days: int = 30, end: date | None = None, seed: int = 7,
                   visitors: int | None = None) -> None:
    """Writes ``rows`` synthetic minimised rows over ``days`` days ending at ``end`` (one file per
    table per day), from a population of ``visitors`` (default rows / 20)."""
    rng = random.Random(seed)
    end = end or datetime.now(UTC).date()
    population = visitors or max(50, rows // 20)
    writer = PartitionWriter(layout, fsync=False)
    registry = default_registry()
    offset = 0
    for event, share in SHARE.items():
        per_day = max(1, int(rows * share / days))
        schema = registry.latest(event, "minimised")
        for d in range(days):
            day = end - timedelta(days=days - 1 - d)
            at = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
            batch = []
            for i in range(offset, offset + per_day):
                record = sample_record(event, i, at + timedelta(seconds=i % 40000))
                who = _tail(rng, population)
                record["subject"] = f"ps1:{who:06d}" if who % 3 else None
                if event == "http_request":
                    record["client_network"] = f"10.{who % 251}.0.0/16"
                    record["url"] = "/" if who % 5 == 0 else f"/articles/{_tail(rng, 400)}"
                    record["country"] = _COUNTRIES[_tail(rng, len(_COUNTRIES))] if who % 7 else rng.choice(_COUNTRIES)
                elif event == "usage_event" and record["kind"] == "search":
                    t = _tail(rng, 60)
                    record["search_terms"] = _TERMS[t] if t < len(_TERMS) else f"rare term {t}"
                elif event == "device_report":
                    record["app_instance_id"] = f"ai:{who:06d}"
                batch.append(record)
            writer.write(event, f"bench.minimised.{event}", 0, offset, offset + per_day - 1,
                         records_to_table(schema, batch), time_column=time_column(event))
            offset += per_day


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100k rows")
    args = parser.parse_args()
    rows = 100_000 if args.quick else args.rows

    from warehouse.report import write_report
    from warehouse.report.queries import SECTIONS, connect

    with tempfile.TemporaryDirectory(prefix="datamin-bench-report-") as tmp:
        work = Path(tmp)
        config = load_config(environ={"DATAMIN__WAREHOUSE__ROOT": f'"{work / "wh"}"',
                                      "DATAMIN__WAREHOUSE__CATALOG": f'"{work / "c.duckdb"}"', "DATAMIN_CONFIG": ""})
        t0 = time.monotonic()
        fill_warehouse(Layout(work / "wh"), rows)
        build_catalog(config)
        print(f"filled a warehouse of {rows:,} rows in {time.monotonic() - t0:.1f} s", file=sys.stderr)

        end = datetime.now(UTC).date()
        period = [end - timedelta(days=29), end]
        def queries_alone() -> float:
            t0 = time.monotonic()
            con = connect(Path(config.warehouse.catalog))
            try:
                con.execute("SELECT * FROM table_freshness").fetchall()
                con.execute("SELECT * FROM small_cell_suppression").fetchall()
                for _, _, sql in SECTIONS:
                    con.execute(sql, period + ([15] if "$3" in sql else [])).fetchall()
            finally:
                con.close()
            return time.monotonic() - t0

        queries_alone()  # warm the file cache, so that neither run pays for the first read
        baseline = queries_alone()

        result = write_report(config, work / "report.html", now=datetime.now(UTC),
                              progress=lambda line: print(f"  {line}", file=sys.stderr))
        print(f"report: {result.bytes / 1024:.0f} KiB, {result.seconds:.2f} s "
              f"({result.query_seconds:.2f} s of queries); baseline queries alone {baseline:.2f} s", file=sys.stderr)
    print(f"RESULT report_seconds {result.seconds:.2f} s ratio={result.seconds / baseline:.2f} "
          f"baseline=the same aggregate queries without charts or page ({baseline:.2f} s, {rows:,} rows)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
