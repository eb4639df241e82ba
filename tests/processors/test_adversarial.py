"""An adversarial, property-based suite (issue #16): each kind of personal value, in each encoding, planted
in each field that comes from the internet, under each consent situation, through exactly the code the
stream processor runs (processors.pipeline.process_event, then the Avro encoder). Nothing planted may be
readable in the minimised event, even after decoding the output the way the detectors decode input.

Generators here are independent of the detectors: values are built from their definitions (Luhn and
mod-11 check digits computed by python-stdnum, phone numbers libphonenumber calls valid) and encoded the
way an attacker or a sloppy client would.
"""

from __future__ import annotations

import os
import random
import re
import string
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stdnum import luhn
from stdnum.no import fodselsnummer

from datamin.config import Config
from processors.detect import decode
from processors.minimise import Minimiser
from processors.pipeline import new_ledger, process_event
from processors.transforms import KeyStore
from schemas import default_registry, encode

REGISTRY = default_registry()
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
EXAMPLES = int(os.environ.get("ADVERSARIAL_EXAMPLES", "400"))
"""examples per run; set ADVERSARIAL_EXAMPLES=20000 for a long hunt"""
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- personal values, each with the forms in which it must not survive ------------------------------
letters = st.text(string.ascii_lowercase, min_size=8, max_size=10)


@st.composite
def emails(draw: st.DrawFn) -> tuple[str, list[str]]:
    local, domain = draw(letters), draw(letters)
    value = f"{local}.{draw(letters)}@{domain}.no"
    return value, [value, local]


@st.composite
def phones(draw: st.DrawFn) -> tuple[str, list[str]]:
    rng = random.Random(draw(st.integers(0, 2**32)))
    while True:
        national = "9" + "".join(rng.choice(string.digits) for _ in range(7))
        if phonenumbers.is_valid_number(phonenumbers.parse(national, "NO")):
            break
    form = draw(st.sampled_from(["{n}", "+47 {a} {b} {c}", "{a} {b} {c}", "+47{n}", "0047 {n}", "{a}.{b}.{c}",
                                 "+47-{a}-{b}-{c}"]))
    value = form.format(n=national, a=national[:3], b=national[3:5], c=national[5:])
    return value, [national]


@st.composite
def cards(draw: st.DrawFn) -> tuple[str, list[str]]:
    body = "4" + "".join(draw(st.sampled_from(string.digits)) for _ in range(14))
    number = body + luhn.calc_check_digit(body)
    sep = draw(st.sampled_from(["", " ", "-"]))
    return sep.join(number[i:i + 4] for i in range(0, 16, 4)), [number]


@st.composite
def national_ids(draw: st.DrawFn) -> tuple[str, list[str]]:
    day = draw(st.dates(min_value=datetime(1940, 1, 1).date(), max_value=datetime(2005, 12, 31).date()))
    d_number = draw(st.booleans())
    dd = day.day + (40 if d_number else 0)
    for individual in range(draw(st.integers(0, 499)), 1000):
        base = f"{dd:02d}{day.month:02d}{day.year % 100:02d}{individual:03d}"
        first = fodselsnummer.calc_check_digit1(base)
        number = base + first + fodselsnummer.calc_check_digit2(base + first)
        if len(number) == 11 and fodselsnummer.is_valid(number):  # a check digit of 10 makes no number
            return number, [number]
    raise AssertionError("no valid number")  # pragma: no cover


@st.composite
def ips(draw: st.DrawFn) -> tuple[str, list[str]]:
    if draw(st.booleans()):
        octets = [draw(st.integers(1, 223).filter(lambda o: o != 127))] + [draw(st.integers(0, 255)) for _ in range(2)]
        octets.append(draw(st.integers(1, 254)))
        value = ".".join(map(str, octets))
        return value, [value]
    groups = [f"{draw(st.integers(0x2001, 0x2fff)):x}"] + [f"{draw(st.integers(1, 0xffff)):x}" for _ in range(7)]
    return ":".join(groups), [":".join(groups)]


@st.composite
def macs(draw: st.DrawFn) -> tuple[str, list[str]]:
    octets = [f"{draw(st.integers(0, 255)):02x}" for _ in range(6)]
    octets[0] = "0" + octets[0][1]  # a letter and a digit somewhere: '0x' then random
    octets[1] = "a" + octets[1][1]
    hexes = "".join(octets)
    form = draw(st.sampled_from([":", "-", "cisco", "bare"]))
    if form == "cisco":
        value = ".".join(hexes[i:i + 4] for i in range(0, 12, 4))
    elif form == "bare":
        value = hexes.upper()
    else:
        value = form.join(octets)
    return value, [hexes]


