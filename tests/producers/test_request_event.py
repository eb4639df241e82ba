"""The shared request -> record logic: trusted-proxy table, cookies, headers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from datamin.exceptions import ConfigError
from datamin.identity import Identity
from producers.request_event import MiddlewareSettings, build_record, client_address, cookies, parse_ip

TRUSTED = MiddlewareSettings(trusted_proxies=("10.0.0.0/8", "2001:db8:ffff::/48", "127.0.0.1")).networks


@pytest.mark.parametrize(("peer", "xff", "forwarded", "expected"), [
    # no proxy trusted, or an untrusted peer: the headers are forged and ignored
    ("203.0.113.7", "198.51.100.1", None, "203.0.113.7"),
    ("203.0.113.7", None, "for=198.51.100.1", "203.0.113.7"),
    # a trusted proxy: the right-most address that is not a proxy
    ("10.0.0.5", "198.51.100.1", None, "198.51.100.1"),
    ("10.0.0.5", "6.6.6.6, 198.51.100.1", None, "198.51.100.1"),  # client forged the left entry
    ("10.0.0.5", "198.51.100.1, 10.1.1.1, 10.2.2.2", None, "198.51.100.1"),  # chain of proxies
    ("127.0.0.1", "198.51.100.1:4711", None, "198.51.100.1"),  # port stripped
    ("10.0.0.5", "10.9.9.9, 10.1.1.1", None, "10.9.9.9"),  # every hop a proxy: the left-most
    ("10.0.0.5", "unknown, 10.1.1.1", None, "10.1.1.1"),  # not an address: stop at the proxy that said so
    ("10.0.0.5", None, None, "10.0.0.5"),
    # Forwarded (RFC 7239), preferred over X-Forwarded-For, IPv6 in brackets with a port
    ("10.0.0.5", "6.6.6.6", 'for="[2001:db8:cafe::17]:4711";proto=https', "2001:db8:cafe::17"),
    ("10.0.0.5", None, "for=198.51.100.9, for=10.3.3.3;by=10.0.0.5", "198.51.100.9"),
    ("10.0.0.5", None, 'For="[2001:db8:ffff::1]", for=10.3.3.3', "2001:db8:ffff::1"),  # left-most
    ("2001:db8:ffff::2", "2001:db8:1::5", None, "2001:db8:1::5"),
    ("::ffff:10.0.0.5", "198.51.100.1", None, "198.51.100.1"),  # IPv4-mapped peer
    (None, "198.51.100.1", None, None),
    ("not-an-ip", None, None, None),
])
def test_client_address_table(peer: str | None, xff: str | None, forwarded: str | None,
                              expected: str | None) -> None:
    assert client_address(peer, xff, forwarded, TRUSTED) == expected


def test_nothing_trusted_by_default() -> None:
    assert client_address("10.0.0.5", "198.51.100.1", None, MiddlewareSettings().networks) == "10.0.0.5"


def test_bad_cidr_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="trusted_proxies"):
        MiddlewareSettings(trusted_proxies=("10.0.0.0/33",))


def test_parse_ip_forms() -> None:
    assert str(parse_ip("[::1]:80")) == "::1"
    assert str(parse_ip('"192.0.2.1"')) == "192.0.2.1"
    assert parse_ip("_hidden") is None and parse_ip("[broken") is None


def test_cookies() -> None:
    header = 'a=1; datamin_consent="c-42"; session=s1; a=2; junk'
    assert cookies(header, ("a", "datamin_consent", "session")) == {"a": "1", "datamin_consent": "c-42",
                                                                    "session": "s1"}
    assert cookies(None, ("a",)) == {}


def test_build_record_fields() -> None:
    identity = Identity(b"request-event-test-secret-32-bytes+")
    visitor = identity.issue_visitor()
    settings = MiddlewareSettings(session_cookie="session", client_id_cookie="cid", cdn_country_header="CF-IPCountry",
                                  identity=identity)
    headers = {"cookie": f"session=s1; cid=c1; datamin_consent={visitor}", "referer": "https://x.example/?q=1",
               "user-agent": "UA/1", "accept-language": "nb-NO", "dnt": "1", "sec-gpc": "1",
               "cf-ipcountry": "NO", "sec-ch-ua": '"Chromium";v="130"', "sec-ch-ua-platform": '"Linux"'}
    record = build_record(settings, started=1_767_225_600.5, method="GET", host="example.com", url="/a?b=c",
                          status=200, bytes_sent=12, duration_ms=1.5, headers=headers, peer="203.0.113.7",
                          user_id=None)
    assert record["time"] == datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)
    assert record["subject_key"] == "visitor:" + visitor.split(".")[0]  # not logged in: the issued visitor id
    assert (record["session_id"], record["client_id"], record["user_id"]) == ("s1", "c1", None)
    assert record["do_not_track"] is True and record["global_privacy_control"] is True
    assert record["cdn_country"] == "NO" and record["client_ip"] == "203.0.113.7"
    assert record["client_hints"] == {"sec-ch-ua": '"Chromium";v="130"', "sec-ch-ua-platform": '"Linux"'}
    logged_in = build_record(settings, started=0, method="GET", host=None, url="/", status=200, bytes_sent=0,
                             duration_ms=0, headers=headers, peer=None, user_id="u-1")
    assert logged_in["subject_key"] == "user:u-1" and logged_in["user_id"] == "u-1"
    bare = build_record(MiddlewareSettings(), started=0, method="GET", host=None, url="/", status=200,
                        bytes_sent=0, duration_ms=0, headers={}, peer=None, user_id=None)
    assert bare["subject_key"] is None and bare["do_not_track"] is False and bare["client_hints"] is None
