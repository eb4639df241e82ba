"""The log shipper: resume without duplicates, rotation by rename and copytruncate, bad lines."""

from __future__ import annotations

import io
import json
import os
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from datamin.config import Config
from datamin.topics import Topics, provision
from producers.shipper import ShipProgress, _Tail, ship_logs, stderr_progress
from schemas import decode, default_registry

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import KafkaConsumer


CLOCK = datetime(2026, 10, 15, tzinfo=UTC)
"""the shipper's clock here (injected): the lines of 10 Oct 2026 stay within retention whatever today is"""


def line(i: int, ip: str = "203.0.113.7") -> str:
    return f'{ip} - - [10/Oct/2026:13:55:36 +0200] "GET /p/{i} HTTP/1.1" 200 {i} "-" "UA"\n'


class FakeSink:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.dead: list[tuple[str, dict[str, Any]]] = []
        self.flushes = 0

    def publish(self, event_type: str, record: dict[str, Any], *, timeout: float = 0.0) -> bool:
        assert event_type == "http_request"
        self.events.append(record)
        return True

    def publish_bytes(self, topic: str, value: bytes, key: bytes | None = None, *, timeout: float = 0.0) -> bool:
        self.dead.append((topic, json.loads(value)))
        return True

    def flush(self, timeout: float | None = None) -> bool:
        self.flushes += 1
        return True

    def urls(self) -> list[str]:
        return [e["url"] for e in self.events]


def _ship(config: Config, log: Path, state: Path, sink: FakeSink) -> None:
    ship_logs(config, [log], state_dir=state, producer=sink, clock=lambda: CLOCK)


def test_restart_resumes_without_duplicates_or_gaps(make_config: Callable[..., Config], tmp_path: Path) -> None:
    config, log, state, sink = make_config(), tmp_path / "access.log", tmp_path / "state", FakeSink()
    log.write_text("".join(line(i) for i in range(3)))
    _ship(config, log, state, sink)
    with log.open("a") as f:
        f.write("".join(line(i) for i in range(3, 5)))
    _ship(config, log, state, sink)
    _ship(config, log, state, sink)
    assert sink.urls() == [f"/p/{i}" for i in range(5)]
    assert len({e["event_id"] for e in sink.events}) == 5


def test_bad_lines_are_dead_lettered_without_their_content(make_config: Callable[..., Config],
                                                          tmp_path: Path) -> None:
    config, log, sink = make_config(), tmp_path / "access.log", FakeSink()
    log.write_bytes(line(0).encode() + b"\x00\x01\xff\xfe secretpayload\n" + b"x" * 200_000 + b"\n"
                    + b"not a log line 10.1.2.3\n" + line(1).encode()
                    + b'{"time": "2026-10-10T00:00:00Z", "remote_addr": "198.51.100.2"}\n')
    result = ship_logs(config, [log], state_dir=tmp_path / "s", producer=sink, max_line=1024,
                       clock=lambda: CLOCK)
    assert sink.urls() == ["/p/0", "/p/1", None]
    assert result.lines == 6 and result.bad_lines == 3 and result.events == 3
    topics = {t for t, _ in sink.dead}
    assert topics == {Topics(config).dead_letter}
    reports = [d for _, d in sink.dead]
    assert [r["line_number"] for r in reports] == [2, 3, 4]
    assert all(r["source"] == "access.log" and r["stage"] == "shipper" for r in reports)
    assert "longer" in reports[1]["reason"]
    assert "10.1.2.3" not in json.dumps(reports) and "secretpayload" not in json.dumps(reports)


def test_oversized_line_across_reads_is_skipped(make_config: Callable[..., Config], tmp_path: Path) -> None:
    config, log, sink = make_config(), tmp_path / "a.log", FakeSink()
    tail = _Tail(log, tmp_path, sink, Topics(config), max_line=100, flush_timeout=1, progress=None)
    log.write_bytes(line(0).encode() + b"y" * 150)
    tail.open()
    tail.read_available(chunk=64)
    with log.open("ab") as f:
        f.write(b"y" * 150 + b"\n" + line(1).encode())
    tail.read_available(chunk=64)
    tail.close()
    assert sink.urls() == ["/p/0", "/p/1"] and len(sink.dead) == 1
    assert sink.dead[0][1]["line_number"] == 2


