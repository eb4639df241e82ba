"""Numbers that identify people, told apart from numbers that do not, by validation.

A *candidate* is a run of digit groups joined by single separators (space, ``-``, ``.``, ``/``),
optionally opened by ``+`` or an ``(area)``. Inside it, windows of consecutive groups are tried from
the left, longest first, so two phone numbers written side by side are both found. A window is
replaced only when a validator accepts it:

- ``[card]``: 13-19 digits, Luhn-valid, with a card network's prefix (Visa, Mastercard, Amex,
  Discover, JCB, Diners, Maestro, UnionPay);
- ``[device]``: an IMEI (15 digits, Luhn) or an ICCID (19-20 digits from ``89``, Luhn);
- ``[national_id]``: a Norwegian fødselsnummer or D-number (11 digits, date and two check digits);
- ``[account]``: a Norwegian bank account number (11 digits, mod-11); IBANs are found by
  :data:`IBAN` (letters and digits);
- ``[phone]``: a number ``phonenumbers`` (libphonenumber) calls valid: international with ``+``
  or ``00``, national in the configured default region (``NO`` unless configured), or North
  American when written the North American way (``(415) 555-2671``, ``415-555-2671``).

Kept, because a validator proves them something else or none accepts them: order numbers, byte
counts, Norwegian organisation numbers (9 digits, mod-11), EAN-13 barcodes that are not also a
card, amounts after a currency (``NOK 12 345 678``, ``kr 99 999 999``, ``$ 4 155 552 671``),
dates and times, versions.
"""

from __future__ import annotations

import functools
import re
from typing import Final

import phonenumbers
from stdnum import ean, iban, luhn
from stdnum.no import fodselsnummer, kontonr

__all__ = ["IBAN", "NUMBER", "replace_numbers", "replace_iban"]

NUMBER: Final = re.compile(
    r"(?=[+(0-9])(?:(?<![\w+])|(?<=tlf)|(?<=tel)|(?<=mob)|(?<=fax)|(?<=phone)|(?<=Tlf)|(?<=Tel)|(?<=TLF)|(?<=TEL))"
    r"(?=[+(]?(?:\d[ \-./()]{0,2}){7})"  # seven digits ahead, or no validator could accept it: skip early
    r"(?:\+|00(?=[1-9]))?(?:\(\d{1,4}\)[ \-]?)?\d++(?:[ \-./]\d++)*+(?!\w)"
)
"""a candidate: digit groups joined by single separators, not inside a word (but right after a
phone cue: ``tlf91234567``)"""
IBAN: Final = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])")
_CURRENCY: Final = re.compile(r"(?:nok|kr|sek|dkk|eur|usd|gbp|chf|\$|€|£|¥)\.?\s{0,2}\Z", re.IGNORECASE)
_DATE: Final = re.compile(r"\d{4}[\-/.]\d{1,2}[\-/.]\d{1,2}|\d{1,2}[\-/.]\d{1,2}[\-/.]\d{2,4}|\d{1,2}:\d{2}")
_NANP: Final = re.compile(r"(?:\+?1[ \-.]?)?(?:\(\d{3}\)[ \-]?|\d{3}[\-.])\d{3}[\-.]\d{4}")
_CARD_PREFIX: Final = re.compile(r"4|5[1-5]|2[2-7]|3[47]|6(?:011|5|4[4-9]|2)|35|3(?:0[0-5]|[68])|5[06-9]|6")

_region = "NO"


def set_default_region(region: str) -> None:
    """Set the region whose national phone format is recognised (an ISO 3166 code, e.g. ``NO``).
    Raises ValueError for a region libphonenumber does not know."""
    global _region
    if region.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"{region!r} is not a region libphonenumber knows; use an ISO 3166 code such as NO")
    _region = region.upper()
    _classify.cache_clear()


def _luhn(digits: str) -> bool:
    return luhn.is_valid(digits)


