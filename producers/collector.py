"""The collector: an ASGI app, mounted at /collect, for events pages and apps send themselves.

    POST /collect   body: [event, …] or {"events": [event, …]}, each in the JSON form of schemas.jsonform
                    (usage_event, device_report, consent_record, privacy_request)

Responses (JSON, never echoing a submitted value):

- 200 ``{"accepted": n, "rejected": []}`` — every event was queued;
- 400 ``{"accepted": n, "rejected": [{"index": i, "error": "…"}, …]}`` — some events were bad; the
  good ones of the batch WERE accepted (n of them), the bad ones named by index; also 400 with
  ``{"error": …}`` for a body that is not UTF-8 JSON, not a list, too deep or too long a batch;
- 413 body larger than ``max_body_bytes`` (counted while reading, Content-Length not trusted);
- 403 an Origin not in ``allowed_origins``; 405 other methods; 503 the producer refused events.

Subject: the body's ``subject_key`` is always replaced by the subject the request proves — a user id
in a token the web server signed (``sign_subject``, header ``X-Datamin-Subject``), else the consent
cookie — or removed when nothing is proven. consent_record and privacy_request events without a proven
subject are rejected: anyone could otherwise submit consent or erasure in someone else's name.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from datamin.exceptions import ValidationError
from producers.request_event import Publisher, cookies
from schemas import Registry, default_registry, from_json

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

ACCEPTED_EVENTS = ("usage_event", "device_report", "consent_record", "privacy_request")
NEEDS_SUBJECT = ("consent_record", "privacy_request")


@dataclass(frozen=True)
class CollectorSettings:
    allowed_origins: tuple[str, ...] = ()
    """origins (scheme://host[:port]) whose pages may post from a browser; requests without Origin
    (apps, servers) are always allowed"""
    consent_cookie: str = "datamin_consent"
    """cookie holding the consent-banner id"""
    secret: bytes | None = None
    """key of the HMAC-SHA-256 subject tokens the web server signs; None: tokens are not accepted"""
    token_header: str = "x-datamin-subject"  # noqa: S105 - a header name, not a secret
    max_body_bytes: int = 256 * 1024
    max_events: int = 500
    max_string: int = 16 * 1024
    """longest string in any event, in characters"""
    max_depth: int = 6
    """deepest nesting of arrays/objects in the body (the body's own array counts as 1)"""
    clock: Callable[[], float] = time.time


def sign_subject(user_id: str, secret: bytes, expires_at: float) -> str:
    """A token vouching for ``user_id`` until ``expires_at`` (epoch seconds), for the X-Datamin-Subject header."""
    uid = base64.urlsafe_b64encode(user_id.encode("utf-8")).decode("ascii").rstrip("=")
    payload = f"{uid}.{int(expires_at)}"
    mac = hmac.new(secret, payload.encode("ascii"), hashlib.sha256).hexdigest()
    return f"{payload}.{mac}"


def verify_subject(token: str, secret: bytes, now: float) -> str | None:
    """The user id of a valid, unexpired token; None for anything else (never raises)."""
    if not token.isascii():  # sign_subject writes ASCII only; compare_digest raises on anything else
        return None
    parts = token.strip().split(".")
    if len(parts) != 3 or not parts[1].isdigit() or len(parts[1]) > 20:
        return None
    uid, expires, mac = parts
    expected = hmac.new(secret, f"{uid}.{expires}".encode("ascii"), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, mac) or int(expires) < now:
        return None
    try:
        return base64.urlsafe_b64decode(uid + "=" * (-len(uid) % 4)).decode("utf-8") or None
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


class _TooLarge(Exception):
    pass


def check_shape(value: Any, max_depth: int, max_string: int) -> str | None:
    """Why a parsed body is too deep or holds too long a string; None when it is fine."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            if depth > max_depth:
                return f"nested deeper than {max_depth} levels"
            children = item.values() if isinstance(item, dict) else item
            if isinstance(item, dict) and any(isinstance(k, str) and len(k) > max_string for k in item):
                return f"a name longer than {max_string} characters"
            stack.extend((c, depth + 1) for c in children)
        elif isinstance(item, str) and len(item) > max_string:
            return f"a string longer than {max_string} characters"
    return None


class Collector:
    """The ASGI app. ``Collector(producer, CollectorSettings(...))``; mount it at /collect."""

    def __init__(self, producer: Publisher, settings: CollectorSettings | None = None, *,
                 registry: Registry | None = None) -> None:
        self.producer = producer
        self.settings = settings or CollectorSettings()
        self.registry = registry or default_registry()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or ()}
        origin = headers.get("origin")
        cors: list[tuple[bytes, bytes]] = []
        if origin is not None:
            if origin not in self.settings.allowed_origins:
                await _respond(send, 403, {"error": "this origin may not post events here"}, [])
                return
            cors = [(b"access-control-allow-origin", origin.encode("latin-1")),
                    (b"access-control-allow-credentials", b"true"), (b"vary", b"Origin")]
        method = scope.get("method")
        if method == "OPTIONS":
            await _respond(send, 204, None, cors + [
                (b"access-control-allow-methods", b"POST, OPTIONS"),
                (b"access-control-allow-headers", b"content-type, " + self.settings.token_header.encode()),
                (b"access-control-max-age", b"600")])
            return
        if method != "POST":
            await _respond(send, 405, {"error": "use POST"}, cors + [(b"allow", b"POST, OPTIONS")])
            return
        try:
            body = await self._read_body(receive)
        except _TooLarge:
            await _respond(send, 413, {"error": f"body larger than {self.settings.max_body_bytes} bytes"}, cors)
            return
        status, payload = self.handle(body, headers)
        await _respond(send, status, payload, cors)

    async def _read_body(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message.get("type") == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.settings.max_body_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        return b"".join(chunks)

    def proven_subject(self, headers: dict[str, str]) -> str | None:
        """The subject the request proves: a valid signed user token, else the consent cookie."""
        token = headers.get(self.settings.token_header)
        if token and self.settings.secret is not None:
            user = verify_subject(token, self.settings.secret, self.settings.clock())
            if user is not None:
                return user
        cookie = cookies(headers.get("cookie"), (self.settings.consent_cookie,)).get(self.settings.consent_cookie)
        return cookie or None

    def handle(self, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """The status and JSON response for one POSTed body (pure apart from publishing)."""
        s = self.settings
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return 400, {"error": "body is not valid UTF-8"}
        try:
            parsed = json.loads(text)
        except RecursionError:
            return 400, {"error": f"body nested deeper than {s.max_depth} levels"}
        except ValueError:
            return 400, {"error": "body is not valid JSON"}
        events = parsed.get("events") if isinstance(parsed, dict) else parsed
        if not isinstance(events, list):
            return 400, {"error": 'body must be a JSON array of events or {"events": [...]}'}
        if len(events) > s.max_events:
            return 400, {"error": f"batch of {len(events)} events; at most {s.max_events} per request"}
        shape = check_shape(events, s.max_depth, s.max_string)
        if shape is not None:
            return 400, {"error": f"body is {shape}" if "nested" in shape else f"body holds {shape}"}
        subject = self.proven_subject(headers)
        accepted = 0
        refused = 0
        rejected: list[dict[str, Any]] = []
        for index, event in enumerate(events):
            error = self._one(event, subject)
            if error is None:
                accepted += 1
            elif error == "":
                refused += 1
                rejected.append({"index": index, "error": "the server could not queue this event; retry later"})
            else:
                rejected.append({"index": index, "error": error})
        if refused and not accepted and refused == len(rejected):
            return 503, {"accepted": 0, "rejected": rejected}
        return (400 if rejected else 200), {"accepted": accepted, "rejected": rejected}

    def _one(self, event: Any, subject: str | None) -> str | None:
        """None when accepted, "" when the producer refused it, else the reason it is bad."""
        if not isinstance(event, dict):
            return "an event must be a JSON object"
        name = event.get("event")
        if name not in ACCEPTED_EVENTS:
            return f"\"event\" must be one of: {', '.join(ACCEPTED_EVENTS)}"
        if name in NEEDS_SUBJECT and subject is None:
            return (f"{name} needs a proven subject: the consent cookie or a signed user token "
                    f"({self.settings.token_header} header)")
        event = dict(event)
        event.pop("subject_key", None)
        if subject is not None:
            event["subject_key"] = subject
        try:
            schema, record = from_json(event, self.registry)
        except ValidationError as exc:
            return str(exc)
        try:
            return None if self.producer.publish(schema.name, record) else ""
        except Exception:  # a failing producer is the server's problem, not the client's
            log.warning("datamin collector: publishing failed", exc_info=True)
            return ""


async def _respond(send: Send, status: int, payload: dict[str, Any] | None,
                   extra: list[tuple[bytes, bytes]]) -> None:
    body = b"" if payload is None else json.dumps(payload).encode("utf-8")
    headers = [(b"cache-control", b"no-store"), *extra]
    if payload is not None:
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
