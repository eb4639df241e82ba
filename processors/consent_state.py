"""What the minimiser needs to know about a person at the moment of an event."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ConsentState:
    """A subject's standing when an event is minimised. The default is no consent at all."""

    granted: frozenset[str] = frozenset()
    """consent categories (statistics, marketing, feedback, …) granted and still valid"""
    restricted: bool = False
    """restriction or objection in force: identifiers are dropped except for legal obligations"""
    erased: bool = False
    """the subject asked for erasure: nothing linked to them is kept"""
    objected: frozenset[str] = frozenset()
    """categories the subject objected to: refused in the consent in force (or withdrew), or objected by
    a signal honoured (GPC / DNT: marketing). Only a purpose on legitimate interest reads it."""


NO_CONSENT = ConsentState()
