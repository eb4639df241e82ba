"""A self-service erasure carried out end to end, then every store scanned for the person.

The person (a logged-in user, vouched for by a signed token) consents and browses through the real
collector and EventProducer; the real processor and sink load their events into the warehouse; one
of their files is quarantined and one raw event waits in the producer spool. They post an erasure
request to the collector; the rights worker carries it out. Then every store is scanned for the clear
key, the raw user id and each of their pseudonyms."""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pyarrow.parquet as pq

from datamin.config import Config
from datamin.identity import Identity
from datamin.keys import key_store
from datamin.topics import Topics, provision
from processors.loop import run_processor
from producers.collector import Collector, CollectorSettings
from producers.producer import EventProducer
from producers.spool import Spool
from producers.spool_erasure import erase_subject_from_spool
from schemas import default_registry, encode
from warehouse.layout import layout_of
from warehouse.rights.erasure import sweep_erased
from warehouse.rights.preflight import ensure_rights_secret
from warehouse.rights.subjects import subject_pseudonyms
from warehouse.rights.topic_erasure import records_with_key
from warehouse.rights.trail import read_requests
from warehouse.rights.worker import RightsWorker
from warehouse.sink import run_sink

USER_ID = "Ola-Nordmann-77"
SUBJECT = "user:ola-nordmann-77"
SECRET = b"self-service-test-secret-of-32-bytes+"


def _post(collector: Collector, events: list[dict[str, Any]], token: str) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=collector)
        async with httpx.AsyncClient(transport=transport, base_url="http://collect.example") as client:
            return await client.post("/collect", content=json.dumps(events), headers={"x-datamin-subject": token})

    return asyncio.run(call())


