"""The /collect endpoint: batches, limits, malformed bodies, CORS, proven subjects and signed tokens."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from datamin.identity import Identity
from producers.collector import Collector, CollectorSettings

SECRET = b"s3cret-shared-with-the-web-server-0123456789"
NOW = 1_800_000_000.0
IDENTITY = Identity(SECRET, clock=lambda: NOW)
VISITOR = IDENTITY.issue_visitor()
USAGE = {"event": "usage_event", "time": "2026-11-25T10:00:00Z", "kind": "page_view", "page": "/a"}
CONSENT = {"event": "consent_record", "time": "2026-11-25T10:00:00Z", "statistics": True, "source": "banner"}


class FakePublisher:
    def __init__(self, accept: bool = True) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.accept = accept

    def publish(self, event_type: str, record: dict[str, Any]) -> bool:
        if self.accept:
            self.events.append((event_type, record))
        return self.accept


def post(collector: Collector, body: bytes | Any, headers: dict[str, str] | None = None,
         method: str = "POST") -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=collector)
        async with httpx.AsyncClient(transport=transport, base_url="http://collect.example") as client:
            return await client.request(method, "/collect", content=content, headers=headers or {})

    return asyncio.run(call())


def make(accept: bool = True, **kw: Any) -> tuple[Collector, FakePublisher]:
    publisher = FakePublisher(accept)
    kw.setdefault("identity", Identity(SECRET, clock=lambda: NOW))
    kw.setdefault("clock", lambda: NOW)  # event times are judged by the same injected clock
    settings = CollectorSettings(allowed_origins=("https://shop.example",), **kw)
    return Collector(publisher, settings), publisher


def test_good_batch_accepted_in_both_shapes() -> None:
    collector, publisher = make()
    assert post(collector, [USAGE, USAGE]).json() == {"accepted": 2, "rejected": []}
    response = post(collector, {"events": [USAGE]})
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    assert [t for t, _ in publisher.events] == ["usage_event"] * 3
    assert publisher.events[0][1]["subject_key"] is None  # nothing proven


def test_mixed_batch_names_bad_events_without_values() -> None:
    collector, publisher = make()
    bad_kind = {**USAGE, "kind": "SECRET-VALUE-1"}
    unknown = {**USAGE, "ssn": "SECRET-VALUE-2"}
    response = post(collector, [USAGE, bad_kind, "x", {"event": "http_request"}, unknown, USAGE])
    assert response.status_code == 400
    body = response.json()
    assert body["accepted"] == 2 and [r["index"] for r in body["rejected"]] == [1, 2, 3, 4]
    assert "usage_event.kind" in body["rejected"][0]["error"]
    assert "SECRET-VALUE" not in response.text
    assert len(publisher.events) == 2


@pytest.mark.parametrize(("body", "status", "fragment"), [
    (b"\xff\xfe[]", 400, "UTF-8"),
    (b"[{", 400, "JSON"),
    (b'{"not": "events"}', 400, "array"),
    (b"[" * 50 + b"]" * 50, 400, "deeper"),
    (b"[" * 100_000 + b"]" * 100_000, 400, "deeper"),
    (b"[" * 300_000, 413, "larger"),
    (json.dumps([USAGE] * 501).encode(), 400, "at most 500"),
    (json.dumps([{**USAGE, "page": "x" * 20_000}]).encode(), 400, "longer"),
    (json.dumps([{**USAGE, "page": {"a": [[[[["deep"]]]]]}}]).encode(), 400, "deeper"),
])
def test_malformed_and_oversized_bodies(body: bytes, status: int, fragment: str) -> None:
    collector, publisher = make()
    response = post(collector, body)
    assert response.status_code == status and fragment in response.json()["error"]
    assert publisher.events == []


def test_batch_length_limit() -> None:
    collector, _ = make(max_events=3, max_body_bytes=10**6)
    response = post(collector, [USAGE] * 4)
    assert response.status_code == 400 and "at most 3" in response.json()["error"]


def test_body_limit_does_not_trust_content_length() -> None:
    collector, _ = make(max_body_bytes=100)
    response = post(collector, b"[" + b" " * 200 + b"]", headers={"content-length": "10"})
    assert response.status_code in (400, 413)  # httpx may refuse the lie itself; never a 200
    response = post(collector, b"[" + b" " * 200 + b"]")
    assert response.status_code == 413


def test_cors_only_for_configured_origins() -> None:
    collector, publisher = make()
    preflight = post(collector, b"", {"origin": "https://shop.example", "access-control-request-method": "POST"},
                     method="OPTIONS")
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "https://shop.example"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    ok = post(collector, [USAGE], {"origin": "https://shop.example"})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://shop.example"
    evil = post(collector, [USAGE], {"origin": "https://evil.example"})
    assert evil.status_code == 403 and "access-control-allow-origin" not in evil.headers
    assert post(collector, b"", {"origin": "https://evil.example"}, method="OPTIONS").status_code == 403
    assert post(collector, b"", method="GET").status_code == 405
    assert len(publisher.events) == 1


def test_forged_subject_key_is_overwritten_by_the_cookie() -> None:
    collector, publisher = make()
    post(collector, [{**USAGE, "subject_key": "user:victim"}, {**CONSENT, "subject_key": "user:victim"}],
         {"cookie": f"datamin_consent={VISITOR}"})
    visitor = "visitor:" + VISITOR.split(".")[0]
    assert [r["subject_key"] for _, r in publisher.events] == [visitor, visitor]
    publisher.events.clear()
    post(collector, [{**USAGE, "subject_key": "victim"}])
    assert publisher.events[0][1]["subject_key"] is None


def test_a_cookie_the_server_did_not_issue_proves_nothing() -> None:
    collector, publisher = make()
    tampered = VISITOR[:-1] + ("1" if VISITOR.endswith("0") else "0")  # never the real cookie by chance
    forged = [f"datamin_consent={v}" for v in ("user-42", "user:user-42", tampered,
                                                 Identity(b"another-secret-of-32-bytes-or-more!!").issue_visitor())]
    for cookie in forged:
        response = post(collector, [USAGE, CONSENT], {"cookie": cookie})
        assert response.status_code == 400
        assert "not issued by this server" in response.json()["rejected"][0]["error"]
    assert [r["subject_key"] for _, r in publisher.events] == [None] * len(forged)  # usage taken, anonymous


def test_consent_and_privacy_requests_need_a_proven_subject() -> None:
    collector, publisher = make()
    request = {"event": "privacy_request", "request_id": "r-1", "kind": "erasure", "received": "2026-11-25T10:00:00Z"}
    response = post(collector, [{**CONSENT, "subject_key": "victim"}, request])
    assert response.status_code == 400 and [r["index"] for r in response.json()["rejected"]] == [0, 1]
    assert publisher.events == []
    no_identity, publisher = make(identity=None)
    response = post(no_identity, [CONSENT], {"cookie": f"datamin_consent={VISITOR}"})
    assert response.status_code == 400 and publisher.events == []


def test_signed_token_accepted_and_never_falls_back_to_the_cookie() -> None:
    clock = [NOW]
    identity = Identity(SECRET, clock=lambda: clock[0], max_token_seconds=600, max_token_uses=3)
    collector, publisher = make(identity=identity)
    good = identity.sign_user("User-42 ")
    post(collector, [CONSENT], {"x-datamin-subject": good, "cookie": f"datamin_consent={VISITOR}"})
    assert publisher.events[-1][1]["subject_key"] == "user:user-42"  # the token wins over the cookie
    forged = Identity(b"wrong-secret-but-long-enough-for-it-32b").sign_user("user-42")
    parts = good.split(".")
    other_uid = identity.sign_user("user-43").split(".")[1]
    tampered = ".".join([parts[0], other_uid, *parts[2:]])  # another user's id under a valid signature
    long_lived = ".".join([*parts[:3], str(int(parts[3]) + 10**9), *parts[4:]])  # not re-signed: forged
    for token in (forged, tampered, long_lived, "garbage", "a.b.c", ""):
        response = post(collector, [CONSENT], {"x-datamin-subject": token, "cookie": f"datamin_consent={VISITOR}"})
        assert response.status_code == 401, token  # an error, not the cookie's subject
    assert len(publisher.events) == 1
    clock[0] += 601
    assert post(collector, [CONSENT], {"x-datamin-subject": good}).status_code == 401  # expired


def test_token_lifetime_and_replay_are_bounded() -> None:
    signer = Identity(SECRET, clock=lambda: NOW, max_token_seconds=86400)
    century = signer.sign_user("user-42", lifetime=86400)
    strict = Identity(SECRET, clock=lambda: NOW, max_token_seconds=900, max_token_uses=2)
    assert strict.user_of(century) is None  # a lifetime above the maximum is refused even if signed
    token = strict.sign_user("user-42", lifetime=10**9)  # asking for more gets the maximum
    assert int(token.split(".")[3]) - int(token.split(".")[2]) == 900
    collector, publisher = make(identity=strict)
    statuses = [post(collector, [CONSENT], {"x-datamin-subject": token}).status_code for _ in range(3)]
    assert statuses == [200, 200, 401] and len(publisher.events) == 2


def test_producer_refusing_everything_is_503() -> None:
    collector, _ = make(accept=False)
    assert post(collector, [USAGE]).status_code == 503
