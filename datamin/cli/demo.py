"""`datamin demo`: the whole pipeline on one machine, end to end, in about a minute.

broker -> topics -> synthetic traffic (EventProducer) -> processor -> sink -> DuckDB catalog -> queries.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from datamin.cli.command import Add
from datamin.config import Config
from datamin.exceptions import DataminError

SHOW = (
    ("What analysts see in http_request (a sample)",
     "SELECT strftime(time, '%H:%M:%S') AS time, client_network, method, url, status, browser_family AS browser, "
     "os_family AS os, device_class AS device, country, left(subject, 14) AS subject, user_id "
     "FROM http_request ORDER BY time DESC LIMIT 8"),
    ("Requests per day (daily_requests)", "SELECT * FROM daily_requests ORDER BY 1"),
    ("Top pages (top_pages)", "SELECT * FROM top_pages LIMIT 5"),
    ("Search terms, scrubbed (search_terms)", "SELECT * FROM search_terms LIMIT 5"),
)


def run_demo(config: Config, *, events: int = 2000, keep_running: bool = False,
             say: Callable[[str], None] = print) -> int:
    from datamin.cli.broker import LocalBroker
    from datamin.cli.synthetic import traffic
    from datamin.topics import provision

    if not logging.getLogger().isEnabledFor(logging.DEBUG):  # the steps speak for themselves; -v for logs
        logging.getLogger().setLevel(logging.WARNING)
        logging.getLogger("kafka").setLevel(logging.ERROR)
    broker = None
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        local = LocalBroker()
        if not local.status().running:
            broker = local  # ours to stop at the end
        say("1/5 starting a local Kafka broker (first run fetches it from Maven Central) …")
        status = local.start()
        say(f"    {status.describe().splitlines()[0]}")
        config = dataclasses.replace(config, kafka=dataclasses.replace(config.kafka,
                                                                       bootstrap_servers=status.bootstrap))
    else:
        say(f"1/5 using the Kafka broker at {config.kafka.bootstrap_servers}")
    try:
        say("2/5 creating topics …")
        provision(config)
        stop = threading.Event()
        workers = _start_pipeline(config, stop)
        say(f"3/5 publishing {events} synthetic events (full IPs, user ids, e-mails in URLs) …")
        batch = [dict(e, event_id=str(uuid.uuid4())) for e in traffic(events)]
        _publish(config, batch)
        say("4/5 processor minimising, sink loading Parquet partitions …")
        _wait_for(config, [e["event_id"] for e in batch], say)
        stop.set()
        for worker in workers:
            worker.join(timeout=30)
        say("5/5 what analysts see in DuckDB:\n")
        _show(config, say)
        from datetime import UTC, datetime

        from warehouse.leak_scan import run_leak_scan

        report = run_leak_scan(config, now=datetime.now(UTC))
        say("Leak scan of the warehouse (full IPs, e-mails, phone and card numbers, clear identifiers): "
            + ("none found" if report.clean else "FOUND — see `datamin audit`"))
    finally:
        if broker is not None and not keep_running:
            broker.stop()
    catalog = Path(config.warehouse.catalog)
    say(f"\nQuery it yourself:\n  datamin query \"SELECT * FROM top_pages\"\n"  # noqa: S608 - advice printed, not run
        f"  duckdb -readonly {catalog}        (the DuckDB CLI)\n"
        f"  python -c \"import duckdb; print(duckdb.connect('{catalog}', read_only=True)"
        f".sql('SELECT * FROM countries'))\"\n"
        f"  datamin report --out report.html   (charts of the analysts' views, one file that opens offline)")
    _write_report(config, say)
    return 0


def _write_report(config: Config, say: Callable[[str], None]) -> None:
    """The analysts' views as a page of charts beside the catalog (`datamin report`)."""
    from datetime import UTC, datetime

    from warehouse.report import write_report

    out = Path(config.warehouse.catalog).parent / "report.html"
    result = write_report(config, out, now=datetime.now(UTC))
    say(f"\nReport: {out.resolve()} ({result.bytes / 1024:.0f} KiB, {result.seconds:.1f} s; open it in a browser, "
        f"it needs no network; groups of fewer than {result.min_visitors} visitors are folded into \"(other)\")")


def _start_pipeline(config: Config, stop: threading.Event) -> list[threading.Thread]:
    from processors.loop import run_processor
    from warehouse.sink import run_sink

    threads = [
        threading.Thread(target=run_processor, args=(config,), kwargs={"stop": stop, "instance": "demo"},
                         name="processor", daemon=True),
        threading.Thread(target=run_sink, args=(config,), kwargs={"stop": stop}, name="sink", daemon=True),
    ]
    for t in threads:
        t.start()
    return threads


def _publish(config: Config, events: object) -> None:
    from producers.producer import EventProducer

    producer = EventProducer(config)
    try:
        for event in events:  # type: ignore[attr-defined]
            record = dict(event)
            producer.publish(record.pop("event"), record)
    finally:
        producer.close(timeout=60)
    stats = producer.stats()
    if stats.dropped or stats.failed:
        raise DataminError(f"the producer dropped {stats.dropped} and failed {stats.failed} events")


def _warehouse_rows(config: Config, event_ids: list[str]) -> int:
    """How many of ``event_ids`` the warehouse holds (read from the Parquet files themselves)."""
    import duckdb

    from warehouse.layout import layout_of

    layout = layout_of(config)
    total = 0
    with duckdb.connect() as con:
        con.execute("CREATE TEMP TABLE wanted AS SELECT unnest(?::VARCHAR[]) AS event_id", [event_ids])
        for table in layout.tables():
            if any(Path(layout.table_dir(table)).glob("event_date=*/*.parquet")):
                row = con.execute("SELECT count(*) FROM read_parquet(?, union_by_name = true) "
                                  "WHERE event_id IN (SELECT event_id FROM wanted)",
                                  [layout.table_glob(table)]).fetchone()
                total += int(row[0]) if row else 0
    return total


def _wait_for(config: Config, event_ids: list[str], say: Callable[[str], None], timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    expected, last = len(event_ids), -1
    while time.monotonic() < deadline:
        rows = _warehouse_rows(config, event_ids)
        if rows != last:
            say(f"    {rows} of the {expected} events are in the warehouse")
            last = rows
        if rows >= expected:
            return
        time.sleep(1.0)
    raise DataminError(f"only {last} of {expected} events reached the warehouse within {timeout:.0f} s; "
                       "see the processor and sink logs above")


def _show(config: Config, say: Callable[[str], None]) -> None:
    import io

    from warehouse.query import run_query

    catalog = Path(config.warehouse.catalog)
    for title, sql in SHOW:
        out = io.StringIO()
        run_query(catalog, sql, fmt="table", out=out)
        say(f"-- {title}\n{out.getvalue()}")


__all__ = ["run_demo"]


def register(add: Add) -> None:
    p = add("demo", "run the whole pipeline on synthetic traffic and show what analysts see", _demo,
            "Starts a local Kafka broker (unless KAFKA_BOOTSTRAP_SERVERS names one), provisions the topics,\n"
            "publishes synthetic web traffic with full IP addresses, user agents and identifiers, runs the\n"
            "processor and the sink, and prints rows from the DuckDB catalog: IPs truncated, no identifiers.")
    p.add_argument("--events", type=int, default=2000, help="synthetic events to publish (default 2000)")
    p.add_argument("--keep-running", action="store_true", help="leave the broker running afterwards")


def _demo(args: argparse.Namespace, config: Config) -> int:
    return run_demo(config, events=args.events, keep_running=args.keep_running)
