"""What names a person directly: e-mail addresses, user names in paths and logs, personal names.

- ``[email]``: addresses (RFC 5322 local part, also with an IP-literal domain ``a@[10.0.0.1]``) and
  obfuscated ones: ``name at example dot com``, ``name [at] example [dot] com``, ``name(at)example.com``,
  ``name {at} example {punkt} no``, ``name snabel-a example.no``;
- ``[user]``: the user name in home directories of every OS form (``/home/x``, ``/var/home/x``,
  ``/Users/x``, ``/~x``, ``C:\\Users\\x``, ``C:\\\\Users\\\\x``, ``\\\\server\\home$\\x``, ``\\\\server\\users\\x``,
  ``/var/mail/x``, ``/var/spool/mail/x``, ``Documents and Settings``) and after log phrases (``login
  failed for user x``, ``user=x``, ``username: x``, ``logged in as x``);
- ``[name]``: personal names after a cue (``my name is``, ``jeg heter``, ``regards,``, ``mvh``,
  ``hilsen``, ``dear``, ``kjære``, ``hei``), device names (``Kari's iPhone``, ``Karis iPad``,
  ``iPhone til Kari``), and a first name from :mod:`processors.detect.firstnames` followed by a
  capitalised word (``Ola Nordmann``, ``Emma Smith``).

Deliberately not caught: a first name standing alone without a cue (``Mark``, ``May``, ``Will`` are
words too), names written all in lower case, street addresses (no reliable pattern; free text with
them should be dropped, not scrubbed).
"""

from __future__ import annotations

import re
from typing import Final

from processors.detect.firstnames import FIRST_NAMES

__all__ = ["EMAIL", "HOME", "LOGIN_USER", "OBFUSCATED_EMAIL", "replace_names", "replace_obfuscated_emails"]

_LOCAL: Final = r"[\w.!#$%&*+^`{|}~\-]"
EMAIL: Final = re.compile(
    rf"(?<!{_LOCAL}){_LOCAL}+@(?:[\w\-]+(?:\.[\w\-]+)*\.[^\W\d_][\w\-]*|\[[0-9A-Fa-f:.]+\]|\d{{1,3}}(?:\.\d{{1,3}}){{3}})",
    re.IGNORECASE,
)
_AT: Final = r"(?:\s*[\[({<]\s*(?:at|alfa|snabel-?a)\s*[\])}>]\s*|\s+(?:at|snabel-?a)\s+)"
_DOT_WORD: Final = r"(?:\s*[\[({<]\s*(?:dot|punkt(?:um)?)\s*[\])}>]\s*|\s+(?:dot|punkt(?:um)?)\s+|\.)"
_DOMAIN_TAIL: Final = rf"[\w\-]{{1,63}}(?:{_DOT_WORD}[\w\-]{{1,63}}){{0,3}}{_DOT_WORD}[a-z]{{2,12}}\b(?![(.\-])"
OBFUSCATED_EMAIL: Final = re.compile(rf"(?<![\w.\-])[\w.\-+]{{1,64}}{_AT}{_DOMAIN_TAIL}", re.IGNORECASE)
"""``name at example dot com``: needs the "at" and at least one "dot" (or ".") before a top-level
domain, so "meet at noon" stays; a "domain" followed by "(" or "." is code ("Exception at
com.example.App.run(App.java:42)"), not an address"""
HOME: Final = re.compile(
    r"(?=[\\/~])((?:(?:\\{1,2}|/)(?:home|homes|users|documents and settings|mail|spool/mail|home\$)(?:\\{1,2}|/))"
    r"|(?<![\w~])/~|(?<![\w/])~(?=[A-Za-z]))"
    r"(?!\[\w+\])"
    r"(?:[^\\/\s:*?\"'<>|]+(?: [^\\/\s:*?\"'<>|]+){1,3}(?=\\)|[^\\/\s:*?\"'<>|,;)\]}]+)",
    re.IGNORECASE,
)
LOGIN_USER: Final = re.compile(
    r"(?=[fFaAlLuUbB])\b((?:for|as)\s+user(?:name)?\s+|logged\s+in\s+as\s+|\buser(?:name)?\s*[=:]\s*|\blogin\s*[=:]\s*"
    r"|\bbruker(?:navn)?\s*[=:]\s*|for\s+bruker(?:en)?\s+)([\"'`]?)(?!\[)[^\s\"'`,;)]+",
    re.IGNORECASE,
)

