"""The Kafka topics datamin uses, their roles and retention, and provisioning them.

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

from datamin.config import RETENTION_CAP_DAYS, Config

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
    compacted: bool = False


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
        cap = RETENTION_CAP_DAYS * _DAY_MS
        specs = [TopicSpec(self.raw(e), "raw", t.raw_retention_hours * _HOUR_MS) for e in RAW_EVENTS]
        specs.append(TopicSpec(self.requests_in, "raw", t.raw_retention_hours * _HOUR_MS))
        specs += [
            TopicSpec(self.consent, "consent", cap, compacted=True),
            TopicSpec(self.privacy_requests, "privacy-requests", cap),
            TopicSpec(self.dead_letter, "dead-letter", t.dead_letter_retention_hours * _HOUR_MS),
            TopicSpec(self.erased_subjects, "erased-subjects", cap, compacted=True),
        ]
        specs += [TopicSpec(self.minimised(e), "minimised", t.minimised_retention_days * _DAY_MS)
                  for e in MINIMISED_EVENTS]
        for spec in specs:  # the policy's cap, enforced here as well as in the config
            assert spec.retention_ms <= cap, spec
        return specs


def provision(config: Config) -> list[str]:
    """Creates the topics that do not exist yet, with their retention; returns the names created.

    Existing topics get their retention settings re-applied, so a lowered retention takes effect."""
    from datamin.kafka import require_reachable, translate_kafka_errors
    from datamin.kafka.client import (
        ConfigResource,
        ConfigResourceType,
        KafkaError,
        NewTopic,
        TopicAlreadyExistsError,
        new_admin,
    )

    specs = Topics(config).all()
    require_reachable("provisioning topics", config)
    with translate_kafka_errors("provisioning topics", config):
        admin = new_admin(config)
        try:
            existing = set(admin.list_topics())
            created: list[str] = []
            new = [NewTopic(s.name, config.topics.partitions, config.topics.replication_factor,
                            topic_configs=_topic_configs(s)) for s in specs if s.name not in existing]
            if new:
                try:
                    admin.create_topics(new)
                    created = [n.name for n in new]
                except TopicAlreadyExistsError:  # another instance raced us; fine
                    pass
            stale = [s for s in specs if s.name in existing]
            if stale:
                try:
                    admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, s.name, configs=_topic_configs(s))
                                         for s in stale])
                except KafkaError as exc:  # pragma: no cover - depends on broker ACLs
                    log.warning("could not re-apply topic retention (%s); check the broker's ACLs", exc)
            return created
        finally:
            admin.close()


def _topic_configs(spec: TopicSpec) -> dict[str, str]:
    configs = {"retention.ms": str(spec.retention_ms)}
    configs["cleanup.policy"] = "compact,delete" if spec.compacted else "delete"
    return configs
