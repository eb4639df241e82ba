"""The purposes the policy names and their legal bases, from schemas/purposes.json."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from datamin.exceptions import SchemaError

BASES = ("consent", "legitimate_interest", "legal_obligation", "vital_interests")


@dataclass(frozen=True, slots=True)
class Purpose:
    name: str
    policy: str
    """the policy's own words for it"""
    basis: str
    consent: str | None
    """the consent category that must be granted, when the basis is consent"""


def load_purposes(path: Path) -> dict[str, Purpose]:
    """Reads and validates the purpose catalogue."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SchemaError(path.name, f"cannot be read as JSON: {exc}") from exc
    categories = doc.get("consent_categories", [])
    result: dict[str, Purpose] = {}
    for name, spec in doc.get("purposes", {}).items():
        basis = spec.get("basis")
        consent = spec.get("consent")
        if basis not in BASES:
            raise SchemaError(path.name, f"basis {basis!r} is not one of {', '.join(BASES)}", name)
        if (basis == "consent") != (consent is not None):
            raise SchemaError(path.name, "a consent basis needs a consent category, and only it", name)
        if consent is not None and consent not in categories:
            raise SchemaError(path.name, f"consent {consent!r} is not one of {categories}", name)
        result[name] = Purpose(name, str(spec.get("policy", "")), basis, consent)
    if not result:
        raise SchemaError(path.name, "names no purposes")
    return result
