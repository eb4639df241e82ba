"""Free-text scrubbing: search terms, error reports and crash dumps lose what identifies people.

The detectors live in :mod:`processors.detect` (shared with the URL rules): this module only bounds
the length. Every pattern there runs in linear time (runs are matched only from their first character,
repetitions are bounded or possessive, nothing nests an unbounded quantifier inside another).
"""

from __future__ import annotations

from typing import Final

from processors.detect import scrub_decoded
from processors.detect.decode import decode

__all__ = ["MAX_TEXT_LENGTH", "TRUNCATED", "scrub_text"]

MAX_TEXT_LENGTH: Final = 64 * 1024
"""Characters kept; the rest is cut off and ``" [truncated]"`` appended."""
TRUNCATED: Final = " [truncated]"
_MARGIN: Final = 1024
"""characters past the cut that are scrubbed too, so a value cut in half at the boundary is still
seen whole by the detectors (and then cut as a placeholder, not as a readable half)"""


def scrub_text(text: str | None) -> str | None:
    """Replace personal data in free text with typed placeholders (``[email]``, ``[phone]``, ...).

    The text is decoded first (JSON escapes, HTML references, %-encoding, NFKC, invisible
    characters: see :mod:`processors.detect.decode`) and the *decoded* form, scrubbed, is returned.
    What each detector catches and keeps is in :mod:`processors.detect` and README.md. Text over
    :data:`MAX_TEXT_LENGTH` characters is scrubbed a little past the cut, then cut at the last
    whitespace before it (so no half value survives) and ``" [truncated]"`` appended.

    ``None`` and non-strings give ``None``. Never raises for any string.
    """
    if not isinstance(text, str):
        return None
    truncated = len(text) > MAX_TEXT_LENGTH
    if truncated:
        text = text[:MAX_TEXT_LENGTH + _MARGIN]
    text = scrub_decoded(decode(text))
    if truncated or len(text) > MAX_TEXT_LENGTH:
        return _cut(text) + TRUNCATED
    return text


def _cut(text: str) -> str:
    if len(text) <= MAX_TEXT_LENGTH:
        return text
    head = text[:MAX_TEXT_LENGTH]
    if not text[MAX_TEXT_LENGTH].isspace():
        cut = max(head.rfind(c) for c in " \t\r\n")
        head = head[:cut] if cut >= 0 else ""
    return head
