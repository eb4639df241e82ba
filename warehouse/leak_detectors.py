"""The leak detectors: what counts as personal data left behind, per column role. Pure: no files, no Kafka.

The leak scan (``warehouse.leak_scan``) runs them as DuckDB SQL over Parquet files and in Python
over decoded topic records (``Detector.finds``, ``scan_records``); both apply the same patterns and
the same checks, so a value is a finding in the warehouse exactly when it is one on a topic.

What is a finding, by column role (the roles come from the raw schemas' privacy annotations):

- a pseudonymised column (subject, user_id, client_id, session_id, advertising_id, app_instance_id)
  holding anything but a pseudonym (``p1_`` + 64 lower-case hex digits): ``clear_identifier``;
- a truncated column (client_network) holding an address with host bits set beyond the configured
  prefix (``ipv4_address``/``ipv6_address``), or something that is no IP address (``not_a_network``);
- any other text column containing: an IPv4 or IPv6 address with host bits set beyond the configured
  prefix (loopback and unspecified addresses are not findings), an e-mail address, a Luhn-valid card
  number (13-19 digits, first digit 2-6, spaces or dashes allowed), a MAC address, a UUID (except in
  event_id/request_id, where UUIDs are the norm), a deployment's own identifier format
  (``id_patterns``: ``deployment_id``), or a phone number. Phone numbers are recognised by their
  ``+CC`` prefix everywhere; in scrubbed free text (search_terms, message, crash_dump) any run of 8-15
  digits that does not start with a date counts, since the scrubber leaves none.

A finding names table, partition (event_date), column, file (for topics: ``<topic>~p<partition>``),
kind and the number of rows: never the value found, so that the report does not spread the leak.
"""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Final, Literal

import duckdb

from datamin.clock import as_utc
from processors.detect.numbers import number_kind
from processors.transforms.ip import validate_prefixes
from schemas import Registry, default_registry
from warehouse.arrow import time_column

IPV4: Final = "ipv4_address"
IPV6: Final = "ipv6_address"
NOT_A_NETWORK: Final = "not_a_network"
EMAIL: Final = "email"
PHONE: Final = "phone_number"
CARD: Final = "card_number"
MAC: Final = "mac_address"
UUID: Final = "uuid"
CLEAR_ID: Final = "clear_identifier"
DEPLOYMENT_ID: Final = "deployment_id"
UNDECODABLE: Final = "undecodable"
"""a message on a minimised topic that is no datamin event (its content cannot be checked)"""

# Every pattern below is both RE2 (DuckDB) and Python `re` (compiled with re.ASCII) syntax, and has no
# capturing group, so that regexp_extract_all and re.findall return the same candidates.
PSEUDONYM_PATTERN: Final = r"p1_[0-9a-f]{64}"
UUID_PATTERN: Final = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
_EMAIL: Final = r"[A-Za-z0-9._%+-]+(?:@|%40)[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
_MAC: Final = (r"(?:^|[^0-9A-Fa-f:])[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}(?:$|[^0-9A-Fa-f:])"
               r"|(?:^|[^0-9A-Fa-f-])[0-9A-Fa-f]{2}(?:-[0-9A-Fa-f]{2}){5}(?:$|[^0-9A-Fa-f-])"
               r"|(?:^|[^0-9A-Fa-f.])[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}(?:$|[^0-9A-Fa-f.])")
# candidates, checked in Python; each is a maximal run, so what surrounds an address is part of it
_IPV4_RUN: Final = r"[0-9.]*[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}[0-9.]*"
_IPV6_RUN: Final = r"[0-9A-Za-z_:.]*:[0-9A-Za-z_:.]*:[0-9A-Za-z_:.]*"
_CARD_RUN: Final = r"[0-9](?:[ -]?[0-9]){12,}"
_PHONE_RUN: Final = r"\+?(?:\([0-9]{1,4}\)[ -]?)?[0-9](?:[ -]?[0-9])*"
_INTL_PHONE_RUN: Final = r"\+[0-9](?:[ -]?(?:\([0-9]{1,4}\)|[0-9]))*"
_DATE_START: Final = re.compile(r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?![0-9])|[0-9]{1,2}-[0-9]{1,2}-[0-9]{2,4}(?![0-9])")
_ID_COLUMNS: Final = frozenset({"event_id", "request_id"})


@dataclass(frozen=True)
class Finding:
    """Rows of one file (or topic partition) where one column holds one kind of leak. Never the value."""

    table: str
    partition: str | None
    """the event_date (YYYY-MM-DD) of the rows, None when unknown"""
    column: str
    file: str
    """the data file's name; for a topic, ``<topic>~p<partition>``"""
    kind: str
    count: int
    """rows (or messages) holding at least one such value"""



