import ipaddress

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from datamin.config import IPV4_PREFIX_BITS, IPV6_PREFIX_BITS
from processors.transforms.ip import truncate_ip, validate_prefixes


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("203.0.113.77", "203.0.0.0"),
        ("2001:db8:abcd:12::1", "2001:db8::"),
        ("  203.0.113.77\n", "203.0.0.0"),
        ("\t2001:db8:abcd:12::1 ", "2001:db8::"),
        ("203.0.113.77:5678", "203.0.0.0"),
        ("[2001:db8:abcd::1]:443", "2001:db8::"),
        ("[2001:db8:abcd::1]", "2001:db8::"),
        ("fe80::1%eth0", "fe80::"),
        ("[fe80::1%eth0]:8080", "fe80::"),
        ("2001:DB8:ABCD::1", "2001:db8::"),
        ("2001:0db8:abcd:0012:0000:0000:0000:0001", "2001:db8::"),
        ("::ffff:1.2.3.4", "1.2.0.0"),  # IPv4-mapped: truncated and returned as IPv4
        ("::FFFF:203.0.113.77", "203.0.0.0"),
        ("[::ffff:1.2.3.4]:80", "1.2.0.0"),
        ("2002:cb00:714d::1", "203.0.0.0"),  # 6to4 embeds 203.0.113.77
        ("0.0.0.0", "0.0.0.0"),
        ("255.255.255.255", "255.255.0.0"),
        ("::1", "::"),
        ("10.1.2.3:0", "10.1.0.0"),
        ("10.1.2.3:65535", "10.1.0.0"),
    ],
)
def test_truncates_to_default_prefixes(value: str, expected: str) -> None:
    assert truncate_ip(value) == expected


@pytest.mark.parametrize(
    ("value", "v4", "v6", "expected"),
    [
        ("203.0.113.77", 24, 32, "203.0.113.0"),
        ("203.0.113.77", 8, 32, "203.0.0.0"),
        ("203.0.113.77", 20, 32, "203.0.112.0"),
        ("2001:db8:abcd:12::1", 16, 48, "2001:db8:abcd::"),
        ("2001:db8:abcd:12::1", 16, 16, "2001::"),
        ("::ffff:203.0.113.77", 16, 48, "203.0.0.0"),  # v6_prefix never widens an IPv4
        ("2002:cb00:714d::1", 16, 48, "203.0.0.0"),  # /48 of 6to4 would be the full IPv4
    ],
)
def test_truncates_to_configured_prefixes(value: str, v4: int, v6: int, expected: str) -> None:
    assert truncate_ip(value, v4, v6) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "-",  # nginx's empty field
        "unknown",
        "localhost",
        "999.1.1.1",
        "1.2.3",
        "1.2.3.4.5",
        "01.2.3.4",  # leading zeros are ambiguous (octal) and refused
        "1.2.3.4/16",
        "1.2.3.4:",
        "1.2.3.4:65536",
        "1.2.3.4:http",
        "1.2.3.4:-1",
        "1.2.3.4 5.6.7.8",
        "1.2.3.4,5.6.7.8",  # X-Forwarded-For lists are the caller's to split
        "[1.2.3.4]",
        "[2001:db8::1",
        "2001:db8::1]",
        "[2001:db8::1]x",
        "[2001:db8::1]:",
        "[2001:db8::1]:99999",
        "2001:db8::1::1",
        "gggg::1",
        "::ffff:1.2.3.4:80",
        "fe80::1%",
        "fe80::1%eth 0",
        "fe80::1%" + "x" * 40,
        "\u0661.\u0662.\u0663.\u0664",  # Arabic-Indic digits
        "\uff11.\uff12.\uff13.\uff14",  # full-width digits
        "1.2.3.4\x00",
        "\x001.2.3.4",
        "1.2.3.4\u200b",
        "1" * 10_000_000,
        "1.2.3.4" + " " * 10_000_000,
    ],
)
def test_invalid_values_give_none(value: str) -> None:
    assert truncate_ip(value) is None


@pytest.mark.parametrize("value", [None, 16909060, b"1.2.3.4", 1.5, ["1.2.3.4"], ipaddress.ip_address("1.2.3.4")])
def test_non_strings_give_none(value: object) -> None:
    assert truncate_ip(value) is None  # type: ignore[arg-type]


@pytest.mark.parametrize(("v4", "v6"), [(8, 16), (16, 32), (24, 48)])
def test_accepted_prefixes(v4: int, v6: int) -> None:
    validate_prefixes(v4, v6)  # does not raise
    assert truncate_ip("1.2.3.4", v4, v6) is not None


