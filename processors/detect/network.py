"""IP and MAC addresses, wherever they stand.

- ``[ip]``: IPv4 in dotted form (also with leading zeros, ``010.001.002.003``, and in the
  ``ip-10-1-2-3`` form of cloud host names), IPv6 in every textual form (compressed, bracketed,
  with a zone, IPv4-mapped), in text, paths, e-mail domains and host names. Kept: loopback
  (``127.0.0.0/8``, ``::1``), the unspecified ``0.0.0.0`` and ``::``, netmasks (``255.255.255.0``),
  and four-part numbers that are versions by their form (``v1.2.3.4``, ``Chrome/120.0.6099.109``) or
  have a part over 255 (``10.0.19045.3693``).
- ``[device]``: MAC addresses in all three notations: ``00:1a:2b:3c:4d:5e``, ``00-1A-2B-3C-4D-5E``,
  Cisco's ``001a.2b3c.4d5e``, and bare (``001A2B3C4D5E``: twelve hex digits mixing digits and
  letters, which also takes a 12-character container id; git's short SHAs are 7-10).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

__all__ = ["replace_ips", "replace_macs"]

_MAC: Final = re.compile(
    r"(?<![0-9A-Fa-f:\-.])(?:[0-9A-Fa-f]{2}([:\-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}"
    r"|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}|[0-9A-Fa-f]{12})(?![0-9A-Fa-f:\-]|\.[0-9A-Fa-f])"
)
_IPV6: Final = re.compile(r"(?<![0-9A-Fa-f:.])[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(?:%[0-9A-Za-z_.\-]{1,32})?(?![\w:])")
_IPV4: Final = re.compile(r"(?=\d)(?<![\d.])(\d{1,3})([.\-])(\d{1,3})\2(\d{1,3})\2(\d{1,3})(?!\d|\.\d)")
_VERSION_CUE: Final = re.compile(r"(?:\bv|[A-Za-z]/)\Z", re.IGNORECASE)
"""what makes four dotted numbers a version: v1.2.3.4, Chrome/120.0.6099.109 (written attached: after a
word such as "version 1.2.3.4" a person could as well have written an address, so it goes)"""
_IPV6_HINT: Final = re.compile(r":[0-9A-Fa-f.]*:")


def _mac(match: re.Match[str]) -> str:
    text = match.group()
    if len(text) == 12 and (text.isdigit() or text.isalpha()):
        return text  # twelve digits or twelve letters: a number or a word, not a MAC
    return "[device]"


def replace_macs(text: str) -> str:
    """``text`` with MAC addresses replaced by ``[device]``."""
    return _MAC.sub(_mac, text)


def _ipv6(match: re.Match[str]) -> str:
    candidate = match.group()
    if candidate.count(":") < 2:
        return candidate
    # The run may carry punctuation: "ip:fe80::1", "2001:db8::1.", "::1: refused".
    ends = [len(candidate)]
    while len(ends) < 4 and ends[-1] > 0 and candidate[ends[-1] - 1] in ".:":
        ends.append(ends[-1] - 1)
    for end in ends:
        for start in (0, 1):
            try:
                address = ipaddress.IPv6Address(candidate[start:end])
            except ValueError:
                continue
            if address.is_unspecified or address.is_loopback:
                return candidate
            return candidate[:start] + "[ip]" + candidate[end:]
    return candidate


def _is_netmask(octets: list[int]) -> bool:
    """255.255.255.0 and the like: ones, then zeros"""
    value = (octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3]
    inverted = ~value & 0xFFFFFFFF
    return octets[0] == 255 and inverted & (inverted + 1) == 0


def replace_ips(text: str) -> str:
    """``text`` with IPv4 and IPv6 addresses replaced by ``[ip]`` (loopback, unspecified and
    version numbers kept)."""
    if _IPV6_HINT.search(text) is not None:
        text = _IPV6.sub(_ipv6, text)
    if "." not in text and "-" not in text:
        return text
    out: list[str] = []
    last = 0
    for match in _IPV4.finditer(text):
        a, sep, b, c, d = match.groups()
        octets = [int(a), int(b), int(c), int(d)]
        start = match.start()
        if max(octets) > 255 or not any(octets) or octets[0] == 127 or _is_netmask(octets):
            continue
        if sep == "-" and not text[max(0, start - 3):start].lower().endswith("ip-"):
            continue  # dashes only in "ip-10-1-2-3": elsewhere they are dates, ranges, ids
        if sep == "." and _VERSION_CUE.search(text, max(0, start - 10), start):
            continue
        out.append(text[last:start])
        out.append("[ip]")
        last = match.end()
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)
