"""Properties of the Minimiser over any raw http_request, usage_event and device_report: no full IP
address, no clear identifier, no e-mail address and no phone number survives; identifiers survive, as
pseudonyms, exactly where the consent covers one of their purposes (schemas/purposes.json)."""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from datamin.config import MinimiseConfig
from processors.consent_state import ConsentState
from processors.minimise import Minimiser
from processors.transforms import KeyStore
from schemas import default_registry
from schemas.registry import EventSchema

REGISTRY = default_registry()
EVENTS = ("http_request", "usage_event", "device_report")
SURVIVES_RESTRICTION = {"legal_obligation", "vital_interests"}
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

# -- hostile values -------------------------------------------------------------------------------
hexes = st.text("0123456789abcdef", min_size=8, max_size=32)
ipv4 = st.tuples(*[st.integers(1, 254)] * 4).map(lambda t: ".".join(map(str, t)))
ipv6 = st.integers(1, 2**128 - 1).filter(lambda n: n & (2**96 - 1)).map(lambda n: str(ipaddress.IPv6Address(n)))
emails = st.builds(lambda u, d: f"{u}@{d}.no", st.from_regex(r"[a-z][a-z0-9._+]{2,15}", fullmatch=True),
                   st.from_regex(r"[a-z]{3,10}", fullmatch=True))
def _valid_phone(text: str) -> bool:
    """what libphonenumber calls a valid number (international, or Norwegian): scrubbing validates, so
    a run of digits no country uses is not a phone number and is kept"""
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(text, "NO"))
    except phonenumbers.NumberParseException:
        return False


phones = st.one_of(
    st.from_regex(r"\+47 ?[49]\d{2} ?\d{2} ?\d{3}", fullmatch=True),
    st.from_regex(r"\+1 \([2-9]\d{2}\) [2-9]\d{2}-\d{4}", fullmatch=True),
    st.from_regex(r"\+46 ?7[02369]\d-\d{3} \d{2} \d{2}", fullmatch=True),
    st.from_regex(r"[2-79]\d \d{2} \d{2} \d{2}", fullmatch=True),
).filter(_valid_phone)
identifiers = st.one_of(
    st.uuids().map(str),
    st.builds(lambda h: f"user-{h}", hexes),
    st.builds(lambda h: f"GA1.2.{h}", st.integers(10**8, 10**10).map(str)),
    emails,                                   # a login name that is an e-mail address
    ipv4.map(lambda ip: f"dev-{ip}"),
)
words = st.sampled_from(["how", "to", "reset", "printer", "Error", "failed", "at", "line", "null", "the", "søk",
                         "café", "crash", "in", "module", "→", "contact"])
secrets_in_text = st.one_of(emails, phones, ipv4, ipv6,
                            st.builds(lambda u: f"/home/{u}/app/crash.log",
                                      st.from_regex(r"[a-z]{3,8}", fullmatch=True)))
free_text = st.lists(st.one_of(words, secrets_in_text), min_size=0, max_size=12).map(" ".join)
urls = st.builds(lambda path, email, ident: f"/account/{path}?email={email}&id={ident}&utm_source=news",
                 st.from_regex(r"[a-z]{1,10}", fullmatch=True), emails, identifiers)
user_agents = st.sampled_from([
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
    "curl/8.4.0", "",
]) | st.text(max_size=200)

_BY_FIELD: dict[str, st.SearchStrategy[Any]] = {
    "url": urls, "page": urls, "file": urls,
    "referrer": st.builds(lambda u: "https://mail.example.com" + u, urls),
    "user_agent": user_agents, "browser": user_agents,
    "method": st.sampled_from(["GET", "POST"]), "host": st.sampled_from(["example.no", "www.example.no"]),
    "accept_language": st.sampled_from(["nb-NO,nb;q=0.9,en;q=0.8", "en-US", "*"]),
    "cdn_country": st.sampled_from(["NO", "SE", "XX"]), "country": st.sampled_from(["NO", "de"]),
    "language": st.sampled_from(["nb-NO", "en"]),
    "os_version": st.sampled_from(["17.1.2", "14", "unknown"]),
}


def _strategy(field: dict[str, Any], category: str) -> st.SearchStrategy[Any]:
    avro = field["type"]
    nullable = isinstance(avro, list) and "null" in avro
    branch = next((t for t in avro if t != "null"), "null") if isinstance(avro, list) else avro
    name = field["name"]
    if name in ("event_id",):
        inner: st.SearchStrategy[Any] = st.uuids().map(str)
    elif name == "time":
        inner = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31),
                             timezones=st.just(UTC))
    elif category == "identifier":
        inner = identifiers
    elif category == "network_address":
        inner = st.one_of(ipv4, ipv6, ipv4.map(lambda ip: f"{ip}:443"), st.just("unknown"))
    elif category == "free_text":
        inner = free_text
    elif name in _BY_FIELD:
        inner = _BY_FIELD[name]
    elif isinstance(branch, dict) and branch.get("type") == "enum":
        inner = st.sampled_from(branch["symbols"])
    elif isinstance(branch, dict) and branch.get("type") == "map":
        inner = st.dictionaries(st.sampled_from(["Sec-CH-UA", "serial", "imei"]), st.one_of(identifiers, ipv4),
                                max_size=3)
    elif branch == "boolean":
        inner = st.booleans()
    elif branch in ("int", "long"):
        inner = st.integers(0, 10**6)
    elif branch == "double":
        inner = st.floats(-90, 90)
    else:  # kept technical strings (versions, models, operators): realistic values
        inner = st.from_regex(r"[A-Za-z][A-Za-z0-9 ._]{0,15}", fullmatch=True)
    return st.one_of(st.none(), inner) if nullable else inner