def test_rotation_by_rename_finishes_old_file(make_config: Callable[..., Config], tmp_path: Path) -> None:
    config, log, sink = make_config(), tmp_path / "access.log", FakeSink()
    log.write_text(line(0))
    tail = _Tail(log, tmp_path / "s", sink, Topics(config), max_line=4096, flush_timeout=1, progress=None)
    (tmp_path / "s").mkdir()
    tail.open()
    tail.read_available()
    with log.open("a") as f:
        f.write(line(1))  # written to the old file just before rotation
    os.rename(log, tmp_path / "access.log.1")
    log.write_text(line(2))
    tail.check_rotation()
    tail.read_available()
    tail.close()
    assert sink.urls() == ["/p/0", "/p/1", "/p/2"]


def test_rotation_while_stopped_finishes_renamed_file(make_config: Callable[..., Config], tmp_path: Path) -> None:
    config, log, state, sink = make_config(), tmp_path / "access.log", tmp_path / "state", FakeSink()
    log.write_text(line(0))
    _ship(config, log, state, sink)
    with log.open("a") as f:
        f.write(line(1))
    os.rename(log, tmp_path / "access.log.1")
    log.write_text(line(2))
    _ship(config, log, state, sink)
    assert sink.urls() == ["/p/0", "/p/1", "/p/2"]


def test_copytruncate_restarts_from_zero(make_config: Callable[..., Config], tmp_path: Path) -> None:
    config, log, sink = make_config(), tmp_path / "access.log", FakeSink()
    log.write_text(line(0) + line(1))
    tail = _Tail(log, tmp_path, sink, Topics(config), max_line=4096, flush_timeout=1, progress=None)
    tail.open()
    tail.read_available()
    with log.open("r+") as f:  # copytruncate: copy elsewhere, truncate in place, writer goes on
        f.truncate(0)
    with log.open("a") as f:
        f.write(line(2))
    tail.check_rotation()
    tail.read_available()
    tail.close()
    assert sink.urls() == ["/p/0", "/p/1", "/p/2"]


def test_progress_is_rate_limited() -> None:
    now = [0.0]
    out = io.StringIO()
    show = stderr_progress(interval=1.0, clock=lambda: now[0], stream=out)
    p = ShipProgress("/var/log/nginx/access.log", lines=1000, bytes_read=2_000_000, offset=50, size=100,
                     started=-1.0)
    show(p)
    p.lines += 1
    show(p)
    now[0] = 2.0
    show(p)
    assert out.getvalue().count("access.log") == 2 and "50.0% of file" in out.getvalue()


def test_ship_to_real_broker_resumes_without_duplicates(kafka_config: Config, tmp_path: Path) -> None:
    provision(kafka_config)
    log, state = tmp_path / "access.log", tmp_path / "state"
    log.write_text("".join(line(i, ip=f"198.51.100.{i}") for i in range(50)))
    first = ship_logs(kafka_config, [log], state_dir=state, clock=lambda: CLOCK)
    with log.open("a") as f:
        f.write("".join(line(i) for i in range(50, 80)) + "garbage line\n")
    second = ship_logs(kafka_config, [log], state_dir=state, clock=lambda: CLOCK)
    assert (first.events, second.events, second.bad_lines) == (50, 30, 1)
    consumer = KafkaConsumer(Topics(kafka_config).raw("http_request"), Topics(kafka_config).dead_letter,
                             **kafka_config.kafka.client_kwargs(), auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=5000)
    try:
        messages = list(consumer)
    finally:
        consumer.close()
    urls = sorted(decode(m.value, default_registry())[1]["url"] for m in messages
                  if m.topic == Topics(kafka_config).raw("http_request"))
    assert urls == sorted(f"/p/{i}" for i in range(80))
    dead = [json.loads(m.value) for m in messages if m.topic == Topics(kafka_config).dead_letter]
    assert dead == [{"source": "access.log", "line_number": 81, "reason": pytest.approx(dead[0]["reason"]),
                     "stage": "shipper"}]


def test_copytruncate_while_stopped_reads_the_rest_of_the_copy_first(make_config: Callable[..., Config],
                                                                      tmp_path: Path) -> None:
    config, log, state, sink = make_config(), tmp_path / "access.log", tmp_path / "state", FakeSink()
    log.write_text("".join(line(i) for i in range(100)))
    _ship(config, log, state, sink)
    with log.open("a") as f:  # written while the shipper is stopped...
        f.write("".join(line(i) for i in range(100, 170)))
    (tmp_path / "access.log.1").write_bytes(log.read_bytes())  # ...then logrotate's copytruncate
    with log.open("r+") as f:
        f.truncate(0)
    with log.open("a") as f:
        f.write("".join(line(i) for i in range(170, 300)))
    _ship(config, log, state, sink)
    assert sink.urls() == [f"/p/{i}" for i in range(300)]  # none lost, none twice, in order
    _ship(config, log, state, sink)  # and a restart after that resumes in the new file
    assert len(sink.urls()) == 300


