"""GPS coordinates -> ``[location]``.

Caught: a decimal latitude/longitude pair with at least three decimals each (about 100 m), separated
by a comma, a semicolon or spaces (``59.91387, 10.75225``, ``59.9139 10.7522``, ``@59.9139,10.7522,15z``
in map URLs, ``geo:59.9,10.7`` with any precision), within range (latitude ±90, longitude ±180);
and degrees-minutes-seconds (``59°54'50"N 10°45'8"E``, one coordinate is enough).

Kept: pairs with fewer decimals (``4.2, 10.7`` are versions or amounts more often than places),
single decimal numbers.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["replace_coordinates"]

_PAIR: Final = re.compile(
    r"(?=[\-0-9gGlLqQ@])(?<![\d.])(geo:|ll=|q=|@)?(-?\d{1,2}\.(\d{1,15}))(\s*[,;]\s*|\s+)(-?\d{1,3}\.(\d{1,15}))(?![\d.]\d)"
)
_HINT: Final = re.compile(r"\.[0-9]{3}|geo:")
"""in every pair _pair replaces: three decimals, or the geo: scheme"""
_DMS: Final = re.compile(r"\d{1,3}\s?°\s?\d{1,2}\s?['′]\s?(?:\d{1,2}(?:[.,]\d+)?\s?(?:\"|″|'')\s?)?[NSEWØV]?")


def _pair(match: re.Match[str]) -> str:
    prefix, lat, lat_decimals, separator, lon, lon_decimals = match.groups()
    if abs(float(lat)) > 90 or abs(float(lon)) > 180:
        return match.group()
    least = 4 if separator.isspace() else 3  # "took 12.345 23.456" is two timings more often
    if prefix != "geo:" and (len(lat_decimals) < least or len(lon_decimals) < least):
        return match.group()
    return (prefix or "") + "[location]"


def replace_coordinates(text: str) -> str:
    """``text`` with GPS coordinates replaced by ``[location]``."""
    if "°" in text:
        text = _DMS.sub("[location]", text)
    if _HINT.search(text) is None:
        return text
    return _PAIR.sub(_pair, text)
