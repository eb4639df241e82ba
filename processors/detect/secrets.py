"""Credentials: ``[token]`` for secrets, ``[user]`` for the user part of URL credentials.

- URL credentials: ``scheme://user[:password]@host`` -> ``scheme://[user]@host``;
- private-key blocks (also JSON-escaped), ``Authorization``/``Cookie``/``X-Api-Key`` header values,
  ``Bearer`` credentials;
- assignments to secret-sounding keys, in English and Norwegian: ``password``, ``passord``,
  ``passwd``, ``pwd``, ``pin``, ``secret``, ``token``, ``api_key``, ``session_id``, ``sid``,
  ``passphrase``, ``hemmelig`` ... followed by ``=`` or ``:`` (also inside JSON);
- well-known key formats: JWT, Stripe ``sk_live_``, AWS ``AKIA``, GitHub ``ghp_``, GitLab ``glpat-``,
  Slack ``xox?-``, Google ``AIza``, OpenAI-style ``sk-``;
- long random-looking runs: 20+ characters of ``[A-Za-z0-9+/=_-]`` mixing letters and digits with
  high character entropy (so ``wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY`` and 20-character
  session ids go, ``x86_64-linux-gnu`` and ``top-10-tips-2024`` stay).

Kept on purpose: canonical UUIDs (request and event ids), 40- and 64-digit hex digests (git SHAs,
SHA-256 checksums), lower-case slugs, file paths made of words.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Final

__all__ = ["BEARER", "KNOWN_TOKEN", "PRIVATE_KEY", "SECRET_HEADER", "SECRET_PAIR", "URL_USERINFO", "is_random_token",
           "replace_runs"]

URL_USERINFO: Final = re.compile(r"\b([A-Za-z][A-Za-z0-9+.\-]{0,15}://)[^\s/?#@]{1,256}@")
PRIVATE_KEY: Final = re.compile(
    r"-----BEGIN [A-Z ]{0,20}PRIVATE KEY-----[A-Za-z0-9+/=\s\\]*"  # also with JSON-escaped \\n
    r"(?:-----END [A-Z ]{0,20}PRIVATE KEY-----)?"
)
SECRET_HEADER: Final = re.compile(
    r"\b((?:proxy-)?authorization|cookie|set-cookie|x-api-key|x-auth-token)"
    r"([\"']?[ \t]*[:=][ \t]*[\"']?)[^\r\n\"']+",
    re.IGNORECASE,
)
SECRET_PAIR: Final = re.compile(
    # the look-behind lets "csrf_token", "client_secret" and "db-password" match at the key
    r"(?=[PpSsAaTtJjHh])(?<![A-Za-z0-9])((?:password|passwd|passord|passphrase|passcode|pass|pwd|pin|hemmelig|"
    r"secret[_\-]?(?:access[_\-]?)?key|secret|access[_\-]?key|token|api[_\-]?key|apikey|"
    r"private[_\-]?key|session[_\-]?id|sessid|phpsessid|jsessionid|sid)"
    r"[\"']?[ \t]*[:=][ \t]*)"
    r"(\"[^\"\r\n]*\"?|'[^'\r\n]*'?|[^\s\"'&,;<>]+)",  # always succeeds once started: linear
    re.IGNORECASE,
)
BEARER: Final = re.compile(r"\b(bearer|basic)\s+[A-Za-z0-9\-._~+/]{8,}=*", re.IGNORECASE)
KNOWN_TOKEN: Final = re.compile(
    r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"  # JWT
    r"|\b[spr]k_(?:live|test)_[A-Za-z0-9]{8,}"  # Stripe
    r"|\bsk-[A-Za-z0-9_\-]{20,}"  # OpenAI and others
    r"|\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[A-Z0-9]{16}\b"  # AWS access key id
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}|\bgithub_pat_[A-Za-z0-9_]{30,}"  # GitHub
    r"|\bglpat-[A-Za-z0-9_\-]{20,}"  # GitLab
    r"|\bxox[abposr]-[A-Za-z0-9\-]{10,}"  # Slack
    r"|\bAIza[A-Za-z0-9_\-]{35}"  # Google API key
)
_RUN: Final = re.compile(r"(?<![A-Za-z0-9+/_\-])[A-Za-z0-9+/_\-]{20,}+={0,2}(?![A-Za-z0-9+/=_\-])")
_NO_DIGIT: Final = re.compile(r"[^0-9]*")
_LETTER: Final = re.compile(r"[A-Za-z]")
_UUID: Final = re.compile(r"[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}")
_HEX: Final = re.compile(r"[0-9a-f]+|[0-9A-F]+")
_SLUG: Final = re.compile(r"(?:[a-z]+|[0-9]{1,4})(?:[-_./](?:[a-z]+|[0-9]{1,4}))*")
_WORDY: Final = re.compile(r"(?:(?:[A-Z]?[a-z]{2,}|[A-Z]{2,5})[0-9]{0,3})+|[a-z][0-9]{1,3}|[0-9]{1,4}|[a-z]{1,2}")
"""a piece of a name made of words: "libssl", "x86", "64", "ipv6", "FooBar2Baz", "HTTPServer"; random
runs ("aB3dE5fG7h", "k3j4h5g6f7") are not"""


def _entropy(text: str) -> float:
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def is_random_token(run: str) -> bool:
    """Whether a run of 20+ token characters is a random secret or id rather than words or a digest."""
    if run.isalpha() or _NO_DIGIT.fullmatch(run) or not _LETTER.search(run):
        return False
    if _UUID.fullmatch(run):
        return False
    if _HEX.fullmatch(run):
        return len(run) not in (40, 64)  # git SHAs and SHA-256 digests stay; other hex ids go
    if _SLUG.fullmatch(run):
        return False
    pieces = [p for p in re.split(r"[-_./+=]", run) if p]
    if all(_WORDY.fullmatch(p) for p in pieces):
        return False  # CamelCase words and short numbers: "x86_64-linux-gnu", "FooBar2Baz"
    return _entropy(run) >= 3.3


def _run(match: re.Match[str]) -> str:
    return "[token]" if is_random_token(match.group()) else match.group()


def replace_runs(text: str) -> str:
    """``text`` with long random-looking runs replaced by ``[token]``."""
    return _RUN.sub(_run, text)
