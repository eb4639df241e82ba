"""Fuzzing the /collect door: whatever arrives, a documented status, no 5xx, no echo, nothing lost twice.

The real ASGI app is driven through httpx.ASGITransport, and through a bare ASGI driver where httpx
would refuse to send the input (a Content-Length that lies, a body split into arbitrary chunks)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, MutableMapping
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datamin.identity import Identity, IdentityError
from producers.collector import Collector, CollectorSettings
from schemas import default_registry, encode

SECRET = b"fuzz-secret-shared-with-the-web-server-32+"
NOW = 1_800_000_000.0
IDENTITY = Identity(SECRET, clock=lambda: NOW, max_token_uses=10**6)
VISITOR = IDENTITY.issue_visitor()
ORIGIN = "https://shop.example"
REGISTRY = default_registry()
DOCUMENTED = {200, 204, 400, 401, 403, 405, 413, 503}
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

USAGE = {"event": "usage_event", "time": "2026-11-25T10:00:00Z", "kind": "page_view", "page": "/a"}
DEVICE = {"event": "device_report", "time": 1_764_064_800_000, "os_name": "Linux", "latitude": 59.9,
          "system_config": {"k": "v"}, "event_kind": "crash"}
CONSENT = {"event": "consent_record", "time": "2026-11-25T10:00:00Z", "statistics": True, "source": "banner"}
PRIVACY = {"event": "privacy_request", "request_id": "r-1", "kind": "erasure", "received": "2026-11-25T10:00:00Z"}
BASES = (USAGE, DEVICE, CONSENT, PRIVACY)
FIELDS = sorted({name for s in REGISTRY if s.kind == "raw" for name in s.field_names} | {"event", "version"})


class RecordingPublisher:
    """An in-memory producer: records what it accepts; refuses when its plan says so."""

    def __init__(self, plan: Iterator[bool] | None = None) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.plan = plan

    def publish(self, event_type: str, record: dict[str, Any]) -> bool:
        accept = next(self.plan, True) if self.plan is not None else True
        if accept:
            self.events.append((event_type, record))
        return accept


def make(plan: Iterator[bool] | None = None, **kw: Any) -> tuple[Collector, RecordingPublisher]:
    publisher = RecordingPublisher(plan)
    options: dict[str, Any] = {"allowed_origins": (ORIGIN,), "identity": IDENTITY, **kw}
    options.setdefault("clock", lambda: NOW)  # event times judged by the injected clock, not today's
    return Collector(publisher, CollectorSettings(**options)), publisher


def request(collector: Collector, body: bytes, headers: list[tuple[bytes, bytes]] | None = None,
            method: str = "POST") -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=collector)
        async with httpx.AsyncClient(transport=transport, base_url="http://collect.example") as client:
            return await client.request(method, "/collect", content=body, headers=headers or [])

    return asyncio.run(call())


def raw_asgi(collector: Collector, chunks: list[bytes], headers: list[tuple[bytes, bytes]],
             method: str = "POST") -> tuple[int, dict[bytes, bytes], bytes]:
    """Calls the app as a server would, handing the body over in ``chunks`` (more_body between)."""
    scope = {"type": "http", "method": method, "path": "/collect", "headers": headers, "http_version": "1.1"}
    pending = list(chunks) or [b""]
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if not pending:
            return {"type": "http.disconnect"}
        chunk = pending.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    asyncio.run(collector(scope, receive, send))
    start, body = sent[0], sent[1]
    return start["status"], dict(start["headers"]), body["body"]


# -- strategies -------------------------------------------------------------------------------------

markers = st.integers(0, 10**9).map(lambda n: f"MRK{n:09d}Q")
"""distinctive submitted values: none may ever appear in a response"""
forged = st.integers(0, 10**9).map(lambda n: f"FRG{n:09d}Q")
"""subject keys a client writes into an event: always replaced by the proven subject"""
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=20)  # lone surrogates, NUL too
scalars = (st.none() | st.booleans() | st.integers() | st.integers(-(2**70), 2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | any_text | markers)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                           | st.dictionaries(any_text | markers, inner, max_size=3), max_leaves=8)


@st.composite
def events(draw: st.DrawFn) -> Any:
    """A mostly-valid event with some fields replaced by anything, or anything at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    event: dict[str, Any] = dict(draw(st.sampled_from(BASES)))
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=3)):
        event[name] = draw(json_values)
    if draw(st.booleans()):
        event["subject_key"] = draw(forged)  # forged: must be overwritten or removed
    return event


