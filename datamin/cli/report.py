"""`datamin report`: the analysts' views as a self-contained HTML page of charts."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime
from pathlib import Path

from datamin.cli.command import Add
from datamin.config import Config


def register(add: Add) -> None:
    p = add("report", "write one self-contained HTML page of charts from the analysts' views", _report,
            "Reads the catalog's analyst views (aggregates only; DuckDB does the work) and writes one HTML file\n"
            "that opens with no network: requests and visitors per day, server error rates, top pages, referrer\n"
            "domains, browser/OS/device share, countries, search terms, device error rates; the period, each\n"
            "table's freshness and retention window. Groups of fewer than warehouse.min_visitors distinct\n"
            "visitors (default 10) are folded into \"(other)\". Progress goes to stderr, the file's path to stdout.\n\n"
            "examples:\n"
            "  datamin report                                   every day with data, into report.html\n"
            "  datamin report --from 2026-11-01 --to 2026-11-30 --out november.html")
    p.add_argument("--from", dest="date_from", type=_day, metavar="DATE",
                   help="first day, YYYY-MM-DD (default: the first day with data)")
    p.add_argument("--to", dest="date_to", type=_day, metavar="DATE",
                   help="last day, inclusive (default: the last day with data)")
    p.add_argument("--out", type=Path, default=Path("report.html"), help="where to write it (default report.html)")


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day: use YYYY-MM-DD, e.g. 2026-11-29") from None


def _report(args: argparse.Namespace, config: Config) -> int:
    from warehouse.report import write_report

    def progress(line: str) -> None:
        print(f"report: {line}", file=sys.stderr, flush=True)

    result = write_report(config, args.out, now=datetime.now(UTC), date_from=args.date_from,
                          date_to=args.date_to, progress=progress)
    progress(f"wrote {result.bytes / 1024:.0f} KiB in {result.seconds:.1f} s ({result.query_seconds:.1f} s of queries)")
    print(result.path)
    return 0