@functools.lru_cache(maxsize=8192)
def _classify(window: str) -> str | None:
    """The placeholder for one window of a candidate (digits and separators), or None to keep it."""
    digits = "".join(c for c in window if c.isdigit())
    n = len(digits)
    if n < 7 or _DATE.fullmatch(window):
        return None
    if 19 <= n <= 20 and digits.startswith("89") and _luhn(digits):
        return "device"  # ICCID (SIM card)
    if n == 13 and ean.is_valid(digits):
        return None  # a barcode (EAN-13): 13-digit cards are all but retired
    if 13 <= n <= 19 and (n != 15 or digits[:2] in ("34", "37")) and _CARD_PREFIX.match(digits) and _luhn(digits):
        return "card"  # of 15 digits only American Express; other 15-digit Luhn numbers are IMEIs
    if n == 16 and digits[0] in "3456" and re.fullmatch(r"\d{4}([ \-]?)\d{4}\1\d{4}\1\d{4}", window):
        return "card"  # sixteen digits written as a card is: a card number, mistyped or not
    if n == 15 and _luhn(digits):
        return "device"  # IMEI
    if n == 11:
        if fodselsnummer.is_valid(digits):
            return "national_id"
        if kontonr.is_valid(digits) and not window.startswith("+"):
            return "account"
    if n > 17:
        return None
    return "phone" if _is_phone(window, digits) else None


def number_kind(candidate: str) -> str | None:
    """What a run of digits (with separators, ``+`` or ``(area)``) validates as: "phone", "card",
    "national_id", "account", "device", or None. For others that look for the same things (the
    warehouse's leak scan), so that both call the same numbers personal."""
    return _classify(candidate.strip())


def _is_phone(window: str, digits: str) -> bool:
    try:
        if window.startswith("+") or window.startswith("00"):
            number = phonenumbers.parse("+" + digits[2:] if window.startswith("00") else "+" + digits, None)
        elif _NANP.fullmatch(window):
            number = phonenumbers.parse(window, "US")
        else:
            number = phonenumbers.parse(digits, _region)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(number)


_GROUP: Final = re.compile(r"\+|\(\d{1,4}\)[ \-]?|\d+|[ \-./]")


def _digits(group: str) -> int:
    return sum(c.isdigit() for c in group)


def _replace_candidate(candidate: str) -> str:
    if _DATE.fullmatch(candidate):
        return candidate
    parts = _GROUP.findall(candidate)
    # join "+" and "(area)" with the group after them: they are not places to cut
    groups: list[str] = []
    seps: list[str] = []
    pending = ""
    for part in parts:
        if part == "+" or part.startswith("("):
            pending += part
        elif part.isdigit():
            groups.append(pending + part)
            pending = ""
        else:
            seps.append(part)
    if len(groups) == 1 and len(seps) == 0:
        return "[" + label + "]" if (label := _classify(groups[0])) else candidate
    out: list[str] = []
    i = 0
    while i < len(groups):
        found = None
        j, digits = i, 0
        while j < len(groups) and digits + _digits(groups[j]) <= 20:  # windows of at most 20 digits
            digits += _digits(groups[j])
            j += 1
        while j > i:
            window = groups[i] + "".join(seps[k] + groups[k + 1] for k in range(i, j - 1))
            found = _classify(window)
            if found:
                break
            j -= 1
        if found:
            out.append(f"[{found}]")
            i = j
        else:
            out.append(groups[i])
            i += 1
        if i < len(groups):
            out.append(seps[i - 1])
    return "".join(out)


def replace_numbers(text: str) -> str:
    """``text`` with every validated card, device, national id, account and phone number replaced."""
    out: list[str] = []
    last = 0
    for match in NUMBER.finditer(text):
        candidate = match.group()
        if sum(c.isdigit() for c in candidate) < 7:
            continue
        start = match.start()
        if start and _CURRENCY.search(text, max(0, start - 6), start):
            continue  # an amount: "NOK 12 345 678"
        if start and text[start - 1] in "._" and text[start - 2:start - 1].isalnum():
            continue  # a version or a name's tail: "Chrome/120.0.6099.109", "build_20240101"
        replaced = _replace_candidate(candidate)
        if replaced != candidate:
            out.append(text[last:start])
            out.append(replaced)
            last = match.end()
    if not out:
        return text
    out.append(text[last:])
    return "".join(out)


def _iban(match: re.Match[str]) -> str:
    return "[account]" if iban.is_valid(match.group()) else match.group()


def replace_iban(text: str) -> str:
    """``text`` with every valid IBAN replaced by ``[account]``."""
    return IBAN.sub(_iban, text)
