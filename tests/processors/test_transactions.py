"""A caught-up processor, fed a trickle of events, still commits many records per transaction: a
transaction spans polls until it is processor.transaction_seconds old (real broker)."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from kafka import KafkaConsumer, KafkaProducer

from datamin.config import Config
from datamin.topics import Topics, provision
from processors.loop import ProcessorLoop
from schemas import decode, default_registry, encode

EVENTS = 300


def _http(n: int) -> dict[str, Any]:
    return {"event_id": f"trickle-{n}-{uuid.uuid4().hex[:6]}", "time": datetime.now(UTC), "subject_key": f"s{n % 17}",
            "client_ip": "198.51.100.7", "method": "GET", "host": "example.no", "url": "/", "status": 200,
            "bytes_sent": 100, "duration_ms": 1.0, "referrer": None, "user_agent": "curl/8.0",
            "accept_language": None, "client_hints": None, "do_not_track": None, "global_privacy_control": None,
            "cdn_country": "NO", "session_id": None, "user_id": None, "client_id": None}


def test_a_trickle_of_events_is_committed_in_few_transactions(make_config: Any, kafka_bootstrap: str) -> None:
    prefix = f"t-{uuid.uuid4().hex[:10]}"
    config: Config = make_config(kafka=kafka_bootstrap, **{
        "TOPICS__PREFIX": f'"{prefix}"', "TOPICS__PARTITIONS": "2", "PROCESSOR__GROUP_ID": f'"{prefix}-p"',
        "PROCESSOR__TRANSACTIONAL_ID": f'"{prefix}-tx"', "PROCESSOR__TRANSACTION_SECONDS": "1.0"})
    provision(config)
    topics = Topics(config)
    stop = threading.Event()
    loop = ProcessorLoop(config, "trickle", stop, log_interval=5.0)
    thread = threading.Thread(target=loop.run)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while loop.assignments == 0 or loop.restore.pending() or len(loop.ledgers) < 2:
            assert time.monotonic() < deadline, "the processor did not take its partitions"
            time.sleep(0.1)
        before = loop.transactions
        producer = KafkaProducer(acks=1, linger_ms=0, **config.kafka.client_kwargs())
        http = default_registry().latest("http_request", "raw")
        for n in range(EVENTS):  # one at a time: each poll of a caught-up processor returns one or two
            event = _http(n)
            producer.send(topics.raw("http_request"), key=event["subject_key"].encode(), value=encode(http, event))
            producer.flush()
            time.sleep(0.005)
        producer.close()
        reader = KafkaConsumer(topics.minimised("http_request"), group_id=None, isolation_level="read_committed",
                               auto_offset_reset="earliest", enable_auto_commit=False, **config.kafka.client_kwargs())
        out: list[Any] = []
        try:
            while len(out) < EVENTS and time.monotonic() < deadline + 60:
                for records in reader.poll(timeout_ms=500).values():
                    out.extend(records)
        finally:
            reader.close()
    finally:
        stop.set()
        thread.join(timeout=60)
    seen = Counter(decode(r.value, default_registry())[1]["event_id"] for r in out)
    assert len(seen) == EVENTS and max(seen.values()) == 1
    transactions = loop.transactions - before
    assert 0 < transactions and EVENTS / transactions >= 20, f"{transactions} transactions for {EVENTS} events"
