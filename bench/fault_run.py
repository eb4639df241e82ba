"""Fault run: the whole pipeline on a broker of its own while processes die and Kafka goes away
(the logic of bench/faults.py, in a module that tests import).

    python bench/faults.py [--quick] [--seconds N] [--seed S] [--events N] [--keep]

A bounded, self-stopping run on this machine. It starts a private Kafka broker (a LocalBroker in a
temporary folder on free ports, from the jars of `datamin kafka start`) so that it may stop and start
it; KAFKA_BOOTSTRAP_SERVERS is ignored for that reason (the shared broker is never touched). All data
(warehouse, keys, spools, logs) lives in the same temporary folder, removed at the end unless --keep.

1. provisions topics (unique prefix) and starts `datamin process` (DATAMIN_INSTANCE fixed, so a
   restart takes over the same transactional id) and `datamin sink` as subprocesses;
2. publishes erasure and withdrawal requests (privacy_request events on the privacy-requests topic,
   keyed and valued by the subject's keyed hash, as the officer's command writes them) for
   a few consenting visitors, and waits until the warehouse holds them, so that the processor's ledger
   knows them before any of their events: then none of an erased subject's events (before or after the
   request's time) and none of a withdrawn subject's events after it may carry an identifier;
3. publishes synthetic traffic (datamin.cli.synthetic.traffic, consents first) paced over ``--seconds``
   with one EventProducer, plus a few malformed raw messages (plain KafkaProducer) that must be
   dead-lettered; meanwhile SIGKILLs the processor and the sink at random moments (each restarted),
   stops the broker for a few seconds (the producer spools), and during the first outage lets a second
   EventProducer with a tiny spool (producer.spool_max_bytes) publish, so that loss happens and is
   counted (stats().dropped);
4. waits (bounded) until the warehouse's Parquet files hold every expected event_id, stops everything,
   and compares: produced, warehoused, lost, duplicated, dead-lettered, leaks (warehouse leak scan,
   minimised-topic audit, rights check, every raw IP / identifier string searched in every warehoused
   string value).

Ends with ``RESULT faults produced=N warehoused=N lost=N duplicated=N dead_lettered=N leaks=N kills=N
outages=N`` where lost is loss beyond what the producers counted as dropped. Exit code 0 when lost=0,
duplicated=0, leaks=0 and the dead letters found equal the malformed messages injected, else 1.
Everything started is stopped in a ``finally`` (also on Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
warnings.simplefilter("ignore", DeprecationWarning)  # kafka-python 3.0's resource loading

import duckdb  # noqa: E402

from datamin.cli.broker import LocalBroker  # noqa: E402
from datamin.cli.synthetic import traffic  # noqa: E402
from datamin.config import Config, load_config  # noqa: E402
from datamin.topics import MINIMISED_EVENTS, RAW_EVENTS, Topics, provision  # noqa: E402

DATAMIN = [sys.executable, "-c", "import sys; from datamin.cli import main; sys.exit(main())"]
"""the `datamin` command, run by this interpreter"""
EVENT_TABLES = ("http_request", "usage_event", "device_report", "consent_record")
"""warehouse tables whose rows carry the producer's event_id (privacy_request rows carry request_id)"""
IDENTIFIER_COLUMNS = ("subject", "session_id", "user_id", "client_id", "advertising_id", "app_instance_id")
"""minimised columns that hold a pseudonym only with consent"""
FIXED_SECRETS = ("kari.nordmann@example.no", "ola@example.no", "00:1a:2b:3c:4d:5e", "SN-4471-XK",
                 "sk_live_51HxYzAbCdEfGhIjKlMn", "912 34 567", "/home/kari")
"""identifier strings synthetic.traffic puts into every run's raw events"""
RAW_IDENTIFIER_FIELDS = ("client_ip", "subject_key", "user_id", "session_id", "client_id", "advertising_id")


# -- the plan (pure) ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Fault:
    at: float
    """seconds after the traffic started"""
    kind: str
    """"kill-processor", "kill-sink" or "outage" """
    seconds: float = 0.0
    """outage length"""


@dataclass(frozen=True)
class Shape:
    events: int
    seconds: float
    processor_kills: int
    sink_kills: int
    outages: int
    outage_seconds: float
    lossy_events: int
    malformed: int
    drain_seconds: float


