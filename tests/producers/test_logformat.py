"""Access-log line parsing: nginx and Apache combined, JSON lines, and what is not a log line."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from datamin.exceptions import DecodeError
from producers.logformat import parse_clf_time, parse_line

T = datetime(2026, 10, 10, 11, 55, 36, tzinfo=UTC)


@pytest.mark.parametrize(("line", "expected"), [
    ('203.0.113.7 - - [10/Oct/2026:13:55:36 +0200] "GET /a?b=c HTTP/1.1" 200 2326 "https://r.example/p" '
     '"Mozilla/5.0 (X11)"',
     {"client_ip": "203.0.113.7", "method": "GET", "url": "/a?b=c", "status": 200, "bytes_sent": 2326,
      "referrer": "https://r.example/p", "user_agent": "Mozilla/5.0 (X11)", "time": T}),
    # Apache: user name, escaped quote and backslash in the agent
    ('198.51.100.1 - frank [10/Oct/2026:11:55:36 +0000] "POST /login HTTP/2.0" 302 - "-" "A \\"quoted\\" \\\\ agent"',
     {"client_ip": "198.51.100.1", "method": "POST", "status": 302, "bytes_sent": 0, "referrer": None,
      "user_agent": 'A "quoted" \\ agent'}),
    # nginx escapes: \x22 for a quote
    ('2001:db8::1 - - [10/Oct/2026:11:55:36 +0000] "GET /x HTTP/1.1" 404 0 "-" "bot \\x22v1\\x22"',
     {"client_ip": "2001:db8::1", "status": 404, "user_agent": 'bot "v1"'}),
    # common format (no referrer, agent); extra trailing fields ignored
    ('192.0.2.5 - - [10/Oct/2026:11:55:36 +0000] "GET / HTTP/1.0" 200 12',
     {"url": "/", "referrer": None, "user_agent": None}),
    ('192.0.2.5 - - [10/Oct/2026:11:55:36 +0000] "GET / HTTP/1.1" 200 12 "-" "ua" "10.0.0.1" rt=0.01',
     {"user_agent": "ua"}),
    # a TLS handshake on the HTTP port, and a "-" request
    ('192.0.2.5 - - [10/Oct/2026:11:55:36 +0000] "\\x16\\x03\\x01\\x02\\x00\\x01" 400 157 "-" "-"',
     {"method": None, "url": None, "status": 400, "user_agent": None}),
    ('192.0.2.5 - - [10/Oct/2026:11:55:36 +0000] "-" 408 0 "-" "-"', {"method": None, "status": 408}),
    # JSON lines
    ('{"time_iso8601": "2026-10-10T13:55:36+02:00", "remote_addr": "203.0.113.9", "request": "GET /j?q=1 HTTP/1.1",'
     ' "status": "200", "body_bytes_sent": "5", "http_referer": "", "http_user_agent": "UA", "request_time": "0.012",'
     ' "host": "shop.example"}',
     {"time": T, "client_ip": "203.0.113.9", "method": "GET", "url": "/j?q=1", "status": 200, "bytes_sent": 5,
      "referrer": None, "user_agent": "UA", "duration_ms": 12.0, "host": "shop.example"}),
    ('{"@timestamp": 1791633336000, "client_ip": "::1", "method": "PUT", "path": "/p", "status": 201}',
     {"time": T, "method": "PUT", "url": "/p", "status": 201}),
])
def test_parses(line: str, expected: dict[str, Any]) -> None:
    record = parse_line(line)
    for key, value in expected.items():
        assert record[key] == value, key


@pytest.mark.parametrize(("line", "reason"), [
    ("", "empty"),
    ("hello world", "combined"),
    ("\x00\x01\x02binary", "NUL"),
    ("\ufffd\ufffd garbage \ufffd", "combined"),
    ('203.0.113.7 - - [99/Foo/2026:13:55:36 +0200] "GET / HTTP/1.1" 200 1 "-" "-"', "time"),
    ('203.0.113.7 - - [10/Oct/2026:13:55:36 +0200] "GET / HTTP/1.1" abc 1 "-" "-"', "combined"),
    ('{"remote_addr": "1.2.3.4"}', "no time"),
    ('{"time": "2026-10-10T10:00:00"}', "zone"),
    ('{"time": "2026-10-10T10:00:00Z", "status": "x"}', "status"),
    ("[1, 2]", "combined"),
    ('{"broken": ', "JSON"),
    ("{" * 100_000, "JSON"),
])
def test_refuses_with_reason_not_content(line: str, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason) as info:
        parse_line(line)
    assert "1.2.3.4" not in str(info.value) and "203.0.113.7" not in str(info.value)


def test_clf_time_zone() -> None:
    assert parse_clf_time("10/Oct/2026:05:55:36 -0600") == T
