"""Events/s from a raw topic to its minimised topic through the stream processor (`datamin process`,
exactly once), against a kafka-python passthrough that copies the same topic
consumer -> producer with the same transactional pattern (read_committed, one transaction per poll
batch with the offsets in it) and no decoding, in the same run. Also 1 vs 2 processor instances.

    KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:19092 python bench/kafka_loop.py [--quick]

Each pipeline runs in its own process; the rate is measured by a read_committed consumer of the
output topic, from the first committed output record to the last (start-up and group joins excluded).
A third pipeline, the same passthrough decoding and re-encoding every value with datamin's Avro codec,
shows the ceiling of any processor that reads and writes Avro in Python. Best of 2 rounds (3 in the
full run), each on fresh topics with the pipelines one after another.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATAMIN = [sys.executable, "-c", "import sys; from datamin.cli import main; sys.exit(main())"]
"""the `datamin` command, run by this interpreter"""
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from kafka import KafkaConsumer, KafkaProducer  # noqa: E402
from kafka.structs import OffsetAndMetadata  # noqa: E402

from datamin.config import Config, load_config  # noqa: E402
from datamin.topics import Topics, provision  # noqa: E402
from processors.loop import MAX_POLL_RECORDS  # noqa: E402


def _config(prefix: str, partitions: int, key_dir: str) -> Config:
    env = dict(os.environ)
    env.update({"DATAMIN__TOPICS__PREFIX": json.dumps(prefix), "DATAMIN__TOPICS__PARTITIONS": str(partitions),
                "DATAMIN__PROCESSOR__GROUP_ID": json.dumps(f"{prefix}-processor"),
                "DATAMIN__PROCESSOR__TRANSACTIONAL_ID": json.dumps(f"{prefix}-tx"),
                "DATAMIN__PSEUDONYMISE__KEY_DIR": json.dumps(key_dir)})
    return load_config(path=None, environ=env)


def _env(config: Config, instance: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"KAFKA_BOOTSTRAP_SERVERS": config.kafka.bootstrap_servers,
                "DATAMIN__TOPICS__PREFIX": json.dumps(config.topics.prefix),
                "DATAMIN__TOPICS__PARTITIONS": str(config.topics.partitions),
                "DATAMIN__PROCESSOR__GROUP_ID": json.dumps(config.processor.group_id),
                "DATAMIN__PROCESSOR__TRANSACTIONAL_ID": json.dumps(config.processor.transactional_id),
                "DATAMIN__PSEUDONYMISE__KEY_DIR": json.dumps(config.pseudonymise.key_dir),
                "DATAMIN_INSTANCE": instance, "PYTHONPATH": str(ROOT),
                "DATAMIN__KAFKA__CLIENT": json.dumps(TRANSPORT[0])})
    return env


TRANSPORT = ["kafka-python"]
"""the transport of `datamin process` in this run (--transport)"""


def fill(config: Config, events: list[bytes]) -> int:
    """Writes the event mix: consent records to the consent topic, the rest to the raw http topic
    (usage and device events to theirs). Returns how many events the minimised topics will get."""
    from schemas import default_registry
    from schemas.encoding import header_schema

    registry = default_registry()
    topics = Topics(config)
    producer = KafkaProducer(acks="all", linger_ms=20, batch_size=512 * 1024, **config.kafka.client_kwargs())
    for i, data in enumerate(events):
        name = header_schema(data, registry).name
        producer.send(topics.raw(name), key=f"user-{i % 2000:05d}".encode(), value=data)
    producer.flush()
    producer.close()
    return len(events)


def passthrough_worker(config_json: str, source: list[str], target: str) -> None:
    """A kafka-python copy: read_committed consumer -> transactional producer, offsets in the transaction.
    With "avro" in the config, each value is decoded and encoded again (datamin's codec, no minimising):
    the ceiling of any processor that reads and writes Avro."""
    cfg = json.loads(config_json)
    from schemas import decode, default_registry, encode
    registry = default_registry()

    def copy(value: bytes) -> bytes:
        return encode(*decode(value, registry)) if cfg.get("avro") else value

    kafka = load_config(path=None, environ={"KAFKA_BOOTSTRAP_SERVERS": cfg["bootstrap"]}).kafka.client_kwargs()
    producer = KafkaProducer(transactional_id=cfg["tx"], enable_idempotence=True, acks="all", linger_ms=5,
                             batch_size=256 * 1024, **kafka)
    producer.init_transactions()
    consumer = KafkaConsumer(*source, group_id=cfg["group"], isolation_level="read_committed",
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             max_poll_records=MAX_POLL_RECORDS, **kafka)  # the processor's batch, so transaction, size
    while True:
        batch = consumer.poll(timeout_ms=500)
        if not batch:
            continue
        producer.begin_transaction()
        for records in batch.values():
            for r in records:
                producer.send(target, key=r.key, value=copy(r.value))
        producer.send_offsets_to_transaction(
            {tp: OffsetAndMetadata(rs[-1].offset + 1, "", -1) for tp, rs in batch.items()}, consumer.group_metadata())
        producer.commit_transaction()


def measure(config: Config, topics: list[str], expected: int, procs: list[subprocess.Popen[bytes]],
            timeout: float = 600) -> float:
    consumer = KafkaConsumer(*topics, group_id=None, isolation_level="read_committed", auto_offset_reset="earliest",
                             enable_auto_commit=False, fetch_max_bytes=64 * 1024 * 1024,
                             **config.kafka.client_kwargs())
    seen, first_batch, first, last = 0, 0, 0.0, 0.0
    deadline = time.monotonic() + timeout
    try:
        while seen < expected:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise SystemExit(f"only {seen} of {expected} events arrived; see the workers' output")
            batch = consumer.poll(timeout_ms=200)
            n = sum(len(rs) for rs in batch.values())
            if n and not first:
                first, first_batch = time.monotonic(), n  # the rate counts from the first committed batch on
            seen += n
            last = time.monotonic() if n else last
    finally:
        consumer.close()
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=60)
    return (seen - first_batch) / max(last - first, 1e-6)


def _passthrough(config: Config, prefix: str, sources: list[str], expected: int, avro: bool, log: Any) -> float:
    copy = f"{prefix}.copy{'-avro' if avro else ''}"
    from kafka.admin import KafkaAdminClient, NewTopic
    admin = KafkaAdminClient(**config.kafka.client_kwargs())
    admin.create_topics([NewTopic(copy, config.topics.partitions, 1)])
    admin.close()
    cfg = json.dumps({"bootstrap": config.kafka.bootstrap_servers, "tx": f"{copy}-tx", "group": copy, "avro": avro})
    worker = subprocess.Popen([sys.executable, __file__, "--passthrough-worker", cfg, ",".join(sources), copy],
                              cwd=ROOT, stderr=log)
    return measure(config, [copy], expected, [worker])


def run(prefix: str, partitions: int, events: list[bytes], key_dir: str, instances: int) -> tuple[float, float, float]:
    """One round on fresh topics: (processor, passthrough, Avro-decoding passthrough) events/s."""
    config = _config(prefix, partitions, key_dir)
    provision(config)
    topics = Topics(config)
    expected = fill(config, events)
    outs = [topics.minimised(e) for e in ("http_request", "usage_event", "device_report", "consent_record")]
    log = open(os.environ.get("BENCH_LOG", os.devnull), "ab")  # the workers' stderr
    sources = [topics.raw(e) for e in ("http_request", "usage_event", "device_report")] + [topics.consent]
    base = _passthrough(config, prefix, sources, expected, False, log)
    procs = [subprocess.Popen([*DATAMIN, "process"], cwd=ROOT,
                              env=_env(config, f"i{n}"), stderr=log) for n in range(instances)]
    rate = measure(config, outs, expected, procs)
    avro = _passthrough(config, prefix, sources, expected, True, log)
    return rate, base, avro


def best_of(rounds: int, partitions: int, events: list[bytes], key_dir: str, instances: int) -> tuple[float, ...]:
    """Best of ``rounds`` rounds, each running the three pipelines one after another: on a busy machine
    the best round is the one least disturbed, for all three alike."""
    results = [run(f"bench-{uuid.uuid4().hex[:8]}", partitions, events, key_dir, instances) for _ in range(rounds)]
    return tuple(max(r[i] for r in results) for i in range(3))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--passthrough-worker":
        passthrough_worker(sys.argv[2], sys.argv[3].split(","), sys.argv[4])
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a run under a minute")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--transport", choices=("kafka-python", "confluent-kafka"), default="kafka-python",
                        help="the Kafka transport of `datamin process` (the passthrough baseline stays kafka-python)")
    args = parser.parse_args()
    TRANSPORT[0] = args.transport
    print(f"transport of datamin process: {args.transport}", file=sys.stderr)
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        raise SystemExit("set KAFKA_BOOTSTRAP_SERVERS to a broker (e.g. 127.0.0.1:19092)")
    from minimise_transform import make_events

    n = args.events or (20_000 if args.quick else 60_000)
    events = make_events(n)
    import tempfile
    rounds = 2 if args.quick else 3
    with tempfile.TemporaryDirectory() as key_dir:
        one, base_one, avro_one = best_of(rounds, 2, events, key_dir, instances=1)
        print(f"1 instance: processor {one:,.0f} events/s; passthrough {base_one:,.0f} events/s; Avro-decoding "
              f"passthrough {avro_one:,.0f} events/s (ratio {avro_one / base_one:.2f}: the ceiling of any processor "
              f"that reads and writes Avro in Python here); best of {rounds} rounds", file=sys.stderr)
        if not args.quick:
            two, base_two, _ = best_of(rounds, 2, events, key_dir, instances=2)
            print(f"2 instances (2 partitions): processor {two:,.0f} events/s; passthrough {base_two:,.0f} events/s "
                  f"({two / one:.2f}x one instance; {os.cpu_count()} CPUs on this machine, broker included)",
                  file=sys.stderr)
    print(f"RESULT kafka_loop {one:.0f} events/s ratio={one / base_one:.2f} "
          "baseline=kafka-python transactional consumer->producer passthrough (read_committed, offsets in the "
          "transaction, no decoding), 1 instance each")


if __name__ == "__main__":
    main()
