"""`datamin kafka`: a real broker from Maven Central's jars, started twice safely and stopped cleanly."""

from __future__ import annotations

import socket
from pathlib import Path

from datamin.cli.broker import LocalBroker


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_start_twice_status_and_stop(tmp_path: Path) -> None:
    broker = LocalBroker(home=tmp_path / "kafka", port=_free_port(), controller_port=_free_port(), heap="512m",
                         lib=LocalBroker().lib)
    assert not broker.status().running
    first = broker.start()
    try:
        assert first.running and first.pid
        again = broker.start()  # safe to call twice: the same broker, not a second one
        assert again.pid == first.pid
        assert "Kafka Server started" in broker.log_file.read_text()
        assert (tmp_path / "kafka" / "data" / "meta.properties").exists()  # KRaft storage formatted
    finally:
        assert broker.stop() is True
    assert not broker.status().running
    assert broker.stop() is False  # stopping a stopped broker is harmless
    restarted = broker.start()  # storage is reused, not reformatted
    try:
        assert restarted.running
    finally:
        broker.stop()