def test_a_truncated_file_that_grew_past_the_offset_is_noticed_by_its_first_bytes(
        make_config: Callable[..., Config], tmp_path: Path) -> None:
    config, log, state, sink = make_config(), tmp_path / "access.log", tmp_path / "state", FakeSink()
    log.write_text("".join(line(i) for i in range(10)))
    _ship(config, log, state, sink)
    (tmp_path / "access.log.1").write_bytes(log.read_bytes())
    with log.open("r+") as f:
        f.truncate(0)
    with log.open("a") as f:  # the new file is already longer than the saved offset
        f.write("".join(line(i, ip="198.51.100.9") for i in range(1000, 1050)))
    _ship(config, log, state, sink)
    assert sink.urls() == [f"/p/{i}" for i in range(10)] + [f"/p/{i}" for i in range(1000, 1050)]


def test_copytruncate_while_following_reads_the_unread_tail_from_the_copy(make_config: Callable[..., Config],
                                                                          tmp_path: Path) -> None:
    config, log, sink = make_config(), tmp_path / "access.log", FakeSink()
    log.write_text(line(0) + line(1))
    tail = _Tail(log, tmp_path / "state", sink, Topics(config), max_line=4096, flush_timeout=1, progress=None)
    (tmp_path / "state").mkdir()
    tail.open()
    tail.read_available()
    tail.checkpoint()
    with log.open("a") as f:  # appended after the shipper's last read, before the copy
        f.write(line(2) + line(3))
    (tmp_path / "access.log.1").write_bytes(log.read_bytes())
    with log.open("r+") as f:
        f.truncate(0)
    with log.open("a") as f:
        f.write(line(4))
    tail.check_rotation()
    tail.read_available()
    tail.close()
    assert sink.urls() == ["/p/0", "/p/1", "/p/2", "/p/3", "/p/4"]


def test_progress_names_every_file_and_is_silent_when_idle() -> None:
    now = [0.0]
    out = io.StringIO()
    show = stderr_progress(interval=1.0, clock=lambda: now[0], stream=out)
    a = ShipProgress("/var/log/nginx/access.log", lines=10, offset=1, size=2, started=-1.0)
    b = ShipProgress("/var/log/nginx/other.log", lines=5, offset=2, size=2, started=-1.0)
    show(a)
    now[0] = 2.0
    show(b)
    assert "access.log: 10 lines" in out.getvalue().split("\r")[-1] and "other.log: 5 lines" in out.getvalue()
    printed = out.getvalue()
    for t in range(3, 100):  # idle: nothing new was read
        now[0] = float(t)
        show(a)
        show(b)
    assert out.getvalue() == printed


def test_cli_keeps_state_where_the_config_says_and_shows_no_progress_off_a_terminal(
        kafka_config: Config, tmp_path: Path) -> None:
    import subprocess
    import sys

    provision(kafka_config)
    log = tmp_path / "access.log"
    log.write_text("".join(line(i) for i in range(50)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATAMIN")}
    env.update({"KAFKA_BOOTSTRAP_SERVERS": kafka_config.kafka.bootstrap_servers,
                "DATAMIN__TOPICS__PREFIX": f'"{kafka_config.topics.prefix}"',
                "DATAMIN__PRODUCER__SPOOL_DIR": f'"{tmp_path / "spool"}"',
                "DATAMIN__PRODUCER__SHIPPER_STATE_DIR": f'"{tmp_path / "shipper-state"}"'})
    datamin = str(Path(sys.executable).parent / "datamin")
    result = subprocess.run([datamin, "ship-logs", "--once", str(log)], env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert [p.name.split(".")[0] for p in (tmp_path / "shipper-state").iterdir()] == ["access"]
    assert not (tmp_path / "data").exists()
    assert "lines (" not in result.stderr and "shipped 50 events" in result.stderr
    shown = subprocess.run([datamin, "ship-logs", "--once", "--progress", str(log)], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=180)
    assert shown.returncode == 0 and "shipped 0 events" in shown.stderr  # resumed at the end
