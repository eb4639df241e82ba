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
    objection: str | None = None
    """for a legitimate interest a person may object to: the consent category whose refusal (or an
    objection signal such as GPC) stops it (`with_marketing_basis`)"""


MARKETING_PURPOSE = "marketing_effectiveness"
"""the purpose whose basis ``minimise.marketing_basis`` chooses"""


def with_marketing_basis(purposes: dict[str, Purpose], basis: str) -> dict[str, Purpose]:
    """The purposes with marketing effectiveness on ``basis``: "consent" leaves the catalogue as it is
    (consent to the marketing category needed); "legitimate_interest" (the policy's section 3) needs no
    consent but stops when the person objected to marketing (Art. 21(2): an absolute right)."""
    marketing = purposes.get(MARKETING_PURPOSE)
    if basis == "consent" or marketing is None or marketing.consent is None:
        return purposes
    changed = Purpose(marketing.name, marketing.policy, "legitimate_interest", None, objection=marketing.consent)
    return {**purposes, MARKETING_PURPOSE: changed}


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
