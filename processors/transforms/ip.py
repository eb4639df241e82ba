"""IP address truncation: keep the network, drop the host.

IPv4 is cut to ``v4_prefix`` bits (default /16) and IPv6 to ``v6_prefix`` bits (default /32).
Addresses that carry an IPv4 address inside IPv6 (IPv4-mapped ``::ffff:a.b.c.d`` and 6to4
``2002:aabb:ccdd::``) are truncated *as IPv4* and returned as IPv4, so the embedded address
never keeps more than ``v4_prefix`` bits whatever ``v6_prefix`` says.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable

from datamin.config import check_ip_prefixes
from datamin.exceptions import ConfigError

__all__ = ["ip_truncator", "truncate_ip", "validate_prefixes"]


_MAX_INPUT = 128
"""Longer than any address with brackets, zone id and port; longer input is not an address."""

_PORT = re.compile(r"[0-9]{1,5}")
_ZONE = re.compile(r"[0-9A-Za-z_.\-]{1,32}")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def validate_prefixes(v4_prefix: int, v6_prefix: int) -> None:
    """Raise ``ValueError`` unless both prefixes are within what the configuration accepts
    (`datamin.config.IPV4_PREFIX_BITS`, `IPV6_PREFIX_BITS`: one check for config and transform alike).

    The message names the configuration key, the value given and the accepted range.
    """
    try:
        check_ip_prefixes(v4_prefix, v6_prefix)
    except ConfigError as exc:
        raise ValueError(str(exc)) from None


def truncate_ip(value: str | None, v4_prefix: int = 16, v6_prefix: int = 32) -> str | None:
    """Return the network address of ``value`` truncated to the configured prefix.

    ``"203.0.113.77"`` -> ``"203.0.0.0"``; ``"2001:db8:abcd:12::1"`` -> ``"2001:db8::"``.
    Accepts surrounding whitespace, ``a.b.c.d:port``, ``[v6]`` and ``[v6]:port``, zone ids
    (``fe80::1%eth0``, dropped) and upper-case hex. The result is always in canonical
    (compressed, lower-case) form and has every host bit zero. Anything that is not exactly
    one IP address (``"-"``, ``""``, ``"999.1.1.1"``, non-strings, oversized input) gives
    ``None``; this function never raises for a bad *value*.

    Raises ``ValueError`` if a prefix is outside what :func:`validate_prefixes` accepts.
    """
    validate_prefixes(v4_prefix, v6_prefix)
    if not isinstance(value, str) or len(value) > _MAX_INPUT:
        return None
    return _truncate(value, v4_prefix, v6_prefix)


def ip_truncator(v4_prefix: int = 16, v6_prefix: int = 32) -> Callable[[object], str | None]:
    """``truncate_ip`` with its prefixes fixed and validated once, here, instead of on every call.

    The returned function gives exactly what ``truncate_ip(value, v4_prefix, v6_prefix)`` gives and
    never raises. Raises ``ValueError`` now if a prefix is outside what :func:`validate_prefixes` accepts.
    """
    validate_prefixes(v4_prefix, v6_prefix)

    def truncate(value: object) -> str | None:
        if not isinstance(value, str) or len(value) > _MAX_INPUT:
            return None
        return _truncate(value, v4_prefix, v6_prefix)
    return truncate


@functools.lru_cache(maxsize=4096)
def _truncate(value: str, v4_prefix: int, v6_prefix: int) -> str | None:
    text = value.strip()
    if text.count(".") == 3 and text.isascii():  # plain dotted IPv4, the common case: no ipaddress objects
        octets = text.split(".")
        if all(o.isdigit() and len(o) <= 3 and (o[0] != "0" or len(o) == 1) for o in octets):
            a, b, c, d = (int(o) for o in octets)
            if a <= 255 and b <= 255 and c <= 255 and d <= 255:  # else not an address, as ipaddress says
                masked = ((a << 24) | (b << 16) | (c << 8) | d) & _mask(32, v4_prefix)
                return f"{masked >> 24}.{(masked >> 16) & 255}.{(masked >> 8) & 255}.{masked & 255}"
    address = _parse(text)
    if address is None:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None:
            masked = int(address) & _mask(128, v6_prefix)
            return str(ipaddress.IPv6Address(masked))
        address = embedded
    return str(ipaddress.IPv4Address(int(address) & _mask(32, v4_prefix)))


@functools.cache
def _mask(bits: int, prefix: int) -> int:
    return ((1 << prefix) - 1) << (bits - prefix)


def _parse(text: str) -> Address | None:
    """Parse one address, allowing the port, bracket and zone forms found in logs."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not (rest[0] == ":" and _valid_port(rest[1:]))):
            return None
        return _parse_v6(host)
    if text.count(":") == 1:  # "a.b.c.d:port"; IPv6 always has at least two colons
        host, _, port = text.partition(":")
        if not _valid_port(port):
            return None
        return _parse_v4(host)
    if ":" in text:
        return _parse_v6(text)
    return _parse_v4(text)


def _valid_port(port: str) -> bool:
    return _PORT.fullmatch(port) is not None and int(port) <= 65535


def _parse_v4(text: str) -> ipaddress.IPv4Address | None:
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        return None


def _parse_v6(text: str) -> ipaddress.IPv6Address | None:
    host, percent, zone = text.partition("%")
    if percent and _ZONE.fullmatch(zone) is None:
        return None
    try:
        return ipaddress.IPv6Address(host)
    except ValueError:
        return None
