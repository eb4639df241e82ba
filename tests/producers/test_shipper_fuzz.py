"""Fuzzing the log door: parse_line and ship_logs over garbage mixed with good access-log lines.

parse_line either returns a record schemas.encode accepts or raises DecodeError; ship_logs publishes
every good line exactly once, dead-letters every bad one by line number (never its text) and, after a
crash, resumes without skipping a line (a re-read line carries the same event_id as before)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datamin.config import Config, load_config
from datamin.event_time import check_event_time
from datamin.exceptions import DecodeError, EventTimeError
from datamin.topics import Topics
from producers.logformat import parse_line
from producers.shipper import _Tail, ship_logs
from schemas import default_registry, encode

REGISTRY = default_registry()
HTTP = REGISTRY.latest("http_request")
MAX_LINE = 300
FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


class Crash(Exception):
    """The process dying in the middle of a run."""


class FakeProducer:
    """publish/publish_bytes/flush/close in memory; ``crash_after`` publishes it raises Crash."""

    def __init__(self, crash_after: int | None = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.dead: list[bytes] = []
        self.crash_after = crash_after

    def _tick(self) -> None:
        if self.crash_after is not None and len(self.events) + len(self.dead) >= self.crash_after:
            raise Crash

    def publish(self, event_type: str, record: dict[str, Any], *, timeout: float = 0.0) -> bool:
        assert event_type == "http_request"
        self._tick()
        self.events.append(record)
        return True

    def publish_bytes(self, topic: str, value: bytes, key: bytes | None = None, *, timeout: float = 0.0) -> bool:
        self._tick()
        self.dead.append(value)
        return True

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self, timeout: float | None = None) -> None:
        pass


# -- strategies -------------------------------------------------------------------------------------

any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=30)
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.integers(-(2**80), 2**80)
                           | st.floats() | any_text, lambda c: st.lists(c, max_size=2)
                           | st.dictionaries(any_text, c, max_size=2), max_leaves=5)
times = st.sampled_from(["10/Oct/2026:13:55:36 +0200", "01/Jan/0001:00:00:00 +0100", "31/Dec/9999:23:59:59 -0100",
                         "99/Foo/2026:13:55:36 +0200", "10/Oct/2026:13:55:36 +9999"])
JSON_KEYS = ["time_iso8601", "@timestamp", "time", "time_local", "ts", "remote_addr", "status", "body_bytes_sent",
             "request_time", "duration_ms", "request", "method", "uri", "http_user_agent", "host", "http_referer"]


@st.composite
def combined_lines(draw: st.DrawFn, n: int) -> bytes:
    agent = draw(st.sampled_from(["UA", "A \\\"q\\\" \\\\", "bot \\x22v\\x22", "-", "Mozilla/5.0 (X11)"]))
    status = draw(st.sampled_from(["200", "404", "-", "abc", "\u0663\u0660\u0660"]))
    size = draw(st.sampled_from(["0", "12", "-", "9" * 30]))
    when = draw(st.sampled_from(["10/Oct/2026:13:55:36 +0200"] * 4 + ["01/Jan/0001:00:00:00 +0100"]))
    return f'203.0.113.7 - - [{when}] "GET /p/{n} HTTP/1.1" {status} {size} "-" "{agent}"'.encode()


@st.composite
def json_lines(draw: st.DrawFn, n: int) -> bytes:
    obj: dict[str, Any] = {"time_iso8601": "2026-10-10T13:55:36+02:00", "uri": f"/p/{n}"}
    for key in draw(st.lists(st.sampled_from(JSON_KEYS), max_size=3)):
        obj[key] = draw(json_values)
    return json.dumps(obj).encode("utf-8", "surrogatepass")  # \ud800 escapes stay escapes


@st.composite
def mutated(draw: st.DrawFn, line: bytes) -> bytes:
    position = draw(st.integers(0, len(line)))
    kind = draw(st.sampled_from(["delete", "insert", "truncate"]))
    if kind == "delete":
        return line[:position] + line[position + 1:]
    if kind == "insert":
        return line[:position] + draw(st.binary(min_size=1, max_size=3)) + line[position:]
    return line[:position]


@st.composite
def log_lines(draw: st.DrawFn, n: int) -> bytes:
    kind = draw(st.integers(0, 7))
    if kind <= 1:
        line = draw(combined_lines(n))
    elif kind == 2:
        line = draw(json_lines(n))
    elif kind == 3:
        line = draw(mutated(draw(combined_lines(n) | json_lines(n))))
    elif kind == 4:
        line = draw(st.binary(max_size=80))
    elif kind == 5:
        line = b"SECRET-" + b"x" * draw(st.integers(MAX_LINE - 10, MAX_LINE + 10))  # around max_line
    elif kind == 6:
        line = draw(combined_lines(n)) + b" " + b"y" * MAX_LINE
    else:
        line = draw(st.sampled_from([b"", b"\r", b"\x00\x01", b"\xed\xa0\x80", b"[1, 2]", b"{", b"\xff\xfe"]))
    line = line.replace(b"\n", b"")
    return line + b"\r" if draw(st.integers(0, 9)) == 0 else line


@st.composite
def log_files(draw: st.DrawFn) -> tuple[list[bytes], bytes]:
    lines = [draw(log_lines(i)) for i in range(draw(st.integers(0, 25)))]
    trailing = b"" if lines and lines[-1] and draw(st.booleans()) else b"\n"  # a last line without newline
    return lines, b"\n".join(lines) + (trailing if lines else b"")


CLOCK = datetime(2026, 10, 15, 12, 0, tzinfo=UTC)
"""the shipper's clock in these tests: lines of 10 Oct 2026 are within the window, years 1 and 9999 not"""


