"""The Kafka topics datamin uses, their roles and retention, and provisioning them.

Kafka deletes whole segments, never single records: a segment goes once its newest record is older
than ``retention.ms``, and a segment rolls (closes) ``segment.ms`` after its first record. A record can
therefore live ``retention.ms + segment.ms`` (plus the broker's retention check, 5 minutes by default),
and that sum is what must stay within the cap. Every topic gets a short ``segment.ms`` (an hour for
topics with data in clear, a day for the others), a ``retention.ms`` such that the sum is within the
cap, and ``message.timestamp.type=LogAppendTime``, so that the broker ages records by when it received
them and a producer cannot keep a segment alive by stamping a record far in the future.

    <prefix>.raw.<event>            raw events as web servers sent them; kept hours (topics.raw_retention_hours)
    <prefix>.consent                consent_record events keyed by subject key; compacted, one year at most
    <prefix>.raw.privacy_request    self-service requests as the collector took them (clear subject); kept
                                    hours, read by the rights worker only
    <prefix>.privacy-requests       privacy_request events: the record of requests, keyed and valued by the
                                    subject's keyed hash (never the key); one year at most
    <prefix>.minimised.<event>      what may be kept; kept days (topics.minimised_retention_days)
    <prefix>.dead-letter            what could not be read, with the reason; kept hours
    <prefix>.erased-subjects        keyed hashes of erased subjects; compacted, one year at most
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from datamin.config import (
    CLEAR_SEGMENT_HOURS,
    RAW_RETENTION_CAP_HOURS,
    RETENTION_CAP_DAYS,
    SEGMENT_DAYS,
    Config,
)

log = logging.getLogger(__name__)

RAW_EVENTS = ("http_request", "usage_event", "device_report")
"""event types published on raw topics (consent and privacy requests have topics of their own)"""
MINIMISED_EVENTS = ("http_request", "usage_event", "device_report", "consent_record", "privacy_request")
_HOUR_MS = 3600 * 1000
_DAY_MS = 24 * _HOUR_MS


@dataclass(frozen=True)
class TopicSpec:
    name: str
    role: str
    retention_ms: int
    segment_ms: int
    """segments roll after this long, so that retention can delete them: a record lives at most
    retention_ms + segment_ms"""
    compacted: bool = False
    holds: str = ""
    """what the topic holds, for the retention inventory and the record of processing"""
    setting: str | None = None
    """the configuration key of its retention, if it has one"""

    @property
    def max_age_ms(self) -> int:
        """The longest a record can stay: retention plus one segment roll."""
        return self.retention_ms + self.segment_ms


class Topics:
    """Topic names for one configuration."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self.prefix = config.topics.prefix

    def raw(self, event: str) -> str:
        if event == "consent_record":
            return self.consent
        if event == "privacy_request":
            return self.requests_in
        return f"{self.prefix}.raw.{event}"

    def minimised(self, event: str) -> str:
        return f"{self.prefix}.minimised.{event}"

    @property
    def consent(self) -> str:
        return f"{self.prefix}.consent"

    @property
    def requests_in(self) -> str:
        """self-service privacy requests as the collector took them, for the rights worker"""
        return f"{self.prefix}.raw.privacy_request"

    @property
    def privacy_requests(self) -> str:
        return f"{self.prefix}.privacy-requests"

    @property
    def dead_letter(self) -> str:
        return f"{self.prefix}.dead-letter"

    @property
    def erased_subjects(self) -> str:
        return f"{self.prefix}.erased-subjects"

    def inputs(self) -> list[str]:
        """Every topic the minimisation processor reads."""
        return [self.raw(e) for e in RAW_EVENTS] + [self.consent, self.privacy_requests]

    def all(self) -> list[TopicSpec]:
        t = self._config.topics
        clear_segment = CLEAR_SEGMENT_HOURS * _HOUR_MS
        segment = SEGMENT_DAYS * _DAY_MS
        year = RETENTION_CAP_DAYS * _DAY_MS - segment  # retention + one roll = the cap
        raw_words = "raw events as web servers sent them: full IP addresses, identifiers, user agents (in clear)"
        specs = [TopicSpec(self.raw(e), "raw", t.raw_retention_hours * _HOUR_MS, clear_segment, holds=raw_words,
                           setting="topics.raw_retention_hours") for e in RAW_EVENTS]
        specs.append(TopicSpec(self.requests_in, "raw", t.raw_retention_hours * _HOUR_MS, clear_segment,
                               holds="self-service privacy requests as the collector took them (subject in clear), "
                                     "for the rights worker", setting="topics.raw_retention_hours"))
        specs += [
            TopicSpec(self.consent, "consent", year, segment, compacted=True,
                      holds="consent choices and withdrawals, keyed by the subject (in clear)"),
            TopicSpec(self.privacy_requests, "privacy-requests", year, segment,
                      holds="people's requests (access, erasure, restriction...), keyed and valued by the "
                            "subject's keyed hash"),
            TopicSpec(self.dead_letter, "dead-letter", t.dead_letter_retention_hours * _HOUR_MS, clear_segment,
                      holds="where and why an event was refused (topic, offset, reason); never its payload",
                      setting="topics.dead_letter_retention_hours"),
            TopicSpec(self.erased_subjects, "erased-subjects", year, segment, compacted=True,
                      holds="keyed hashes of erased subjects, so replays never bring them back"),
        ]
        specs += [TopicSpec(self.minimised(e), "minimised", t.minimised_retention_days * _DAY_MS, segment,
                            holds="minimised events: truncated IP addresses, pseudonyms, scrubbed text",
                            setting="topics.minimised_retention_days")
                  for e in MINIMISED_EVENTS]
        for spec in specs:  # the policy's caps, enforced here as well as in the config
            clear = spec.role in ("raw", "dead-letter")
            cap = RAW_RETENTION_CAP_HOURS * _HOUR_MS if clear else RETENTION_CAP_DAYS * _DAY_MS
            assert spec.max_age_ms <= cap, spec
        return specs


