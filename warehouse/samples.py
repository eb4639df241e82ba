"""Synthetic minimised events for tests, benchmarks and demos. Pure; no personal data (all values invented).

``sample_record(event, i, at)`` is deterministic in ``i``: the same call gives the same record, so a
test can check what arrived against what it sent.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

_PAGES = ("/", "/pricing", "/docs", "/blog/privacy", "/contact", "/signup")
_BROWSERS = ("Chrome", "Firefox", "Safari", "Edge")
_OSES = ("Windows", "Mac OS X", "Linux", "Android", "iOS")
_DEVICES = ("desktop", "mobile", "tablet", "bot")
_COUNTRIES = ("NO", "SE", "DK", "DE", "US")
_REFERRERS = (None, "https://www.google.com", "https://duckduckgo.com", "https://news.example.org")


def event_id(event: str, i: int) -> str:
    """The event id of the ``i``-th sample of ``event`` (a name-based UUID, so tests can recompute it)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"datamin-sample/{event}/{i}"))


def sample_record(event: str, i: int, at: datetime | None = None) -> dict[str, Any]:
    """A valid minimised ``event`` record; ``at`` (UTC) defaults to a fixed instant."""
    at = at or datetime(2024, 5, 17, 12, 0, tzinfo=UTC)
    subject = f"ps1:{i % 97:04d}" if i % 3 else None
    if event == "http_request":
        return {
            "event_id": event_id(event, i), "time": at, "subject": subject,
            "client_network": f"10.{i % 256}.0.0/16", "method": "GET", "host": "www.example.no",
            "url": _PAGES[i % len(_PAGES)], "status": (200, 200, 304, 404, 500)[i % 5],
            "bytes_sent": 1000 + i % 5000, "duration_ms": float(i % 250) / 10,
            "referrer_origin": _REFERRERS[i % len(_REFERRERS)], "browser_family": _BROWSERS[i % 4],
            "browser_major": str(100 + i % 20), "os_family": _OSES[i % 5], "os_major": str(i % 15),
            "device_class": _DEVICES[i % 4], "language": "nb", "do_not_track": i % 7 == 0,
            "global_privacy_control": i % 11 == 0, "country": _COUNTRIES[i % 5],
            "session_id": None, "user_id": None, "client_id": None,
        }
    if event == "usage_event":
        kind = ("page_view", "file_view", "search", "action")[i % 4]
        return {
            "event_id": event_id(event, i), "time": at, "subject": subject, "session_id": None,
            "kind": kind, "page": _PAGES[i % len(_PAGES)], "file": "/files/report.pdf" if kind == "file_view" else None,
            "search_terms": ("privacy policy", "pricing", "[email] login")[i % 3] if kind == "search" else None,
            "action": "subscribe" if kind == "action" else None, "app_version": "2.4.1", "duration_ms": i % 9000,
        }
    if event == "device_report":
        return {
            "event_id": event_id(event, i), "time": at, "subject": subject, "advertising_id": None,
            "app_instance_id": None, "hardware_model": ("Pixel 8", "iPhone 15", "Galaxy S23")[i % 3],
            "os_name": ("Android", "iOS")[i % 2], "os_major": str(13 + i % 4), "browser_family": None,
            "browser_major": None, "app_version": ("2.4.0", "2.4.1")[i % 2], "screen": "1080x2400",
            "network_operator": "Telenor", "language": "nb", "country": _COUNTRIES[i % 5],
            "event_kind": ("system_activity", "error_report", "crash")[i % 3],
            "message": "timeout talking to [ip]" if i % 3 else None, "crash_dump": None,
        }
    if event == "consent_record":
        return {
            "event_id": event_id(event, i), "time": at, "subject": subject, "necessary": True,
            "statistics": i % 2 == 0, "marketing": i % 3 == 0, "feedback": False,
            "policy_version": "2024-01", "source": ("banner", "settings_page", "email", "officer")[i % 4],
        }
    if event == "privacy_request":
        return {
            "request_id": event_id(event, i), "subject": subject,
            "kind": ("access", "erasure", "restriction", "objection")[i % 4], "received": at,
            "channel": ("officer", "self_service", "email")[i % 3],
        }
    raise ValueError(f"no samples for event type {event!r}")
