"""Event time at the door: an event dated beyond the clock skew in the future, or older than its
table's retention, is refused. Pure: no Kafka, no files; ``now`` is passed in.

Why: the warehouse partitions rows by their event day and expiry deletes days past retention. A row
dated in 2300 would make a partition no expiry reaches for centuries; a row dated two years ago would
be kept past the one-year cap and need a pseudonymisation key the scheduler already deleted. So the
collector, the middleware, the log shipper and the processor all call `check_event_time`, and what
fails goes to the dead-letter topic with the reason (the bound it broke, never the value).

The age bound is by UTC day, as expiry's: with 90 days' retention on 2026-04-01, events of 2026-01-01
are accepted and events of 2025-12-31 refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from datamin.config import TABLE_RETENTION_MAX_DAYS, Config
from datamin.exceptions import EventTimeError

TIME_FIELDS: Mapping[str, str] = {"privacy_request": "received"}
"""the field holding an event's time, where it is not ``time``"""


def time_field(event: str) -> str:
    """The name of the field that dates an event of type ``event``."""
    return TIME_FIELDS.get(event, "time")


def max_age_days(config: Config, event: str) -> int:
    """Days an event of ``event`` may be old when it arrives: its table's retention (the cap without one)."""
    return min(config.warehouse.retention_days.get(event, TABLE_RETENTION_MAX_DAYS), TABLE_RETENTION_MAX_DAYS)


def event_time_problem(when: datetime, now: datetime, *, skew: timedelta, max_age_days: int) -> str | None:
    """Why ``when`` is not an acceptable event time at ``now``, else None. Both must be aware."""
    when, now = when.astimezone(UTC), now.astimezone(UTC)
    if when > now + skew:
        return (f"dated more than {_words(skew)} in the future (the clock skew allowed; "
                "minimise.clock_skew_seconds)")
    oldest = now.date() - timedelta(days=max_age_days)
    if when.date() < oldest:
        return f"older than its table's retention of {max_age_days} days (nothing older than {oldest} is kept)"
    return None


def check_event_time(config: Config, event: str, record: Mapping[str, Any], now: datetime) -> None:
    """Raises EventTimeError when the time of ``record`` (an event of type ``event``) is not acceptable at
    ``now``. A record without a time (or a naive one) is left to schema validation."""
    when = record.get(time_field(event))
    if not isinstance(when, datetime) or when.tzinfo is None or when.utcoffset() is None:
        return
    problem = event_time_problem(when, now, skew=timedelta(seconds=config.minimise.clock_skew_seconds),
                                 max_age_days=max_age_days(config, event))
    if problem is not None:
        raise EventTimeError(f"{event}.{time_field(event)}: {problem}")


def _words(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    if seconds % 60 == 0 and seconds >= 60:
        return f"{seconds // 60} minute{'s' if seconds != 60 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"