_WORD: Final = r"[A-ZÆØÅÄÖÜÉ][a-zæøåäöüéè]+(?:-[A-ZÆØÅÄÖÜÉ][a-zæøåäöüéè]+)?"
_CUED: Final = re.compile(
    r"(\b(?i:my name is|my name's|i am called|jeg heter|mitt navn er|navnet mitt er|regards,?|mvh\.?|"
    r"hilsen,?|dear|kjære|signed,?|sincerely,?|yours,?)\s+)"
    rf"({_WORD}(?:\s+{_WORD}){{0,2}})"
)
_GREETED: Final = re.compile(
    rf"(?=[hHcCtTfFuUbB])(\b(?i:hei|hi|hello|hallo|cheers|thanks|takk|from|fra|to|til|user|bruker),?\s+)({_WORD})"
)
_DEVICE: Final = re.compile(
    rf"\b{_WORD}(?:'s|’s|s)\s+(?=(?:iPhone|iPad|iPod|MacBook|iMac|Mac|Galaxy|Pixel|phone|laptop|PC|telefon|mobil)\b)"
)
_DEVICE_OWNER: Final = re.compile(
    rf"\b((?:iPhone|iPad|MacBook|Galaxy|Pixel|telefon|mobil)\s+(?:til|tilhørende|de|von|of)\s+){_WORD}"
)
_LISTED: Final = re.compile(rf"(?=[A-ZÆØÅÄÖÜÉ])\b({_WORD})(\s+{_WORD}){{1,2}}")


_CUE_MARKS: Final = ("name", "heter", "navn", "regards", "mvh", "hilsen", "dear", "kjære", "signed", "sincerely",
                     "yours", "called")
"""a part of every cue _CUED matches"""
_DEVICE_MARKS: Final = ("iphone", "ipad", "macbook", "galaxy", "pixel", "telefon", "mobil")


OBFUSCATED_HINT: Final = re.compile(rf"(?=[\s\[({{<]){_AT}{_DOMAIN_TAIL}", re.IGNORECASE)
"""the part of an obfuscated address after the local part: searched first, as it can only start at a
space or a bracket (the full pattern tries every word)"""


def replace_obfuscated_emails(text: str) -> str:
    """``text`` with ``name at example dot com``-style addresses replaced by ``[email]``."""
    if OBFUSCATED_HINT.search(text) is None:
        return text
    return OBFUSCATED_EMAIL.sub("[email]", text)


def _cued(match: re.Match[str]) -> str:
    return match.group(1) + "[name]"


def _greeted(match: re.Match[str]) -> str:
    return match.group(1) + "[name]" if match.group(2).lower() in FIRST_NAMES else match.group()


def _listed(match: re.Match[str]) -> str:
    return "[name]" if match.group(1).lower() in FIRST_NAMES else match.group()


def replace_names(text: str) -> str:
    """``text`` with personal names (see the module docstring) replaced by ``[name]``."""
    lower = text.lower()
    if any(cue in lower for cue in _CUE_MARKS):
        text = _CUED.sub(_cued, text)
    if "s " in text or "’s" in text:
        text = _DEVICE.sub("[name]'s ", text)
    if any(device in lower for device in _DEVICE_MARKS):
        text = _DEVICE_OWNER.sub(r"\1[name]", text)
    text = _GREETED.sub(_greeted, text)
    return _LISTED.sub(_listed, text)
