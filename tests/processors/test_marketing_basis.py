"""minimise.marketing_basis through the shared step (processors.pipeline.process_event): "consent" (the
default) keeps a pseudonym for marketing effectiveness only with consent to marketing; "legitimate_interest"
(the policy's words) keeps it unless the person objected."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from datamin.config import Config
from datamin.exceptions import ConfigError
from processors.minimise import Minimiser
from processors.pipeline import new_ledger, process_event
from processors.transforms import KeyStore
from schemas import default_registry, from_json
from schemas.policy import policy_document

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
REGISTRY = default_registry()


def _at(minutes: int) -> str:
    return (NOW + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


def http(subject: str, minutes: int, **more: Any) -> dict[str, Any]:
    return {"event": "http_request", "time": _at(minutes), "subject_key": subject, "client_ip": "203.0.113.9",
            "url": "/a", "user_id": subject, **more}


def consent(subject: str, minutes: int, **cats: bool) -> dict[str, Any]:
    return {"event": "consent_record", "time": _at(minutes), "subject_key": subject, "necessary": True, **cats}


def request(subject: str, minutes: int, kind: str) -> dict[str, Any]:
    return {"event": "privacy_request", "request_id": f"r-{subject}-{kind}", "kind": kind,
            "received": _at(minutes), "subject_key": subject}


def run(config: Config, tmp_path: Path, lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each line through process_event, as the processor and `datamin minimise` do; the minimised records."""
    keys = KeyStore(tmp_path / "k", config.pseudonymise.rotation, lambda: NOW)
    minimiser, ledger = Minimiser(REGISTRY, config.minimise, keys), new_ledger(config)
    out = []
    for line in lines:
        schema, record = from_json(line, REGISTRY, kind="raw")
        out.append(process_event(minimiser, ledger, schema, record).record)
    return out


def kept(record: dict[str, Any]) -> bool:
    return record["subject"] is not None and record["user_id"] is not None


LINES = [
    http("u-none", 1),                                          # no choice at all
    consent("u-mkt", 0, marketing=True), http("u-mkt", 1),      # consented to marketing
    consent("u-no", 0, statistics=False, marketing=False), http("u-no", 1),  # declined marketing
    http("u-gpc", 1, global_privacy_control=True),              # Global Privacy Control
    consent("u-wd", 0, marketing=True), request("u-wd", 1, "withdrawal"), http("u-wd", 2),
    request("u-obj", 0, "objection"), http("u-obj", 1),
]


def _events(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in zip(["none", "mkt_c", "mkt", "no_c", "no", "gpc", "wd_c", "wd_r", "wd", "obj_r",
                                        "obj"], records, strict=True)}


def test_consent_basis_keeps_a_pseudonym_only_with_consent_to_marketing(make_config: Callable[..., Config],
                                                                          tmp_path: Path) -> None:
    e = _events(run(make_config(), tmp_path, LINES))
    assert kept(e["mkt"])
    assert not any(kept(e[k]) for k in ("none", "no", "gpc", "wd", "obj"))


def test_legitimate_interest_keeps_it_unless_the_person_objected(make_config: Callable[..., Config],
                                                                 tmp_path: Path) -> None:
    config = make_config(MINIMISE__MARKETING_BASIS='"legitimate_interest"')
    e = _events(run(config, tmp_path, LINES))
    assert kept(e["none"]) and kept(e["mkt"])  # no objection: the policy's legitimate interest
    for objected in ("no", "gpc", "wd", "obj"):  # declined, GPC, withdrew, objected: nothing kept
        assert not kept(e[objected]), objected
    assert e["none"]["client_network"] == "203.0.0.0"  # the rest of minimisation is unchanged


def test_gpc_not_honoured_is_no_objection_under_legitimate_interest(make_config: Callable[..., Config],
                                                                    tmp_path: Path) -> None:
    config = make_config(MINIMISE__MARKETING_BASIS='"legitimate_interest"', MINIMISE__HONOUR_GPC="false")
    (record,) = run(config, tmp_path, [http("u-gpc", 1, global_privacy_control=True)])
    assert kept(record)


def test_the_record_of_processing_states_the_basis_in_force(make_config: Callable[..., Config]) -> None:
    default = policy_document(REGISTRY, make_config())
    assert default["marketing_basis"]["in_force"] == "consent"
    assert default["purposes"]["marketing_effectiveness"]["legal_basis"] == "consent"
    assert any(s["setting"] and "minimise.marketing_basis" in s["setting"] for s in default["stricter_than_policy"])
    loose = policy_document(REGISTRY, make_config(MINIMISE__MARKETING_BASIS='"legitimate_interest"'))
    assert loose["marketing_basis"]["in_force"] == "legitimate_interest"
    assert loose["purposes"]["marketing_effectiveness"] == {
        "policy": default["purposes"]["marketing_effectiveness"]["policy"], "legal_basis": "legitimate_interest",
        "consent": None}
    assert not any(s["setting"] and "marketing_basis" in s["setting"] for s in loose["stricter_than_policy"])


def test_an_unknown_basis_stops_start_up(make_config: Callable[..., Config]) -> None:
    with pytest.raises(ConfigError) as err:
        make_config(MINIMISE__MARKETING_BASIS='"whatever"')
    assert err.value.key == "minimise.marketing_basis"
