"""Access-log lines -> raw http_request records. Pure: no files, no Kafka.

Understood formats:

- the combined format of nginx and Apache (and the common format, without referrer and agent)::

    203.0.113.7 - alice [10/Oct/2026:13:55:36 +0200] "GET /a?b=c HTTP/1.1" 200 2326 "https://r/" "Mozilla/5.0"

  Anything after the user agent (extra fields some servers append) is ignored. nginx escapes a
  quote as \\x22, Apache as \\"; both are undone.
- JSON lines, one object per line, with the key names nginx ``log_format ... escape=json`` setups
  and common loggers use (remote_addr/client_ip, time_iso8601/time_local/@timestamp, request or
  method+uri, status, body_bytes_sent, http_referer, http_user_agent, request_time, host, …).

``parse_line`` returns a record ``schemas.encode`` accepts for http_request (once an ``event_id`` is
added) or raises DecodeError with a short reason (never the line: it may hold an IP address); no other
exception, whatever the input.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from datamin.exceptions import DecodeError
from schemas.limits import oversized

_Q = r'"((?:[^"\\]|\\.)*)"'
COMBINED = re.compile(
    r"(\S+) (\S+) (\S+) \[([^\]]+)\] " + _Q + r" (\d{3}|-) (\d+|-)(?: " + _Q + " " + _Q + r")?(?:\s.*)?$")
_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct",
                                        "Nov", "Dec"), 1)}
_ESCAPE = re.compile(r"\\(x[0-9A-Fa-f]{2}|.)")
_tz_cache: dict[str, timezone] = {}


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    return _ESCAPE.sub(lambda m: chr(int(m.group(1)[1:], 16)) if m.group(1)[0] == "x" and len(m.group(1)) == 3
                       else m.group(1), text)


def parse_clf_time(text: str) -> datetime:
    """``10/Oct/2026:13:55:36 +0200`` -> an aware datetime in UTC (locale independent)."""
    try:
        day, month, rest = text.split("/", 2)
        year, hh, mm, rest2 = rest.split(":", 3)
        ss, zone = rest2.split(" ", 1)
        tz = _tz_cache.get(zone)
        if tz is None:
            sign = -1 if zone[0] == "-" else 1
            if zone[0] not in "+-" or len(zone) != 5:
                raise ValueError(zone)
            tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[3:5])))
            _tz_cache[zone] = tz
        return datetime(int(year), _MONTHS[month], int(day), int(hh), int(mm), int(ss), tzinfo=tz).astimezone(UTC)
    except (ValueError, KeyError, IndexError, OverflowError):  # OverflowError: year 1 or 9999 shifted out
        raise DecodeError("time is not in the [dd/Mon/yyyy:hh:mm:ss +zzzz] form") from None


def _split_request(request: str) -> tuple[str | None, str | None]:
    parts = request.split(" ")
    if len(parts) == 3 and parts[2].startswith("HTTP/"):
        return parts[0], parts[1]
    if len(parts) == 2 and parts[0].isalpha():  # HTTP/0.9
        return parts[0], parts[1]
    return None, None  # "-", a TLS handshake on the HTTP port, …: the request is logged without a target


def _dash(value: str | None) -> str | None:
    return None if value is None or value == "-" or value == "" else value


def parse_combined(line: str) -> dict[str, Any]:
    m = COMBINED.match(line)
    if m is None:
        raise DecodeError("not an access-log line in the combined or common format")
    host, _ident, _user, when, request, status, size, referer, agent = m.groups()
    method, url = _split_request(_unescape(request))
    return {
        "time": parse_clf_time(when),
        "client_ip": _dash(host),
        "method": method,
        "url": url,
        "status": _int(status, "status") if status != "-" else None,
        "bytes_sent": _int(size, "bytes_sent") if size != "-" else 0,
        "referrer": _dash(_unescape(referer)) if referer is not None else None,
        "user_agent": _dash(_unescape(agent)) if agent is not None else None,
    }


_JSON_KEYS: dict[str, tuple[str, ...]] = {
    "client_ip": ("remote_addr", "client_ip", "clientip", "remote_ip", "ip", "client"),
    "time": ("time_iso8601", "@timestamp", "timestamp", "time", "time_local", "ts"),
    "host": ("host", "http_host", "server_name", "vhost"),
    "status": ("status", "status_code", "response_status"),
    "bytes_sent": ("body_bytes_sent", "bytes_sent", "bytes", "size", "response_size"),
    "referrer": ("http_referer", "referer", "referrer"),
    "user_agent": ("http_user_agent", "user_agent", "agent", "useragent"),
    "accept_language": ("http_accept_language", "accept_language"),
    "method": ("method", "request_method", "verb"),
    "url": ("request_uri", "uri", "url", "path"),
}


def _first(obj: dict[str, Any], names: tuple[str, ...]) -> Any:
    for name in names:
        value = obj.get(name)
        if value is not None and value != "" and value != "-":
            return value
    return None


def _json_time(value: Any) -> datetime:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            seconds = value / 1000 if value > 1e11 else value  # epoch ms or s
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError):  # NaN, infinity, beyond year 9999
            raise DecodeError("JSON line: time is not a representable epoch time") from None
    if isinstance(value, str):
        if "/" in value:
            return parse_clf_time(value)
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if parsed.tzinfo is not None:
                return parsed.astimezone(UTC)
        except (ValueError, OverflowError):
            pass
    raise DecodeError("JSON line has no time with a zone (time_iso8601, @timestamp, time_local, …)")


_LONG = 2**63


def _int(value: Any, name: str) -> int | None:
    if value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: int(Infinity)
        raise DecodeError(f"{name} is not a number") from None
    if not -_LONG <= number < _LONG:
        raise DecodeError(f"{name} out of range")
    return number


def _float(value: Any, name: str, scale: float) -> float:
    try:
        return float(value) * scale
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer beyond the float range
        raise DecodeError(f"JSON line: {name} is not a number") from None


def _encodable(record: dict[str, Any]) -> dict[str, Any]:
    """The record, once sure that encode will take its strings: none too long, none a lone surrogate
    (JSON's \\ud800 escapes decode to those, and UTF-8 cannot hold them)."""
    too_big = oversized(record)
    if too_big is not None:
        raise DecodeError(f"field {too_big}")
    for name, value in record.items():
        if isinstance(value, str) and not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise DecodeError(f"field {name} holds a lone surrogate, which UTF-8 cannot encode") from None
    return record


def parse_json(line: str) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        raise DecodeError("not valid JSON") from None
    if not isinstance(obj, dict):
        raise DecodeError("JSON line is not an object")
    when = _first(obj, _JSON_KEYS["time"])
    if when is None:
        raise DecodeError("JSON line has no time (time_iso8601, @timestamp, time_local, …)")
    record: dict[str, Any] = {"time": _json_time(when)}
    for name in ("client_ip", "host", "referrer", "user_agent", "accept_language", "method", "url"):
        value = _first(obj, _JSON_KEYS[name])
        record[name] = value if isinstance(value, str) else None
    request = obj.get("request")
    if isinstance(request, str) and (record["method"] is None or record["url"] is None):
        method, url = _split_request(request)
        record["method"] = record["method"] or method
        record["url"] = record["url"] or url
    record["status"] = _int(_first(obj, _JSON_KEYS["status"]), "status")
    record["bytes_sent"] = _int(_first(obj, _JSON_KEYS["bytes_sent"]), "bytes_sent")
    if "request_time" in obj:  # nginx: seconds with millisecond resolution
        record["duration_ms"] = _float(obj["request_time"], "request_time", 1000.0)
    elif "duration_ms" in obj:
        record["duration_ms"] = _float(obj["duration_ms"], "duration_ms", 1.0)
    if record["status"] is not None and not 0 <= record["status"] <= 999:
        raise DecodeError("JSON line: status out of range")
    return record


def parse_line(line: str) -> dict[str, Any]:
    """One log line (without its newline) -> the fields of a raw http_request record."""
    if "\x00" in line:
        raise DecodeError("line holds NUL bytes (binary data)")
    stripped = line.strip()
    if not stripped:
        raise DecodeError("empty line")
    if stripped[0] == "{":
        return _encodable(parse_json(stripped))
    return _encodable(parse_combined(stripped))
