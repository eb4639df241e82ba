"""The /collect endpoint: batches, limits, malformed bodies, CORS, proven subjects and signed tokens."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from producers.collector import Collector, CollectorSettings, sign_subject, verify_subject

SECRET = b"s3cret-shared-with-the-web-server"
NOW = 1_800_000_000.0
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
    settings = CollectorSettings(allowed_origins=("https://shop.example",), secret=SECRET, clock=lambda: NOW, **kw)
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
    post(collector, [{**USAGE, "subject_key": "victim"}, {**CONSENT, "subject_key": "victim"}],
         {"cookie": "datamin_consent=cookie-1"})
    assert [r["subject_key"] for _, r in publisher.events] == ["cookie-1", "cookie-1"]
    publisher.events.clear()
    post(collector, [{**USAGE, "subject_key": "victim"}])
    assert publisher.events[0][1]["subject_key"] is None


def test_consent_and_privacy_requests_need_a_proven_subject() -> None:
    collector, publisher = make()
    request = {"event": "privacy_request", "request_id": "r-1", "kind": "erasure", "received": "2026-11-25T10:00:00Z"}
    response = post(collector, [{**CONSENT, "subject_key": "victim"}, request])
    assert response.status_code == 400 and [r["index"] for r in response.json()["rejected"]] == [0, 1]
    assert publisher.events == []


def test_signed_token_accepted_expired_and_forged() -> None:
    collector, publisher = make()
    good = sign_subject("user-42", SECRET, NOW + 60)
    post(collector, [CONSENT], {"x-datamin-subject": good, "cookie": "datamin_consent=cookie-1"})
    assert publisher.events[-1][1]["subject_key"] == "user-42"  # the token wins over the cookie
    expired = sign_subject("user-42", SECRET, NOW - 1)
    forged = sign_subject("user-42", b"wrong secret", NOW + 60)
    other_uid = sign_subject("user-43", SECRET, NOW + 60).split(".")[0]
    tampered = ".".join([other_uid, *good.split(".")[1:]])  # another user's id under a valid signature
    for token in (expired, forged, tampered, "garbage", "a.b.c"):
        response = post(collector, [CONSENT], {"x-datamin-subject": token})
        assert response.status_code == 400, token
    assert len(publisher.events) == 1
    assert verify_subject(good, SECRET, NOW) == "user-42" and verify_subject(good, SECRET, NOW + 61) is None


def test_producer_refusing_everything_is_503() -> None:
    collector, _ = make(accept=False)
    assert post(collector, [USAGE]).status_code == 503
