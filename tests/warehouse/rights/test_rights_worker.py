"""The rights worker: each self-service request recorded and carried out exactly once, even when the
worker dies midway; access requests queued for the officer; `datamin rights status` lists them all."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from datamin.config import Config
from datamin.kafka import new_producer
from datamin.keys import KeyStore, pseudonymise
from datamin.topics import Topics, provision
from schemas import decode, default_registry, encode
from warehouse.arrow import records_to_table
from warehouse.layout import Layout
from warehouse.rights import worker as worker_module
from warehouse.rights.preflight import ensure_rights_secret
from warehouse.rights.requests import status_report
from warehouse.rights.restriction import read_restricted
from warehouse.rights.subjects import subject_pseudonyms
from warehouse.rights.topic_erasure import records_with_key
from warehouse.rights.trail import read_requests, requests_dir
from warehouse.rights.worker import RightsWorker

NOW = datetime.now(UTC)


class Crash(BaseException):
    """A kill at a chosen point (BaseException: nothing in the worker catches it)."""


def _seed(config: Config, subjects: list[str]) -> tuple[Path, dict[str, str]]:
    keys = KeyStore(Path(config.pseudonymise.key_dir), "monthly", clock=lambda: NOW)
    ensure_rights_secret(config)
    layout = Layout(Path(config.warehouse.root))
    folder = layout.partition_dir("usage_event", NOW.date())
    folder.mkdir(parents=True)
    pseudonyms = {s: pseudonymise(s, keys.key_for(keys.period_for(NOW)), "subject") or "" for s in subjects}
    rows = [{"event_id": f"e-{i}", "time": NOW, "subject": p, "kind": "search"}
            for i, p in enumerate(pseudonyms.values())]
    path = folder / layout.data_file_name("x", 0, 0, len(rows) - 1)
    pq.write_table(records_to_table(default_registry().latest("usage_event", "minimised"), rows), path)
    return path, pseudonyms


def _publish(config: Config, requests: list[tuple[str, str, str]]) -> None:
    schema = default_registry().latest("privacy_request", "raw")
    producer = new_producer(config, acks="all")
    try:
        for request_id, subject, kind in requests:
            value = encode(schema, {"request_id": request_id, "subject_key": subject, "kind": kind,
                                    "received": NOW - timedelta(minutes=1), "channel": "self_service"})
            producer.send(Topics(config).requests_in, key=subject.encode(), value=value).get(30)
        officer = encode(schema, {"request_id": "officer-1", "subject_key": "user:kari", "kind": "erasure",
                                  "received": NOW, "channel": "officer"})
        producer.send(Topics(config).requests_in, key=b"user:kari", value=officer).get(30)
        producer.flush(30)
    finally:
        producer.close(30)


def _run_until(config: Config, count: int) -> RightsWorker:
    """Runs a worker until it has handled ``count`` records (or raises what it raised)."""
    stop = threading.Event()
    worker = RightsWorker(config)
    handled = [0]
    handle = worker.handle

    def counting(key: bytes | None, value: bytes | None) -> str:
        result = handle(key, value)
        handled[0] += 1
        if handled[0] >= count:
            stop.set()
        return result

    worker.handle = counting  # type: ignore[method-assign]
    errors: list[BaseException] = []

    def run() -> None:
        try:
            worker.run(stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=120)
    stop.set()
    thread.join(timeout=30)
    assert not thread.is_alive()
    if errors:
        raise errors[0]
    return worker


def _trail_events(config: Config) -> list[dict[str, Any]]:
    folder = requests_dir(Layout(Path(config.warehouse.root)))
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


def test_each_request_exactly_once_under_a_kill(kafka_config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    provision(kafka_config)
    path, pseudonyms = _seed(kafka_config, ["user:ola", "user:kari", "visitor:" + "a" * 32])
    ids = {kind: str(uuid.uuid4()) for kind in ("erasure", "restriction", "access")}
    _publish(kafka_config, [(ids["erasure"], "user:ola", "erasure"),
                            (ids["restriction"], "visitor:" + "a" * 32, "restriction"),
                            (ids["access"], "user:ola", "access")])

    # killed after carrying out its second request but before recording it done (published already)
    real_done = worker_module.record_done
    calls = [0]

    def dying_record_done(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == 2:
            raise Crash
        return real_done(*args, **kwargs)

    monkeypatch.setattr(worker_module, "record_done", dying_record_done)
    with pytest.raises(Crash):
        _run_until(kafka_config, 4)
    monkeypatch.setattr(worker_module, "record_done", real_done)
    first = read_requests(Layout(Path(kafka_config.warehouse.root)), now=NOW)
    states_first = {r.request_id: r.state for r in first}  # partitions are read in any order
    assert set(states_first) <= {ids["erasure"], ids["restriction"], ids["access"]}
    assert sorted(states_first[i] for i in (ids["erasure"], ids["restriction"])) == ["done", "open"]

    # killed after recording everything but before committing the offsets
    class Uncommitted(BaseException):
        pass

    from datamin.kafka import client

    real_consumer = client.new_consumer

    def consumer_that_dies_on_commit(*args: Any, **kwargs: Any) -> Any:
        consumer = real_consumer(*args, **kwargs)

        def commit(*_a: Any, **_k: Any) -> None:
            raise Uncommitted

        consumer.commit = commit
        return consumer

    monkeypatch.setattr("datamin.kafka.new_consumer", consumer_that_dies_on_commit)
    with pytest.raises(Uncommitted):
        _run_until(kafka_config, 4)
    monkeypatch.setattr("datamin.kafka.new_consumer", real_consumer)

    last = _run_until(kafka_config, 4)  # reads everything again (nothing was committed) and does nothing twice
    assert last.stats.carried_out == 0 and last.stats.received == 0

    events = _trail_events(kafka_config)
    received = [e["request_id"] for e in events if e["event"] == "received"]
    done = [e["request_id"] for e in events if e["event"] == "done"]
    assert sorted(received) == sorted(ids.values())  # each recorded once; the officer's request is not the worker's
    assert sorted(done) == sorted([ids["erasure"], ids["restriction"]])  # each done once; access waits
    states = {r.request_id: (r.state, r.channel) for r in read_requests(Layout(Path(kafka_config.warehouse.root)),
                                                                        now=NOW)}
    assert states[ids["access"]] == ("open", "self_service")
    # ola erased; the restricted visitor's row moved out of the analyst-readable file, kept apart
    assert pq.read_table(path).column("subject").to_pylist() == [pseudonyms["user:kari"]]
    apart = [s for f in Layout(Path(kafka_config.warehouse.root)).restricted_dir.rglob("*.parquet")
             for s in pq.read_table(f).column("subject").to_pylist()]
    assert apart == [pseudonyms["visitor:" + "a" * 32]]
    visitor = subject_pseudonyms(KeyStore(Path(kafka_config.pseudonymise.key_dir), "monthly"), "visitor:" + "a" * 32)
    assert pseudonyms["visitor:" + "a" * 32] in visitor.values() and len(visitor) == 2  # its rows, its requests' rows
    assert read_restricted(Layout(Path(kafka_config.warehouse.root))) == set(visitor.values())
    report = status_report(kafka_config, NOW)
    assert "0 overdue, 1 open, 2 done" in report and "access" in report and "ola" not in report
    # the record of each request (but no lift) on the privacy-requests topic: hashed, once per request id
    published = records_with_key(kafka_config, Topics(kafka_config).privacy_requests, lambda k, v: True)
    assert {decode(v, default_registry())[1]["request_id"] for _, _, v in published if v} == set(ids.values())
    assert all(k is not None and k.startswith(b"h1_") and b"ola" not in (v or b"") for _, k, v in published)


def test_a_worker_started_before_the_pipeline_wrote_waits_for_it(kafka_config: Config,
                                                                    monkeypatch: pytest.MonkeyPatch,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    """A fresh install: the worker starts before the processor created the secret and the sink wrote the
    warehouse. It waits, saying so, creates nothing, and serves the request that came meanwhile."""
    provision(kafka_config)
    monkeypatch.setattr(worker_module, "STORES_POLL_SECONDS", 0.05)
    root = Path(kafka_config.warehouse.root)
    request_id = str(uuid.uuid4())
    _publish(kafka_config, [(request_id, "user:nora", "erasure")])
    result: list[RightsWorker] = []
    waiting = threading.Event()
    real_check = worker_module.check_stores

    def check(config: Config) -> None:
        try:
            real_check(config)
        except Exception:
            waiting.set()
            raise

    monkeypatch.setattr(worker_module, "check_stores", check)
    with caplog.at_level("WARNING", logger="datamin.rights"):
        worker = threading.Thread(target=lambda: result.append(_run_until(kafka_config, 2)))
        worker.start()
        assert waiting.wait(60)
        assert not (root.exists() and any(root.iterdir()))  # it created nothing while waiting
        _seed(kafka_config, ["user:nora"])  # the processor and the sink have run
        worker.join(150)
    assert not worker.is_alive() and result
    assert "waiting for the pipeline's stores" in caplog.text
    states = {r.request_id: r.state for r in read_requests(Layout(root), now=NOW)}
    assert states[request_id] == "done"
