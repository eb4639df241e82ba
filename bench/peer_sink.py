"""Rows/s of `datamin sink` on the confluent-kafka transport against a minimal confluent-kafka sink: a consumer
that decodes the same minimised topic, builds Arrow tables and writes the same day-partitioned Parquet (zstd),
with no bookkeeping (no checkpoints, manifests, fsync, dead letters, retention check or catalog).

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:19092 python bench/peer_sink.py [--quick] [--rows N] [--rounds R]

The topic is filled once; the rounds alternate which sink runs first (interleaved), each with a consumer group
and output folder of its own. Both flush every ``FLUSH_ROWS`` rows of a partition; each rate counts from its
first flush to its last (group join excluded). The figure is the median of the rounds.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from _common import bench_env, config_from
from confluent_kafka import Consumer, Producer
from sink_throughput import sink_rate

from datamin.config import Config
from datamin.kafka.confluent import connection_settings
from datamin.topics import Topics, provision
from schemas import decode, default_registry, encode
from warehouse.arrow import records_to_table
from warehouse.samples import sample_record

FLUSH_ROWS = 10_000


def minimal_rate(config: Config, topic: str, n: int, out: Path) -> float:
    """Rows/s of the peer: consume (read_committed), decode, Arrow, one Parquet file per day and flush."""
    registry = default_registry()
    schema = registry.latest("http_request", "minimised")
    consumer = Consumer({**connection_settings(config), "group.id": f"minimal-{uuid.uuid4().hex}",
                         "isolation.level": "read_committed", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "fetch.max.bytes": 64 * 1024 * 1024,
                         "max.partition.fetch.bytes": 8 * 1024 * 1024})
    consumer.subscribe([topic])
    buffers: dict[int, list[dict[str, object]]] = {}
    marks: list[tuple[float, int]] = []
    done = 0
    files = 0
    deadline = time.monotonic() + 600
    try:
        while done < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the minimal sink wrote {done} of {n} rows")
            for m in consumer.consume(FLUSH_ROWS, 0.1):
                if m.error() is not None:
                    continue
                rows = buffers.setdefault(m.partition(), [])
                rows.append(decode(m.value(), registry)[1])
                if len(rows) >= FLUSH_ROWS:
                    table = records_to_table(schema, rows)
                    days = pc.strftime(table.column("time"), format="%Y-%m-%d")
                    for day in pc.unique(days).to_pylist():
                        folder = out / "http_request" / f"day={day}"
                        folder.mkdir(parents=True, exist_ok=True)
                        pq.write_table(table.filter(pc.equal(days, pa.scalar(day))), folder / f"{files}.parquet",
                                       compression="zstd")
                        files += 1
                    done += len(rows)
                    buffers[m.partition()] = []
                    marks.append((time.perf_counter(), done))
    finally:
        consumer.close()
    (t0, r0), (t1, r1) = marks[0], marks[-1]
    return (r1 - r0) / (t1 - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="60k rows instead of 210k")
    parser.add_argument("--rows", type=int, help="rounded up to whole flushes per partition")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    registry = default_registry()
    schema = registry.latest("http_request", "minimised")
    with tempfile.TemporaryDirectory(prefix="peer-sink-") as tmp:
        work = Path(tmp)
        base_env = bench_env(work, DATAMIN__WAREHOUSE__FLUSH_ROWS=str(FLUSH_ROWS),
                             DATAMIN__KAFKA__CLIENT=json.dumps("confluent-kafka"))
        config = config_from(base_env)
        partitions = config.topics.partitions
        whole = partitions * FLUSH_ROWS
        n = math.ceil((args.rows or (50_000 if args.quick else 200_000)) / whole) * whole
        provision(config)
        at = datetime.now(UTC) - timedelta(hours=1)
        topic = Topics(config).minimised("http_request")
        producer = Producer({**connection_settings(config), "acks": "all", "linger.ms": 50})
        for i in range(n):
            value = encode(schema, sample_record("http_request", i, at))
            while True:
                try:
                    producer.produce(topic, value, partition=i % partitions)
                    break
                except BufferError:
                    producer.poll(0.1)
        producer.flush()
        print(f"produced {n} http_request events to {topic} ({partitions} partitions, flushes of {FLUSH_ROWS})",
              file=sys.stderr)
        ours: list[float] = []
        theirs: list[float] = []
        prefix = json.loads(base_env["DATAMIN__TOPICS__PREFIX"])
        for r in range(args.rounds):
            round_config = config_from({**base_env,
                                        "DATAMIN__WAREHOUSE__ROOT": json.dumps(str(work / f"warehouse-{r}")),
                                        "DATAMIN__WAREHOUSE__CATALOG": json.dumps(str(work / f"catalog-{r}.duckdb")),
                                        "DATAMIN__WAREHOUSE__GROUP_ID": json.dumps(f"{prefix}-sink-{r}")})
            if r % 2 == 0:
                ours.append(sink_rate(round_config, n))
                theirs.append(minimal_rate(config, topic, n, work / f"minimal-{r}"))
            else:
                theirs.append(minimal_rate(config, topic, n, work / f"minimal-{r}"))
                ours.append(sink_rate(round_config, n))
            print(f"round {r + 1}: datamin sink (confluent-kafka) {ours[-1]:,.0f} rows/s; minimal sink "
                  f"{theirs[-1]:,.0f} rows/s", file=sys.stderr, flush=True)
    rate, peer = statistics.median(ours), statistics.median(theirs)
    print(f"transport: confluent-kafka; median of {args.rounds} interleaved rounds on {n:,} rows", file=sys.stderr)
    print(f"RESULT peer_sink {rate:.0f} rows/s ratio={rate / peer:.2f} "
          "baseline=minimal confluent-kafka Parquet sink, same rows")


if __name__ == "__main__":
    main()