@st.composite
def home_paths(draw: st.DrawFn) -> tuple[str, list[str]]:
    user = draw(letters)
    form = draw(st.sampled_from(["/home/{u}/app.log", "/Users/{u}/Library/x", "C:\\Users\\{u}\\AppData",
                                 "/var/mail/{u}", "\\\\nas\\home$\\{u}\\docs", "/~{u}/index.html"]))
    return form.format(u=user), [user]


@st.composite
def secrets(draw: st.DrawFn) -> tuple[str, list[str]]:
    secret = draw(st.text(string.ascii_letters + string.digits, min_size=12, max_size=16))
    key = draw(st.sampled_from(["passord", "password", "pwd", "secret", "token"]))
    return f"{key}={secret}", [secret]


values = st.one_of(emails(), phones(), cards(), national_ids(), ips(), macs(), home_paths(), secrets())


# -- encodings --------------------------------------------------------------------------------------
def _full_width(text: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


def _invisible(text: str, seed: int) -> str:
    rng = random.Random(seed)
    marks = ["\u200b", "\u00ad", "\u2060", "\ufeff", "\u200e", "\U000e0020", "\u180e"]
    return "".join(c + (rng.choice(marks) if rng.random() < 0.5 else "") for c in text)


ENCODINGS = {
    "plain": lambda v, s: v,
    "percent": lambda v, s: quote(v, safe=""),
    "percent twice": lambda v, s: quote(quote(v, safe=""), safe=""),
    "html entities": lambda v, s: "".join(f"&#{ord(c)};" if c in "@.:/\\" or c.isdigit() else c for c in v),
    "json escapes": lambda v, s: "".join(f"\\u{ord(c):04x}" if not c.isalpha() else c for c in v),
    "full width": lambda v, s: _full_width(v),
    "invisible": _invisible,
}

# -- fields the internet fills ----------------------------------------------------------------------
TEXT_FIELDS = [("usage_event", "search_terms"), ("device_report", "message"), ("device_report", "crash_dump")]
URL_FIELDS = [("http_request", "url"), ("usage_event", "page"), ("usage_event", "file"), ("http_request", "referrer")]
KEPT_FIELDS = [(name, p.field) for name in ("http_request", "usage_event", "device_report", "consent_record")
               for p in REGISTRY.latest(name, "raw").policies if p.shape is not None]
FIELDS = TEXT_FIELDS + URL_FIELDS + KEPT_FIELDS + [("device_report", "os_version")]


def _embed(name: str, field: str, encoded: str, where: int) -> str:
    if (name, field) in URL_FIELDS:
        return [f"https://www.example.no/x/{encoded}/y", f"/a/{encoded}", f"/p?utm_source={encoded}",
                f"/p?utm_term=x+{encoded}+y"][where % 4]
    if (name, field) in TEXT_FIELDS:
        return ["{}", "error for {} at line 3", "«{}»", "{}\n", "x={};"][where % 5].format(encoded)
    return [encoded, f"Pixel {encoded}", f"{encoded} (1)"][where % 3]


def _record(name: str, field: str, value: str) -> dict[str, Any]:
    schema = REGISTRY.latest(name, "raw")
    record: dict[str, Any] = {f["name"]: None for f in schema.definition["fields"]}
    record["event_id"] = "5b7c9d2e-4f61-4a83-9b0c-1d2e3f405162"
    record["time"] = NOW
    record["subject_key"] = "subject-1"
    if name == "consent_record":
        record.update(necessary=True, statistics=True)
    record[field] = value
    return record


@pytest.fixture(scope="module")
def minimiser(tmp_path_factory: pytest.TempPathFactory) -> Minimiser:
    keys = KeyStore(Path(tmp_path_factory.mktemp("keys")), "monthly", lambda: NOW)
    return Minimiser(REGISTRY, Config().minimise, keys)


def _ledger(situation: str) -> Any:
    """None: consent unknown here; otherwise a ledger where the subject consented to some or all."""
    if situation == "unknown":
        return None
    ledger = new_ledger(Config())
    granted = {"all": (True, True, True), "statistics": (True, False, False), "none": (False, False, False)}
    statistics, marketing, feedback = granted[situation]
    ledger.apply_consent("subject-1", {"time": NOW - timedelta(days=3), "necessary": True, "statistics": statistics,
                                       "marketing": marketing, "feedback": feedback})
    return ledger


def _readable(out: dict[str, Any]) -> list[str]:
    """Every string of the minimised record, decoded like the detectors decode, in a few forms."""
    texts = []
    for key, value in out.items():
        if isinstance(value, str) and key != "event_id":
            decoded = decode(value)
            texts += [decoded, decoded.lower(), re.sub(r"[^0-9a-z]", "", decoded.lower())]
    return texts


@SETTINGS
@given(value=values, encoding=st.sampled_from(sorted(ENCODINGS)), target=st.sampled_from(FIELDS),
       where=st.integers(0, 19), seed=st.integers(0, 2**16),
       situation=st.sampled_from(["unknown", "none", "statistics", "all"]))
def test_no_planted_value_survives(minimiser: Minimiser, value: tuple[str, list[str]], encoding: str,
                                   target: tuple[str, str], where: int, seed: int, situation: str) -> None:
    planted, forms = value
    name, field = target
    raw = _record(name, field, _embed(name, field, ENCODINGS[encoding](planted, seed), where))
    schema = REGISTRY.latest(name, "raw")
    result = process_event(minimiser, _ledger(situation), schema, raw, "subject-1")
    encode(result.schema, result.record)  # the processor's next step: the output is a valid event
    for text in _readable(result.record):
        for form in forms:
            assert form.lower() not in text, f"{planted!r} ({encoding}) in {name}.{field} survived as {text!r}"


@pytest.mark.parametrize("value", ["01019012345", "010190", "19901231", "v0123"])
def test_os_version_keeps_no_birth_date(minimiser: Minimiser, value: str) -> None:
    raw = _record("device_report", "os_version", value)
    out = process_event(minimiser, None, REGISTRY.latest("device_report", "raw"), raw).record
    assert out["os_major"] is None


@pytest.mark.parametrize(("field", "value"), [
    ("hardware_model", "Pixel 8 Pro"), ("hardware_model", "SM-G991B"), ("network_operator", "Telenor"),
    ("network_operator", "Telia Norge"), ("app_version", "4.2.1"), ("screen", "1080x2400"), ("os_name", "Android")])
def test_values_of_the_declared_shape_are_kept(minimiser: Minimiser, field: str, value: str) -> None:
    raw = _record("device_report", field, value)
    out = process_event(minimiser, None, REGISTRY.latest("device_report", "raw"), raw).record
    assert out[field] == value


@pytest.mark.parametrize(("field", "value"), [
    ("hardware_model", "Kari's iPhone"), ("hardware_model", "Karis iPhone"), ("network_operator", "+47 912 34 567"),
    ("app_version", "ola@example.no"), ("screen", "Ola Nordmann"), ("app_version", "4.2.1-kari")])
def test_other_values_become_null_and_are_counted(minimiser: Minimiser, field: str, value: str) -> None:
    before = minimiser.counters[f"invalid.device_report.{field}"]
    raw = _record("device_report", field, value)
    result = process_event(minimiser, None, REGISTRY.latest("device_report", "raw"), raw, explain=True)
    assert result.record[field] is None
    assert minimiser.counters[f"invalid.device_report.{field}"] == before + 1
    assert any(f == field and "declared shape" in note for f, _rule, note in result.explain)


def test_placeholders_are_counted_per_rule(minimiser: Minimiser) -> None:
    before = minimiser.counters.copy()
    raw = _record("usage_event", "search_terms", "mail ola@example.no or kari@example.no, tlf 912 34 567")
    process_event(minimiser, None, REGISTRY.latest("usage_event", "raw"), raw)
    gained = minimiser.counters - before
    assert gained["placeholder.email"] == 2
    assert gained["placeholder.phone"] == 1


def test_placeholder_counts_reach_the_metrics_endpoint_text(minimiser: Minimiser) -> None:
    from processors.metrics import Metrics

    raw = _record("usage_event", "search_terms", "ring 912 34 567")
    process_event(minimiser, None, REGISTRY.latest("usage_event", "raw"), raw)
    text = Metrics(minimiser.counters).prometheus()
    assert 'datamin_processor_placeholders_total{rule="phone"}' in text
    assert 'outcome="placeholder"' not in text
