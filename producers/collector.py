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

Subject (see `datamin.identity`): the body's ``subject_key`` is always replaced by the subject the
request proves, or removed when nothing is proven, so a client can never name a subject itself:

- header ``X-Datamin-Subject`` with a user token the web server signed (`Identity.sign_user`):
  ``user:<id>``. A token that is forged, expired, too long-lived or replayed too often is answered
  401 for the whole request -- never a fall-back to the cookie;
- else the visitor cookie, when this server issued it (`Identity.issue_visitor`): ``visitor:<id>``.
  A cookie the server did not issue proves nothing: events are taken without a subject, and events
  that need one are rejected with that reason.

A privacy_request gets its request id, received time and channel (``self_service``) from the server,
whatever the body says; the rights worker carries it out (`warehouse.rights.worker`).

consent_record and privacy_request events without a proven subject are rejected: anyone could
otherwise submit consent or erasure in someone else's name. Without an `Identity` in the settings
nothing can be proven, so such events are always rejected.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from datamin.config import TABLE_RETENTION_MAX_DAYS, Config
from datamin.event_time import event_time_problem, time_field
from datamin.exceptions import ValidationError
from datamin.identity import Identity
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
    """cookie holding the server-issued visitor id (`Identity.issue_visitor`)"""
    identity: Identity | None = None
    """verifies visitor cookies and user tokens (the secret shared with the web server); None: no
    subject can be proven, so consent and privacy requests are refused"""
    token_header: str = "x-datamin-subject"  # noqa: S105 - a header name, not a secret
    max_body_bytes: int = 256 * 1024
    max_events: int = 500
    max_string: int = 16 * 1024
    """longest string in any event, in characters"""
    max_depth: int = 6
    """deepest nesting of arrays/objects in the body (the body's own array counts as 1)"""
    clock: Callable[[], float] = time.time
    """the time events are judged against (epoch seconds)"""
    clock_skew_seconds: int = 300
    """an event dated more than this far in the future is rejected (config minimise.clock_skew_seconds)"""
    max_age_days: Mapping[str, int] | None = None
    """per event type, days an event may be old (its table's retention); None: the one-year cap"""

    @classmethod
    def from_config(cls, config: Config, **settings: Any) -> CollectorSettings:
        """Settings whose event-time window is the configuration's (clock skew, tables' retention)."""
        return cls(clock_skew_seconds=config.minimise.clock_skew_seconds,
                   max_age_days=config.warehouse.retention_days, **settings)



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

    def proven_subject(self, headers: dict[str, str]) -> tuple[str | None, str | None]:
        """(the subject the request proves, why a presented proof failed): a valid user token, else a
        visitor cookie this server issued. An invalid token is a failure of the request (401); an
        invalid cookie only proves nothing."""
        identity = self.settings.identity
        token = headers.get(self.settings.token_header)
        if token is not None:
            user = identity.user_of(token) if identity is not None else None
            if user is None:
                return None, "token"
            return user, None
        cookie = cookies(headers.get("cookie"), (self.settings.consent_cookie,)).get(self.settings.consent_cookie)
        if not cookie:
            return None, None
        visitor = identity.visitor_of(cookie) if identity is not None else None
        return visitor, (None if visitor else "cookie")

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
        subject, failed = self.proven_subject(headers)
        if failed == "token":
            return 401, {"error": f"the {s.token_header} token is not valid (forged, expired, too long-lived or "
                                  "used too often); ask the web server for a new one"}
        accepted = 0
        refused = 0
        rejected: list[dict[str, Any]] = []
        for index, event in enumerate(events):
            error = self._one(event, subject, failed)
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

    def _one(self, event: Any, subject: str | None, failed: str | None) -> str | None:
        """None when accepted, "" when the producer refused it, else the reason it is bad."""
        if not isinstance(event, dict):
            return "an event must be a JSON object"
        name = event.get("event")
        if name not in ACCEPTED_EVENTS:
            return f"\"event\" must be one of: {', '.join(ACCEPTED_EVENTS)}"
        if name in NEEDS_SUBJECT and subject is None:
            if failed == "cookie":
                return f"{name} needs a proven subject: the visitor cookie was not issued by this server"
            return (f"{name} needs a proven subject: a visitor cookie the server issued or a signed user token "
                    f"({self.settings.token_header} header)")
        event = dict(event)
        event.pop("subject_key", None)
        if name == "privacy_request":  # the server says which request, when and how it came; the client cannot
            event.update(request_id=str(uuid.uuid4()), received=datetime.now(UTC).isoformat(), channel="self_service")
        if subject is not None:
            event["subject_key"] = subject
        try:
            schema, record = from_json(event, self.registry)
        except ValidationError as exc:
            return str(exc)
        late = self._time_problem(schema.name, record)
        if late is not None:
            return late
        try:
            return None if self.producer.publish(schema.name, record) else ""
        except Exception:  # a failing producer is the server's problem, not the client's
            log.warning("datamin collector: publishing failed", exc_info=True)
            return ""


    def _time_problem(self, event: str, record: Mapping[str, Any]) -> str | None:
        """Why the event's time is refused (future beyond the skew, or past its retention), else None."""
        s = self.settings
        when = record.get(time_field(event))
        if not isinstance(when, datetime):
            return None
        days = (s.max_age_days or {}).get(event, TABLE_RETENTION_MAX_DAYS)
        problem = event_time_problem(when, datetime.fromtimestamp(s.clock(), UTC),
                                     skew=timedelta(seconds=s.clock_skew_seconds), max_age_days=days)
        return None if problem is None else f"{time_field(event)}: {problem}"


async def _respond(send: Send, status: int, payload: dict[str, Any] | None,
                   extra: list[tuple[bytes, bytes]]) -> None:
    body = b"" if payload is None else json.dumps(payload).encode("utf-8")
    headers = [(b"cache-control", b"no-store"), *extra]
    if payload is not None:
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
