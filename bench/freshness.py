"""Freshness: how long after it is produced an event is visible to an analyst's query.

A producer sends http_request events at ~10,000/s for N seconds while the sink runs (its own process,
`datamin sink`, default flush_seconds); a reader polls the catalog (read-only, a new
connection each time) for the event ids sent. Latency = first poll that sees an id - its send time.

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:19092 python bench/freshness.py [--quick] [--seconds N] [--rate R]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
from _common import bench_env, config_from
from kafka import KafkaProducer

from datamin.config import Config
from datamin.topics import Topics, provision
from schemas import default_registry, encode
from warehouse.samples import sample_record

ROOT = Path(__file__).resolve().parents[1]
DATAMIN = [sys.executable, "-c", "import sys; from datamin.cli import main; sys.exit(main())"]
"""the `datamin` command, run by this interpreter"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10 s of traffic instead of 30 s")
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--rate", type=int, default=10_000, help="events per second")
    args = parser.parse_args()
    seconds = args.seconds or (10.0 if args.quick else 30.0)
    n = int(seconds * args.rate)
    schema = default_registry().latest("http_request", "minimised")

    with tempfile.TemporaryDirectory(prefix="freshness-") as tmp:
        env = bench_env(Path(tmp))
        config = config_from(env)
        provision(config)
        # encoded up front (the time field is the planned send time), so the producer can keep the rate
        start_at = datetime.now(UTC) + timedelta(seconds=30)
        values = [encode(schema, sample_record("http_request", i, start_at + timedelta(seconds=i / args.rate)))
                  for i in range(n)]
        ids = [sample_record("http_request", i)["event_id"] for i in range(n)]
        sink = subprocess.Popen([*DATAMIN, "sink"], cwd=tmp,
                                env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_for_catalog(Path(config.warehouse.catalog))
            time.sleep(3)  # let the sink join its group before the clock starts
            sent = multiprocessing.Array("d", n, lock=False)  # CLOCK_MONOTONIC is shared by processes
            producer = multiprocessing.Process(target=_produce, args=(config, values, args.rate, sent))
            producer.start()
            seen_at = _poll(config.warehouse.catalog, ids, start_at, args.rate,
                            deadline=time.monotonic() + seconds + 120)
            producer.join()
            sent_at = dict(zip(ids, sent, strict=True))
            achieved = n / (max(sent) - min(sent)) if n > 1 else float(n)
        finally:
            sink.send_signal(signal.SIGTERM)
            sink.wait(timeout=60)
    latencies = sorted(seen_at[i] - sent_at[i] for i in seen_at)
    if len(latencies) < n:
        print(f"only {len(latencies)} of {n} events became visible", file=sys.stderr)
    p50 = statistics.median(latencies)
    p99 = latencies[int(0.99 * (len(latencies) - 1))]
    flush = config.warehouse.flush_seconds
    print(f"sent {n} events at {achieved:,.0f}/s; visible: p50 {p50:.2f} s, p99 {p99:.2f} s, max {latencies[-1]:.2f} s "
          f"(flush_seconds {flush})")
    print(f"RESULT freshness {p99:.2f} s ratio={p99 / flush:.2f} baseline=configured flush interval")


def _wait_for_catalog(path: Path) -> None:
    deadline = time.monotonic() + 60
    while not path.exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"the sink wrote no catalog at {path} within 60 s")
        time.sleep(0.1)


def _produce(config: Config, values: list[bytes], rate: int, sent: Any) -> None:
    producer = KafkaProducer(**config.kafka.client_kwargs(), acks="all", linger_ms=5)
    topic = Topics(config).minimised("http_request")
    t0 = time.monotonic()
    for i, value in enumerate(values):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        sent[i] = time.monotonic()
        producer.send(topic, value)
    producer.flush()
    producer.close()


def _poll(catalog: str, ids: list[str], start_at: datetime, rate: int, deadline: float) -> dict[str, float]:
    """Polls until every id is seen; each poll reads only events at or after the oldest unseen one."""
    index = {e: i for i, e in enumerate(ids)}
    seen_at: dict[str, float] = {}
    oldest = 0
    while oldest < len(ids) and time.monotonic() < deadline:
        time.sleep(0.05)
        watermark = start_at + timedelta(seconds=oldest / rate) - timedelta(milliseconds=1)
        con = duckdb.connect(catalog, read_only=True)
        try:
            rows = con.execute("SELECT event_id FROM http_request WHERE time >= ?", [watermark]).fetchall()
        finally:
            con.close()
        now = time.monotonic()
        for (event_id,) in rows:
            if event_id in index and event_id not in seen_at:
                seen_at[event_id] = now
        while oldest < len(ids) and ids[oldest] in seen_at:
            oldest += 1
    return seen_at


if __name__ == "__main__":
    main()
