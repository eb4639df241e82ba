"""Undo the encodings that hide personal data from patterns, before any detector looks.

Detection runs on the decoded form, and **the decoded form is what is kept** (with placeholders where
something was found): mapping each replacement back into the original encoding would leave the
encoded neighbours of a find (a half-encoded address, an entity) to a second reading. So a scrubbed
text reads as a person would read it: ``alice&#64;example.com`` comes out as ``[email]``, and a
harmless ``caf%C3%A9`` as ``café``.

Steps, each only when a character it needs is present (so ordinary ASCII text costs a few ``in``
tests), repeated until nothing changes (at most :data:`MAX_ROUNDS` rounds, so ``%2540`` decodes too):

1. JSON escapes: ``\\uXXXX`` (with surrogate pairs) and ``\\/``;
2. HTML character references: ``&#64;``, ``&#x40;``, ``&commat;``, ``&amp;`` ...;
3. %-decoding (UTF-8; ``+`` is left alone, as it is a plus in paths and phone numbers);
4. Unicode NFKC (full-width ``＠``, ``﹫``, mathematical letters and digits become ASCII);
5. removal of every format character (category Cf: zero-width, bidi controls, soft hyphen, tag
   characters ...) and of control characters other than tab, newline and carriage return.
"""

from __future__ import annotations

import html
import re
import sys
import unicodedata
from typing import Final
from urllib.parse import unquote

__all__ = ["MAX_ROUNDS", "decode"]

MAX_ROUNDS: Final = 4
"""decoding rounds at most: more layers than this are not seen in honest traffic"""


def _invisible_class() -> str:
    ranges: list[tuple[int, int]] = []
    for code in range(sys.maxunicode + 1):
        if unicodedata.category(chr(code)) == "Cf" or (code < 0x20 and code not in (9, 10, 13)) or code == 0x7F:
            if ranges and ranges[-1][1] == code - 1:
                ranges[-1] = (ranges[-1][0], code)
            else:
                ranges.append((code, code))
    return "".join(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges)


_INVISIBLE: Final = re.compile(f"[{_invisible_class()}]")
_ASCII_INVISIBLE: Final = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_JSON_ESCAPE: Final = re.compile(
    r"\\u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})|\\u([0-9a-fA-F]{4})|\\/"
)
_PERCENT: Final = re.compile(r"%[0-9A-Fa-f]{2}")


def _json_unescape(match: re.Match[str]) -> str:
    high, low, single = match.groups()
    if single is not None:
        return chr(int(single, 16))
    if high is not None:
        return chr(0x10000 + ((int(high, 16) - 0xD800) << 10) + (int(low, 16) - 0xDC00))
    return "/"


def _decode_once(text: str) -> str:
    if "\\" in text:
        text = _JSON_ESCAPE.sub(_json_unescape, text)
    if "&" in text:
        text = html.unescape(text)
    if "%" in text and _PERCENT.search(text) is not None:
        text = unquote(text, errors="replace")
    if text.isascii():
        return _ASCII_INVISIBLE.sub("", text) if not text.isprintable() else text
    return _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))


def decode(text: str) -> str:
    """``text`` with JSON escapes, HTML references and %-encoding undone, NFKC-normalised and
    cleared of invisible characters, repeatedly (see the module docstring). Never raises."""
    for _ in range(MAX_ROUNDS):
        decoded = _decode_once(text)
        if decoded == text:
            return decoded
        text = decoded
    return text