def strings_in(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from strings_in(k)
            yield from strings_in(v)
    elif isinstance(value, list):
        for item in value:
            yield from strings_in(item)


def used_markers(*values: Any) -> set[str]:
    return {s for v in values for s in strings_in(v) if s.startswith(("MRK", "FRG"))}


def check_batch_response(response: httpx.Response, batch: list[Any], publisher: RecordingPublisher,
                         secret_values: set[str]) -> None:
    assert response.status_code in {200, 400, 503}, response.status_code
    payload = response.json()
    for value in secret_values:
        assert value not in response.text
    if "accepted" not in payload:
        assert response.status_code == 400 and publisher.events == []
        return
    rejected = payload["rejected"]
    indices = [r["index"] for r in rejected]
    assert payload["accepted"] + len(rejected) == len(batch)
    assert indices == sorted(set(indices)) and all(0 <= i < len(batch) for i in indices)
    assert len(publisher.events) == payload["accepted"]  # every accepted event published exactly once
    for event_type, record in publisher.events:
        encode(REGISTRY.latest(event_type), record)  # raises when the producer could not send it
        assert not str(record.get("subject_key") or "").startswith("FRG")  # forged subjects never survive
    if response.status_code == 200:
        assert rejected == []


# -- properties -------------------------------------------------------------------------------------

@FUZZ
@given(batch=st.lists(events(), max_size=8), wrap=st.booleans(), cookie=st.none() | markers | st.just(VISITOR),
       refusals=st.lists(st.booleans(), max_size=8))
def test_any_batch_gets_a_documented_answer(batch: list[Any], wrap: bool, cookie: str | None,
                                            refusals: list[bool]) -> None:
    collector, publisher = make(iter([not r for r in refusals]), max_events=6)
    headers = [(b"cookie", f"datamin_consent={cookie}".encode())] if cookie else []
    body = json.dumps({"events": batch} if wrap else batch).encode()
    response = request(collector, body, headers)
    if len(batch) > 6:
        assert response.status_code == 400 and "at most 6" in response.json()["error"]
        assert publisher.events == []
        return
    check_batch_response(response, batch, publisher, used_markers(batch, cookie))
    proven = "visitor:" + VISITOR.split(".")[0] if cookie == VISITOR else None  # a forged cookie proves nothing
    for _, record in publisher.events:
        assert record.get("subject_key") == proven


@FUZZ
@given(body=json_values)
def test_any_json_body(body: Any) -> None:
    collector, publisher = make()
    response = request(collector, json.dumps(body).encode())
    events_ = body.get("events") if isinstance(body, dict) else body
    if not isinstance(events_, list):
        assert response.status_code == 400 and "array" in response.json()["error"]
        assert publisher.events == []
        return
    check_batch_response(response, events_, publisher, used_markers(body))


@FUZZ
@given(body=st.binary(max_size=300) | st.sampled_from([b"\xed\xa0\x80", b"[\"\x00\"]", b"[\"\xff\"]", b"{",
                                                        b'[{"event": "usage_event", "event": 1}]']))
def test_arbitrary_bytes(body: bytes) -> None:
    collector, publisher = make()
    response = request(collector, body)
    assert response.status_code in {200, 400}
    assert isinstance(response.json(), dict)
    assert len(publisher.events) == response.json().get("accepted", 0)


@FUZZ
@given(depth=st.integers(1, 3000), opener=st.sampled_from(["[", '{"a":']), wrap=st.booleans())
def test_deep_nesting(depth: int, opener: str, wrap: bool) -> None:
    collector, publisher = make(max_body_bytes=10**6)
    closer = "]" if opener == "[" else "}"
    inner = opener * depth + "1" + closer * depth
    body = f'{{"events": [{inner}]}}' if wrap else f"[{inner}]"
    response = request(collector, body.encode())
    assert response.status_code == 400 and publisher.events == []


@FUZZ
@given(extra=st.integers(-2, 2), marker=markers, field=st.sampled_from(["page", "search_terms", "action"]))
def test_strings_at_the_limit(extra: int, marker: str, field: str) -> None:
    limit = 16 * 1024
    collector, publisher = make(max_body_bytes=10**6)
    value = (marker * (limit // len(marker) + 1))[: limit + extra]
    response = request(collector, json.dumps([{**USAGE, field: value}]).encode())
    assert marker not in response.text
    assert response.status_code == (200 if extra <= 0 else 400)
    assert len(publisher.events) == (1 if extra <= 0 else 0)


@FUZZ
@given(batch=st.lists(events(), max_size=6), data=st.data(), lie=st.none() | st.integers(0, 10**12))
def test_chunking_and_content_length_never_matter(batch: list[Any], data: st.DataObject, lie: int | None) -> None:
    body = json.dumps(batch).encode()
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=5)))
    chunks = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    headers = [(b"content-length", str(lie).encode())] if lie is not None else []
    whole = make()
    split = make()
    expected = raw_asgi(whole[0], [body], [])
    got = raw_asgi(split[0], chunks, headers)
    assert (got[0], got[2]) == (expected[0], expected[2])
    assert len(split[1].events) == len(whole[1].events)


