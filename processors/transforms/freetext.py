"""Free-text scrubbing: search terms, error reports and crash dumps lose what identifies people.

Every pattern here runs in linear time: runs are matched only from their first character
(look-behinds), repetitions are bounded or unambiguous, and nothing nests an unbounded
quantifier inside another. Patterns whose look-behind comes first start with a look-ahead for
the characters a match can begin with: the same matches, but the regex engine skips other
positions before evaluating the look-behind (about twice as fast on crash dumps).
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Callable
from typing import Final

from processors.transforms.patterns import EMAIL

__all__ = ["scrub_text"]

MAX_TEXT_LENGTH: Final = 64 * 1024
"""Characters scanned; the rest is cut off and ``" [truncated]"`` appended."""
TRUNCATED: Final = " [truncated]"

# Invisible characters that could hide an address from the patterns: C0 controls other than
# tab/newline/CR, DEL, soft hyphen, zero-width and bidi controls, BOM.
_INVISIBLE: Final = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)

# scheme://user[:password]@host -- before e-mails, or "password@host" would be taken for one.
_URL_USERINFO: Final = re.compile(r"\b([A-Za-z][A-Za-z0-9+.\-]{0,15}://)[^\s/?#@]{1,256}@")
_EMAIL: Final = EMAIL
_HOME: Final = re.compile(
    r"(?=[\\/])((?:\\{1,2}|/)(?:home|users|documents and settings)(?:\\{1,2}|/))"
    r"(?!\[\w+\])"
    r"(?:[^\\/\s:*?\"'<>|]+(?: [^\\/\s:*?\"'<>|]+){1,3}(?=\\)|[^\\/\s:*?\"'<>|,;)\]}]+)",
    re.IGNORECASE,
)
_PRIVATE_KEY: Final = re.compile(
    r"-----BEGIN [A-Z ]{0,20}PRIVATE KEY-----[A-Za-z0-9+/=\s\\]*"  # also with JSON-escaped \\n
    r"(?:-----END [A-Z ]{0,20}PRIVATE KEY-----)?"
)
_SECRET_HEADER: Final = re.compile(
    r"\b((?:proxy-)?authorization|cookie|set-cookie|x-api-key|x-auth-token)"
    r"([\"']?[ \t]*[:=][ \t]*[\"']?)[^\r\n\"']+",
    re.IGNORECASE,
)
_SECRET_PAIR: Final = re.compile(
    # the look-behind lets "csrf_token", "client_secret" and "db-password" match at the key
    r"(?=[PpSsAaTtJj])(?<![A-Za-z0-9])((?:password|passwd|passphrase|pass|pwd|secret[_\-]?(?:access[_\-]?)?key|secret|"
    r"access[_\-]?key|token|api[_\-]?key|apikey|"
    r"private[_\-]?key|session[_\-]?id|sessid|phpsessid|jsessionid|sid)"
    r"[\"']?[ \t]*[:=][ \t]*)"
    r"(\"[^\"\r\n]*\"?|'[^'\r\n]*'?|[^\s\"'&,;<>]+)",  # always succeeds once started: linear
    re.IGNORECASE,
)
_BEARER: Final = re.compile(r"\b(bearer)\s+[A-Za-z0-9\-._~+/]{8,}=*", re.IGNORECASE)
_KNOWN_TOKEN: Final = re.compile(
    r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"  # JWT
    r"|\b[spr]k_(?:live|test)_[A-Za-z0-9]{8,}"  # Stripe
    r"|\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[A-Z0-9]{16}\b"  # AWS access key id
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}|\bgithub_pat_[A-Za-z0-9_]{30,}"  # GitHub
    r"|\bglpat-[A-Za-z0-9_\-]{20,}"  # GitLab
    r"|\bxox[abposr]-[A-Za-z0-9\-]{10,}"  # Slack
    r"|\bAIza[A-Za-z0-9_\-]{35}"  # Google API key
)
_MAC: Final = re.compile(
    r"(?<![0-9A-Fa-f:\-])[0-9A-Fa-f]{2}([:\-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}(?![0-9A-Fa-f:\-])"
)
"""a MAC address (six hex pairs, one separator throughout): a device identification number"""
_IPV6: Final = re.compile(r"(?<![0-9A-Fa-f:.])[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(?:%[0-9A-Za-z_.\-]{1,32})?(?![\w:])")
_IPV4: Final = re.compile(r"(?=\d)(?<![\d.])\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?!\d|\.\d)")
_UUID: Final = re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}(?![0-9A-Fa-f])")
_LONG_RUN: Final = re.compile(r"(?<![\w\-])[\w\-]{24,}(?![\w\-])", re.ASCII)
_RUN_PIECE: Final = re.compile(r"[^_\-]{12,}")
_CARD: Final = re.compile(r"(?=\d)(?<![\d\-])\d(?:[ \-]?\d){12,18}(?![\d])")
_DATE: Final = r"\d{4}[\-/.]\d{1,2}[\-/.]\d{1,2}(?!\d)|\d{1,2}[\-/.]\d{1,2}[\-/.]\d{2,4}(?!\d)"
_PHONE: Final = re.compile(
    r"(?=[\d+(])(?<![\w+.])(?!" + _DATE + r")"
    r"(?:\+\d{1,3}[ \-]?)?(?:\(\d{1,4}\)[ \-]?)?\d(?:[ \-]?\d){6,14}(?!\w|\.\d)"
    r"|(?<![\w.])\d{3}\.\d{3}\.\d{4}(?![\w.])"
)


def scrub_text(text: str | None) -> str | None:
    """Replace personal data in free text with typed placeholders.

    The text is first cut to :data:`MAX_TEXT_LENGTH` characters (at a whitespace if one is
    near, so no address is cut in half and slips through; ``" [truncated]"`` is appended),
    then NFKC-normalised (full-width digits and at-signs become ASCII) and cleared of invisible
    characters. Then, in this order:

    - credentials in URLs (``https://user:pw@host``) -> ``https://[user]@host``
    - e-mail addresses, also ``%40``-encoded -> ``[email]``
    - the user name in home directories (``/home/NAME``, ``/Users/NAME``,
      ``C:\\Users\\NAME``, ``c:\\\\users\\\\NAME``, ``C:/Users/NAME``) -> ``[user]``
    - private-key blocks, ``Authorization``/``Cookie`` header values, ``password=``/``token=``/
      ``api_key=``-style values, ``Bearer`` credentials, well-known key formats (JWT,
      ``sk_live_``, ``AKIA``, ``ghp_``, ``glpat-``, ``xox?-``, ``AIza``) -> ``[token]``
    - MAC addresses (``00:1a:2b:3c:4d:5e``, ``00-1A-2B-3C-4D-5E``) -> ``[device]``
    - IPv6 and IPv4 addresses (the unspecified ``::`` and ``0.0.0.0`` are kept) -> ``[ip]``
    - UUIDs and long random-looking runs (24+ word characters with a 12+ character piece
      mixing letters and digits) -> ``[token]``
    - card numbers (13-19 digits, spaces or dashes allowed; 13-15 digits only when
      Luhn-valid, as phone numbers have up to 15) -> ``[card]``
    - phone numbers (8-15 digits, optional ``+CC`` and ``(area)``, space/dash separators;
      dates are left alone) -> ``[phone]``

    ``None`` and non-strings give ``None``. Never raises for any string.
    """
    if not isinstance(text, str):
        return None
    text, truncated = _truncate(text)
    text = _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))
    if text.isascii():
        text = _scrub_ascii(text)
    else:  # case-insensitive matching has non-ASCII equivalents ("ı", "İ"): run every pattern
        for pattern, replacement, _gate in _STEPS:
            text = pattern.sub(replacement, text)
    return text + TRUNCATED if truncated else text


def _scrub_ascii(text: str) -> str:
    """The steps of :func:`scrub_text` on ASCII text, each skipped when its gate shows it cannot match.

    A gate is a necessary condition of a match (a character or keyword every match contains), tested
    on the text as the earlier steps left it, so skipping a step never changes the result. For ASCII
    text, ``IGNORECASE`` matching is matching of the lower-cased text."""
    lower = text.lower()
    digits = -1
    for pattern, replacement, gate in _STEPS:
        if gate is not None:
            if isinstance(gate, int):
                if digits < 0:
                    digits = len(text) - len(text.encode("ascii").translate(None, b"0123456789"))
                if digits < gate:
                    continue
            elif not gate(text, lower):
                continue
        scrubbed = pattern.sub(replacement, text)
        if scrubbed != text:
            text, lower, digits = scrubbed, scrubbed.lower(), -1
    return text


def _truncate(text: str) -> tuple[str, bool]:
    if len(text) <= MAX_TEXT_LENGTH:
        return text, False
    head = text[:MAX_TEXT_LENGTH]
    if not text[MAX_TEXT_LENGTH].isspace():
        # Drop the partial word at the cut, so "alice@exam" cannot survive unmatched.
        cut = max(head.rfind(c, MAX_TEXT_LENGTH - 512) for c in " \t\r\n")
        if cut >= 0:
            head = head[:cut]
    return head, True


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
            if address.is_unspecified:
                return candidate
            return candidate[:start] + "[ip]" + candidate[end:]
    return candidate


def _ipv4(match: re.Match[str]) -> str:
    octets = match.group().split(".")
    if all(int(octet) <= 255 for octet in octets) and any(int(octet) for octet in octets):
        return "[ip]"
    return match.group()


def _long_run(match: re.Match[str]) -> str:
    for piece in _RUN_PIECE.findall(match.group()):
        if any(c.isdigit() for c in piece) and any(c.isalpha() for c in piece):
            return "[token]"
    return match.group()


def _card(match: re.Match[str]) -> str:
    digits = [int(c) for c in match.group() if c.isdigit()]
    if len(digits) > 15 or _luhn_valid(digits):  # 13-15 digits failing Luhn: maybe a phone
        return "[card]"
    return match.group()


def _luhn_valid(digits: list[int]) -> bool:
    total = 0
    for i, digit in enumerate(reversed(digits)):
        if i % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def _phone(match: re.Match[str]) -> str:
    count = sum(c.isdigit() for c in match.group())
    return "[phone]" if 8 <= count <= 15 else match.group()


_Replacement = str | Callable[[re.Match[str]], str]
_Gate = Callable[[str, str], bool] | int | None
"""(text, lower-cased text) -> whether the step can match; an int: the fewest ASCII digits a match
needs; None: always run"""

_SECRET_WORDS: Final = ("pass", "pwd", "secret", "access", "token", "api", "private", "session", "sid")
"""a part of every key _SECRET_PAIR matches ("sid" is in "sessid" and "phpsessid")"""
_TOKEN_MARKS: Final = ("eyJ", "k_live_", "k_test_", "AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ghp_", "gho_",
                       "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "xox", "AIza")
"""a literal in every match of _KNOWN_TOKEN"""
_IPV6_HINT: Final = re.compile(r":[0-9A-Fa-f.]*:")
"""two colons of one run: in every candidate _ipv6 replaces (it needs two colons; zones have none)"""
_IPV4_HINT: Final = re.compile(r"\.\d{1,3}\.\d")


def _has_secret_word(text: str, lower: str) -> bool:
    return ("=" in text or ":" in text) and any(word in lower for word in _SECRET_WORDS)


_STEPS: Final[tuple[tuple[re.Pattern[str], _Replacement, _Gate], ...]] = (
    (_URL_USERINFO, r"\1[user]@", lambda t, lo: "@" in t and "://" in t),
    (_EMAIL, "[email]", lambda t, lo: "@" in t or "%40" in t),
    (_HOME, r"\1[user]", lambda t, lo: ("/" in t or "\\" in t)
        and ("home" in lo or "users" in lo or "documents and settings" in lo)),
    (_PRIVATE_KEY, "[token]", lambda t, lo: "-----BEGIN " in t),
    (_SECRET_HEADER, r"\1\2[token]", lambda t, lo: ("=" in t or ":" in t) and (
        "authorization" in lo or "cookie" in lo or "x-api-key" in lo or "x-auth-token" in lo)),
    (_SECRET_PAIR, r"\1[token]", _has_secret_word),
    (_BEARER, r"\1 [token]", lambda t, lo: "bearer" in lo),
    (_KNOWN_TOKEN, "[token]", lambda t, lo: any(mark in t for mark in _TOKEN_MARKS)),
    (_MAC, "[device]", lambda t, lo: t.count(":") >= 5 or t.count("-") >= 5),
    (_IPV6, _ipv6, lambda t, lo: _IPV6_HINT.search(t) is not None),
    (_IPV4, _ipv4, lambda t, lo: _IPV4_HINT.search(t) is not None),
    (_UUID, "[token]", lambda t, lo: t.count("-") >= 4),
    (_LONG_RUN, _long_run, 1),  # a replaced run mixes letters and digits
    (_CARD, _card, 13),
    (_PHONE, _phone, 8),  # _phone keeps matches of fewer than 8 digits
)
