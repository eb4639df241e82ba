"""Soak: the whole pipeline on the real broker for minutes, with a population of subjects that keeps
growing, to show that cost and state do not grow with time or with the number of people.

A producer sends raw http_request events at ``--rate`` per second (default 1,500) for ``--minutes``
(default 10; ``--quick``: 2). Each event comes from a new subject with probability 0.55, else from
one already seen; 45 % of new subjects first send a consent choice. The processor
(``datamin process``, its ledger's memory bound lowered to ``--ledger-memory`` subjects per
partition so the run crosses it) and the sink (``datamin sink``) run as their own
processes; continuous compaction of the open day runs every ``--compact-every`` seconds here.

Measured: the sink's CPU time per row loaded (from /proc, at each of its progress lines) in the first
and the last minute; the processor's resident memory against the subjects seen; the group's lag
(`processors.lag.GroupLag`); files per table-day; a full catalog build at the end; and every event
id in the warehouse, counted (lost, duplicated).

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:19092 python bench/soak.py [--quick] [--minutes N] [--rate R]

Prints ``RESULT soak <last / first minute sink CPU per row> x ratio=<same> baseline=sink CPU per row
in the first minute``; the other figures go to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
from _common import bench_env, config_from
from kafka import KafkaProducer

from datamin.kafka.partitioner import KeyHashPartitioner
from datamin.topics import Topics, provision
from processors.lag import GroupLag
from schemas import default_registry, encode
from warehouse.catalog import CatalogBuilder
from warehouse.layout import Layout
from warehouse.open_day import compact_open_days

ROOT = Path(__file__).resolve().parents[1]
DATAMIN = [sys.executable, "-c", "import sys; from datamin.cli import main; sys.exit(main())"]
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
_TX = re.compile(r"([\d.]+) transactions/s of (\d+) records")
_PROGRESS = re.compile(r"sink: \d+ rows/s; (\d+) rows in (\d+) files so far")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 minutes instead of 10")
    parser.add_argument("--minutes", type=float, help="how long to produce (default 10)")
    parser.add_argument("--rate", type=int, default=1500, help="raw events per second (default 1500)")
    parser.add_argument("--ledger-memory", type=int, default=5_000,
                        help="subjects per partition the processor keeps in memory before spilling (default 5000)")
    parser.add_argument("--compact-every", type=float, default=30.0, help="seconds between open-day compactions")
    args = parser.parse_args()
    minutes = args.minutes or (2.0 if args.quick else 10.0)

    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        work = Path(tmp)
        prefix = f"soak-{uuid.uuid4().hex[:8]}"
        env = bench_env(work, **{
            "DATAMIN__TOPICS__PREFIX": json.dumps(prefix),
            "DATAMIN__PROCESSOR__GROUP_ID": json.dumps(f"{prefix}-processor"),
            "DATAMIN__PROCESSOR__TRANSACTIONAL_ID": json.dumps(f"{prefix}-processor"),
            "DATAMIN__PROCESSOR__LEDGER_MEMORY_SUBJECTS": str(args.ledger_memory),
            "DATAMIN__PSEUDONYMISE__KEY_DIR": json.dumps(str(work / "keys")),
        })
        config = config_from(env)
        provision(config)
        topics = Topics(config)
        layout = Layout(Path(config.warehouse.root))
        child_env = {**os.environ, **env, "PYTHONPATH": str(ROOT), "DATAMIN_INSTANCE": "soak"}
        processor = subprocess.Popen([*DATAMIN, "process"], cwd=tmp, env=child_env,
                                     stdout=subprocess.DEVNULL, stderr=(work / "processor.log").open("wb"))
        sink = subprocess.Popen([*DATAMIN, "sink"], cwd=tmp, env=child_env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        samples: list[tuple[float, int, float]] = []  # (monotonic, rows loaded, sink CPU seconds)
        reader = threading.Thread(target=_read_progress, args=(sink, samples, work / "sink.log"), daemon=True)
        reader.start()
        stop = threading.Event()
        lags: dict[str, int] = {"processor": 0, "sink": 0}
        watchers = [GroupLag(config, config.processor.group_id, topics.inputs(),
                             lambda lag: _max_lag(lags, "processor", lag), interval=2.0),
                    GroupLag(config, config.warehouse.group_id, [topics.minimised("http_request")],
                             lambda lag: _max_lag(lags, "sink", lag), interval=2.0)]
        for watcher in watchers:
            watcher.start()
        compactor = threading.Thread(target=_compact, args=(layout, stop, args.compact_every), daemon=True)
        compactor.start()
        memory: list[tuple[int, int, int]] = []  # (subjects seen, of them with consent, processor RSS bytes)
        try:
            time.sleep(8)  # both join their groups
            sent, subjects = _produce(config, topics, args.rate, minutes, processor, memory)
            _drain(lags, sent, layout, timeout=300)
        finally:
            stop.set()
            for proc in (processor, sink):
                proc.send_signal(signal.SIGTERM)
            codes = [proc.wait(timeout=120) for proc in (processor, sink)]
            for watcher in watchers:
                watcher.stop()
        compactor.join(timeout=120)
        reader.join(timeout=10)
        _report(args, minutes, sent, subjects, samples, memory, lags, layout, work, codes)


def _produce(config: Any, topics: Topics, rate: int, minutes: float, processor: subprocess.Popen[bytes],
             memory: list[tuple[int, int, int]]) -> tuple[int, int]:
    registry = default_registry()
    http, consent = registry.latest("http_request", "raw"), registry.latest("consent_record", "raw")
    producer = KafkaProducer(acks="all", linger_ms=20, batch_size=256 * 1024, partitioner=KeyHashPartitioner(),
                             **config.kafka.client_kwargs())
    rng = random.Random(20)
    subjects = consenting = 0
    total = int(rate * minutes * 60)
    t0 = time.monotonic()
    next_memory = t0
    for i in range(total):
        if subjects == 0 or rng.random() < 0.55:
            subject = f"visitor-{subjects:012d}"
            subjects += 1
            now = datetime.now(UTC)
            if rng.random() < 0.45:
                consenting += 1
                producer.send(topics.consent, key=subject.encode(), value=encode(consent, {
                    "event_id": str(uuid.uuid4()), "time": now - timedelta(milliseconds=50), "subject_key": subject,
                    "necessary": True, "statistics": rng.random() < 0.7, "marketing": rng.random() < 0.3,
                    "feedback": False, "policy_version": "1", "source": "banner"}))
        else:
            subject = f"visitor-{rng.randrange(subjects):012d}"
            now = datetime.now(UTC)
        producer.send(topics.raw("http_request"), key=subject.encode(), value=encode(http, _http(i, subject, now)))
        if i % 500 == 0:
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if time.monotonic() >= next_memory:
                memory.append((subjects, consenting, _rss(processor.pid)))
                next_memory += 5.0
    producer.flush()
    producer.close()
    memory.append((subjects, consenting, _rss(processor.pid)))
    return total, subjects


def _http(i: int, subject: str, when: datetime) -> dict[str, Any]:
    return {"event_id": f"soak-{i:010d}", "time": when, "subject_key": subject,
            "client_ip": f"198.51.{i % 250}.{i % 200 + 1}", "method": "GET", "host": "example.no",
            "url": f"/page/{i % 300}?utm_source=news", "status": 200, "bytes_sent": 1000 + i % 5000,
            "duration_ms": 1.5, "referrer": None,
            "user_agent": "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
            "accept_language": "nb-NO", "client_hints": None, "do_not_track": None,
            "global_privacy_control": None, "cdn_country": "NO", "session_id": f"sess-{subject}",
            "user_id": None, "client_id": None}


def _drain(lags: dict[str, Any], sent: int, layout: Layout, timeout: float) -> None:
    """Waits until the warehouse holds every event sent (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _counts(layout)[1] >= sent:
            return
        time.sleep(2)
    print(f"the warehouse did not reach {sent} events within {timeout:.0f}s of the end", file=sys.stderr)


def _counts(layout: Layout) -> tuple[int, int]:
    """(rows, distinct event ids) of http_request in the Parquet files."""
    glob = str(layout.table_dir("http_request").resolve() / "*" / "*.parquet")
    if not any(layout.table_dir("http_request").glob("*/*.parquet")):
        return 0, 0
    con = duckdb.connect()
    try:
        rows, distinct = con.execute(f"SELECT count(*), count(DISTINCT event_id) FROM read_parquet('{glob}') "  # noqa: S608
                                     "WHERE event_id LIKE 'soak-%'").fetchone()
    except duckdb.Error:  # a file compacted away between listing and reading: try again
        return 0, 0
    finally:
        con.close()
    return int(rows), int(distinct)


def _compact(layout: Layout, stop: threading.Event, every: float) -> None:
    while not stop.wait(every):
        compact_open_days(layout, now=datetime.now(UTC), min_age=timedelta(seconds=min(every, 120)))


def _read_progress(sink: subprocess.Popen[str], samples: list[tuple[float, int, float]], log: Path) -> None:
    assert sink.stderr is not None
    with log.open("w") as out:
        for line in sink.stderr:
            out.write(line)
            match = _PROGRESS.search(line)
            if match:
                samples.append((time.monotonic(), int(match.group(1)), _cpu(sink.pid)))


def _max_lag(lags: dict[str, int], group: str, reading: dict[tuple[str, int], int]) -> None:
    lags[group] = max(lags[group], sum(reading.values()))


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def _rss(pid: int) -> int:
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE


def _per_row(samples: list[tuple[float, int, float]], start: float, end: float) -> float:
    window = [s for s in samples if start <= s[0] <= end]
    if len(window) < 2 or window[-1][1] == window[0][1]:
        return float("nan")
    return (window[-1][2] - window[0][2]) / (window[-1][1] - window[0][1])


def _report(args: Any, minutes: float, sent: int, subjects: int, samples: list[tuple[float, int, float]],
            memory: list[tuple[int, int, int]], lags: dict[str, int], layout: Layout, work: Path,
            codes: list[int]) -> None:
    rows, distinct = _counts(layout)
    err = sys.stderr
    print(f"sent {sent:,} events from {subjects:,} subjects in {minutes:g} min; processor exit {codes[0]}, "
          f"sink exit {codes[1]}", file=err)
    print(f"lost {sent - distinct:,}, duplicated {rows - distinct:,}", file=err)
    if samples:
        t0 = samples[0][0]
        producing_end = t0 + minutes * 60
        first = _per_row(samples, t0, t0 + 60)
        last = _per_row(samples, producing_end - 60, producing_end)
    else:
        first = last = float("nan")
    # past the spill threshold: once the subjects with a consent exceed every partition's bound (with
    # a margin for uneven partitions), the ledger holds no more of them in memory
    threshold = 1.3 * args.ledger_memory * 3
    past = [m for m in memory if m[1] >= threshold]
    if len(memory) >= 2:
        overall = (memory[-1][2] - memory[0][2]) / max(1, memory[-1][0] - memory[0][0]) * 100_000 / 2**20
        print(f"processor memory: {memory[0][2] / 2**20:.0f} MiB at {memory[0][0]:,} subjects, "
              f"{memory[-1][2] / 2**20:.0f} MiB at {memory[-1][0]:,} ({memory[-1][1]:,} with a consent); "
              f"{overall:.1f} MiB per 100k subjects overall", file=err)
    if len(past) >= 2 and past[-1][0] > past[0][0]:
        slope = (past[-1][2] - past[0][2]) / (past[-1][0] - past[0][0]) * 100_000 / 2**20
        print(f"processor memory past the spill threshold ({args.ledger_memory:,} subjects per partition, "
              f"from {past[0][0]:,} subjects on): {slope:.1f} MiB per 100k subjects", file=err)
        late = memory[len(memory) // 2:]  # bounded caches (SQLite pages, key hashes) are full by then
        if late[0][0] >= past[0][0] and late[-1][0] > late[0][0]:
            slope = (late[-1][2] - late[0][2]) / (late[-1][0] - late[0][0]) * 100_000 / 2**20
            print(f"processor memory in the second half of the run: {slope:.1f} MiB per 100k subjects", file=err)
    else:
        print("the run did not get past the spill threshold: lower --ledger-memory or run longer", file=err)
    files = [len(list(folder.glob("*.parquet")))
             for table in layout.tables() for _day, folder in layout.partitions(table)]
    print(f"files per table-day at the end: max {max(files, default=0)}, total {sum(files)} in {len(files)} "
          "table-days", file=err)
    builder = CatalogBuilder(layout, work / "check.duckdb")
    t = time.perf_counter()
    builder.build()
    full = time.perf_counter() - t
    t = time.perf_counter()
    report = builder.refresh()
    print(f"catalog at the end: full build {full * 1000:.0f} ms, refresh {(time.perf_counter() - t) * 1000:.1f} ms "
          f"(rebuilt: {report.rebuilt})", file=err)
    tx = [(float(a), int(b)) for a, b in _TX.findall((work / "processor.log").read_text(errors="replace"))]
    if tx:
        print("processor transactions (per log interval): " + ", ".join(f"{a:.1f}/s of {b}" for a, b in tx), file=err)
    print(f"max lag: processor group {lags['processor']:,}, sink group {lags['sink']:,}", file=err)
    print(f"sink CPU per row: first minute {first * 1e3:.3f} ms, last minute {last * 1e3:.3f} ms", file=err)
    ratio = last / first
    print(f"RESULT soak {ratio:.2f} x ratio={ratio:.2f} baseline=sink CPU per row in the first minute")


if __name__ == "__main__":
    main()