def shape(quick: bool, seconds: float | None = None, events: int | None = None) -> Shape:
    """The run's size: --quick stays under a minute; the full form a few minutes."""
    if quick:
        s = Shape(3000, 20.0, 2, 1, 1, 4.0, 400, 5, 40.0)
    else:
        s = Shape(20000, 120.0, 6, 3, 2, 8.0, 1000, 12, 120.0)
    return Shape(events or s.events, seconds or s.seconds, s.processor_kills, s.sink_kills, s.outages,
                 s.outage_seconds, s.lossy_events, s.malformed, s.drain_seconds)


def plan_faults(shape: Shape, rng: random.Random) -> list[Fault]:
    """Fault moments within the traffic phase, sorted: kills at random moments in its first 85 %
    (sink kills in its first 60 %, a restarted sink waits out the group's session timeout), outages
    spread evenly over its middle, none overlapping an outage."""
    s = shape.seconds
    outages = [Fault(s * (i + 1) / (shape.outages + 1) - shape.outage_seconds / 2, "outage", shape.outage_seconds)
               for i in range(shape.outages)]

    def free(t: float) -> bool:
        return all(not (o.at - 2.0 <= t <= o.at + o.seconds + 3.0) for o in outages)

    def moments(n: int, hi: float) -> list[float]:
        out: list[float] = []
        for _ in range(100_000):
            if len(out) == n:
                return out
            t = rng.uniform(0.08 * s, hi * s)
            if free(t) and all(abs(t - u) > 1.5 for u in out):
                out.append(t)
        raise ValueError(f"{s:.0f} s of traffic leave no room for {n} kills beside the outages: use more --seconds")

    kills = [Fault(t, "kill-processor") for t in moments(shape.processor_kills, 0.85)]
    kills += [Fault(t, "kill-sink") for t in moments(shape.sink_kills, 0.6)]
    return sorted(outages + kills, key=lambda f: f.at)


@dataclass
class Expectations:
    """What the run published and what it must find."""

    ids: dict[str, set[str]] = field(default_factory=lambda: {t: set() for t in EVENT_TABLES})
    """event_ids published by the main producer, per table"""
    lossy_ids: set[str] = field(default_factory=set)
    """http_request event_ids published by the producer with the tiny spool"""
    subject_of: dict[str, str] = field(default_factory=dict)
    """event_id -> subject key"""
    time_of: dict[str, datetime] = field(default_factory=dict)
    request_ids: set[str] = field(default_factory=set)
    erased: set[str] = field(default_factory=set)
    withdrawn: dict[str, datetime] = field(default_factory=dict)
    """subject key -> withdrawal time"""
    consenting: set[str] = field(default_factory=set)
    secrets: set[str] = field(default_factory=set)
    """raw identifier strings that must appear in no warehoused value"""
    malformed: int = 0

    def produced(self) -> int:
        return sum(len(v) for v in self.ids.values()) + len(self.lossy_ids) + len(self.request_ids)


@dataclass(frozen=True)
class Tally:
    produced: int
    dropped: int
    """counted by the producers: expected loss"""
    warehoused: int
    """distinct expected ids found"""
    lost: int
    """loss beyond the counted drops"""
    duplicated: int
    unexpected: int
    """ids in the warehouse that were never published"""


def tally(expected: Expectations, found: Mapping[str, Sequence[str]], dropped_main: int, dropped_lossy: int) -> Tally:
    """Compares the ids found per table with those published. The main producer's events are checked
    one by one (when it dropped none); the lossy producer's by count: it may miss exactly what it
    counted as dropped. ``found`` maps table -> every id read (duplicates included)."""
    duplicated = sum(len(ids) - len(set(ids)) for ids in found.values())
    seen = {t: set(ids) for t, ids in found.items()}
    main_missing = 0
    unexpected = 0
    for table in EVENT_TABLES:
        want = expected.ids[table] | (expected.lossy_ids if table == "http_request" else set())
        have = seen.get(table, set())
        main_missing += len(expected.ids[table] - have)
        unexpected += len(have - want)
    req_have = seen.get("privacy_request", set())
    main_missing += len(expected.request_ids - req_have)
    unexpected += len(req_have - expected.request_ids)
    lossy_found = len(expected.lossy_ids & seen.get("http_request", set()))
    lost = max(0, main_missing - dropped_main) + max(0, len(expected.lossy_ids) - dropped_lossy - lossy_found)
    warehoused = (sum(len(expected.ids[t] & seen.get(t, set())) for t in EVENT_TABLES) + lossy_found
                  + len(expected.request_ids & req_have))
    return Tally(expected.produced(), dropped_main + dropped_lossy, warehoused, lost, duplicated, unexpected)


