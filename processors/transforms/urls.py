"""URL reduction: no credentials, no fragment, no query parameter outside an allow-list,
and no identifiers in the path.
"""

from __future__ import annotations

import functools
import html
import ipaddress
import re
from collections.abc import Collection
from typing import Final
from urllib.parse import SplitResult, quote, urlsplit

from datamin.rules import query_allowlist
from processors.detect import PLACEHOLDER, decode, scrub_decoded

__all__ = ["referrer_origin", "strip_url"]

MAX_URL_LENGTH: Final = 8192
"""Longer input is refused (``None``): no browser or server sends such URLs legitimately."""

_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_SCHEME_DEFAULT_PORT: Final = {"http": 80, "https": 443}
_HOST: Final = re.compile(r"\[[0-9A-Fa-f:.]+\]|[\w\-.~!$&'()*+,;=%]+")

# Applied to each path segment and each kept query value after the shared detectors.
# The look-behinds make every search start only at the beginning of a run: linear time.
_TOKEN_RUN: Final = re.compile(r"(?<![A-Za-z0-9_\-])[A-Za-z0-9_\-]{16,}(?![A-Za-z0-9_\-])")
_SLUG_PIECE: Final = re.compile(r"[a-z]+|[0-9]{1,4}")
_SLUG_SEPARATOR: Final = re.compile(r"[-_]")
_HEX: Final = re.compile(r"[0-9A-Fa-f]+")
_UUID: Final = re.compile(r"[0-9A-Fa-f]{8}-(?:[0-9A-Fa-f]{4}-){3}[0-9A-Fa-f]{12}")
_SEGMENT_SAFE: Final = "!$&'()*+,;=:@{}-._~"

USER_CUES: Final = frozenset({
    "users", "user", "u", "profile", "profiles", "account", "accounts", "member", "members", "people", "person",
    "customer", "customers", "author", "authors", "home", "homes", "mail", "brukere", "bruker", "kunde", "kunder",
})
"""a path segment after one of these names a person: it becomes ``{user}`` (``/users/alice``,
``/u/1234``, ``/home/kari``, ``/var/mail/ola``), unless it is one of :data:`NOT_IDS`"""
TOKEN_CUES: Final = frozenset({
    "session", "sessions", "sid", "token", "tokens", "reset", "verify", "confirm", "invite", "activate",
    "unsubscribe", "magic", "auth", "login-link",
})
"""a path segment after one of these is a secret or session handle: it becomes ``{token}``"""
VERSION_CUES: Final = frozenset({"v", "version", "versions", "release", "releases", "build", "builds", "download"})
"""a path segment after one of these is read as a version: ``/v/1.2.3.4`` keeps its four parts"""
NOT_IDS: Final = frozenset({
    "", "me", "self", "settings", "edit", "new", "login", "logout", "signin", "signup", "register", "profile",
    "password", "orders", "delete", "update", "security", "preferences", "list", "search", "avatar", "index.html",
    "help", "billing", "notifications", "email", "overview", "innstillinger", "ny", "logg-inn",
})
"""page names that follow a user cue without naming anyone (``/account/settings``)"""


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
    path = _scrub_path(_PATH_PARAMS.sub("", parts.path))
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


_NUMERIC_REFERENCE: Final = re.compile(r"&#(?:[0-9]{1,7}|[xX][0-9A-Fa-f]{1,6});")


def _split(url: str) -> SplitResult | None:
    text = url.strip()
    if "&#" in text:  # "&#64;" is an "@", not the start of a fragment that hides the rest
        text = _NUMERIC_REFERENCE.sub(lambda m: html.unescape(m.group()), text)
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
    if _is_personal_ip(host):
        host = "{ip}"  # a site reached by a visitor's own address names the visitor's network
    scheme = parts.scheme.lower()
    prefix = scheme + "://" if scheme else "//"
    if port is None or (drop_default_port and port == _SCHEME_DEFAULT_PORT.get(scheme)):
        return prefix + host.lower()
    return f"{prefix}{host.lower()}:{port}"


def _is_personal_ip(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host[1:-1] if host.startswith("[") else host)
    except ValueError:
        return host[:1].isdigit() and scrub_decoded(host) != host  # "010.001.002.003"
    return not (address.is_loopback or address.is_unspecified)


def _filter_query(query: str, keep: _AllowList) -> str:
    kept = []
    for pair in _QUERY_SEPARATOR.split(query):
        name, eq, value = pair.partition("=")
        if not name:
            continue
        decoded_name = _decoded(name).strip()
        if keep.allows(decoded_name.lower()) and (_PLAIN.fullmatch(decoded_name) or
                                                  scrub_decoded(decoded_name) == decoded_name):
            kept.append(name + eq + _scrub_segment(value))
    return "&".join(kept)


_PLAIN: Final = re.compile(r"[A-Za-z_.\-]{0,15}|[0-9]{1,6}")
"""a segment no detector can find anything in: short, without digits, or a short number (a
user cue before it is handled before this test)"""
_ENCODED: Final = re.compile(r"[%&\\\x80-\U0010ffff]")


def _decoded(text: str) -> str:
    return decode(text) if _ENCODED.search(text) else text


def _scrub_path(path: str) -> str:
    out: list[str] = []
    previous = ""
    for segment in path.split("/"):
        decoded = _decoded(segment)
        lower = decoded.lower()
        if previous in USER_CUES and lower not in NOT_IDS:
            out.append("{user}")
        elif previous in TOKEN_CUES and lower not in NOT_IDS:
            out.append("{token}")
        elif len(decoded) > 1 and decoded[0] in "@~" and not decoded[1].isdigit():
            out.append("{user}")  # "/@alice", "/~bob" (not "/@59.91,10.75,15z" of a map)
        elif previous in VERSION_CUES:
            out.append(_scrub_segment(segment, decoded, context="v"))
        else:
            out.append(_scrub_segment(segment, decoded))
        previous = lower
    return "/".join(out)


def _scrub_segment(segment: str, decoded: str | None = None, context: str = "") -> str:
    """One path segment or query value through the shared detectors and the token rule; the original
    encoding when nothing was found, else the decoded form with ``{rule}`` placeholders, re-encoded.
    A query value's ``+`` is tried both as a space and as itself (``a+b@example.com``)."""
    if _PLAIN.fullmatch(segment):
        return segment
    query_value = decoded is None
    if decoded is None:
        decoded = decode(segment)
    scrubbed = _scrubbed(decoded, context)
    if scrubbed == decoded and query_value and "+" in decoded:
        decoded = decoded.replace("+", " ")
        scrubbed = _scrubbed(decoded, context)
    if scrubbed == decoded:
        return segment
    return quote(PLACEHOLDER.sub(r"{\1}", scrubbed), safe=_SEGMENT_SAFE)


def _scrubbed(text: str, context: str) -> str:
    if context:
        return _TOKEN_RUN.sub(_token_or_keep, scrub_decoded(context + text))[len(context):]
    return _TOKEN_RUN.sub(_token_or_keep, scrub_decoded(text))


def _token_or_keep(match: re.Match[str]) -> str:
    run = match.group()
    if run.isdigit() or _UUID.fullmatch(run):
        return run  # numbers are left to the validators; UUIDs (product, request ids) stay
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
