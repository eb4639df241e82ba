"""The one format of a dead-letter note: where the bad input was and why, never its content."""

from __future__ import annotations

import json


def dead_letter_note(stage: str, source: str, reason: str, **where: object) -> bytes:
    """The JSON value of a dead-letter record: ``{"stage", "source", "reason", **where}``, where
    ``where`` locates the input (``partition`` and ``offset`` on a topic; ``line_number`` in a file)."""
    return json.dumps({"source": source, **where, "reason": reason, "stage": stage}, sort_keys=True).encode()
