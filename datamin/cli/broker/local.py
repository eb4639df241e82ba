"""`datamin kafka start | stop | status`: a single-node Apache Kafka (KRaft, combined broker and
controller) on 127.0.0.1, for development, the quick start and CI on machines without Docker.

Maven resolves the pinned broker release and its dependencies from Maven Central (pom.xml beside
this file) into <home>/lib; the KRaft storage is formatted once under <home>/data; the broker runs
detached with its log in <home>/server.log. Starting twice is harmless; stopping sends SIGTERM and
waits for a clean shutdown.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from datamin.exceptions import BrokerError

POM = Path(__file__).with_name("pom.xml")
KAFKA_VERSION = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text()).group(1)  # type: ignore[union-attr]
READY_LINE = "Kafka Server started"


@dataclass(frozen=True)
class BrokerStatus:
    running: bool
    pid: int | None
    bootstrap: str
    log_file: Path

    def describe(self) -> str:
        if self.running:
            return (f"Kafka {KAFKA_VERSION} is running (pid {self.pid}) at {self.bootstrap}; log: {self.log_file}\n"
                    f"use it with: export KAFKA_BOOTSTRAP_SERVERS={self.bootstrap}")
        return f"Kafka is not running (would listen at {self.bootstrap}); start it with `datamin kafka start`"


class LocalBroker:
    """One local broker, living in ``home`` (default: $DATAMIN_HOME/kafka or ./.datamin/kafka)."""

    def __init__(self, home: Path | None = None, port: int = 9092, controller_port: int | None = None,
                 heap: str = "1g", lib: Path | None = None) -> None:
        default_home = Path(os.environ.get("DATAMIN_HOME", ".datamin")) / "kafka"
        self.home = (home or default_home).resolve()
        self.port = port
        self.controller_port = controller_port or port + 1
        self.heap = heap
        self.lib = (lib or self.home / "lib").resolve()
        """the broker's jars; several brokers (tests) may share one folder"""
        self.data = self.home / "data"
        self.log_file = self.home / "server.log"
        self.pid_file = self.home / "broker.pid"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- fetching -------------------------------------------------------------------------------
    def fetch(self, progress: bool = True) -> Path:
        """Resolves the broker's jars from Maven Central into lib/ (once; a marker records the version)."""
        marker = self.lib / f".kafka-{KAFKA_VERSION}"
        if marker.exists():
            return self.lib
        mvn = shutil.which("mvn")
        if mvn is None:
            raise BrokerError("Maven (mvn) is not on PATH: install it (e.g. `apt-get install maven`) so datamin "
                              "can fetch the Kafka broker from Maven Central, or run Kafka yourself and set "
                              "KAFKA_BOOTSTRAP_SERVERS")
        staging = self.lib.with_name("lib.partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.parent.mkdir(parents=True, exist_ok=True)
        if progress:
            print(f"fetching Apache Kafka {KAFKA_VERSION} from Maven Central into {self.lib} …", flush=True)
        cmd = [mvn, "-B", "-q", "-f", str(POM), "dependency:copy-dependencies",
               f"-DoutputDirectory={staging}", "-DincludeScope=runtime"]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
            tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
            raise BrokerError(f"Maven could not fetch Kafka {KAFKA_VERSION} (exit {result.returncode}); "
                              f"check that Maven Central is reachable. Maven said:\n{tail}")
        shutil.rmtree(self.lib, ignore_errors=True)
        staging.rename(self.lib)
        marker.touch()
        return self.lib

    # -- running --------------------------------------------------------------------------------
    def status(self) -> BrokerStatus:
        pid = self._pid()
        return BrokerStatus(pid is not None and self._port_open(), pid, self.bootstrap, self.log_file)

    def start(self, timeout: float = 90.0) -> BrokerStatus:
        """Starts the broker unless it runs already; returns once it accepts connections."""
        current = self.status()
        if current.running:
            return current
        if self._pid() is None and self._port_open():
            raise BrokerError(f"port {self.port} is taken by another program; stop it, or start on another "
                              f"port with `datamin kafka start --port N`")
        self.fetch()
        self._write_configs()
        self._format_storage()
        java = shutil.which("java")
        if java is None:
            raise BrokerError("java is not on PATH: install a Java 17+ runtime (e.g. `apt-get install openjdk-17-jre`)")
        offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        argv = [java, f"-Xmx{self.heap}", "-Xms256m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
                f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
                "-cp", str(self.lib / "*"), "kafka.Kafka", str(self.home / "server.properties")]
        # started through sh and '&' so the broker is nobody's child: it outlives this process
        # cleanly and leaves no zombie; sh prints its pid
        launcher = subprocess.run(
            ["sh", "-c", 'exec "$@" >>"$DATAMIN_BROKER_OUT" 2>&1 </dev/null & echo $!', "sh", *argv],
            capture_output=True, text=True, check=False, start_new_session=True,
            env={**os.environ, "DATAMIN_BROKER_OUT": str(self.home / "stdout.log")},
        )
        try:
            pid = int(launcher.stdout.strip())
        except ValueError:
            raise BrokerError(f"could not launch java: {launcher.stderr.strip()}") from None
        self.pid_file.write_text(str(pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                self.pid_file.unlink(missing_ok=True)
                raise BrokerError(f"the Kafka broker exited while starting; last lines of {self.log_file}:\n"
                                  f"{self._log_tail(offset)}")
            if self._port_open() and READY_LINE in self._log_since(offset):
                return self.status()
            time.sleep(0.25)
        raise BrokerError(f"the Kafka broker did not become ready within {timeout:.0f} s; see {self.log_file}:\n"
                          f"{self._log_tail(offset)}")

    def stop(self, timeout: float = 60.0) -> bool:
        """Stops the broker (SIGTERM, then SIGKILL after ``timeout``). Returns False when none ran."""
        pid = self._pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _alive(pid):
            time.sleep(0.2)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
        return True

    # -- internals ------------------------------------------------------------------------------
    def _pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def _port_open(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def _log_since(self, offset: int) -> str:
        try:
            with open(self.log_file, "rb") as fh:
                fh.seek(offset)
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _log_tail(self, offset: int, lines: int = 20) -> str:
        text = self._log_since(offset) or (self.home / "stdout.log").read_text(errors="replace")
        return "\n".join(text.strip().splitlines()[-lines:])

    def _write_configs(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "server.properties").write_text(
            "# written by `datamin kafka start`: a single-node KRaft broker+controller on loopback\n"
            "process.roles=broker,controller\n"
            "node.id=1\n"
            f"controller.quorum.bootstrap.servers=127.0.0.1:{self.controller_port}\n"
            f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}\n"
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}\n"
            "controller.listener.names=CONTROLLER\n"
            "inter.broker.listener.name=PLAINTEXT\n"
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n"
            f"log.dirs={self.data}\n"
            "num.partitions=3\n"
            "offsets.topic.replication.factor=1\n"
            "transaction.state.log.replication.factor=1\n"
            "transaction.state.log.min.isr=1\n"
            "share.coordinator.state.topic.replication.factor=1\n"
            "share.coordinator.state.topic.min.isr=1\n"
            "group.initial.rebalance.delay.ms=0\n"
            "auto.create.topics.enable=false\n"
        )
        (self.home / "log4j2.properties").write_text(
            "status = warn\n"
            "appender.file.type = File\n"
            "appender.file.name = FILE\n"
            f"appender.file.fileName = {self.log_file}\n"
            "appender.file.layout.type = PatternLayout\n"
            "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
            "rootLogger.level = INFO\n"
            "rootLogger.appenderRef.file.ref = FILE\n"
            "logger.kafka.name = kafka\n"
            "logger.kafka.level = INFO\n"
            "logger.apache.name = org.apache\n"
            "logger.apache.level = WARN\n"
        )

    def _format_storage(self) -> None:
        if (self.data / "meta.properties").exists():
            return
        java = shutil.which("java") or "java"
        cmd = [java, "-cp", str(self.lib / "*"), f"-Dlog4j2.configurationFile={self.home / 'log4j2.properties'}",
               "kafka.tools.StorageTool", "format", "--standalone", "-t", _cluster_id(),
               "-c", str(self.home / "server.properties")]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise BrokerError(f"formatting the KRaft storage in {self.data} failed:\n{result.stdout}{result.stderr}")


def _cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (22 characters). Drawn again
    when it starts with '-', which kafka-storage's argument parser would take for an option."""
    import base64

    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie still answers kill(0)
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True
