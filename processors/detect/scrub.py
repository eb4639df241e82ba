"""All detectors in one order, each skipped when a cheap gate shows it cannot match.

The order matters: credentials before e-mails (``https://pw@host`` is no address), e-mails and
paths before names, MACs before IPs (``00:1a:...`` is no IPv6), IPs and coordinates before the
number validators, random-token runs before numbers (a digit run inside a token is no phone).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from processors.detect import geo, network, numbers, people, secrets

__all__ = ["PLACEHOLDER", "RULES", "scrub_decoded"]

RULES: Final = ("email", "user", "token", "device", "ip", "location", "account", "card", "national_id",
                "phone", "name")
"""every placeholder a detector writes, as ``[rule]`` in text and ``{rule}`` in URLs"""
PLACEHOLDER: Final = re.compile(r"[\[{](" + "|".join(RULES) + r")[\]}]")
"""finds placeholders in an output, to count them per rule"""

_Gate = Callable[[str, str], bool] | None
"""(text, lower-cased text) -> whether the step can match; None: always run"""
_Step = tuple[Callable[[str], str], _Gate]


def _sub(pattern: re.Pattern[str], replacement: str | Callable[[re.Match[str]], str]) -> Callable[[str], str]:
    def step(text: str) -> str:
        return pattern.sub(replacement, text)
    return step


_SECRET_WORDS: Final = ("pass", "pwd", "pin", "hemmelig", "secret", "access", "token", "api", "private", "sess",
                        "sid")
_TOKEN_MARKS: Final = ("eyJ", "k_live_", "k_test_", "sk-", "AKIA", "ASIA", "AGPA", "AIDA", "AROA", "ghp_", "gho_",
                       "ghu_", "ghs_", "ghr_", "github_pat_", "glpat-", "xox", "AIza")
_OBFUSCATED_MARKS: Final = (" at ", "at]", "at)", "at}", "at>", "snabel", "alfa")
_HOME_MARKS: Final = ("home", "users", "documents and settings", "mail", "~")
_LOGIN_MARKS: Final = ("user", "login", "logged", "bruker")
_DIGITS: Final = str.maketrans("", "", "0123456789")


def _digit_count(text: str) -> int:
    return len(text) - len(text.translate(_DIGITS))


STEPS: Final[tuple[_Step, ...]] = (
    (_sub(secrets.URL_USERINFO, r"\1[user]@"), lambda t, lo: "@" in t and "://" in t),
    (_sub(secrets.PRIVATE_KEY, "[token]"), lambda t, lo: "-----BEGIN " in t),
    (_sub(secrets.SECRET_HEADER, r"\1\2[token]"), lambda t, lo: ("=" in t or ":" in t) and (
        "authorization" in lo or "cookie" in lo or "x-api-key" in lo or "x-auth-token" in lo)),
    (_sub(secrets.SECRET_PAIR, r"\1[token]"),
     lambda t, lo: ("=" in t or ":" in t) and any(w in lo for w in _SECRET_WORDS)),
    (_sub(secrets.BEARER, r"\1 [token]"), lambda t, lo: "bearer" in lo or "basic" in lo),
    (_sub(secrets.KNOWN_TOKEN, "[token]"), lambda t, lo: any(mark in t for mark in _TOKEN_MARKS)),
    (_sub(people.EMAIL, "[email]"), lambda t, lo: "@" in t),
    (people.replace_obfuscated_emails, lambda t, lo: any(m in lo for m in _OBFUSCATED_MARKS)),
    (_sub(people.HOME, r"\1[user]"), lambda t, lo: any(m in lo for m in _HOME_MARKS)),
    (_sub(people.LOGIN_USER, r"\1\2[user]"), lambda t, lo: any(m in lo for m in _LOGIN_MARKS)),
    (network.replace_macs, lambda t, lo: len(t) >= 12),
    (network.replace_ips, lambda t, lo: ":" in t or "." in t or "ip-" in lo),
    (geo.replace_coordinates, lambda t, lo: "." in t or "°" in t),
    (numbers.replace_iban, lambda t, lo: len(t) >= 15 and t != lo),
    (secrets.replace_runs, lambda t, lo: len(t) >= 20),
    (numbers.replace_numbers, lambda t, lo: _digit_count(t) >= 7),
    (people.replace_names, lambda t, lo: t != lo),
)


def scrub_decoded(text: str) -> str:
    """``text`` (already decoded, see :func:`processors.detect.decode`) with every detector's finds
    replaced by ``[rule]`` placeholders. Never raises for any string."""
    if not text.isascii():
        # case-insensitive matching has non-ASCII equivalents ("ı", "K"): gates on lower() could miss
        for step, _gate in STEPS:
            text = step(text)
        return text
    lower = text.lower()
    for step, gate in STEPS:
        if gate is not None and not gate(text, lower):
            continue
        scrubbed = step(text)
        if scrubbed is not text and scrubbed != text:
            text, lower = scrubbed, scrubbed.lower()
    return text