Mode = Literal["search", "format", "extract", "whole"]


@dataclass(frozen=True)
class Detector:
    """One kind of leak in one way of looking at a column's text.

    ``search``: any match is a finding. ``format``: a non-empty value that does not match in full is
    one. ``extract``: every match is a candidate, a finding when ``check(candidate)``. ``whole``: the
    value itself is the candidate."""

    kind: str
    mode: Mode
    pattern: str = ""
    check: Callable[[str], bool] | None = None
    compiled: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "compiled", re.compile(self.pattern, re.ASCII))

    def finds(self, value: str) -> bool:
        """Whether ``value`` holds this kind of leak (the Python twin of the SQL in ``_TableScan``)."""
        if self.mode == "search":
            return self.compiled.search(value) is not None
        if self.mode == "format":
            return value != "" and self.compiled.fullmatch(value) is None
        assert self.check is not None
        candidates = [value] if self.mode == "whole" else self.compiled.findall(value)
        return any(self.check(c) for c in candidates)


@dataclass(frozen=True)
class ColumnRoles:
    """Which columns hold pseudonyms, truncated networks, scrubbed free text, random event ids."""

    pseudonym: frozenset[str]
    network: frozenset[str]
    free_text: frozenset[str]
    event_id: frozenset[str] = _ID_COLUMNS


def column_roles(registry: Registry | None = None) -> ColumnRoles:
    """The roles the raw schemas' annotations give the minimised columns (every version counts)."""
    registry = registry if registry is not None else default_registry()
    roles: dict[str, set[str]] = {"pseudonymise": set(), "truncate": set(), "scrub": set()}
    for name in registry.event_types("raw"):
        for schema in registry.versions(name, "raw"):
            for policy in schema.policies:
                if policy.rule in roles:
                    roles[policy.rule].update(policy.into)
    return ColumnRoles(frozenset(roles["pseudonymise"]), frozenset(roles["truncate"]), frozenset(roles["scrub"]))


class Detectors:
    """The detectors for each column, for given IP prefixes and deployment id formats.

    Raises ValueError for a prefix datamin does not accept or an id pattern that is not valid."""

    def __init__(self, *, ipv4_prefix: int = 16, ipv6_prefix: int = 32, id_patterns: Sequence[str] = (),
                 roles: ColumnRoles | None = None) -> None:
        validate_prefixes(ipv4_prefix, ipv6_prefix)
        self.roles = roles if roles is not None else column_roles()
        ipv4 = Detector(IPV4, "extract", _IPV4_RUN, partial(_ipv4_leak, v4=ipv4_prefix))
        ipv6 = Detector(IPV6, "extract", _IPV6_RUN, partial(_ipv6_leak, v4=ipv4_prefix, v6=ipv6_prefix))
        common = [ipv4, ipv6, Detector(EMAIL, "search", _EMAIL), Detector(CARD, "extract", _CARD_RUN, _card),
                  Detector(MAC, "search", _MAC)]
        custom = [Detector(DEPLOYMENT_ID, "search", _checked_pattern(i, p)) for i, p in enumerate(id_patterns)]
        uuid = Detector(UUID, "search", UUID_PATTERN)
        self._pseudonym = (Detector(CLEAR_ID, "format", PSEUDONYM_PATTERN), *custom)
        self._network = (Detector(IPV4, "whole", check=partial(_network_leak, IPV4, v4=ipv4_prefix, v6=ipv6_prefix)),
                         Detector(IPV6, "whole", check=partial(_network_leak, IPV6, v4=ipv4_prefix, v6=ipv6_prefix)),
                         Detector(NOT_A_NETWORK, "whole", check=_not_an_address))
        self._free_text = (*common, uuid, Detector(PHONE, "extract", _PHONE_RUN, _bare_phone), *custom)
        self._event_id = (*common, Detector(PHONE, "extract", _INTL_PHONE_RUN, _phone), *custom)
        self._other = (*self._event_id, uuid)
        self.uuid = re.compile(UUID_PATTERN, re.ASCII)

    def for_column(self, column: str) -> tuple[Detector, ...]:
        r = self.roles
        if column in r.pseudonym:
            return self._pseudonym
        if column in r.network:
            return self._network
        if column in r.free_text:
            return self._free_text
        if column in r.event_id:
            return self._event_id
        return self._other

    def scan(self, column: str, value: str) -> set[str]:
        """The kinds of leak in one value of ``column``."""
        if column in self.roles.event_id and self.uuid.fullmatch(value):
            return set()
        return {d.kind for d in self.for_column(column) if d.finds(value)}