def consenting_identified(expected: Expectations, rows: Iterable[tuple[str, bool]], consenting: set[str]) -> int:
    """Rows of consenting subjects with no request that carry an identifier: the control showing that
    the rights check looks at columns that do get filled."""
    affected = expected.erased | set(expected.withdrawn)
    return sum(1 for event_id, identified in rows
               if identified and expected.subject_of.get(event_id) in consenting - affected)


def rights_violations(expected: Expectations, rows: Iterable[tuple[str, bool]]) -> int:
    """Rows (event_id, carries an identifier) of an erased subject, or of a withdrawn one at or after
    the withdrawal, that carry an identifier."""
    bad = 0
    for event_id, identified in rows:
        if not identified:
            continue
        subject = expected.subject_of.get(event_id)
        if subject in expected.erased:
            bad += 1
        elif subject in expected.withdrawn and expected.time_of[event_id] >= expected.withdrawn[subject]:
            bad += 1
    return bad


RESULT_KEYS = ("produced", "warehoused", "lost", "duplicated", "dead_lettered", "leaks", "kills", "outages")


def result_line(figures: Mapping[str, int]) -> str:
    return "RESULT faults " + " ".join(f"{k}={figures[k]}" for k in RESULT_KEYS)


def parse_result_line(line: str) -> dict[str, int]:
    """The figures of a ``RESULT faults …`` line; ValueError when it is not one."""
    parts = line.split()
    if parts[:2] != ["RESULT", "faults"]:
        raise ValueError("not a RESULT faults line")
    figures = {k: int(v) for k, v in (p.split("=", 1) for p in parts[2:])}
    if set(figures) != set(RESULT_KEYS):
        raise ValueError(f"RESULT faults line has keys {sorted(figures)}, expected {list(RESULT_KEYS)}")
    return figures


