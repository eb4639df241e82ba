"""Kept fields from the internet hold only what their declared shape allows.

A field kept as sent (rule ``keep``) that is a string declares its shape in its schema annotation
(:class:`schemas.annotations.Shape`: a pattern, a vocabulary, or a named shape such as ``site_host``).
:func:`shape_checker` turns that declaration into the function the minimiser applies: the value if it
has the shape *and* no detector of :mod:`processors.detect` finds anything in it (so a name that fits
a model-name pattern, ``Kari's iPhone``, is still refused), else ``None``, which the minimiser
counts as an invalid value and never stores.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection
from typing import Any

from processors.detect import scrub
from schemas.annotations import SHAPE_MAX_LENGTH, Shape

__all__ = ["shape_checker"]

_HOST_LABEL = r"(?!-)[a-z0-9\-]{1,63}(?<!-)"
_HOST = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*\.[a-z]{{2,63}}(?::[0-9]{{1,5}})?|localhost(?::[0-9]{{1,5}})?")


def _site_host(site_hosts: Collection[str]) -> Callable[[str], bool]:
    exact = frozenset(h.lower() for h in site_hosts if not h.startswith("*."))
    suffixes = tuple(h[1:].lower() for h in site_hosts if h.startswith("*."))

    def matches(value: str) -> bool:
        host = value.lower()
        if not _HOST.fullmatch(host):
            return False  # also refuses IP addresses: a site is reached by its name
        if not exact and not suffixes:
            return True
        name = host.rsplit(":", 1)[0] if ":" in host else host
        return name in exact or name.endswith(suffixes)
    return matches


def shape_checker(shape: Shape, site_hosts: Collection[str] = ()) -> Callable[[Any], str | None]:
    """The function keeping a value of ``shape`` (and free of personal data) and giving None for any other."""
    matches: Callable[[str], bool]
    if shape.named == "site_host":
        matches = _site_host(site_hosts)
    elif shape.vocabulary:
        allowed = frozenset(shape.vocabulary)
        matches = allowed.__contains__
    else:
        pattern = re.compile(shape.pattern or "")
        matches = lambda v: pattern.fullmatch(v) is not None  # noqa: E731

    def check(value: Any) -> str | None:
        if type(value) is not str or len(value) > SHAPE_MAX_LENGTH or not matches(value):
            return None
        return value if scrub(value) == value else None
    return check