def raw_events(name: str) -> st.SearchStrategy[tuple[EventSchema, dict[str, Any]]]:
    schema = REGISTRY.latest(name, "raw")
    categories = {p.field: p.category for p in schema.policies}
    fields = {f["name"]: _strategy(f, categories[f["name"]]) for f in schema.definition["fields"]}
    return st.fixed_dictionaries(fields).map(lambda record: (schema, record))


any_raw_event = st.one_of(*(raw_events(n) for n in EVENTS))
consent_states = st.builds(ConsentState, granted=st.frozensets(st.sampled_from(
    ["necessary", "statistics", "marketing", "feedback"])), restricted=st.booleans(), erased=st.booleans())


@pytest.fixture(scope="module")
def minimiser(tmp_path_factory: pytest.TempPathFactory) -> Minimiser:
    keys = KeyStore(Path(tmp_path_factory.mktemp("keys")), "monthly", lambda: NOW)
    return Minimiser(REGISTRY, MinimiseConfig(), keys)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    return []


def _identifier_values(schema: EventSchema, record: dict[str, Any]) -> list[str]:
    return [record[p.field] for p in schema.policies if p.category == "identifier" and record.get(p.field)]


_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_V4 = re.compile(r"(?<![\d.])\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?![\d])")
_V6 = re.compile(r"[0-9A-Fa-f:]*:[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*")


def _full_ips(text: str) -> list[str]:
    """IP addresses in ``text`` that are not network prefixes (host bits beyond /16 or /32 set)."""
    found = []
    for candidate in _V4.findall(text):
        try:
            if int(ipaddress.IPv4Address(candidate)) & 0xFFFF and not ipaddress.IPv4Address(candidate).is_loopback:
                found.append(candidate)
        except ValueError:
            pass
    for candidate in _V6.findall(text):
        try:
            address = ipaddress.IPv6Address(candidate.strip(":") if "::" not in candidate else candidate)
            if int(address) & (2**96 - 1) and not address.is_loopback:  # loopback names no one: kept
                found.append(candidate)
        except ValueError:
            pass
    return found


@SETTINGS
@given(event=any_raw_event, consent=consent_states)
def test_no_full_ip_identifier_email_or_phone_survives(minimiser: Minimiser, event: tuple[EventSchema, dict[str, Any]],
                                                       consent: ConsentState) -> None:
    schema, record = event
    out = minimiser.minimise(schema, record, consent).record
    texts = [s for v in out.values() for s in _strings(v)]
    joined = "\n".join(texts)
    for ident in _identifier_values(schema, record):
        assert ident not in joined, f"a clear identifier of {schema.name} survived"
    assert not _EMAIL.findall(joined), "an e-mail address survived"
    assert not _full_ips(joined), "a full IP address survived"
    digits_out = ["".join(ch for ch in t if ch.isdigit()) for t in texts]
    for text_field in ("search_terms", "message", "crash_dump"):
        raw_text = record.get(text_field) or ""
        for phone in re.findall(r"\+?[\d()][\d ()\-]{7,}\d", raw_text):
            digits = "".join(ch for ch in phone if ch.isdigit())
            if len(digits) >= 8:
                assert phone not in joined and not any(digits in d for d in digits_out), "a phone number survived"


def _allowed(schema: EventSchema, field: str, consent: ConsentState) -> bool:
    policy = next(p for p in schema.policies if p.field == field)
    if consent.erased:
        return False
    for name in policy.purposes:
        purpose = REGISTRY.purposes[name]
        if consent.restricted and purpose.basis not in SURVIVES_RESTRICTION:
            continue
        if purpose.consent is None or purpose.consent in consent.granted:
            return True
    return False


@SETTINGS
@given(event=any_raw_event, consent=consent_states)
def test_identifiers_survive_as_pseudonyms_only_where_consent_covers_a_purpose(
        minimiser: Minimiser, event: tuple[EventSchema, dict[str, Any]], consent: ConsentState) -> None:
    schema, record = event
    out = minimiser.minimise(schema, record, consent).record
    for policy in schema.policies:
        if policy.rule != "pseudonymise":
            continue
        value, kept = record.get(policy.field), out.get(policy.into[0])
        if value and _allowed(schema, policy.field, consent):
            assert kept is not None and kept.startswith("p1_") and value not in kept
        else:
            assert kept is None, f"{schema.name}.{policy.field} kept without a purpose that allows it"


@SETTINGS
@given(event=any_raw_event)
def test_pseudonyms_are_stable_within_a_period(minimiser: Minimiser, event: tuple[EventSchema, dict[str, Any]]) -> None:
    schema, record = event
    everything = ConsentState(granted=frozenset({"statistics", "marketing", "feedback"}))
    first = minimiser.minimise(schema, record, everything).record
    assert first == minimiser.minimise(schema, record, everything).record


@SETTINGS
@given(event=any_raw_event, consent=consent_states)
def test_explaining_changes_nothing_but_the_notes(minimiser: Minimiser, event: tuple[EventSchema, dict[str, Any]],
                                                  consent: ConsentState) -> None:
    """--explain runs each field's step; the stream runs the hot path: both give the same event, and the
    same counters."""
    schema, record = event
    before = minimiser.counters.copy()
    fast = minimiser.minimise(schema, record, consent)
    fast_counts = minimiser.counters - before
    explained = minimiser.minimise(schema, record, consent, explain=True)
    assert explained.record == fast.record
    assert minimiser.counters - before - fast_counts == fast_counts
    assert {field for field, _rule, _note in explained.explain} >= set(record) & {p.field for p in schema.policies}
    assert fast.explain == []