# -- processes -------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Supervised:
    """A `datamin <command>` subprocess that may be SIGKILLed and restarted; exits it did not cause
    are counted as crashes and restarted too."""

    def __init__(self, command: str, env: dict[str, str], cwd: Path, log: Path) -> None:
        self.command, self.env, self.cwd, self.log = command, env, cwd, log
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0
        self.crashes = 0
        self.starts = 0

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([*DATAMIN, self.command], cwd=self.cwd, env=self.env,
                                         stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.starts += 1

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
            self.kills += 1

    def check(self) -> None:
        """Restarts it when it exited by itself."""
        if self.proc is not None and self.proc.poll() is not None:
            self.crashes += 1
            self.start()

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- the run ---------------------------------------------------------------------------------------

def make_env(tmp: Path, bootstrap: str, prefix: str, **extra: str) -> dict[str, str]:
    """DATAMIN__* settings of the run; DATAMIN_CONFIG names an empty file so that no datamin.toml of the
    working folder is read."""
    empty = tmp / "empty.toml"
    empty.touch()
    env = {
        "DATAMIN_CONFIG": str(empty),
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "DATAMIN__TOPICS__PREFIX": json.dumps(prefix),
        "DATAMIN__TOPICS__PARTITIONS": "3",
        "DATAMIN__PROCESSOR__GROUP_ID": json.dumps(f"{prefix}-processor"),
        "DATAMIN__PROCESSOR__TRANSACTIONAL_ID": json.dumps(f"{prefix}-tx"),
        "DATAMIN__WAREHOUSE__GROUP_ID": json.dumps(f"{prefix}-sink"),
        "DATAMIN__WAREHOUSE__ROOT": json.dumps(str(tmp / "warehouse")),
        "DATAMIN__WAREHOUSE__CATALOG": json.dumps(str(tmp / "catalog.duckdb")),
        "DATAMIN__WAREHOUSE__FLUSH_SECONDS": "1.0",
        "DATAMIN__PSEUDONYMISE__KEY_DIR": json.dumps(str(tmp / "keys")),
        "DATAMIN__PRODUCER__SPOOL_DIR": json.dumps(str(tmp / "spool")),
    }
    env.update(extra)
    return env


def child_env(env: Mapping[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith("DATAMIN") and k != "KAFKA_BOOTSTRAP_SERVERS"}
    return {**base, **env, "PYTHONPATH": str(ROOT), "DATAMIN_INSTANCE": "faults-0"}


def read_ids(root: Path) -> dict[str, list[str]]:
    """Every event_id (request_id for privacy_request) in the warehouse's data files, per table."""
    out: dict[str, list[str]] = {}
    con = duckdb.connect()
    try:
        for table in MINIMISED_EVENTS:
            files = data_files(root, table)
            if not files:
                out[table] = []
                continue
            column = "request_id" if table == "privacy_request" else "event_id"
            rows = con.execute(f"SELECT {column} FROM read_parquet(?, union_by_name=true)", [files]).fetchall()
            out[table] = [str(r[0]) for r in rows]
    finally:
        con.close()
    return out


def data_files(root: Path, table: str) -> list[str]:
    return sorted(str(p) for p in (root / table).glob("event_date=*/*.parquet")
                  if not p.name.startswith(".") and p.is_file())


def identified_rows(root: Path) -> list[tuple[str, bool]]:
    """(event_id, whether any identifier column is set) of every event row."""
    out: list[tuple[str, bool]] = []
    con = duckdb.connect()
    try:
        for table in EVENT_TABLES:
            files = data_files(root, table)
            if not files:
                continue
            rel = con.execute("SELECT * FROM read_parquet(?, union_by_name=true) LIMIT 0", [files])
            cols = [d[0] for d in rel.description or []]
            present = [c for c in IDENTIFIER_COLUMNS if c in cols]
            cond = " OR ".join(f"{c} IS NOT NULL" for c in present) or "false"
            out += [(str(r[0]), bool(r[1])) for r in con.execute(
                f"SELECT event_id, ({cond}) FROM read_parquet(?, union_by_name=true)", [files]).fetchall()]
    finally:
        con.close()
    return out


def secrets_found(root: Path, secrets: Iterable[str]) -> int:
    """How many (distinct warehoused string value, raw secret) pairs there are where the value contains
    the secret."""
    con = duckdb.connect()
    try:
        con.execute("CREATE TABLE needles (n VARCHAR)")
        con.executemany("INSERT INTO needles VALUES (?)", [(s,) for s in secrets])
        con.execute("CREATE TABLE vals (v VARCHAR)")
        for table in MINIMISED_EVENTS:
            files = data_files(root, table)
            if not files:
                continue
            rel = con.execute("DESCRIBE SELECT * FROM read_parquet(?, union_by_name=true)", [files]).fetchall()
            for name, dtype, *_ in rel:
                if str(dtype) == "VARCHAR" and name not in ("event_id", "request_id"):  # ids made by this run
                    con.execute(f'INSERT INTO vals SELECT DISTINCT "{name}" FROM read_parquet(?, union_by_name=true) '
                                f'WHERE "{name}" IS NOT NULL', [files])
        row = con.execute("SELECT count(*) FROM (SELECT DISTINCT v FROM vals) JOIN needles ON contains(v, n)"
                          ).fetchone()
        return int(row[0]) if row else 0
    finally:
        con.close()


def count_dead_letters(config: Config, timeout: float = 30.0) -> int:
    """Committed messages on the dead-letter topic, counted once per (source, partition, offset, stage)."""
    from kafka import KafkaConsumer, TopicPartition

    topic = Topics(config).dead_letter
    consumer = KafkaConsumer(group_id=None, isolation_level="read_committed", enable_auto_commit=False,
                             **config.kafka.client_kwargs())
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        end = consumer.end_offsets(tps)
        notes: list[tuple[Any, ...]] = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < end[tp] for tp in tps) and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500).values():
                for r in records:
                    try:
                        note = json.loads(r.value)
                        notes.append((note.get("source"), note.get("partition"), note.get("offset"), note.get("stage")))
                    except (ValueError, TypeError):
                        notes.append(("?", r.partition, r.offset, "?"))
        if len(set(notes)) != len(notes):
            print(f"note: {len(notes) - len(set(notes))} dead letter(s) written twice", flush=True)
        return len(set(notes))
    finally:
        consumer.close(autocommit=False)


def delivered(stats: Any) -> int:
    return int(stats.sent + stats.replayed + stats.dropped)


