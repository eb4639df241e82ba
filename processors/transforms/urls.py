"""URL reduction: no credentials, no fragment, no query parameter outside an allow-list,
and no identifiers in the path.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection
from typing import Final
from urllib.parse import SplitResult, unquote_plus, urlsplit

from datamin.rules import query_allowlist
from processors.transforms.patterns import EMAIL

__all__ = ["referrer_origin", "strip_url"]

MAX_URL_LENGTH: Final = 8192
"""Longer input is refused (``None``): no browser or server sends such URLs legitimately."""

_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_SCHEME_DEFAULT_PORT: Final = {"http": 80, "https": 443}
_HOST: Final = re.compile(r"\[[0-9A-Fa-f:.]+\]|[\w\-.~!$&'()*+,;=%]+")

# Applied to each path segment and each kept query value, in this order.
# The look-behinds make every search start only at the beginning of a run: linear time.
_EMAIL: Final = EMAIL
_UUID: Final = re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}(?![0-9A-Fa-f])")
_TOKEN_RUN: Final = re.compile(r"(?<![A-Za-z0-9_\-])[A-Za-z0-9_\-]{16,}(?![A-Za-z0-9_\-])")
_DIGITS: Final = re.compile(r"\d{6,}")
_SLUG_PIECE: Final = re.compile(r"[a-z]+|[0-9]{1,4}")
_SLUG_SEPARATOR: Final = re.compile(r"[-_]")
_HEX: Final = re.compile(r"[0-9A-Fa-f]+")


def strip_url(url: str | None, allowed_params: Collection[str] = ("utm_*",)) -> str | None:
    """Return ``url`` reduced to what analytics may keep.

    Keeps scheme, host (lower-cased) and port of absolute ``http``/``https`` URLs, or just the
    path of a relative reference (``"/search?q=x"``). Drops user info, the fragment, ``;``
    path parameters (``;jsessionid=...``) and every query parameter whose decoded name is not
    in ``allowed_params`` (case-insensitive; an entry ending in ``*`` is a prefix). In the path
    and in kept query values: e-mail addresses become ``{email}``, UUIDs and token-like runs
    (16+ characters of ``[A-Za-z0-9_-]`` that are all hex or mix letters and digits, except
    lower-case word-and-number slugs like ``top-10-tips-2024``) become ``{token}``, and runs
    of 6+ digits become ``{n}``.

    Returns ``None`` for non-strings, empty or blank input, input over 8 KiB, control
    characters, other schemes (``javascript:``, ``mailto:``), a missing host, a bad port, or
    a relative reference that does not start with ``/`` (nginx's ``"-"``).
    Raises ``ValueError`` if ``allowed_params`` is unusable: a bare string instead of a
    collection, an empty or non-string entry, or ``"*"`` (which would keep everything).
    """
    keep = _allow_list(_as_tuple(allowed_params))
    if not isinstance(url, str) or len(url) > MAX_URL_LENGTH:
        return None
    parts = _split(url)
    if parts is None or not (parts.scheme or parts.netloc or parts.path.startswith("/")):
        return None  # "-", "search?q=x", "www.example.com/x": not a usable URL or path
    origin = _origin(parts, drop_default_port=False)
    if origin is None:
        return None
    path = _scrub(_PATH_PARAMS.sub("", parts.path))
    query = _filter_query(parts.query, keep)
    return origin + path + ("?" + query if query else "")


def referrer_origin(url: str | None) -> str | None:
    """Return ``scheme://host[:port]`` of an absolute http(s) URL, else ``None``.

    Scheme and host are lower-cased, user info dropped, and the port kept only when it is
    not the scheme's default (as in the ``Origin`` header).
    """
    if not isinstance(url, str) or len(url) > MAX_URL_LENGTH:
        return None
    parts = _split(url)
    if parts is None or not parts.scheme:
        return None
    return _origin(parts, drop_default_port=True)


_PATH_PARAMS: Final = re.compile(r";[^/]*")
_QUERY_SEPARATOR: Final = re.compile(r"[&;]")


def _split(url: str) -> SplitResult | None:
    text = url.strip()
    if not text or _CONTROL.search(text):
        return None
    try:
        parts = urlsplit(text)
    except ValueError:  # e.g. an unbalanced "[" in the host
        return None
    scheme = parts.scheme.lower()
    if scheme and scheme not in _SCHEME_DEFAULT_PORT:
        return None
    if scheme and not parts.netloc:
        return None
    return parts


def _origin(parts: SplitResult, *, drop_default_port: bool) -> str | None:
    """``scheme://host[:port]`` ("" for a relative reference), or None if host/port is bad."""
    if not parts.netloc:
        return "" if not parts.scheme else None
    hostport = parts.netloc.rpartition("@")[2]
    try:
        port = parts.port
    except ValueError:
        return None
    host = hostport.rsplit(":", 1)[0] if port is not None or hostport.endswith(":") else hostport
    if not _HOST.fullmatch(host):
        return None
    scheme = parts.scheme.lower()
    prefix = scheme + "://" if scheme else "//"
    if port is None or (drop_default_port and port == _SCHEME_DEFAULT_PORT.get(scheme)):
        return prefix + host.lower()
    return f"{prefix}{host.lower()}:{port}"


def _filter_query(query: str, keep: _AllowList) -> str:
    kept = []
    for pair in _QUERY_SEPARATOR.split(query):
        name, eq, value = pair.partition("=")
        if name and keep.allows(unquote_plus(name).strip().lower()):
            kept.append(name + eq + _scrub(value))
    return "&".join(kept)


def _scrub(text: str) -> str:
    text = _EMAIL.sub("{email}", text)
    text = _UUID.sub("{token}", text)
    text = _TOKEN_RUN.sub(_token_or_keep, text)
    return _DIGITS.sub("{n}", text)


def _token_or_keep(match: re.Match[str]) -> str:
    run = match.group()
    if run.isdigit():
        return run  # left to the digit rule
    if _HEX.fullmatch(run):
        return "{token}"  # a long hex string is an id or a digest, with or without digits
    has_letter = any(c.isalpha() for c in run)
    has_digit = any(c.isdigit() for c in run)
    if not (has_letter and has_digit) or _is_slug(run):
        return run
    return "{token}"


def _is_slug(run: str) -> bool:
    """Lower-case words and numbers of up to 4 digits joined by "-" or "_" (``top-10-tips-2024``):
    a readable page name, not a token."""
    pieces = _SLUG_SEPARATOR.split(run)
    return len(pieces) > 1 and all(_SLUG_PIECE.fullmatch(piece) for piece in pieces)


class _AllowList:
    __slots__ = ("exact", "prefixes")

    def __init__(self, exact: frozenset[str], prefixes: tuple[str, ...]) -> None:
        self.exact = exact
        self.prefixes = prefixes

    def allows(self, name: str) -> bool:
        return name in self.exact or name.startswith(self.prefixes)


def _as_tuple(allowed_params: Collection[str]) -> tuple[str, ...]:
    try:
        return query_allowlist(allowed_params)  # the same rule datamin.config checks at load
    except ValueError as exc:
        raise ValueError(f"allowed_params: {exc}") from None


@functools.lru_cache(maxsize=64)
def _allow_list(entries: tuple[str, ...]) -> _AllowList:
    exact: set[str] = set()
    prefixes: list[str] = []
    for entry in entries:
        name = entry.strip().lower()
        if name.endswith("*"):
            prefixes.append(name[:-1])
        else:
            exact.add(name)
    return _AllowList(frozenset(exact), tuple(prefixes))
