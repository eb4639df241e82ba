"""The producer across forks, against the real broker: gunicorn --preload and multiprocessing. Events
queued before a fork are sent once (by the parent); every child sends its own."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx

from datamin.config import Config
from datamin.topics import Topics, provision
from producers.producer import EventProducer
from schemas import decode, default_registry

USAGE = {"time": 1_764_000_000_000, "kind": "page_view"}


def consume(config: Config, event: str, at_least: int, timeout_ms: int = 15_000) -> list[dict[str, Any]]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(Topics(config).raw(event), **config.kafka.client_kwargs(),
                             auto_offset_reset="earliest", enable_auto_commit=False, consumer_timeout_ms=timeout_ms)
    try:
        out = [decode(m.value, default_registry())[1] for m in consumer]
        assert len(out) >= at_least, f"{len(out)} of {at_least} events arrived"
        return out
    finally:
        consumer.close()


def _child(producer: EventProducer, name: str, n: int) -> None:
    for i in range(n):
        assert producer.publish("usage_event", {**USAGE, "page": f"/{name}/{i}"})
    ok = producer.close(60)
    os._exit(0 if ok and producer.stats().sent == n else 1)


def test_multiprocessing_children_send_their_own_and_nothing_queued_before_the_fork_twice(
        kafka_config: Config) -> None:
    provision(kafka_config)
    producer = EventProducer(kafka_config)
    for i in range(500):  # queued just before the fork: most are still in the parent's queue
        producer.publish("usage_event", {**USAGE, "page": f"/before/{i}"})
    context = multiprocessing.get_context("fork")
    children = [context.Process(target=_child, args=(producer, f"child{c}", 100)) for c in range(2)]
    for child in children:
        child.start()
    for i in range(100):
        producer.publish("usage_event", {**USAGE, "page": f"/after/{i}"})
    for child in children:
        child.join(120)
        assert child.exitcode == 0
    assert producer.close(60)
    events = consume(kafka_config, "usage_event", 800)
    pages = [e["page"] for e in events]
    expected = ({f"/before/{i}" for i in range(500)} | {f"/after/{i}" for i in range(100)}
                | {f"/child{c}/{i}" for c in range(2) for i in range(100)})
    assert len(pages) == len(expected) and set(pages) == expected  # none lost, none twice
    assert len({e["event_id"] for e in events}) == len(events)


APP = """
    from datamin.config import load_config
    from producers.producer import EventProducer
    from producers.request_event import MiddlewareSettings
    from producers.wsgi import DataminWSGIMiddleware

    producer = EventProducer(load_config())           # created in the master (--preload)
    producer.publish("usage_event", {"time": 1764000000000, "kind": "page_view", "page": "/preloaded"})

    def hello(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]

    app = DataminWSGIMiddleware(hello, producer, MiddlewareSettings())
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def app_env(config: Config, tmp_path: Path) -> dict[str, str]:
    """The environment of a process running APP (``webapp.py`` in ``tmp_path``) on ``config``'s topics."""
    (tmp_path / "webapp.py").write_text(textwrap.dedent(APP))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAMIN")}
    env.update({"KAFKA_BOOTSTRAP_SERVERS": config.kafka.bootstrap_servers,
                "DATAMIN__KAFKA__CLIENT": f'"{config.kafka.client}"',
                "DATAMIN__TOPICS__PREFIX": f'"{config.topics.prefix}"',
                "DATAMIN__PRODUCER__SPOOL_DIR": f'"{tmp_path / "spool"}"', "PYTHONPATH": str(tmp_path)})
    return env


def request_under_gunicorn_preload(tmp_path: Path, env: dict[str, str], n: int = 24) -> None:
    """Serves APP under ``gunicorn --preload -w 2``, requests /warmup and /r/0 … /r/<n-1>, then stops it
    with SIGTERM (the workers exit normally: their producers deliver what they hold)."""
    port = _free_port()
    gunicorn = str(Path(sys.executable).parent / "gunicorn")
    log = open(tmp_path / "gunicorn.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen([gunicorn, "--preload", "-w", "2", "-b", f"127.0.0.1:{port}", "webapp:app"],
                              cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/warmup", timeout=5)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()
                time.sleep(0.2)
        for i in range(n):
            assert httpx.get(f"http://127.0.0.1:{port}/r/{i}", timeout=30).text == "hello"
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(120)
        log.close()


def test_gunicorn_preload_workers_deliver_every_request(kafka_config: Config, tmp_path: Path) -> None:
    provision(kafka_config)
    request_under_gunicorn_preload(tmp_path, app_env(kafka_config, tmp_path))
    urls = sorted(e["url"] for e in consume(kafka_config, "http_request", 25) if e["url"].startswith("/r/"))
    assert urls == sorted(f"/r/{i}" for i in range(24))
    [preloaded] = consume(kafka_config, "usage_event", 1)
    assert preloaded["page"] == "/preloaded"  # sent once, by the master
    assert "Traceback" not in (tmp_path / "gunicorn.log").read_text()
