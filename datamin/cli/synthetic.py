"""Synthetic web traffic for the demo, the benchmarks and the fault run: raw events as a web server
would send them — full IP addresses, identifiers, user agents, query strings with e-mail addresses —
and consent choices for some of the visitors. Deterministic for a given seed."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

_WEBKIT = "AppleWebKit/537.36 (KHTML, like Gecko)"
_SAFARI = "AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1"
USER_AGENTS = (
    f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) {_WEBKIT} Chrome/131.0.0.0 Safari/537.36",
    f"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) {_SAFARI} Safari/605.1.15",
    f"Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) {_SAFARI} Mobile/15E148 Safari/604.1",
    f"Mozilla/5.0 (Linux; Android 14; Pixel 8) {_WEBKIT} Chrome/131.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
    f"Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) {_SAFARI} Mobile/15E148 Safari/604.1",
    f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) {_WEBKIT} Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
)
PAGES = ("/", "/products", "/products/laptops", "/support", "/blog/privacy-by-design", "/contact", "/search")
REFERRERS = (None, "https://www.google.com/search?q=techpros+laptop", "https://duckduckgo.com/?q=datamin",
             "https://news.example.org/article/123?utm_source=newsletter&email=ola@example.no")
SEARCHES = ("laptop", "reset password for kari.nordmann@example.no", "invoice 12345678", "call me on +47 912 34 567")
COUNTRIES = ("NO", "SE", "DK", "DE", "GB", "US")
LANGUAGES = ("nb-NO,nb;q=0.9,en;q=0.8", "en-GB,en;q=0.9", "sv-SE,sv;q=0.9", "de-DE,de;q=0.9,en;q=0.5")


@dataclass(frozen=True)
class Visitor:
    subject_key: str
    ip: str
    user_agent: str
    user_id: str | None
    consents: bool


def _ip(rng: random.Random) -> str:
    if rng.random() < 0.25:
        return f"2001:db8:{rng.randrange(65536):x}:{rng.randrange(65536):x}::{rng.randrange(1, 65536):x}"
    return f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def visitors(n: int, seed: int = 7) -> list[Visitor]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        logged_in = rng.random() < 0.4
        user_id = f"user-{rng.randrange(10**6):06d}" if logged_in else None
        out.append(Visitor(user_id or f"cookie-{uuid.UUID(int=rng.getrandbits(128))}", _ip(rng),
                           rng.choice(USER_AGENTS), user_id, consents=rng.random() < 0.3))
    return out


def consent_event(v: Visitor, at: datetime) -> dict[str, Any]:
    return {"event": "consent_record", "time": at, "subject_key": v.subject_key, "necessary": True,
            "statistics": True, "marketing": False, "feedback": False, "policy_version": "2023-12-01",
            "source": "banner"}


def traffic(events: int, *, seed: int = 7, start: datetime | None = None,
            visitors_n: int | None = None) -> Iterator[dict[str, Any]]:
    """Yields ``events`` raw events (JSON form, times as datetimes): consent choices first for the
    visitors who gave one, then mostly http_request, some usage_event and device_report."""
    rng = random.Random(seed)
    people = visitors(visitors_n or max(1, events // 10), seed)
    start = start or datetime.now(UTC) - timedelta(minutes=30)
    emitted = 0
    for v in people:
        if v.consents and emitted < events:
            yield consent_event(v, start - timedelta(minutes=1))
            emitted += 1
    step = timedelta(seconds=1800 / max(events, 1))
    while emitted < events:
        v = rng.choice(people)
        at = start + step * emitted
        roll = rng.random()
        if roll < 0.8:
            page = rng.choice(PAGES)
            query = rng.choice(("", "?utm_source=ad&utm_campaign=winter", f"?session={uuid.uuid4().hex}",
                                "?email=kari.nordmann@example.no"))
            yield {"event": "http_request", "time": at, "subject_key": v.subject_key, "client_ip": v.ip,
                   "method": "GET", "host": "techpros.no", "url": page + query,
                   "status": rng.choice((200, 200, 200, 200, 304, 404, 500)), "bytes_sent": rng.randrange(200, 90000),
                   "duration_ms": round(rng.uniform(2, 400), 1), "referrer": rng.choice(REFERRERS),
                   "user_agent": v.user_agent, "accept_language": rng.choice(LANGUAGES),
                   "do_not_track": rng.random() < 0.1, "global_privacy_control": rng.random() < 0.05,
                   "cdn_country": rng.choice(COUNTRIES), "session_id": f"sess-{uuid.UUID(int=rng.getrandbits(128))}",
                   "user_id": v.user_id, "client_id": f"cid-{abs(hash(v.subject_key)) % 10**9}"}
        elif roll < 0.93:
            yield {"event": "usage_event", "time": at, "subject_key": v.subject_key, "kind": "search",
                   "page": "/search?q=secret", "search_terms": rng.choice(SEARCHES), "app_version": "4.2.0",
                   "session_id": f"sess-{rng.randrange(10**6)}"}
        else:
            yield {"event": "device_report", "time": at, "subject_key": v.subject_key,
                   "advertising_id": str(uuid.UUID(int=rng.getrandbits(128))), "hardware_serial": "SN-4471-XK",
                   "mac_address": "00:1a:2b:3c:4d:5e", "hardware_model": rng.choice(("Pixel 8", "iPhone15,2")),
                   "os_name": "Android", "os_version": "14.1", "app_version": rng.choice(("4.2.0", "4.1.3")),
                   "event_kind": rng.choice(("error_report", "crash", "system_activity")),
                   "message": "upload failed for /home/kari/Documents/cv.pdf from " + v.ip,
                   "crash_dump": "at com.techpros.Upload.run(Upload.java:42) token=sk_live_51HxYzAbCdEfGhIjKlMn",
                   "latitude": 59.91, "longitude": 10.75, "city": "Oslo", "country": "NO"}
        emitted += 1
