"""Sink throughput: rows/s from a pre-filled minimised topic into Parquet partitions via the real sink,
against DuckDB writing the same rows from an in-memory Arrow table to Parquet (COPY ... TO, zstd).

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:19092 python bench/sink_throughput.py [--quick] [--rows N] [--rounds R]

The topic is filled once; then each round runs, interleaved: a bare kafka-python consumer with the sink's
settings (read_committed, same fetch and poll sizes) that only iterates the records, the real sink
(fresh consumer group and warehouse each round), and DuckDB's COPY. Best of the rounds for each.

Rates are steady state: the sink's from its first flush to its last (group join excluded), the bare
consumer's from its first non-empty poll to its last. The row count is rounded up so that every
partition holds a whole number of flushes: every flush is then one of ``flush_rows`` rows, none waits for
``flush_seconds`` at the end (that idle wait is no throughput cost of a sink that is fed continuously).

On stderr, besides the RESULT line: the bare consumer's rate and its ratio to DuckDB, which is the ceiling
any sink built on kafka-python can reach, Avro decoding, Arrow and Parquet not counted.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
from _common import bench_env, config_from
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from datamin.config import Config
from datamin.topics import Topics, provision
from schemas import decode, default_registry, encode
from warehouse.arrow import records_to_table
from warehouse.samples import sample_record
from warehouse.sink import consumer_settings, run_sink
from warehouse.writer import Flush

FLUSH_ROWS = 10_000


def bare_consumer_rate(config: Config, topic: str, n: int) -> float:
    """Rows/s of a kafka-python consumer that iterates the topic with the sink's settings and does nothing."""
    settings = consumer_settings(config)
    for key in ("session_timeout_ms", "heartbeat_interval_ms"):  # group settings: this one has no group
        settings.pop(key)
    consumer = KafkaConsumer(**settings, **config.kafka.client_kwargs())
    try:
        tps = [TopicPartition(topic, p) for p in range(config.topics.partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        seen, first, t0 = 0, 0, 0.0
        deadline = time.monotonic() + 120
        while seen < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"bare consumer saw only {seen} of {n} rows")
            polled = consumer.poll(timeout_ms=200)
            for messages in polled.values():
                for msg in messages:  # what any consumer loop does at least: look at each record
                    msg.value  # noqa: B018
                seen += len(messages)
            if polled and not first:
                first, t0 = seen, time.perf_counter()
        t1 = time.perf_counter()
    finally:
        consumer.close()
    if seen == first:
        raise RuntimeError("the first poll returned every row: use more rows for a rate")
    return (seen - first) / (t1 - t0)


def sink_rate(config: Config, n: int) -> float:
    """Rows/s of the real sink from its first flush to the one that completes ``n`` rows."""
    stop = threading.Event()
    marks: list[tuple[float, int]] = []
    loaded = [0]

    def on_flush(flush: Flush) -> None:
        loaded[0] += flush.rows
        marks.append((time.perf_counter(), loaded[0]))
        if loaded[0] >= n:
            stop.set()

    failed: list[BaseException] = []

    def target() -> None:
        try:
            run_sink(config, stop=stop, on_flush=on_flush)
        except BaseException as exc:  # reported below
            failed.append(exc)
            stop.set()

    thread = threading.Thread(target=target)
    thread.start()
    if not stop.wait(300):
        stop.set()
    thread.join()
    if failed:
        raise failed[0]
    if loaded[0] != n or len(marks) < 2:
        raise RuntimeError(f"the sink loaded {loaded[0]} of {n} rows in {len(marks)} flush(es)")
    (t0, r0), (t1, r1) = marks[0], marks[-1]
    return (r1 - r0) / (t1 - t0)


def duckdb_rate(table: object, n: int, target: Path) -> float:
    con = duckdb.connect()
    try:
        con.register("rows", table)
        t = time.perf_counter()
        con.execute(f"COPY rows TO '{target}' (FORMAT parquet, COMPRESSION zstd)")
        return n / (time.perf_counter() - t)
    finally:
        con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="60k rows instead of 210k")
    parser.add_argument("--rows", type=int, help="rounded up to whole flushes per partition")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--transport", choices=("kafka-python", "confluent-kafka"), default="kafka-python",
                        help="the sink's Kafka transport (kafka.client)")
    args = parser.parse_args()
    print(f"transport of the sink: {args.transport}", file=sys.stderr)
    registry = default_registry()
    schema = registry.latest("http_request", "minimised")

    with tempfile.TemporaryDirectory(prefix="sink-bench-") as tmp:
        work = Path(tmp)
        base_env = bench_env(work, DATAMIN__WAREHOUSE__FLUSH_ROWS=str(FLUSH_ROWS),
                             DATAMIN__KAFKA__CLIENT=json.dumps(args.transport))
        config = config_from(base_env)
        partitions = config.topics.partitions
        whole = partitions * FLUSH_ROWS
        n = math.ceil((args.rows or (50_000 if args.quick else 200_000)) / whole) * whole
        provision(config)
        at = datetime.now(UTC) - timedelta(hours=1)  # within retention: the sink drops expired rows
        values = [encode(schema, sample_record("http_request", i, at)) for i in range(n)]
        producer = KafkaProducer(**config.kafka.client_kwargs(), acks="all", linger_ms=50, batch_size=512 * 1024)
        topic = Topics(config).minimised("http_request")
        for i, v in enumerate(values):
            producer.send(topic, v, partition=i % partitions)
        producer.flush()
        producer.close()
        print(f"produced {n} http_request events to {topic} ({partitions} partitions, flushes of {FLUSH_ROWS})")
        # the baseline's input: the same rows, already decoded and in Arrow
        table = records_to_table(schema, [decode(v, registry)[1] for v in values])
        del values

        bare: list[float] = []
        sink: list[float] = []
        duck: list[float] = []
        prefix = json.loads(base_env["DATAMIN__TOPICS__PREFIX"])
        for r in range(args.rounds):
            bare.append(bare_consumer_rate(config, topic, n))
            round_config = config_from({**base_env,
                                        "DATAMIN__WAREHOUSE__ROOT": json.dumps(str(work / f"warehouse-{r}")),
                                        "DATAMIN__WAREHOUSE__CATALOG": json.dumps(str(work / f"catalog-{r}.duckdb")),
                                        "DATAMIN__WAREHOUSE__GROUP_ID": json.dumps(f"{prefix}-sink-{r}")})
            sink.append(sink_rate(round_config, n))
            duck.append(duckdb_rate(table, n, work / f"duckdb-{r}.parquet"))
            print(f"round {r + 1}: bare consumer {bare[-1]:,.0f}  sink {sink[-1]:,.0f}  "
                  f"duckdb {duck[-1]:,.0f} rows/s")
    best_bare, best_sink, best_duck = max(bare), max(sink), max(duck)
    print(f"sink: {best_sink:,.0f} rows/s (best of {args.rounds}, first flush to last)")
    print(f"duckdb arrow->parquet: {best_duck:,.0f} rows/s", flush=True)
    print(f"ceiling: bare kafka-python consumer (read_committed, the sink's fetch/poll settings, no decoding) "
          f"{best_bare:,.0f} rows/s ratio={best_bare / best_duck:.3f} to duckdb arrow->parquet; "
          f"the sink runs at {best_sink / best_bare:.0%} of it", file=sys.stderr, flush=True)
    print(f"RESULT sink_throughput {best_sink:.0f} rows/s ratio={best_sink / best_duck:.3f} "
          "baseline=duckdb arrow->parquet")


if __name__ == "__main__":
    main()
