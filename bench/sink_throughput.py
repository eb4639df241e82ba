"""Sink throughput: rows/s from a pre-filled minimised topic into Parquet partitions via the real sink,
against DuckDB writing the same rows from an in-memory Arrow table to Parquet (COPY ... TO, zstd).

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:19092 python bench/sink_throughput.py [--quick] [--rows N]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
from _common import bench_env, config_from
from kafka import KafkaProducer

from datamin.topics import Topics, provision
from schemas import decode, default_registry, encode
from warehouse.arrow import records_to_table
from warehouse.samples import sample_record
from warehouse.sink import run_sink
from warehouse.writer import Flush


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="50k rows instead of 200k")
    parser.add_argument("--rows", type=int)
    args = parser.parse_args()
    n = args.rows or (50_000 if args.quick else 200_000)
    registry = default_registry()
    schema = registry.latest("http_request", "minimised")

    with tempfile.TemporaryDirectory(prefix="sink-bench-") as tmp:
        work = Path(tmp)
        config = config_from(bench_env(work, DATAMIN__WAREHOUSE__FLUSH_ROWS="10000"))
        provision(config)
        at = datetime.now(UTC) - timedelta(hours=1)  # within retention: the sink drops expired rows
        values = [encode(schema, sample_record("http_request", i, at)) for i in range(n)]
        producer = KafkaProducer(**config.kafka.client_kwargs(), acks="all", linger_ms=50, batch_size=512 * 1024)
        topic = Topics(config).minimised("http_request")
        for i, v in enumerate(values):
            producer.send(topic, v, partition=i % config.topics.partitions)
        producer.flush()
        producer.close()
        print(f"produced {n} http_request events to {topic}")

        stop = threading.Event()
        marks: list[tuple[float, int]] = []
        loaded = [0]

        def on_flush(flush: Flush) -> None:
            loaded[0] += flush.rows
            marks.append((time.perf_counter(), loaded[0]))
            if loaded[0] >= n:
                stop.set()

        started = time.perf_counter()
        thread = threading.Thread(target=run_sink, args=(config,), kwargs={"stop": stop, "on_flush": on_flush})
        thread.start()
        thread.join()
        total = time.perf_counter() - started
        # steady state: from the first flush to the last (excludes joining the consumer group)
        (t0, r0), (t1, r1) = marks[0], marks[-1]
        sink_rate = (r1 - r0) / (t1 - t0)
        print(f"sink: {r1} rows in {total:.1f} s including group join; {sink_rate:,.0f} rows/s after the first flush")

        # baseline: DuckDB writes the same rows, already decoded and in Arrow, to Parquet
        table = records_to_table(schema, [decode(v, registry)[1] for v in values])
        con = duckdb.connect()
        con.register("rows", table)
        target = work / "duckdb.parquet"
        t = time.perf_counter()
        con.execute(f"COPY rows TO '{target}' (FORMAT parquet, COMPRESSION zstd)")
        duck_rate = n / (time.perf_counter() - t)
        con.close()
        print(f"duckdb arrow->parquet: {duck_rate:,.0f} rows/s")
    print(f"RESULT sink_throughput {sink_rate:.0f} rows/s ratio={sink_rate / duck_rate:.3f} "
          "baseline=duckdb arrow->parquet")


if __name__ == "__main__":
    main()
