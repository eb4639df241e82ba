"""Events/s of `datamin process` on the confluent-kafka transport against a peer: a quixstreams exactly-once
application that runs datamin's own minimiser (decode, consent ledger, minimise, encode) on the same events.

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:19092 python bench/peer_processor.py [--quick] [--profile FILE]

Needs the benchmark extra: pip install -e '.[bench]' (quixstreams; never a runtime dependency).
The raw topics are filled once; every round runs both pipelines on those same contents, each with a consumer
group, transactional id and output of its own, in alternating order (interleaved rounds). A pipeline's rate is
counted by a read_committed reader of its output, from its first committed batch to its last (start-up and
group joins excluded); its CPU per event is the process's CPU time over the same span. The figure is the
median of the rounds. --profile FILE writes a cProfile of `datamin process`'s last round.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from confluent_kafka import Consumer, TopicPartition  # noqa: E402

from datamin.config import Config, load_config  # noqa: E402
from datamin.topics import MINIMISED_EVENTS, Topics, provision  # noqa: E402

RAW = ("http_request", "usage_event", "device_report")


def _env(prefix: str, key_dir: str, group: str, client: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"DATAMIN__TOPICS__PREFIX": json.dumps(prefix), "DATAMIN__TOPICS__PARTITIONS": "2",
                "DATAMIN__PROCESSOR__GROUP_ID": json.dumps(group),
                "DATAMIN__PROCESSOR__TRANSACTIONAL_ID": json.dumps(f"{group}-tx"),
                "DATAMIN__PSEUDONYMISE__KEY_DIR": json.dumps(key_dir),
                "DATAMIN__KAFKA__CLIENT": json.dumps(client),
                "DATAMIN_INSTANCE": "bench", "PYTHONPATH": str(ROOT)})
    return env


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fill(config: Config, events: list[bytes]) -> int:
    """The event mix, once: consent records to the consent topic, the rest to their raw topics."""
    from confluent_kafka import Producer

    from datamin.kafka.confluent import connection_settings
    from schemas import default_registry
    from schemas.encoding import header_schema

    registry = default_registry()
    topics = Topics(config)
    producer = Producer({**connection_settings(config), "acks": "all", "linger.ms": 20,
                         "partitioner": "murmur2_random"})
    for i, data in enumerate(events):
        name = header_schema(data, registry).name
        while True:
            try:
                producer.produce(topics.raw(name), data, f"user-{i % 2000:05d}".encode())
                break
            except BufferError:
                producer.poll(0.1)
    producer.flush()
    return len(events)


def measure(config: Config, topics: list[str], expected: int, proc: subprocess.Popen[bytes],
            timeout: float = 900) -> tuple[float, float]:
    """(events/s, CPU µs per event) of ``proc`` as its output reaches ``topics`` (counted from their ends now)."""
    from datamin.kafka.confluent import connection_settings

    reader = Consumer({**connection_settings(config), "group.id": f"reader-{uuid.uuid4().hex}",
                       "isolation.level": "read_committed", "enable.auto.commit": False})
    parts = []
    for topic in topics:
        for p in reader.list_topics(topic, timeout=30).topics[topic].partitions:
            high = reader.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
            parts.append(TopicPartition(topic, p, high))
    reader.assign(parts)
    seen, first_batch, first, last, cpu_first, cpu_last = 0, 0, 0.0, 0.0, 0.0, 0.0
    deadline = time.monotonic() + timeout
    try:
        while seen < expected:
            if time.monotonic() > deadline or proc.poll() is not None or (last and time.monotonic() - last > 60):
                raise SystemExit(f"only {seen} of {expected} events arrived; set BENCH_LOG=file to see why")
            n = len([m for m in reader.consume(10_000, 0.2) if m.error() is None])
            if n and not first:
                first, first_batch, cpu_first = time.monotonic(), n, _cpu_seconds(proc.pid)
            if n:
                seen += n
                last, cpu_last = time.monotonic(), _cpu_seconds(proc.pid)
    finally:
        reader.close()
        proc.terminate()
        proc.wait(timeout=120)
    counted = max(seen - first_batch, 1)
    return counted / max(last - first, 1e-6), (cpu_last - cpu_first) / counted * 1e6


def run_datamin(config: Config, key_dir: str, expected: int, log: Any, profile: str | None,
                client: str = "confluent-kafka") -> tuple[float, float]:
    group = f"{config.topics.prefix}-dm-{uuid.uuid4().hex[:6]}"
    command = [sys.executable, "-c", "import sys; from datamin.cli import main; sys.exit(main())", "process"]
    if profile:  # cProfile runs a script, not -c: a tiny one
        script = Path(profile).with_suffix(".run.py")
        script.write_text("import sys\nfrom datamin.cli import main\nsys.argv = ['datamin', 'process']\n"
                          "sys.exit(main())\n")
        command = [sys.executable, "-m", "cProfile", "-o", profile, str(script)]
    proc = subprocess.Popen(command, cwd=ROOT, env=_env(config.topics.prefix, key_dir, group, client),
                            stderr=log)
    topics = Topics(config)
    return measure(config, [topics.minimised(e) for e in MINIMISED_EVENTS], expected, proc)


def run_quix(config: Config, key_dir: str, expected: int, log: Any) -> tuple[float, float]:
    from confluent_kafka.admin import AdminClient, NewTopic

    from datamin.kafka.confluent import connection_settings

    out = f"{config.topics.prefix}.quix-{uuid.uuid4().hex[:6]}"
    admin = AdminClient(connection_settings(config))
    for f in admin.create_topics([NewTopic(out, num_partitions=2, replication_factor=1)]).values():
        f.result()
    spec = json.dumps({"bootstrap": config.kafka.bootstrap_servers, "prefix": config.topics.prefix,
                       "out": out, "group": out, "key_dir": key_dir})
    proc = subprocess.Popen([sys.executable, __file__, "--quix-worker", spec], cwd=ROOT, stderr=log,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    return measure(config, [out], expected, proc)


def quix_worker(spec_json: str) -> None:
    """The peer: a quixstreams exactly-once application calling datamin's decode → ledger → minimise → encode
    for every record of the same input topics (consent first-class, a ledger per input partition)."""
    from datetime import UTC, datetime

    from quixstreams import Application, message_context

    from processors.minimise import Minimiser
    from processors.pipeline import new_ledger, process_event
    from processors.transforms import KeyStore
    from schemas import decode, default_registry, encode

    spec = json.loads(spec_json)
    environ = {"KAFKA_BOOTSTRAP_SERVERS": spec["bootstrap"], "DATAMIN__TOPICS__PREFIX": json.dumps(spec["prefix"]),
               "DATAMIN__PSEUDONYMISE__KEY_DIR": json.dumps(spec["key_dir"])}
    config = load_config(path=None, environ=environ)
    registry = default_registry()
    minimiser = Minimiser(registry, config.minimise, KeyStore(Path(spec["key_dir"]), config.pseudonymise.rotation,
                                                              lambda: datetime.now(UTC)))
    ledgers: dict[int, Any] = {}

    def minimise(value: bytes, key: bytes | None, timestamp: int, headers: Any) -> bytes | None:
        partition = message_context().partition
        ledger = ledgers.get(partition)
        if ledger is None:
            ledger = ledgers[partition] = new_ledger(config)
        try:
            schema, raw = decode(value, registry)
            result = process_event(minimiser, ledger, schema, raw, key.decode() if key else None)
            return encode(result.schema, result.record)
        except (ValueError, TypeError, KeyError) as exc:  # a dead letter in datamin; dropped here
            print(f"quix worker: dropped a record ({type(exc).__name__}: {exc})", file=sys.stderr)
            return None

    app = Application(broker_address=spec["bootstrap"], consumer_group=spec["group"], auto_offset_reset="earliest",
                      processing_guarantee="exactly-once", commit_interval=1.0,
                      loglevel=os.environ.get("BENCH_QUIX_LOGLEVEL", "WARNING"),
                      use_changelog_topics=False, state_dir=tempfile.mkdtemp())
    out = app.topic(spec["out"], value_serializer="bytes", key_serializer="bytes")
    topics = Topics(config)
    for name in [topics.consent, *(topics.raw(e) for e in RAW)]:
        sdf = app.dataframe(app.topic(name, value_deserializer="bytes", key_deserializer="bytes"))
        sdf = sdf.apply(minimise, metadata=True).filter(lambda v: v is not None)
        sdf.to_topic(out)
    app.run()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--quix-worker":
        quix_worker(sys.argv[2])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a run of a few minutes")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--transport", choices=("confluent-kafka", "kafka-python"), default="confluent-kafka",
                        help="datamin's transport (the figure is on confluent-kafka; kafka-python for comparison)")
    parser.add_argument("--profile", help="write a cProfile of `datamin process` (last round) to this file")
    args = parser.parse_args()
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        raise SystemExit("set KAFKA_BOOTSTRAP_SERVERS to a broker (e.g. 127.0.0.1:19092)")
    from minimise_transform import make_events

    n = args.events or (20_000 if args.quick else 60_000)
    rounds = args.rounds or (2 if args.quick else 3)
    events = make_events(n)
    log = open(os.environ.get("BENCH_LOG", os.devnull), "ab")  # noqa: SIM115 - the workers' stderr
    with tempfile.TemporaryDirectory() as key_dir:
        prefix = f"peer-{uuid.uuid4().hex[:8]}"
        config = load_config(path=None, environ={**os.environ, "DATAMIN__TOPICS__PREFIX": json.dumps(prefix),
                                                 "DATAMIN__TOPICS__PARTITIONS": "2"})
        provision(config)
        expected = fill(config, events)
        ours: list[tuple[float, float]] = []
        theirs: list[tuple[float, float]] = []
        for r in range(rounds):
            profile = args.profile if r == rounds - 1 else None
            if r % 2 == 0:
                ours.append(run_datamin(config, key_dir, expected, log, profile, args.transport))
                theirs.append(run_quix(config, key_dir, expected, log))
            else:
                theirs.append(run_quix(config, key_dir, expected, log))
                ours.append(run_datamin(config, key_dir, expected, log, profile, args.transport))
            print(f"round {r + 1}: datamin process ({args.transport}) {ours[-1][0]:,.0f} events/s, "
                  f"{ours[-1][1]:.0f} µs CPU/event; quixstreams {theirs[-1][0]:,.0f} events/s, "
                  f"{theirs[-1][1]:.0f} µs CPU/event", file=sys.stderr, flush=True)
    rate = statistics.median(o[0] for o in ours)
    peer = statistics.median(t[0] for t in theirs)
    cpu, peer_cpu = statistics.median(o[1] for o in ours), statistics.median(t[1] for t in theirs)
    print(f"median of {rounds} interleaved rounds on {expected:,} events: CPU per event datamin {cpu:.0f} µs, "
          f"quixstreams {peer_cpu:.0f} µs", file=sys.stderr)
    print(f"datamin's transport: {args.transport}", file=sys.stderr)
    print(f"RESULT peer_processor {rate:.0f} events/s ratio={rate / peer:.2f} "
          "baseline=quixstreams exactly-once app, same minimiser, same events")


if __name__ == "__main__":
    main()
