"""`datamin agent` against the real broker: producers hand it their events and run no Kafka client; it
sends to raw topics and the dead-letter topic only; a producer without its agent sends directly and
comes back; an agent stopped while producers write loses and repeats nothing; gunicorn --preload
workers hand their events to a `datamin agent` process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from datamin.config import Config
from datamin.exceptions import ConfigError
from datamin.topics import Topics, provision
from producers.agent import Agent
from producers.agent_link import AgentLink
from producers.producer import EventProducer
from tests.producers.test_forksafe import USAGE, app_env, consume, request_under_gunicorn_preload


def _with_agent(config: Config, tmp_path: Path) -> Config:
    return replace(config, producer=replace(config.producer, agent_socket=str(tmp_path / "run" / "agent.sock")))


@contextmanager
def running(agent: Agent) -> Iterator[threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=agent.serve, args=(stop,), kwargs={"log_interval": 1.0})
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(60)
        assert not thread.is_alive()


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not happen in {timeout} s"
        time.sleep(0.05)


def test_producers_hand_their_events_to_the_agent_and_run_no_kafka_client(kafka_config: Config,
                                                                         tmp_path: Path) -> None:
    provision(kafka_config)
    config = _with_agent(kafka_config, tmp_path)
    agent = Agent(config)
    assert (os.stat(agent.path).st_mode & 0o777) == 0o600
    with running(agent):
        producers = [EventProducer(config) for _ in range(2)]
        for n, producer in enumerate(producers):
            for i in range(300):
                assert producer.publish("usage_event", {**USAGE, "page": f"/p{n}/{i}"})
        for producer in producers:
            assert producer.flush(30)  # the agent confirms: acknowledged by Kafka
            stats = producer.stats()
            assert (stats.handed, stats.sent, stats.spooled) == (300, 0, 0)
            assert producer._kafka is None  # noqa: SLF001 - no Kafka client in a web server's process
            assert producer.close(30)
    assert (agent.stats.events, agent.stats.connections, agent.stats.refused) == (600, 2, 0)
    assert not agent.path.exists()
    events = consume(kafka_config, "usage_event", 600)
    assert sorted(e["page"] for e in events) == sorted(f"/p{n}/{i}" for n in range(2) for i in range(300))
    assert len({e["event_id"] for e in events}) == 600


def test_the_agent_sends_to_raw_topics_and_the_dead_letter_topic_only(kafka_config: Config, tmp_path: Path) -> None:
    """An attacker on the machine who reaches the socket cannot write minimised events, consent state
    or privacy requests through the agent, and garbage costs only its own connection."""
    provision(kafka_config)
    config = _with_agent(kafka_config, tmp_path)
    topics = Topics(config)
    agent = Agent(config)
    producer = EventProducer(kafka_config)  # to encode a valid event
    with running(agent):
        value = b"not avro: the processors dead-letter what does not decode"
        link = AgentLink(str(agent.path))
        assert link.connect()
        assert link.hand([(topics.minimised("usage_event"), None, value), (topics.privacy_requests, b"k", value),
                          ("__consumer_offsets", None, value), (topics.raw("usage_event"), b"k", value),
                          (topics.dead_letter, None, b'{"reason": "test"}')]) == 5
        assert link.flush(30)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as raw:
            raw.connect(str(agent.path))
            raw.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            raw.settimeout(10)
            assert raw.recv(100) == b""  # closed on it
        _wait_for(lambda: agent.stats.refused == 4, "the refusals")
        link.close()
    producer.close(5)
    assert agent.stats.events == 2
    from kafka import KafkaConsumer

    for topic, expected in ((topics.raw("usage_event"), [value]), (topics.minimised("usage_event"), []),
                            (topics.privacy_requests, [])):
        consumer = KafkaConsumer(topic, **config.kafka.client_kwargs(), auto_offset_reset="earliest",
                                 enable_auto_commit=False, consumer_timeout_ms=3000)
        assert [m.value for m in consumer] == expected, topic
        consumer.close()


def test_a_second_agent_on_the_same_socket_is_refused_and_a_stale_socket_replaced(kafka_config: Config,
                                                                                 tmp_path: Path) -> None:
    config = _with_agent(kafka_config, tmp_path)
    agent = Agent(config)
    with running(agent), pytest.raises(ConfigError, match="already listening") as err:
        Agent(config)
    assert err.value.key == "producer.agent_socket"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(agent.path))  # as a crashed agent leaves it: a socket file nobody listens on
    stale.close()
    with running(Agent(config)):
        assert AgentLink(str(agent.path)).connect()


def test_a_producer_without_its_agent_sends_directly_and_comes_back_to_it(kafka_config: Config,
                                                                          tmp_path: Path) -> None:
    provision(kafka_config)
    config = _with_agent(kafka_config, tmp_path)
    producer = EventProducer(config, retry_interval=0.1)
    for i in range(100):
        producer.publish("usage_event", {**USAGE, "page": f"/alone/{i}"})
    assert producer.flush(30)
    assert (producer.stats().sent, producer.stats().handed) == (100, 0)
    agent = Agent(config)
    with running(agent):
        time.sleep(0.3)  # past the producer's retry interval
        for i in range(100):
            producer.publish("usage_event", {**USAGE, "page": f"/agent/{i}"})
        assert producer.flush(30)
        assert (producer.stats().sent, producer.stats().handed) == (100, 100)
        assert producer._kafka is None  # noqa: SLF001 - its own client closed once the agent took over
        assert producer.close(30)
    events = consume(kafka_config, "usage_event", 200)
    assert sorted(e["page"] for e in events) == sorted([f"/alone/{i}" for i in range(100)]
                                                       + [f"/agent/{i}" for i in range(100)])


def test_an_agent_stopped_while_producers_write_loses_and_repeats_nothing(kafka_config: Config,
                                                                          tmp_path: Path) -> None:
    provision(kafka_config)
    config = _with_agent(kafka_config, tmp_path)
    agent = Agent(config)
    producer = EventProducer(config, retry_interval=0.1)
    n = 3000
    with running(agent) as stop:
        for i in range(n):
            producer.publish("usage_event", {**USAGE, "page": f"/e/{i}"}, timeout=5)
            if i == n // 3:
                _wait_for(lambda: agent.stats.events > 0, "the agent's first events")
                stop.set()  # the agent stops while events keep coming
            if i % 50 == 0:
                time.sleep(0.01)
    assert producer.close(60) is False  # it cannot vouch for what an agent that went away had taken
    stats = producer.stats()
    assert stats.handed > 0 and stats.sent > 0 and stats.handed + stats.sent == n and stats.dropped == 0
    assert agent.stats.events == stats.handed
    events = consume(kafka_config, "usage_event", n)
    pages = [e["page"] for e in events]
    assert len(pages) == n and set(pages) == {f"/e/{i}" for i in range(n)}  # none lost, none twice


def test_gunicorn_preload_workers_hand_their_events_to_a_datamin_agent(kafka_config: Config, tmp_path: Path) -> None:
    provision(kafka_config)
    sock = tmp_path / "agent.sock"
    env = {**app_env(kafka_config, tmp_path), "DATAMIN__PRODUCER__AGENT_SOCKET": f'"{sock}"'}
    agent_log = open(tmp_path / "agent.log", "w")  # noqa: SIM115 - closed below
    agent = subprocess.Popen([str(Path(sys.executable).parent / "datamin"), "agent"], cwd=tmp_path, env=env,
                             stdout=agent_log, stderr=subprocess.STDOUT)
    try:
        _wait_for(sock.exists, "the agent's socket")
        request_under_gunicorn_preload(tmp_path, env)
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(120)
        agent_log.close()
    urls = sorted(e["url"] for e in consume(kafka_config, "http_request", 25) if e["url"].startswith("/r/"))
    assert urls == sorted(f"/r/{i}" for i in range(24))
    [preloaded] = consume(kafka_config, "usage_event", 1)
    assert preloaded["page"] == "/preloaded"
    log = (tmp_path / "agent.log").read_text()
    assert "refused 0" in log and "took 26 events" in log, log  # 24 requests, the warm-up, the preloaded event
    assert "Traceback" not in (tmp_path / "gunicorn.log").read_text() + log
