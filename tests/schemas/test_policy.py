"""The record of processing generated from the annotations and the configuration."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from datamin.config import Config
from schemas import default_registry, policy_report

REGISTRY = default_registry()


def field(doc: dict[str, Any], event: str, name: str) -> dict[str, Any]:
    ev = next(e for e in doc["events"] if e["event"] == event)
    found: dict[str, Any] = next(f for f in ev["fields"] if f["field"] == name)
    return found


@pytest.fixture
def config(make_config: Callable[..., Config]) -> Config:
    return make_config()


def test_json_covers_every_raw_field_of_every_event(config: Config) -> None:
    doc = json.loads(policy_report(REGISTRY, config, fmt="json"))
    assert doc["format"] == "datamin.record-of-processing/1"
    assert [e["event"] for e in doc["events"]] == REGISTRY.event_types("raw")
    for event in doc["events"]:
        schema = REGISTRY.latest(event["event"])
        assert event["raw_schema"] == schema.key
        assert [f["field"] for f in event["fields"]] == list(schema.field_names)


def test_json_header(make_config: Callable[..., Config]) -> None:
    config = make_config(**{"MINIMISE__HONOUR_DNT": "true", "MINIMISE__HONOUR_GPC": "false"})
    doc = json.loads(policy_report(REGISTRY, config, fmt="json"))
    assert doc["retention_cap_days"] == 365
    assert doc["signals"]["do_not_track"]["honoured"] is True
    assert doc["signals"]["global_privacy_control"]["honoured"] is False
    assert doc["unknown_fields"].startswith("dropped")
    assert doc["purposes"]["security"] == {
        "policy": "To protect our services: security, fraud monitoring and prevention.",
        "legal_basis": "legitimate_interest", "consent": None}


def test_ip_prefixes_and_stores_come_from_the_config(make_config: Callable[..., Config]) -> None:
    config = make_config(**{"MINIMISE__IPV4_PREFIX": "24", "MINIMISE__IPV6_PREFIX": "48",
                            "TOPICS__RAW_RETENTION_HOURS": "6", "TOPICS__MINIMISED_RETENTION_DAYS": "3",
                            "TOPICS__PREFIX": "\"acme\"", "WAREHOUSE__RETENTION_DAYS__HTTP_REQUEST": "30"})
    doc = json.loads(policy_report(REGISTRY, config, fmt="json"))
    ip = field(doc, "http_request", "client_ip")
    assert ip["category"] == "network_address"
    assert ip["rule"] == "truncate"
    assert "IPv4 to /24, IPv6 to /48" in ip["minimisation"]
    assert ip["becomes"] == ["client_network"]
    assert ip["legal_basis"] == ["legitimate_interest"]
    assert [p["name"] for p in ip["purposes"]] == ["security", "usage_patterns"]
    assert ip["purposes"][0]["policy"].startswith("To protect our services")
    assert [(s["store"], s["name"], s["retention"], s["unit"]) for s in ip["kept"]] == [
        ("raw_topic", "acme.raw.http_request", 6, "hours"),
        ("minimised_topic", "acme.minimised.http_request", 3, "days"),
        ("warehouse_table", "http_request", 30, "days"),
    ]


def test_a_dropped_field_is_kept_only_in_the_raw_topic(config: Config) -> None:
    doc = json.loads(policy_report(REGISTRY, config, fmt="json"))
    hints = field(doc, "http_request", "client_hints")
    assert hints["becomes"] == []
    assert hints["minimisation"] == "dropped"
    assert [s["store"] for s in hints["kept"]] == ["raw_topic"]


def test_pseudonyms_name_the_consent_they_need(make_config: Callable[..., Config]) -> None:
    config = make_config(**{"MINIMISE__CONSENT_VALIDITY_DAYS": "180"})
    doc = json.loads(policy_report(REGISTRY, config, fmt="json"))
    subject = field(doc, "http_request", "subject_key")
    assert "only with consent to statistics" in subject["minimisation"]
    assert "only with consent to marketing" in subject["minimisation"]
    assert "180 days" in subject["minimisation"]
    assert subject["becomes"] == ["subject"]
    requester = field(doc, "privacy_request", "subject_key")
    assert "on the basis of legal obligation" in requester["minimisation"]
    assert "consent choice" not in requester["minimisation"]


def test_query_allow_list_and_consent_topic(make_config: Callable[..., Config]) -> None:
    config = make_config(**{"MINIMISE__QUERY_ALLOWLIST": '["utm_*", "lang"]'})
    doc = json.loads(policy_report(REGISTRY, config, fmt="json"))
    assert field(doc, "http_request", "url")["minimisation"].endswith("query parameters kept: utm_*, lang")
    consent = next(e for e in doc["events"] if e["event"] == "consent_record")
    assert consent["stores"][0]["retention"] == 364 and consent["stores"][0]["max_age"] == 365
    assert consent["stores"][0]["compacted"] is True


def test_markdown_has_the_header_and_a_table_row_per_field(config: Config) -> None:
    text = policy_report(REGISTRY, config)
    assert text.startswith("# Record of processing\n")
    assert "nothing is kept longer than 365 days" in text
    assert "**Do Not Track:** not honoured" in text
    assert "**Global Privacy Control:** honoured" in text
    assert "**Unknown fields:** dropped" in text
    assert "| `client_ip` | network_address | security, usage_patterns | legitimate interest | IP address truncated " \
           "to a network prefix: IPv4 to /16, IPv6 to /32 | `client_network` | raw topic 24 hours; minimised " \
           "topic 7 days; warehouse table 90 days |" in text
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) == sum(len(REGISTRY.latest(n).field_names) for n in REGISTRY.event_types("raw"))
    assert all(row.count(" | ") == 6 for row in rows)


def test_unknown_format(config: Config) -> None:
    with pytest.raises(ValueError, match="format 'pdf' is not one of markdown, json"):
        policy_report(REGISTRY, config, fmt="pdf")
