"""Generalisation of request attributes to coarse, non-identifying values."""

from __future__ import annotations

import functools
import re
from typing import Final

__all__ = ["country_code", "primary_language"]

MAX_ACCEPT_LANGUAGE: Final = 1024
"""Longer Accept-Language headers are not parsed (``None``)."""

_LANGUAGE_RANGE: Final = re.compile(r"([A-Za-z]{1,8})(?:[-_][A-Za-z0-9]{1,8})*")
_QUALITY: Final = re.compile(r"[qQ][ \t]*=[ \t]*(0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)")

# ISO 3166-1 alpha-2, officially assigned codes, plus XK (Kosovo), which CDNs and the EU use.
_COUNTRIES: Final = frozenset(
    """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ
    BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM
    DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS
    GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN
    KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ
    MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
    PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV
    SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI
    VN VU WF WS YE YT ZA ZM ZW XK
    """.split()
)
_ALIASES: Final = {"UK": "GB"}  # exceptionally reserved, still sent by some sources


def primary_language(accept_language: str | None) -> str | None:
    """Return the primary subtag (2-3 letters, lower-case) of the most preferred language.

    ``"nb-NO,nb;q=0.9,en;q=0.8"`` -> ``"nb"``. The entry with the highest ``q`` wins; ties go
    to the first listed. Entries with ``q=0``, a malformed ``q``, ``*`` or a primary subtag
    that is not 2-3 letters (``i-klingon``, ``x-private``) are skipped; ``en_US`` is accepted.
    ``None`` when nothing usable remains, for non-strings and for headers over 1 KiB.
    """
    if not isinstance(accept_language, str) or len(accept_language) > MAX_ACCEPT_LANGUAGE:
        return None
    return _primary_language(accept_language)


@functools.lru_cache(maxsize=1024)
def _primary_language(header: str) -> str | None:
    best: str | None = None
    best_q = 0.0
    for entry in header.split(","):
        tag, _, params = entry.partition(";")
        match = _LANGUAGE_RANGE.fullmatch(tag.strip())
        if match is None or not 2 <= len(match.group(1)) <= 3:
            continue
        quality = _quality(params)
        if quality is not None and quality > best_q:
            best, best_q = match.group(1).lower(), quality
    return best


def _quality(params: str) -> float | None:
    """The ``q`` weight of one entry: 1.0 when absent, None when malformed."""
    params = params.strip()
    if not params:
        return 1.0
    for param in params.split(";"):
        param = param.strip()
        if param[:1] in ("q", "Q"):
            match = _QUALITY.fullmatch(param)
            return float(match.group(1)) if match else None
    return 1.0


def country_code(value: str | None) -> str | None:
    """Normalise a country header value to an ISO 3166-1 alpha-2 code, upper-case.

    ``"no"`` -> ``"NO"``, ``" se "`` -> ``"SE"``, ``"UK"`` -> ``"GB"``. Unknown or special
    values such as ``"XX"`` (unknown), ``"T1"`` (Tor), ``"A1"``/``"A2"`` (proxies),
    ``"EU"``/``"AP"``, empty strings, non-strings and anything that is not an assigned code
    give ``None``.
    """
    if not isinstance(value, str) or len(value) > 16:
        return None
    code = value.strip()
    if not code.isascii():  # "n\u0131".upper() == "NI": only ASCII letters are codes
        return None
    code = _ALIASES.get(code.upper(), code.upper())
    return code if code in _COUNTRIES else None
