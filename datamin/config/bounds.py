"""The bounds every setting is held to, in one place: the policy's one-year cap, the accepted IP
prefixes, the smallest group a view shows; used by the config's validation and at run time alike."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from datamin.exceptions import ConfigError

RETENTION_CAP_DAYS = 365
"""The policy's hard limit: 'No purpose in this statement will require us to keep your personal
information for longer than one year.' Nothing datamin keeps may be configured beyond it."""
RAW_RETENTION_CAP_HOURS = 7 * 24
"""Raw topics hold full IP addresses and identifiers in clear: they are kept for hours, a week at most."""

TABLE_RETENTION_MAX_DAYS = RETENTION_CAP_DAYS - 1
"""the longest retention a warehouse table may have: expiry deletes whole day partitions, so a row written
at the first second of its day is up to retention + 1 days old when its partition goes"""
CLEAR_SEGMENT_HOURS = 1
"""segment.ms of topics with data in clear (raw, dead-letter): Kafka deletes whole segments, so a record
can outlive the topic's retention by one segment roll"""
SEGMENT_DAYS = 1
"""segment.ms of every other topic"""
IPV4_PREFIX_BITS = (8, 24)
"""the IPv4 prefixes datamin accepts, strongest to weakest: more than 24 bits (Google Analytics' /24)
can identify a household"""
IPV6_PREFIX_BITS = (16, 48)
"""the IPv6 prefixes datamin accepts, strongest to weakest: a /48 is often one customer's site"""

log = logging.getLogger(__name__)

SECRET_KEYS = frozenset({"ssl_password", "sasl_password"})
TABLES = ("http_request", "usage_event", "device_report", "consent_record", "privacy_request")


KAFKA_CLIENTS = ("kafka-python", "confluent-kafka")
"""the Kafka transports datamin has (datamin.kafka.client and datamin.kafka.confluent)"""


def check_ip_prefixes(ipv4_prefix: object, ipv6_prefix: object) -> None:
    """Raises ConfigError (a ValueError too) unless both prefixes are whole numbers within
    `IPV4_PREFIX_BITS` and `IPV6_PREFIX_BITS`; the one check of these bounds, for the config, the
    IP transform and the leak scan alike."""
    for key, value, (low, high), default, why in (
            ("minimise.ipv4_prefix", ipv4_prefix, IPV4_PREFIX_BITS, 16, "more than 24 bits can identify a household"),
            ("minimise.ipv6_prefix", ipv6_prefix, IPV6_PREFIX_BITS, 32, "a /48 is often one customer's site")):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(key, f"{value!r} is outside the accepted {low}..{high} bits ({why})",
                              f"use a whole number from {low} to {high}: {default} (the default) or at most {high}")


MIN_VISITORS_FLOOR = 2
"""The smallest ``warehouse.min_visitors`` accepted: a group of one visitor is that visitor."""


def check_min_visitors(k: object) -> int:
    """``k`` when it is a whole number of at least `MIN_VISITORS_FLOOR`; else ConfigError. The one check
    of ``warehouse.min_visitors``, for the config and the catalog alike."""
    if isinstance(k, bool) or not isinstance(k, int) or k < MIN_VISITORS_FLOOR:
        raise ConfigError("warehouse.min_visitors", f"{k!r} would let views show groups of a single visitor",
                          f"use a whole number of at least {MIN_VISITORS_FLOOR}: 10 (the default) or more")
    return k


def retention_for(table: str, retention_days: Mapping[str, int]) -> int:
    """Days ``table`` keeps a day partition under ``retention_days`` (``warehouse.retention_days``): its
    value clamped to TABLE_RETENTION_MAX_DAYS (logged), else that: a day partition goes whole, so its
    first rows are then a day older (365 days). Raises ConfigError for a value below 1 (that would delete
    today's data as it arrives)."""
    days = retention_days.get(table, TABLE_RETENTION_MAX_DAYS)
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ConfigError(f"warehouse.retention_days.{table}", "must be a whole number of days, at least 1",
                          f"set it between 1 and {TABLE_RETENTION_MAX_DAYS}")
    if days > TABLE_RETENTION_MAX_DAYS:
        log.warning("retention of %s (%d days) is beyond the policy's cap; using %d days",
                    table, days, TABLE_RETENTION_MAX_DAYS)
        return TABLE_RETENTION_MAX_DAYS
    return days


def _positive(key: str, value: int) -> None:
    if value <= 0:
        raise ConfigError(key, f"{value} must be more than 0", "use a positive number")


def _retention(key: str, days: int, *, extra: int = 0, why: str = "") -> None:
    _positive(key, days)
    if days + extra > RETENTION_CAP_DAYS:
        raise ConfigError(key, f"{days} days{why} is beyond the privacy policy's cap of {RETENTION_CAP_DAYS} days "
                          "('no longer than one year')", f"set it to {RETENTION_CAP_DAYS - extra} or less")