@FUZZ
@given(size=st.integers(101, 5000), data=st.data(), lie=st.sampled_from([b"0", b"10", b"100", b"-1", b"x"]))
def test_oversized_bodies_are_413_whatever_content_length_says(size: int, data: st.DataObject, lie: bytes) -> None:
    collector, publisher = make(max_body_bytes=100)
    body = b"[" + b" " * (size - 2) + b"]"
    cuts = sorted(data.draw(st.lists(st.integers(0, size), max_size=6)))
    chunks = [body[a:b] for a, b in zip([0, *cuts], [*cuts, size], strict=True)]
    status, _, payload = raw_asgi(collector, chunks, [(b"content-length", lie)])
    assert status == 413 and b"larger" in payload and publisher.events == []


header_bytes = st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"").strip())


@FUZZ
@given(method=st.sampled_from(["GET", "PUT", "DELETE", "PATCH", "HEAD", "TRACE", "OPTIONS", "POST"])
       | st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ-", min_size=1, max_size=10),
       origin=st.none() | header_bytes | st.just(ORIGIN.encode()))
def test_methods_and_origins(method: str, origin: bytes | None) -> None:
    collector, publisher = make()
    headers = [(b"origin", origin)] if origin is not None else []
    status, response_headers, _ = raw_asgi(collector, [json.dumps([USAGE]).encode()], headers, method=method)
    assert status in DOCUMENTED
    allowed = origin is None or origin == ORIGIN.encode()
    if not allowed:
        assert status == 403 and b"access-control-allow-origin" not in response_headers
    elif method == "OPTIONS":
        assert status == 204
    elif method != "POST":
        assert status == 405
    else:
        assert status == 200
    if origin is not None and allowed:
        assert response_headers[b"access-control-allow-origin"] == ORIGIN.encode()
    assert len(publisher.events) == (1 if status == 200 else 0)


@FUZZ
@given(token=st.text(st.characters(codec=None, exclude_categories=()), max_size=80)
       | st.text(".0123456789abcdef", max_size=80)
       | st.tuples(any_text, st.text("0123456789\u00b2\u0663", min_size=1), any_text).map(".".join))
def test_arbitrary_token_strings_never_raise_never_authenticate(token: str) -> None:
    assert IDENTITY.user_of(token) is None


@FUZZ
@given(token=header_bytes)
def test_arbitrary_token_headers_never_authenticate(token: bytes) -> None:
    collector, publisher = make()
    status, _, payload = raw_asgi(collector, [json.dumps([CONSENT]).encode()], [(b"x-datamin-subject", token)])
    assert status == 401 and publisher.events == []
    assert "token is not valid" in json.loads(payload)["error"]


@FUZZ
@given(data=st.data(), user=st.text(min_size=1, max_size=20))
def test_tampered_tokens_never_authenticate(data: st.DataObject, user: str) -> None:
    try:
        good = IDENTITY.sign_user(user)
    except IdentityError:  # blank after normalisation: no token can be made for it
        return
    subject = IDENTITY.user_of(good)
    assert subject is not None and subject.startswith("user:")
    position = data.draw(st.integers(0, len(good) - 1))
    replacement = data.draw(st.characters(codec=None, exclude_categories=()))
    tampered = good[:position] + replacement + good[position + 1:]
    if tampered.strip() != good:
        assert IDENTITY.user_of(tampered) in (None, subject)  # e.g. a b64 padding variant
        if replacement.isascii() and tampered.split(".")[2:] != good.split(".")[2:]:
            assert IDENTITY.user_of(tampered) is None


# -- regressions ------------------------------------------------------------------------------------

def test_regression_non_ascii_token_is_refused_not_a_500() -> None:
    collector, publisher = make()
    for token in ("a.1.\u00e9", "a.\u00b2.0", "\u00e9.1.abc", "u1.a.\u00b2.1.n.m"):
        assert IDENTITY.user_of(token) is None
        status, _, _ = raw_asgi(collector, [json.dumps([CONSENT]).encode()],
                                [(b"x-datamin-subject", token.encode("latin-1"))])
        assert status == 401
    assert publisher.events == []