def _wait(what: str, check: Any, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _text_of(path: Path) -> bytes:
    """A file's bytes, and for Parquet every value of every row as text (the bytes are compressed)."""
    data = path.read_bytes()
    if path.name.endswith(".parquet") or ".parquet." in path.name:
        try:
            data += str(pq.read_table(path).to_pylist()).encode()
        except Exception:  # noqa: BLE001 - an unreadable file is scanned as bytes only
            pass
    return data


def test_self_service_erasure_reaches_every_store(kafka_config: Config) -> None:
    config = kafka_config
    topics = Topics(config)
    provision(config)
    ensure_rights_secret(config)  # as the processor does when it starts
    identity = Identity(SECRET, max_token_uses=1000)
    producer = EventProducer(config)
    collector = Collector(producer, CollectorSettings(identity=identity))
    token = identity.sign_user(USER_ID)
    now = datetime.now(UTC).isoformat()
    stop = threading.Event()
    pipeline = [threading.Thread(target=run_processor, args=(config,), kwargs={"stop": stop, "instance": "ss"}),
                threading.Thread(target=run_sink, args=(config,), kwargs={"stop": stop})]
    for t in pipeline:
        t.start()
    worker_stop = threading.Event()
    worker = RightsWorker(config, spool_eraser=erase_subject_from_spool)  # as `datamin rights worker` runs it
    worker_thread = threading.Thread(target=worker.run, args=(worker_stop,))
    try:
        consent = {"event": "consent_record", "time": now, "necessary": True, "statistics": True,
                   "marketing": True, "feedback": True, "source": "banner"}
        assert _post(collector, [consent], token).status_code == 200
        assert producer.flush(60)
        time.sleep(1.0)  # the consent is applied before the events that follow it
        later = datetime.now(UTC).isoformat()
        usage = [{"event": "usage_event", "time": later, "kind": "page_view", "page": f"/p{i}"} for i in range(3)]
        assert _post(collector, usage, token).status_code == 200
        assert producer.flush(60)

        layout = layout_of(config)
        usage_files = _wait("the person's rows in the warehouse",
                            lambda: sorted(layout.table_dir("usage_event").glob("*/*.parquet")))
        pseudonyms = set(subject_pseudonyms(key_store(config), SUBJECT).values())
        assert pseudonyms, "the processor made no key"
        held = str([pq.read_table(f).to_pylist() for f in usage_files])
        assert any(p in held for p in pseudonyms), "the person's usage rows kept no pseudonym (consent ignored?)"

        # a quarantined copy of one of their files, and a raw event of theirs waiting in the spool
        quarantine = layout.quarantine_dir / "usage_event" / usage_files[0].parent.name
        quarantine.mkdir(parents=True)
        shutil.copy(usage_files[0], quarantine / f"{usage_files[0].name}.q1")
        spool = Spool.open(config.producer.spool_dir, 1 << 20)
        raw = encode(default_registry().latest("http_request", "raw"), {
            "event_id": "spooled-1", "time": datetime.now(UTC), "subject_key": SUBJECT, "client_ip": "203.0.113.9",
            "url": "/spooled", "user_id": USER_ID})
        spool.append(topics.raw("http_request"), SUBJECT.encode(), raw)
        spool.close()

        worker_thread.start()
        request = {"event": "privacy_request", "kind": "erasure", "request_id": "chosen-by-client",
                   "received": "2000-01-01T00:00:00Z", "channel": "officer"}
        assert _post(collector, [request], token).status_code == 200
        assert producer.flush(60)
        done = _wait("the erasure to be carried out",
                     lambda: [r for r in read_requests(layout, now=datetime.now(UTC)) if r.state == "done"])
    finally:
        worker_stop.set()
        if worker_thread.is_alive():
            worker_thread.join(timeout=60)
        stop.set()
        for t in pipeline:
            t.join(timeout=60)
        producer.close(30)

    [request_state] = done
    assert request_state.kind == "erasure" and request_state.channel == "self_service"
    assert request_state.request_id != "chosen-by-client" and request_state.received.year > 2000
    receipt = request_state.receipt
    assert set(receipt["stores"]) == {"erased_subjects", "warehouse", "quarantine", "consent_topic", "spool",
                                      "minimised_topics", "privacy_requests", "requests_in", "backups"}
    assert receipt["rows"] >= 3 and receipt["quarantine_rows"] >= 1
    assert receipt["consent_tombstones"] >= 1 and receipt["spool_records"] == 1

    # the erasure request's own minimised record (and any event minimised before the erasure) reaches the
    # warehouse after it: the scheduler's hourly sweep deletes such late rows
    sweep_erased(layout_of(config), now=datetime.now(UTC))

    needles = [SUBJECT.encode(), USER_ID.encode(), USER_ID.lower().encode(), *(p.encode() for p in pseudonyms)]
    # every file datamin wrote: warehouse tables, quarantine, trail, audit, restricted list, catalog, keys, spool
    roots = [Path(config.warehouse.root), Path(config.warehouse.catalog).parent, Path(config.producer.spool_dir)]
    scanned = 0
    for root in roots:
        for path in (p for p in root.rglob("*") if p.is_file()):
            if path == layout.erased_sweep_file:
                continue  # the sweep list keeps the pseudonyms (no key beside them) until the Kafka window ends
            if path.is_relative_to(Path(config.pseudonymise.key_dir)):
                continue  # key files: random bytes
            text = _text_of(path)
            scanned += 1
            for needle in needles:
                assert needle not in text, f"{path} still holds the person ({needle[:6]!r}...)"
    assert scanned >= 5

    # Kafka: the consent topic ends each of their keys with a tombstone; erased-subjects holds a hash only
    theirs = records_with_key(config, topics.consent, lambda k, v: k is not None and k.lower() == SUBJECT.encode())
    assert theirs and theirs[-1][2] is None, "the consent topic's last record of the person is not a tombstone"
    erased = records_with_key(config, topics.erased_subjects, lambda k, v: True)
    assert len(erased) == 1 and erased[0][1] is not None and erased[0][1].startswith(b"h1_")
    for _, key, value in erased:
        for needle in needles:
            assert needle not in (key or b"") + (value or b"")
    requests = records_with_key(config, topics.privacy_requests, lambda k, v: True)
    assert len(requests) == 1 and requests[0][1] is not None and requests[0][1].startswith(b"h1_")
    for topic in (topics.privacy_requests, topics.erased_subjects, topics.dead_letter):
        for _, key, value in records_with_key(config, topic, lambda k, v: True):
            for needle in needles:
                assert needle not in (key or b"") + (value or b""), f"{topic} holds the person"
    # the raw requests topic holds the request as posted, in clear, until its raw retention (hours)
    assert records_with_key(config, topics.requests_in, lambda k, v: k == SUBJECT.encode())