@pytest.mark.parametrize(
    ("v4", "v6", "setting"),
    [
        (25, 32, "minimise.ipv4_prefix"),
        (32, 32, "minimise.ipv4_prefix"),
        (0, 32, "minimise.ipv4_prefix"),
        (7, 32, "minimise.ipv4_prefix"),
        (-8, 32, "minimise.ipv4_prefix"),
        (True, 32, "minimise.ipv4_prefix"),
        ("16", 32, "minimise.ipv4_prefix"),
        (16.0, 32, "minimise.ipv4_prefix"),
        (16, 49, "minimise.ipv6_prefix"),
        (16, 64, "minimise.ipv6_prefix"),
        (16, 128, "minimise.ipv6_prefix"),
        (16, 0, "minimise.ipv6_prefix"),
        (16, 15, "minimise.ipv6_prefix"),
    ],
)
def test_weak_or_bad_prefixes_are_refused(v4: object, v6: object, setting: str) -> None:
    with pytest.raises(ValueError, match=setting) as excinfo:
        validate_prefixes(v4, v6)  # type: ignore[arg-type]
    message = str(excinfo.value)
    assert repr(v4 if setting.endswith("ipv4_prefix") else v6) in message
    assert "use a whole number from" in message  # says what to use instead
    with pytest.raises(ValueError, match=setting):
        truncate_ip("1.2.3.4", v4, v6)  # type: ignore[arg-type]


def test_error_never_contains_the_address() -> None:
    with pytest.raises(ValueError) as excinfo:
        truncate_ip("198.51.100.23", 32)
    assert "198.51.100.23" not in str(excinfo.value)


# --- properties -------------------------------------------------------------------------
# deadline=None throughout: no timing assertions on shared machines.

v4_prefixes = st.integers(min_value=IPV4_PREFIX_BITS[0], max_value=IPV4_PREFIX_BITS[1])
v6_prefixes = st.integers(min_value=IPV6_PREFIX_BITS[0], max_value=IPV6_PREFIX_BITS[1])


def _host_bits_zero(address: ipaddress.IPv4Address | ipaddress.IPv6Address, prefix: int) -> bool:
    host_mask = (1 << (address.max_prefixlen - prefix)) - 1
    return int(address) & host_mask == 0


@settings(deadline=None)
@given(st.ip_addresses(v=4), v4_prefixes)
def test_ipv4_output_is_the_network_address(address: ipaddress.IPv4Address, prefix: int) -> None:
    out = truncate_ip(str(address), prefix, 32)
    assert out is not None
    parsed = ipaddress.ip_address(out)
    assert _host_bits_zero(parsed, prefix)
    assert out == str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)
    if out == str(address):  # never the full address unless it already was a network address
        assert _host_bits_zero(address, prefix)


@settings(deadline=None)
@given(st.ip_addresses(v=6), v4_prefixes, v6_prefixes)
def test_ipv6_output_is_the_network_address(address: ipaddress.IPv6Address, v4: int, v6: int) -> None:
    assume(address.ipv4_mapped is None and address.sixtofour is None)
    out = truncate_ip(str(address), v4, v6)
    assert out is not None
    parsed = ipaddress.ip_address(out)
    assert parsed.version == 6
    assert _host_bits_zero(parsed, v6)
    assert out == str(ipaddress.ip_network(f"{address}/{v6}", strict=False).network_address)
    if out == str(address):
        assert _host_bits_zero(address, v6)


@settings(deadline=None)
@given(st.ip_addresses(v=4), v4_prefixes, v6_prefixes)
def test_embedded_ipv4_keeps_only_v4_prefix_bits(address: ipaddress.IPv4Address, v4: int, v6: int) -> None:
    expected = truncate_ip(str(address), v4, v6)
    mapped = f"::ffff:{address}"
    six_to_four = str(ipaddress.IPv6Address((0x2002 << 112) | (int(address) << 80) | 1))
    assert truncate_ip(mapped, v4, v6) == expected
    assert truncate_ip(six_to_four, v4, v6) == expected


@st.composite
def decorated_addresses(draw: st.DrawFn) -> tuple[str, str]:
    """(plain address, the same address as it may appear in a log)."""
    address = draw(st.ip_addresses())
    plain = str(address)
    text = plain.upper() if draw(st.booleans()) else plain
    port = draw(st.integers(min_value=0, max_value=65535))
    if address.version == 6:
        if draw(st.booleans()):
            text += "%" + draw(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8))
        text = draw(st.sampled_from([text, f"[{text}]", f"[{text}]:{port}"]))
    else:
        text = draw(st.sampled_from([text, f"{text}:{port}"]))
    pad = st.text(alphabet=" \t\r\n", max_size=3)
    return plain, draw(pad) + text + draw(pad)


@settings(deadline=None)
@given(decorated_addresses(), v4_prefixes, v6_prefixes)
def test_log_decorations_do_not_change_the_result(pair: tuple[str, str], v4: int, v6: int) -> None:
    plain, decorated = pair
    assert truncate_ip(decorated, v4, v6) == truncate_ip(plain, v4, v6) is not None


@settings(deadline=None)
@given(st.text(max_size=80), v4_prefixes, v6_prefixes)
def test_any_text_gives_none_or_a_network_address(text: str, v4: int, v6: int) -> None:
    out = truncate_ip(text, v4, v6)
    if out is not None:
        parsed = ipaddress.ip_address(out)
        assert _host_bits_zero(parsed, v4 if parsed.version == 4 else v6)
