"""Time for the warehouse's scheduled jobs: one source of 'now', always UTC and timezone-aware.

Jobs never read the clock themselves; they take ``now`` (or a ``clock``) from their caller so tests
can move time freely.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

Clock = Callable[[], datetime]
"""A function returning the current time as an aware datetime."""


def utc_now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def as_utc(now: datetime) -> datetime:
    """``now`` converted to UTC; raises ValueError for a naive datetime (its zone would be a guess)."""
    if now.tzinfo is None or now.tzinfo.utcoffset(now) is None:
        raise ValueError("a naive datetime was given as the time: pass an aware one, e.g. datetime.now(UTC)")
    return now.astimezone(UTC)


def utc_today(now: datetime) -> date:
    """The UTC calendar day of ``now`` (the day partitions are named by)."""
    return as_utc(now).date()
