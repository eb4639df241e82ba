"""Patterns more than one transform looks for, written once."""

from __future__ import annotations

import re
from typing import Final

# Local part: RFC 5322 atext and dots, except / = ? ' (path, query and quoting characters).
_LOCAL: Final = r"[\w.!#$%&*+^`{|}~\-]"
_DOT: Final = r"(?:\.|%2e)"  # a percent-encoded dot counts
EMAIL: Final = re.compile(
    rf"(?<!{_LOCAL}){_LOCAL}+(?:@|%40)[\w\-]+(?:{_DOT}[\w\-]+)*{_DOT}[^\W\d_][\w\-]*", re.IGNORECASE
)
"""an e-mail address, also percent-encoded (``%40``, ``%2e``); the look-behind makes every search start
only at the beginning of a run: linear time"""