def wait_until(pred: Callable[[], bool], timeout: float, tick: Callable[[], None] = lambda: None,
               every: float = 1.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tick()
        if pred():
            return True
        time.sleep(every)
    return pred()


Events = list[tuple[str, dict[str, Any]]]


def build_events(shape: Shape, seed: int, expected: Expectations) -> tuple[Events, Events, Events]:
    """(privacy requests, traffic, lossy traffic), each event with an event_id of its own; fills
    ``expected``."""
    rng = random.Random(f"faults-ids-{seed}")  # not synthetic's stream: its advertising ids are UUIDs too
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)

    def uid() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    def note_secrets(record: Mapping[str, Any]) -> None:
        for f in RAW_IDENTIFIER_FIELDS:
            v = record.get(f)
            if isinstance(v, str) and len(v) >= 6:
                expected.secrets.add(v)

    events: Events = []
    for raw in traffic(shape.events, seed=seed, start=start):
        record = dict(raw)
        kind = record.pop("event")
        record["event_id"] = uid()
        expected.ids[kind].add(record["event_id"])
        expected.subject_of[record["event_id"]] = record["subject_key"]
        expected.time_of[record["event_id"]] = record["time"]
        note_secrets(record)
        events.append((kind, record))
    consenting = sorted({r["subject_key"] for k, r in events if k == "consent_record"})
    expected.consenting = set(consenting)
    active = {r["subject_key"] for k, r in events if k != "consent_record"}
    chosen = [s for s in consenting if s in active]
    rng.shuffle(chosen)
    n = max(2, min(8, len(chosen) // 4))
    expected.erased = set(chosen[:n])
    at = start + timedelta(minutes=15)
    expected.withdrawn = {s: at for s in chosen[n:2 * n]}
    requests: Events = []
    for subject, kind in [(s, "erasure") for s in sorted(expected.erased)] + \
                         [(s, "withdrawal") for s in sorted(expected.withdrawn)]:
        rid = uid()
        expected.request_ids.add(rid)
        requests.append(("privacy_request", {"request_id": rid, "subject_key": subject, "kind": kind,
                                             "received": at, "channel": "officer"}))
    lossy: Events = []
    for raw in traffic(shape.lossy_events * 2, seed=seed + 1, start=start):
        if raw["event"] != "http_request" or len(lossy) >= shape.lossy_events:
            continue
        record = dict(raw)
        record.pop("event")
        record["event_id"] = uid()
        expected.lossy_ids.add(record["event_id"])
        note_secrets(record)
        lossy.append(("http_request", record))
    expected.secrets.update(FIXED_SECRETS)
    return requests, events, lossy


def run(args: argparse.Namespace) -> int:
    from datamin.keys import subject_hash
    from producers.producer import EventProducer
    from schemas import default_registry, encode
    from warehouse.layout import layout_of
    from warehouse.leak_scan import scan_topics, scan_warehouse

    sh = shape(args.quick, args.seconds, args.events)
    rng = random.Random(args.seed)
    faults = plan_faults(sh, rng)
    tmp = Path(tempfile.mkdtemp(prefix="datamin-faults-"))
    broker = LocalBroker(home=tmp / "kafka", port=free_port(), controller_port=free_port(), heap="512m",
                         lib=LocalBroker(home=ROOT / ".datamin" / "kafka").lib
                         if not os.environ.get("DATAMIN_HOME") else LocalBroker().lib)
    prefix = f"faults-{uuid.uuid4().hex[:8]}"
    env = make_env(tmp, broker.bootstrap, prefix, DATAMIN__KAFKA__CLIENT=json.dumps(args.transport))
    print(f"transport: {args.transport}", flush=True)
    config = load_config(path=None, environ=env)
    lossy_config = load_config(path=None, environ=make_env(
        tmp, broker.bootstrap, prefix, DATAMIN__PRODUCER__SPOOL_DIR=json.dumps(str(tmp / "spool-lossy")),
        DATAMIN__PRODUCER__SPOOL_MAX_BYTES="16384", DATAMIN__KAFKA__CLIENT=json.dumps(args.transport)))
    procs = [Supervised("process", child_env(env), tmp, tmp / "processor.log"),
             Supervised("sink", child_env(env), tmp, tmp / "sink.log")]
    processor, sink = procs
    producers: list[Any] = []
    stop_publishing = threading.Event()
    t0 = time.monotonic()

    def check_all() -> None:
        for p in procs:
            p.check()

    def say(msg: str) -> None:
        print(f"[{time.monotonic() - t0:6.1f}s] {msg}", flush=True)

    try:
        say(f"private broker at {broker.bootstrap} in {tmp}")
        broker.start()
        provision(config)
        expected = Expectations()
        requests, events, lossy = build_events(sh, args.seed, expected)
        processor.start()
        sink.start()
        main = EventProducer(config)
        producers.append(main)
        published = 0
        for kind, record in requests:  # the officer's: on the privacy-requests topic by keyed hash, never the key
            hashed = subject_hash(config, record["subject_key"])
            value = encode(default_registry().latest(kind), {**record, "subject_key": hashed})
            published += main.publish_bytes(Topics(config).privacy_requests, value, key=hashed.encode(), timeout=5.0)
        main.flush(30)
        ok = wait_until(lambda: expected.request_ids <= set(read_ids(Path(config.warehouse.root))["privacy_request"]),
                        60.0, tick=check_all)
        say(f"{len(requests)} privacy requests published; in the warehouse: {ok}")

        # traffic, paced, in a thread of its own while the faults happen in this one
        def publish_all() -> None:
            nonlocal published
            begin = time.monotonic()
            for i, (kind, record) in enumerate(events):
                if stop_publishing.is_set():
                    return
                due = begin + sh.seconds * i / len(events)
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                published += main.publish(kind, record, timeout=5.0)

        publisher = threading.Thread(target=publish_all, name="publisher", daemon=True)
        publisher.start()
        begin = time.monotonic()
        # malformed raw messages, sent while the broker is up: each must reach the dead-letter topic
        from datamin.kafka import new_producer

        plain = new_producer(config, acks="all")
        for i in range(sh.malformed):
            topic = Topics(config).raw(RAW_EVENTS[i % len(RAW_EVENTS)])
            plain.send(topic, key=f"malformed-{i}".encode(), value=b"\x00not an avro event " + str(i).encode())
        plain.flush(30)
        plain.close()
        expected.malformed = sh.malformed
        outages = 0
        lossy_producer: Any = None
        for fault in faults:
            while time.monotonic() < begin + fault.at:
                for p in procs:
                    p.check()
                time.sleep(0.1)
            if fault.kind == "kill-processor":
                processor.kill()
                say(f"SIGKILL processor (kill {processor.kills})")
                time.sleep(rng.uniform(0.2, 1.5))
                processor.start()
            elif fault.kind == "kill-sink":
                sink.kill()
                say(f"SIGKILL sink (kill {sink.kills})")
                time.sleep(rng.uniform(0.2, 1.5))
                sink.start()
            else:
                say(f"broker stopped for {fault.seconds:.0f} s")
                broker.stop()
                outages += 1
                down = time.monotonic()
                if lossy_producer is None:
                    lossy_producer = EventProducer(lossy_config)
                    producers.append(lossy_producer)
                    for kind, record in lossy:
                        lossy_producer.publish(kind, record, timeout=5.0)
                    lossy_producer.flush(30)
                    say(f"tiny-spool producer during the outage: {lossy_producer.stats()}")
                time.sleep(max(0.0, fault.seconds - (time.monotonic() - down)))
                broker.start()
                say("broker started again")
        publisher.join(sh.seconds + 60)
        say(f"traffic published ({published} accepted); waiting for the producers to deliver")
        main.flush(60)
        wait_until(lambda: delivered(main.stats()) >= published, 120.0, tick=check_all)
        if lossy_producer is not None:
            wait_until(lambda: delivered(lossy_producer.stats()) >= len(lossy), 120.0)
        main_stats = main.stats()
        lossy_stats = lossy_producer.stats() if lossy_producer is not None else None
        for p in producers:
            p.close(30)
        dropped_main = main_stats.dropped
        dropped_lossy = lossy_stats.dropped if lossy_stats is not None else 0
        say(f"main producer {main_stats}; tiny-spool producer {lossy_stats}")

        root = Path(config.warehouse.root)

        def complete() -> bool:
            t = tally(expected, read_ids(root), dropped_main, dropped_lossy)
            return t.lost == 0 and t.warehoused + t.dropped >= t.produced

        done = wait_until(complete, sh.drain_seconds, tick=check_all, every=2.0)
        say(f"warehouse complete: {done}")
        for p in procs:
            p.stop()
        found = read_ids(root)
        t = tally(expected, found, dropped_main, dropped_lossy)
        now = datetime.now(UTC)
        wh_report = scan_warehouse(layout_of(config), now=now, ipv4_prefix=config.minimise.ipv4_prefix,
                                    ipv6_prefix=config.minimise.ipv6_prefix)
        topic_report = scan_topics(config, now=now)
        identified = identified_rows(root)
        rights = rights_violations(expected, identified)
        control = consenting_identified(expected, identified, expected.consenting)
        secrets = secrets_found(root, expected.secrets)
        dead = count_dead_letters(config)
        leaks = len(wh_report.findings) + len(topic_report.findings) + rights + secrets
        kills = processor.kills + sink.kills
        crashes = processor.crashes + sink.crashes
        rows = [
            ("produced (main + tiny-spool producer + privacy requests)", t.produced),
            ("  dropped, counted by the producers (expected loss)", t.dropped),
            ("  expected in the warehouse", t.produced - t.dropped),
            ("warehoused (distinct expected ids found)", t.warehoused),
            ("lost (expected, counted)", min(t.dropped, t.produced - t.warehoused)),
            ("lost (unexpected: beyond the counted drops)", t.lost),
            ("duplicated (same id twice)", t.duplicated),
            ("ids found that were never produced", t.unexpected),
            ("dead-lettered: expected (malformed injected)", expected.malformed),
            ("dead-lettered: found", dead),
            ("leaks: warehouse leak scan findings", len(wh_report.findings)),
            ("leaks: minimised-topic audit findings", len(topic_report.findings)),
            ("leaks: erased/withdrawn subjects' rows with identifiers", rights),
            ("  control: rows of other consenting subjects with a pseudonym", control),
            ("leaks: raw IP/identifier strings found in warehoused values", secrets),
            (f"  ({len(expected.secrets)} distinct raw strings searched)", len(expected.secrets)),
            ("faults: processor SIGKILLs", processor.kills),
            ("faults: sink SIGKILLs", sink.kills),
            ("faults: broker outages", outages),
            ("faults: spool-full episodes", 1 if lossy_producer is not None else 0),
            ("unplanned exits of processor/sink (restarted)", crashes),
            ("erasure / withdrawal requests", len(expected.erased) + len(expected.withdrawn)),
        ]
        width = max(len(r[0]) for r in rows)
        print(f"{'figure':{width}}  value")
        for name, value in rows:
            print(f"{name:{width}}  {value}")
        if wh_report.findings or topic_report.findings:
            print(wh_report.merge(topic_report).format())
        figures = {"produced": t.produced, "warehoused": t.warehoused, "lost": t.lost,
                   "duplicated": t.duplicated, "dead_lettered": dead, "leaks": leaks, "kills": kills,
                   "outages": outages}
        print(result_line(figures), flush=True)
        good = t.lost == 0 and t.unexpected == 0 and t.duplicated == 0 and leaks == 0 and dead == expected.malformed
        return 0 if good else 1
    finally:
        stop_publishing.set()
        for prod in producers:
            try:
                prod.close(5)
            except Exception as exc:  # cleaning up: go on with the rest
                print(f"closing a producer failed: {type(exc).__name__}", file=sys.stderr)
        for p in procs:
            try:
                p.stop(10)
            except Exception as exc:
                print(f"stopping {p.module} failed: {type(exc).__name__}", file=sys.stderr)
        try:
            broker.stop()
        except Exception as exc:
            print(f"stopping the broker failed: {type(exc).__name__}", file=sys.stderr)
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a run under a minute")
    parser.add_argument("--seconds", type=float, help="seconds of paced traffic")
    parser.add_argument("--events", type=int, help="traffic events of the main producer")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--transport", choices=("kafka-python", "confluent-kafka"), default="kafka-python",
                        help="the Kafka transport (kafka.client) of the processor, the sink and the producers")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, warehouse)")
    args = parser.parse_args(argv)

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt  # so that run()'s finally stops everything it started

    signal.signal(signal.SIGTERM, on_term)
    try:
        return run(args)
    except KeyboardInterrupt:
        print("interrupted: everything started was stopped", file=sys.stderr)
        return 130

