"""The record of processing is complete and true: every store of the inventory with its cap, the
controller and contact, recipients, security measures, the policy version, where datamin is stricter
than the policy, and where subject keys are in clear."""

from __future__ import annotations

import json
from collections.abc import Callable

from datamin.config import Config
from schemas import default_registry
from schemas.policy import policy_report
from warehouse.retention import full_inventory

REGISTRY = default_registry()


def test_the_record_names_controller_version_recipients_and_every_store(make_config: Callable[..., Config]) -> None:
    config = make_config()
    doc = json.loads(policy_report(REGISTRY, config, fmt="json", stores=full_inventory(config)))
    assert doc["controller"] == {"name": "TECHPROS AS", "address": "Lille Grensen 3, 0159 Oslo, Norge",
                                 "contact": "post@techpros.no"}
    assert doc["policy_version"] == "2023-12-01"
    assert doc["recipients"] == ["Data analysis services"]
    stores = {s["store"]: s for s in doc["inventory"]}
    assert set(stores) == {s.name for s in full_inventory(config)}
    for name in ("producer spool", "quarantine", "rights trail", "audit trail", "pseudonymisation keys",
                 "topic datamin.dead-letter", "table http_request", "shipper state"):
        assert name in stores
    # every store is capped within the year, but a secret holding no personal data, which says why
    assert all(0 < s["cap_days"] <= 365 for s in doc["inventory"] if s["kind"] != "secret")
    secrets = [s for s in doc["inventory"] if s["kind"] == "secret"]
    assert {s["store"] for s in secrets} == {"rights secret", "identity secret"}
    assert all(s["cap_days"] is None and "no personal data" in s["not_aged_because"] for s in secrets)
    assert stores["producer spool"]["cap_days"] <= 7
    # the default PLAINTEXT connection is said to be unencrypted, not claimed secure
    assert "NOT encrypted" in doc["security_measures"][0] and "SASL_SSL" in doc["security_measures"][0]
    tls = make_config(**{"KAFKA__SECURITY_PROTOCOL": '"SASL_SSL"', "KAFKA__SASL_MECHANISM": '"SCRAM-SHA-512"',
                         "KAFKA__SASL_USERNAME": '"datamin"', "KAFKA__SASL_PASSWORD": '"pw"'})
    first = json.loads(policy_report(REGISTRY, tls, fmt="json"))["security_measures"][0]
    assert first == "Kafka connections use TLS and authenticate with SASL SCRAM-SHA-512"


def test_the_record_states_where_datamin_is_stricter_and_where_keys_are_in_clear(
        make_config: Callable[..., Config]) -> None:
    config = make_config(**{"POLICY__CONTROLLER": '"Acme AS"', "POLICY__CONTACT": '"dpo@acme.no"'})
    doc = json.loads(policy_report(REGISTRY, config, fmt="json", stores=full_inventory(config)))
    assert doc["controller"]["name"] == "Acme AS" and doc["controller"]["contact"] == "dpo@acme.no"
    stricter = {x["practice"]: x for x in doc["stricter_than_policy"]}
    gpc = next(x for p, x in stricter.items() if "Global Privacy Control" in p)
    assert gpc["setting"].startswith("minimise.honour_gpc")
    marketing = next(x for p, x in stricter.items() if p.startswith("marketing"))
    assert "legitimate interest" in marketing["policy_says"]
    clear = " ".join(doc["subject_key_in_clear"])
    assert "consent topic datamin.consent" in clear and "365 days" in clear
    assert "datamin.raw.privacy_request" in clear and "privacy-requests topic holds only keyed hashes" in clear
    text = policy_report(REGISTRY, config, stores=full_inventory(config))
    assert "never kept in clear" not in text
    assert "**Controller:** Acme AS" in text and "## Every store and its cap" in text
    assert "## Where datamin is stricter than the policy's words" in text

    loose = make_config(**{"MINIMISE__HONOUR_GPC": "false"})
    doc = json.loads(policy_report(REGISTRY, loose, fmt="json"))
    assert not any("Global Privacy Control" in x["practice"] for x in doc["stricter_than_policy"])
