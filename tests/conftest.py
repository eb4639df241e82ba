"""Shared fixtures. Kafka tests get a real broker:

1. KAFKA_BOOTSTRAP_SERVERS when set (`datamin kafka start` prints the value to use), else
2. a testcontainers Kafka container when a Docker engine answers, else
3. the Kafka tests are skipped, with a reason naming both ways to get a broker.
Under CI=true there is no skipping: no broker is an error.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from datamin.config import Config, load_config

NO_BROKER = (
    "no Kafka broker: set KAFKA_BOOTSTRAP_SERVERS (e.g. run `datamin kafka start`, then "
    "export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092), or start a Docker engine for testcontainers"
)


def _reachable(bootstrap: str) -> bool:
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=3):
            return True
    except (OSError, ValueError):
        return False


def _docker_answers() -> bool:
    """Whether a Docker engine answers /_ping (asked over a plain socket: the docker package leaks its
    socket when the engine is absent, which pytest's warnings-as-errors would report)."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        if host.startswith("unix://"):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(3)
            with sock:
                sock.connect(host[len("unix://"):])
                sock.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
                return b"OK" in sock.recv(4096)
        if host.startswith("tcp://"):
            hostname, _, port = host[len("tcp://"):].rpartition(":")
            with socket.create_connection((hostname, int(port)), timeout=3) as conn:
                conn.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
                return b"OK" in conn.recv(4096)
    except (OSError, ValueError):
        return False
    return False


KAFKA_CLIENTS = ("kafka-python", "confluent-kafka")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--kafka-client", choices=KAFKA_CLIENTS,
                     default=os.environ.get("DATAMIN_TEST_KAFKA_CLIENT", "kafka-python"),
                     help="the Kafka transport (kafka.client) of every Config the kafka_config fixture makes; "
                          ".ci/run runs the transport conformance tests once more with confluent-kafka")


def pytest_configure(config: pytest.Config) -> None:
    # the processes the tests start (`datamin process`, `datamin sink`, the fault run) inherit it
    if config.getoption("--kafka-client") != "kafka-python":
        os.environ["DATAMIN__KAFKA__CLIENT"] = json.dumps(config.getoption("--kafka-client"))


@pytest.fixture(scope="session")
def kafka_client(request: pytest.FixtureRequest) -> str:
    """The Kafka transport under test (--kafka-client, or DATAMIN_TEST_KAFKA_CLIENT)."""
    return str(request.config.getoption("--kafka-client"))


def pytest_report_header(config: pytest.Config) -> str:
    return f"datamin Kafka transport under test: {config.getoption('--kafka-client')}"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """host:port of a real Kafka broker for this test session."""
    in_ci = os.environ.get("CI", "").lower() == "true"
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        if not _reachable(configured):
            pytest.fail(f"KAFKA_BOOTSTRAP_SERVERS={configured} does not accept connections; "
                        "start the broker (`datamin kafka start`) or fix the variable")
        yield configured
        return
    if _docker_answers():
        from testcontainers.community.kafka import KafkaContainer  # type: ignore[import-not-found]

        with KafkaContainer("apache/kafka:4.3.1") as container:
            yield container.get_bootstrap_server()
        return
    if in_ci:
        pytest.fail("CI=true but " + NO_BROKER)
    pytest.skip(NO_BROKER)


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Factory of names no other test uses: topics, groups, transactional ids."""
    return lambda stem: f"{stem}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_config(tmp_path: Path, kafka_client: str) -> Callable[..., Config]:
    """Factory of a Config whose data lives under tmp_path, with env-style overrides:
    make_config(kafka="127.0.0.1:9092", **{"TOPICS__PREFIX": "t-abc"})."""

    def make(kafka: str | None = None, **overrides: str) -> Config:
        environ = {
            "DATAMIN__PSEUDONYMISE__KEY_DIR": f'"{tmp_path / "keys"}"',
            "DATAMIN__WAREHOUSE__ROOT": f'"{tmp_path / "warehouse"}"',
            "DATAMIN__WAREHOUSE__CATALOG": f'"{tmp_path / "catalog.duckdb"}"',
            "DATAMIN__PRODUCER__SPOOL_DIR": f'"{tmp_path / "spool"}"',
            "DATAMIN__KAFKA__CLIENT": json.dumps(kafka_client),  # the transport under test
        }
        if kafka:
            environ["KAFKA_BOOTSTRAP_SERVERS"] = kafka
        environ.update({f"DATAMIN__{k}": v for k, v in overrides.items()})
        return load_config(path=None, environ=environ)

    return make


@pytest.fixture
def kafka_config(kafka_bootstrap: str, make_config: Callable[..., Config],
                 unique: Callable[[str], str]) -> Config:
    """A Config on the test broker with a topic prefix and group ids of its own, so that tests
    never see each other's data, on the transport under test (``kafka_client``)."""
    prefix = unique("t")
    return make_config(kafka=kafka_bootstrap, **{
        "TOPICS__PREFIX": f'"{prefix}"',
        "TOPICS__PARTITIONS": "2",
        "PROCESSOR__GROUP_ID": f'"{prefix}-processor"',
        "PROCESSOR__TRANSACTIONAL_ID": f'"{prefix}-tx"',
        "WAREHOUSE__GROUP_ID": f'"{prefix}-sink"',
    })


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def kafka_broker_control(tmp_path: Path, kafka_bootstrap: str) -> Iterator[object]:
    """A broker of this test's own that the test may stop and start again (outage tests), with
    .bootstrap, .stop() and .start(). It runs from the same jars as `datamin kafka start`."""
    from datamin.cli.broker import LocalBroker

    port = _free_port()
    controller = _free_port()
    broker = LocalBroker(home=tmp_path / "kafka", port=port, controller_port=controller, heap="512m",
                         lib=LocalBroker().lib)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
