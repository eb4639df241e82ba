"""Size limits every event obeys, whichever way it arrives (JSON, Avro bytes) or leaves (encode).

fastavro never allocates more than the bytes it is given (a declared length beyond the input ends
in EOFError), so decoding is bounded by the input's size; these limits bound what a single field may
hold, the same in every path, so that what one path accepts the others accept too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MAX_STRING = 256 * 1024
"""longest string accepted in any field, in characters"""
MAX_MAP_ENTRIES = 64
"""most entries accepted in a map field (e.g. client hints)"""


def oversized(record: Mapping[str, Any]) -> str | None:
    """The first problem with a field's size, as '<field>: <problem>', or None when all fit.

    Looks at top-level strings and maps of strings, the only containers datamin's schemas use."""
    for name, value in record.items():
        if isinstance(value, str):
            if len(value) > MAX_STRING:
                return f"{name}: longer than {MAX_STRING} characters"
        elif isinstance(value, Mapping):
            if len(value) > MAX_MAP_ENTRIES:
                return f"{name}: more than {MAX_MAP_ENTRIES} entries"
            for key, item in value.items():
                if (isinstance(key, str) and len(key) > MAX_STRING) or (
                        isinstance(item, str) and len(item) > MAX_STRING):
                    return f"{name}: an entry is longer than {MAX_STRING} characters"
    return None