def provision(config: Config) -> list[str]:
    """Creates the topics that do not exist yet, with their retention; returns the names created.

    Existing topics get their settings (`topic_configs`) re-applied, so a lowered retention takes effect
    and a topic created by an older datamin, or changed by hand, is brought back within its cap."""
    from datamin.kafka import require_reachable, translate_kafka_errors
    from datamin.kafka.client import (
        ConfigResource,
        ConfigResourceType,
        KafkaError,
        NewTopic,
        TopicAlreadyExistsError,
    )
    from datamin.kafka.transport import new_admin

    specs = Topics(config).all()
    require_reachable("provisioning topics", config)
    with translate_kafka_errors("provisioning topics", config):
        admin = new_admin(config)
        try:
            existing = set(admin.list_topics())
            created: list[str] = []
            new = [NewTopic(s.name, config.topics.partitions, config.topics.replication_factor,
                            topic_configs=topic_configs(s)) for s in specs if s.name not in existing]
            if new:
                try:
                    admin.create_topics(new)
                    created = [n.name for n in new]
                except TopicAlreadyExistsError:  # another instance raced us; fine
                    pass
            stale = [s for s in specs if s.name in existing]
            if stale:
                try:
                    results = admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, s.name,
                                                                  configs=topic_configs(s)) for s in stale])
                    for name, result in (results or {}).get("topic", {}).items():
                        if result != "OK":  # pragma: no cover - depends on broker ACLs
                            log.warning("could not correct the retention settings of %s (%s); its records may "
                                        "outlive the cap: check the broker's ACLs", name, result)
                except KafkaError as exc:  # pragma: no cover - depends on broker ACLs
                    log.warning("could not re-apply topic retention (%s); check the broker's ACLs", exc)
            return created
        finally:
            admin.close()


def topic_configs(spec: TopicSpec) -> dict[str, str]:
    """The topic-level settings datamin sets (when it creates a topic, and again on every `datamin topics`)."""
    return {
        "retention.ms": str(spec.retention_ms),
        "segment.ms": str(spec.segment_ms),
        "segment.jitter.ms": "0",
        "message.timestamp.type": "LogAppendTime",
        "cleanup.policy": "compact,delete" if spec.compacted else "delete",
    }