def _checked_pattern(index: int, pattern: str) -> str:
    con = duckdb.connect()
    try:
        re.compile(pattern, re.ASCII)
        con.execute("SELECT regexp_matches('', ?)", [pattern]).fetchall()
    except (re.error, duckdb.Error):
        raise ValueError(f"id pattern #{index + 1} is not a valid regular expression in both Python and "
                         "RE2 syntax; use plain classes, groups (?:…) and repetitions, no look-arounds") from None
    finally:
        con.close()
    if re.compile(pattern).search(""):
        raise ValueError(f"id pattern #{index + 1} matches the empty string, so every value would be a finding")
    return pattern


def _host_bits(value: int, bits: int, prefix: int) -> bool:
    return value & ((1 << (bits - prefix)) - 1) != 0


def _v4_leak(address: ipaddress.IPv4Address, v4: int) -> bool:
    return not (address.is_loopback or address.is_unspecified) and _host_bits(int(address), 32, v4)


def _v6_leak(address: ipaddress.IPv6Address, v4: int, v6: int) -> bool:
    embedded = address.ipv4_mapped or address.sixtofour
    if embedded is not None:
        return _v4_leak(embedded, v4)
    return not (address.is_loopback or address.is_unspecified) and _host_bits(int(address), 128, v6)


def _ipv4_leak(candidate: str, *, v4: int) -> bool:
    parts = candidate.strip(".").split(".")
    if len(parts) != 4 or not all(p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in parts):
        return False
    return _v4_leak(ipaddress.IPv4Address(".".join(str(int(p)) for p in parts)), v4)


def _parse_v6(candidate: str) -> ipaddress.IPv6Address | None:
    text = candidate.rstrip(".")
    if text.endswith(":") and not text.endswith("::"):
        text = text[:-1]
    variants = [text]
    label, _, rest = text.partition(":")
    if not re.fullmatch(r"[0-9A-Fa-f]+", label):  # "ip:fe80::1", ":fe80::1": after a label or a stray colon
        variants.append(rest)
    for variant in variants:
        try:
            return ipaddress.IPv6Address(variant)
        except ValueError:
            continue
    return None


def _ipv6_leak(candidate: str, *, v4: int, v6: int) -> bool:
    address = _parse_v6(candidate)
    return address is not None and _v6_leak(address, v4, v6)


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def _network_leak(kind: str, value: str, *, v4: int, v6: int) -> bool:
    address = _address(value)
    if isinstance(address, ipaddress.IPv4Address):
        return kind == IPV4 and _host_bits(int(address), 32, v4)
    if isinstance(address, ipaddress.IPv6Address):
        return kind == IPV6 and _v6_leak(address, v4, v6)
    return False


def _not_an_address(value: str) -> bool:
    return _address(value) is None


def _luhn(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        d = int(char) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _card_digits(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and digits[0] in "23456" and _luhn(digits)


def _card(candidate: str) -> bool:
    if _card_digits(re.sub(r"[^0-9]", "", candidate)):
        return True
    return any(_card_digits(run) for run in re.split(r"[ -]", candidate))


def _phone(candidate: str) -> bool:
    """a phone number by the processor's own validation (libphonenumber): an invoice or order number
    the scrubber keeps on purpose is no leak"""
    digits = re.sub(r"[^0-9]", "", candidate)
    return 8 <= len(digits) <= 15 and not _card(candidate) and number_kind(candidate) == "phone"


def _bare_phone(candidate: str) -> bool:
    return _DATE_START.match(candidate) is None and _phone(candidate)



def scan_records(detectors: Detectors, records: Iterable[tuple[str, str, Mapping[str, Any]]]) -> list[Finding]:
    """Findings in decoded records given as (table, source, record); pure. ``source`` names where the
    record came from (e.g. ``<topic>~p<n>``); the partition is the UTC day of the record's time."""
    counts: Counter[tuple[str, str | None, str, str, str]] = Counter()
    for table, source, record in records:
        when = record.get(time_column(table))
        day = None
        if isinstance(when, datetime):
            day = (when if when.tzinfo is None else as_utc(when)).date().isoformat()
        for column, value in record.items():
            if isinstance(value, str):
                for kind in detectors.scan(column, value):
                    counts[(table, day, column, source, kind)] += 1
    return [Finding(t, day, column, source, kind, n) for (t, day, column, source, kind), n in sorted(
        counts.items(), key=lambda item: (item[0][0], item[0][1] or "", *item[0][2:]))]


def merge_findings(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    """Findings of the same place and kind (from several poll batches) as one, counts added."""
    counts: Counter[tuple[str, str | None, str, str, str]] = Counter()
    for f in findings:
        counts[(f.table, f.partition, f.column, f.file, f.kind)] += f.count
    return tuple(Finding(*key, n) for key, n in sorted(counts.items(), key=lambda i: (i[0][0], i[0][1] or "",
                                                                                      *i[0][2:])))


