"""Fuzzing the middleware door: any header bytes, any proxy chain, any trusted-proxy set.

build_record and client_address never raise; with no trusted proxy the client address is always the
socket peer, whatever the forwarding headers say; the record always encodes (the producer would
otherwise drop the request's event)."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datamin.exceptions import ConfigError
from producers.request_event import MiddlewareSettings, build_record, client_address, cookies, parse_ip
from schemas import default_registry, encode
from schemas.limits import MAX_MAP_ENTRIES

HTTP = default_registry().latest("http_request")
FUZZ = settings(max_examples=200, deadline=None)

latin1 = st.binary(max_size=120).map(lambda b: b.decode("latin-1"))  # how servers hand header bytes over
addresses = st.ip_addresses().map(str)
hop = (addresses | addresses.map(lambda a: f"[{a}]:4711") | addresses.map(lambda a: f'"{a}"')
       | st.sampled_from(["unknown", "_hidden", "[broken", "", " ", "1.2.3.4:99:1"]) | latin1)
chains = st.lists(hop, max_size=6).map(", ".join) | latin1
forwarded_headers = (st.lists(st.tuples(st.sampled_from(["for", "For", "by", "proto"]), hop), max_size=5)
                     .map(lambda pairs: ", ".join(f"{k}={v}" for k, v in pairs)) | latin1)
networks = st.lists(st.ip_addresses().flatmap(
    lambda a: st.integers(0, a.max_prefixlen).map(lambda p: ipaddress.ip_network(f"{a}/{p}", strict=False))),
    max_size=4).map(tuple)
HEADER_NAMES = ["x-forwarded-for", "forwarded", "cookie", "user-agent", "accept-language", "referer", "dnt",
                "sec-gpc", "cf-ipcountry", "sec-ch-ua", "sec-ch-ua-platform", "sec-ch-ua-mobile"]
headers_strategy = st.dictionaries(st.sampled_from(HEADER_NAMES) | latin1.map(str.lower), latin1, max_size=10)


@FUZZ
@given(peer=addresses | latin1 | st.none(), xff=st.none() | chains, fwd=st.none() | forwarded_headers)
def test_no_trusted_proxy_means_the_socket_peer(peer: str | None, xff: str | None, fwd: str | None) -> None:
    got = client_address(peer, xff, fwd, ())
    expected = parse_ip(peer) if peer is not None else None
    assert got == (str(expected) if expected is not None else None)


@FUZZ
@given(peer=addresses | latin1 | st.none(), xff=st.none() | chains, fwd=st.none() | forwarded_headers,
       nets=networks)
def test_any_trusted_set_gives_an_address_from_the_request(peer: str | None, xff: str | None, fwd: str | None,
                                                           nets: tuple[Any, ...]) -> None:
    got = client_address(peer, xff, fwd, nets)
    if got is None:
        assert peer is None or parse_ip(peer) is None
        return
    ipaddress.ip_address(got.split("%")[0])  # always an address, never header junk
    peer_ip = parse_ip(peer or "")
    if peer_ip is None or not any(peer_ip in n for n in nets):
        assert got == str(peer_ip)  # an untrusted peer's headers are ignored


@FUZZ
@given(headers=headers_strategy, peer=st.none() | addresses | latin1, user=st.none() | latin1,
       trusted=st.lists(addresses | addresses.map(lambda a: a + "/8"), max_size=3),
       cookie_names=st.tuples(st.none() | latin1, st.none() | latin1, st.none() | latin1),
       cdn=st.none() | st.sampled_from(HEADER_NAMES) | latin1)
def test_build_record_never_raises_and_always_encodes(headers: dict[str, str], peer: str | None, user: str | None,
                                                       trusted: list[str], cookie_names: tuple[Any, ...],
                                                       cdn: str | None) -> None:
    try:
        middleware = MiddlewareSettings(trusted_proxies=tuple(trusted), session_cookie=cookie_names[0],
                                        client_id_cookie=cookie_names[1], consent_cookie=cookie_names[2],
                                        cdn_country_header=cdn)
    except ConfigError:
        return  # e.g. 1.2.3.4/8 with host bits is fine, ::1/8 is not: refused at start-up, not at a request
    record = build_record(middleware, started=1_767_225_600.0, method="GET", host="h", url="/", status=200,
                          bytes_sent=1, duration_ms=1.0, headers=headers, peer=peer, user_id=user)
    encode(HTTP, {**record, "event_id": "e-1"})
    if not middleware.networks:
        expected = parse_ip(peer) if peer is not None else None
        assert record["client_ip"] == (str(expected) if expected is not None else None)


@FUZZ
@given(header=st.none() | latin1, names=st.lists(latin1, max_size=3).map(tuple))
def test_cookies_never_raise(header: str | None, names: tuple[str, ...]) -> None:
    found = cookies(header, names)
    assert set(found) <= set(names)


@FUZZ
@given(proxies=st.lists(latin1 | addresses, max_size=3))
def test_trusted_proxy_settings_fail_only_with_config_error(proxies: list[str]) -> None:
    try:
        MiddlewareSettings(trusted_proxies=tuple(proxies))
    except ConfigError as exc:
        assert "trusted_proxies" in str(exc)


def test_regression_many_client_hint_headers_still_encode() -> None:
    headers = {f"sec-ch-ua-x{i}": "v" for i in range(MAX_MAP_ENTRIES + 40)} | {"sec-ch-ua": '"Chromium";v="130"'}
    record = build_record(MiddlewareSettings(), started=0, method="GET", host=None, url="/", status=200,
                          bytes_sent=0, duration_ms=0, headers=headers, peer="203.0.113.7", user_id=None)
    encode(HTTP, {**record, "event_id": "e-1"})
    hints = record["client_hints"]
    assert len(hints) == MAX_MAP_ENTRIES and hints["sec-ch-ua"] == '"Chromium";v="130"'


@pytest.mark.parametrize("peer", ["fe80::1%eth0", "::ffff:10.0.0.5", "10.0.0.5:80", "[::1]:80"])
def test_peer_forms_without_trusted_proxy(peer: str) -> None:
    assert client_address(peer, "198.51.100.1", "for=198.51.100.2", ()) == str(parse_ip(peer))