def expected(lines: list[bytes]) -> tuple[list[dict[str, Any]], list[int]]:
    """The records of the good lines and the 1-based numbers of the bad ones, by parse_line and the
    event-time window (at CLOCK)."""
    config = load_config(path=None, environ={})
    good: list[dict[str, Any]] = []
    bad: list[int] = []
    for number, raw in enumerate(lines, 1):
        try:
            if len(raw) > MAX_LINE:
                raise DecodeError("too long")
            record = parse_line(raw.removesuffix(b"\r").decode("utf-8"))
            check_event_time(config, "http_request", record, CLOCK)
            good.append(record)
        except (DecodeError, UnicodeDecodeError, EventTimeError):
            bad.append(number)
    return good, bad


def without_id(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k != "event_id"}


def check_dead_letters(dead: list[bytes], lines: list[bytes]) -> list[int]:
    numbers = []
    for value in dead:
        report = json.loads(value)
        assert set(report) == {"source", "line_number", "reason", "stage"} and report["source"] == "access.log"
        numbers.append(report["line_number"])
        assert b"SECRET" not in value and b"203.0.113" not in value
        for raw in lines:
            if len(raw.strip()) >= 8:
                assert raw.strip() not in value
    return numbers


# -- properties -------------------------------------------------------------------------------------

@FUZZ
@given(line=st.text(st.characters(codec=None, exclude_categories=()), max_size=200)
       | log_lines(7).map(lambda b: b.decode("utf-8", "surrogateescape")))
def test_parse_line_returns_an_encodable_record_or_raises_decode_error(line: str) -> None:
    try:
        record = parse_line(line)
    except DecodeError as exc:
        assert "203.0.113" not in str(exc)
        return
    encode(HTTP, {**record, "event_id": "e-1"})


@FUZZ
@given(files=log_files())
def test_ship_logs_publishes_good_lines_once_and_dead_letters_bad_ones(
        make_config: Callable[..., Config], files: tuple[list[bytes], bytes]) -> None:
    lines, content = files
    good, bad = expected(lines)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "access.log"
        log.write_bytes(content)
        producer = FakeProducer()
        result = ship_logs(make_config(), [log], state_dir=Path(tmp) / "state", producer=producer, max_line=MAX_LINE,
                           clock=lambda: CLOCK)
        again = FakeProducer()
        ship_logs(make_config(), [log], state_dir=Path(tmp) / "state", producer=again, max_line=MAX_LINE,
                  clock=lambda: CLOCK)
    assert [without_id(r) for r in producer.events] == good
    assert len({r["event_id"] for r in producer.events}) == len(good)
    for record in producer.events:
        encode(HTTP, record)
    assert check_dead_letters(producer.dead, lines) == bad
    assert (result.lines, result.events, result.bad_lines) == (len(lines), len(good), len(bad))
    assert again.events == [] and again.dead == []  # a second run re-reads nothing


@FUZZ
@given(files=log_files(), data=st.data())
def test_crash_and_restart_neither_skips_nor_changes_events(
        make_config: Callable[..., Config], files: tuple[list[bytes], bytes], data: st.DataObject) -> None:
    lines, content = files
    good, bad = expected(lines)
    crash_after = data.draw(st.integers(0, len(lines)))
    chunk = data.draw(st.integers(1, 400))
    checkpoint_lines = data.draw(st.integers(1, 5))
    config = make_config()
    with tempfile.TemporaryDirectory() as tmp:
        log, state = Path(tmp) / "access.log", Path(tmp) / "state"
        log.write_bytes(content)
        state.mkdir()
        first = FakeProducer(crash_after)
        tail = _Tail(log, state, first, Topics(config), max_line=MAX_LINE, flush_timeout=1, progress=None,
                     check_time=lambda r: check_event_time(config, "http_request", r, CLOCK))
        try:
            tail.open()
            tail.read_available(final=True, chunk=chunk, checkpoint_lines=checkpoint_lines)
            tail.checkpoint()
        except Crash:
            pass
        finally:
            tail.close()
        second = FakeProducer()
        ship_logs(config, [log], state_dir=state, producer=second, max_line=MAX_LINE, clock=lambda: CLOCK)
    # the restart re-reads a suffix (from the last checkpoint), never less than what the crash lost
    resumed = [without_id(r) for r in second.events]
    assert resumed == good[len(good) - len(resumed):]
    assert len(first.events) + len(resumed) >= len(good)
    by_id: dict[str, dict[str, Any]] = {}
    for record in first.events + second.events:
        assert by_id.setdefault(record["event_id"], record) == record  # a re-read line: same id, same event
    assert sorted(repr(sorted(without_id(r).items())) for r in by_id.values()) == \
        sorted(repr(sorted(g.items())) for g in good)  # every good line once, after deduplication
    numbers = check_dead_letters(first.dead, lines) + check_dead_letters(second.dead, lines)
    assert sorted(set(numbers)) == bad


# -- regressions ------------------------------------------------------------------------------------

@pytest.mark.parametrize("line", [
    '{"time": NaN}', '{"time": 1e400}', '{"time": -1e20}', '{"time": 100000000000000000000000000}',
    '{"time": "0001-01-01T00:00:00+01:00"}', '{"time": "01/Jan/0001:00:00:00 +0100"}',
    '{"time": "2026-01-01T00:00:00Z", "status": Infinity}',
    '{"time": "2026-01-01T00:00:00Z", "request_time": 1' + "0" * 400 + "}",
    '{"time": "2026-01-01T00:00:00Z", "bytes_sent": 1' + "0" * 30 + "}",
    '{"time": "2026-01-01T00:00:00Z", "host": "\\ud800"}',
    '1.2.3.4 - - [01/Jan/0001:00:00:00 +0100] "GET / HTTP/1.1" 200 1',
    '1.2.3.4 - - [10/Oct/2026:13:55:36 +0200] "GET / HTTP/1.1" 200 ' + "9" * 30,
    '1.2.3.4 - - [10/Oct/2026:13:55:36 +0200] "GET / HTTP/1.1" 200 ' + "9" * 5000,
])
def test_regression_parse_line_out_of_range_values_are_decode_errors(line: str) -> None:
    with pytest.raises(DecodeError):
        parse_line(line)


def test_regression_ship_logs_survives_out_of_range_lines(make_config: Callable[..., Config],
                                                         tmp_path: Path) -> None:
    log, producer = tmp_path / "access.log", FakeProducer()
    good = '198.51.100.1 - - [10/Oct/2026:13:55:36 +0200] "GET /ok HTTP/1.1" 200 1 "-" "UA"'
    log.write_text("\n".join([good, '{"time": 1e400}', '{"time": "2026-01-01T00:00:00Z", "host": "\\ud800"}',
                              good.replace("/ok", "/ok2")]) + "\n")
    result = ship_logs(make_config(), [log], state_dir=tmp_path / "s", producer=producer, clock=lambda: CLOCK)
    assert [r["url"] for r in producer.events] == ["/ok", "/ok2"]
    assert [json.loads(d)["line_number"] for d in producer.dead] == [2, 3] and result.bad_lines == 2


def test_regression_checkpoint_inside_an_overlong_line_does_not_lose_it(make_config: Callable[..., Config],
                                                                       tmp_path: Path) -> None:
    config, log, state = make_config(), tmp_path / "access.log", tmp_path / "state"
    good = '198.51.100.1 - - [10/Oct/2026:13:55:36 +0200] "GET /ok HTTP/1.1" 200 1 "-" "UA"'
    log.write_bytes(b"SECRET-" + b"x" * 500)  # an over-long line still being written
    state.mkdir()
    first = FakeProducer()
    tail = _Tail(log, state, first, Topics(config), max_line=100, flush_timeout=1, progress=None)
    tail.open()
    tail.read_available()
    assert tail.checkpoint(force=True)
    tail.close()  # the process stops here
    with log.open("ab") as f:  # the rest of the long line looks like a log line of its own
        f.write(b" " + good.replace("/ok", "/forged").encode() + b"\n" + good.encode() + b"\n")
    second = FakeProducer()
    ship_logs(config, [log], state_dir=state, producer=second, max_line=100, clock=lambda: CLOCK)
    assert [r["url"] for r in first.events + second.events] == ["/ok"]
    reports = [json.loads(d) for d in first.dead + second.dead]
    assert [(r["line_number"], "longer" in r["reason"]) for r in reports] == [(1, True)]
