"""Who a subject is: the one canonical identity every stage and every right uses. Pure: no I/O.

Subject keys are namespaced, so an authenticated user and a banner visitor can never collide:

    user:<user id>       a logged-in user, vouched for by the web server (its middleware hook, or a
                         signed, short-lived token the collector checks)
    visitor:<id>         a banner visitor: an id the server issued (random, 128 bits) and can verify
                         (HMAC-SHA-256 with the identity secret); never a value a client chose

The one normalisation rule (`canonical`): Unicode NFKC, surrounding whitespace removed, case folded,
the namespace prefix lower-case. So ``USER:Ola `` and ``user:ola`` are one person, and
``datamin rights access --subject "USER-1 "`` finds ``user-1``. A bare key without a namespace is a
user id (the officer's usual case): ``user-1`` means ``user:user-1``. A keyed hash of a subject
(``h1_`` + 64 hex digits, `datamin.keys.subject_hash`) is passed through unchanged by `subject_of_raw`.
An application whose user ids differ only by letter case must map them to ids that do not before
handing them to datamin.

Cookies and tokens:

- a visitor cookie holds ``<id>.<mac>``: 32 lower-case hex digits of randomness and the first 32 hex
  digits of HMAC-SHA-256(secret, "visitor:" + id). `Identity.issue_visitor` makes one, `visitor_of`
  checks one; a value the server did not issue is refused (collector) or ignored (middleware).
- a user token holds ``u1.<base64url user id>.<issued>.<expires>.<nonce>.<mac>``. It is refused when
  its lifetime (expires - issued) exceeds ``max_token_seconds``, when it was issued in the future or
  has expired, and when it was presented more than ``max_token_uses`` times (bounded replay: each
  collector instance remembers nonces until their token expires).

Consent at login: nothing carries over by itself. A visitor's consent stays with ``visitor:<id>``;
the user starts with no consent. The web server may carry a choice over on purpose with a signed link
call: it posts the consent the person confirms (or the visitor's last choice, which the server knows)
as a consent_record with a user token from `Identity.sign_user` -- the server vouches; a client
holding only a visitor cookie can never make its consent the user's.

Secrets shorter than 32 bytes (or empty) are refused with a ConfigError at start-up.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from datamin.exceptions import ConfigError

if TYPE_CHECKING:
    from datamin.config import IdentityConfig

USER: Final = "user"
VISITOR: Final = "visitor"
NAMESPACES: Final = (USER, VISITOR)
MIN_SECRET_BYTES: Final = 32
TOKEN_VERSION: Final = "u1"  # noqa: S105 - a format tag, not a secret
MAX_SUBJECT_CHARS: Final = 256
"""longest subject id accepted (after normalisation)"""
HASHED_PREFIX: Final = "h1_"
"""a subject given only as its keyed hash (`datamin.keys.subject_hash`), as on the privacy-requests topic"""
_HASHED_LENGTH: Final = len(HASHED_PREFIX) + 64
_VISITOR_HEX: Final = 32
_MAC_HEX: Final = 32


class IdentityError(ValueError):
    """A subject key that cannot be made canonical (empty, too long, unknown namespace)."""


def is_hashed(key: object) -> bool:
    """True for a keyed hash of a subject (``h1_`` and 64 hex digits), which no rule changes."""
    return (isinstance(key, str) and len(key) == _HASHED_LENGTH and key.startswith(HASHED_PREFIX)
            and all(c in "0123456789abcdef" for c in key[len(HASHED_PREFIX):]))


def normalise(text: str) -> str:
    """The documented rule: NFKC, surrounding whitespace removed, case folded."""
    return unicodedata.normalize("NFKC", text).strip().casefold()


def canonical(key: str, *, default_namespace: str = USER) -> str:
    """The canonical form ``<namespace>:<id>`` of a subject key (see the module docstring).

    A key without a known namespace prefix is an id in ``default_namespace``. Raises IdentityError
    for an empty or over-long id or an unknown ``default_namespace``."""
    if not isinstance(key, str):
        raise IdentityError("a subject key must be text")
    text = normalise(key)
    namespace, sep, rest = text.partition(":")
    if sep and namespace in NAMESPACES:
        ident = rest.strip()
    else:
        if default_namespace not in NAMESPACES:
            raise IdentityError(f"unknown subject namespace {default_namespace!r}; use user or visitor")
        namespace, ident = default_namespace, text
    if not ident:
        raise IdentityError("the subject key is empty: give user:<user id> or visitor:<visitor id>")
    if len(ident) > MAX_SUBJECT_CHARS:
        raise IdentityError(f"the subject id is longer than {MAX_SUBJECT_CHARS} characters")
    return f"{namespace}:{ident}"


def user_subject(user_id: str) -> str:
    """``user:<normalised user id>``: what the web server vouches for."""
    return canonical(f"{USER}:{user_id}")


def subject_of_raw(value: object) -> str | None:
    """The canonical subject of a raw record's ``subject_key`` (or Kafka key); None when absent or not
    a usable key. Used by the processor so that every record of a person meets one ledger entry."""
    if not isinstance(value, str) or not value:
        return None
    if is_hashed(value):
        return value  # already a keyed hash: the privacy-requests topic names subjects so
    try:
        return _canonical_cached(value)
    except IdentityError:
        return None


_cache: dict[str, str] = {}


def _canonical_cached(value: str) -> str:
    found = _cache.get(value)
    if found is None:
        found = canonical(value)
        if len(_cache) > 65536:
            _cache.clear()
        _cache[value] = found
    return found


_MAKE_ONE = "e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`"


def check_secret(secret: bytes | str | None, key: str) -> bytes:
    """``secret`` as bytes, or a ConfigError naming ``key`` when it is missing or shorter than 32 bytes."""
    raw = secret.encode("utf-8") if isinstance(secret, str) else secret
    if not raw:
        raise ConfigError(key, "the identity secret is empty",
                          f"set 32 or more random bytes, {_MAKE_ONE}")
    if len(raw) < MIN_SECRET_BYTES:
        raise ConfigError(key, f"the identity secret is {len(raw)} bytes; at least {MIN_SECRET_BYTES} are needed",
                          f"use 32 or more random bytes, {_MAKE_ONE}")
    return raw


@dataclass
class Identity:
    """Issues and verifies visitor ids and user tokens with one secret shared by the web server, its
    middleware and the collector. ``Identity(secret)``; raises ConfigError for a short secret."""

    secret: bytes = field(repr=False)
    max_token_seconds: int = 900
    """longest lifetime (expires - issued) a user token may have; 15 minutes by default"""
    max_token_uses: int = 50
    """how often one user token may be presented to one collector before it counts as replayed"""
    clock: Callable[[], float] = time.time
    secret_key: str = "identity.secret_file"  # noqa: S105 - a config key name
    """the config key named in errors about the secret"""
    _seen: dict[str, tuple[float, int]] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.secret = check_secret(self.secret, self.secret_key)
        if not 0 < self.max_token_seconds <= 86400:
            raise ConfigError("identity.max_token_seconds", f"{self.max_token_seconds} is out of range",
                              "use a short lifetime in seconds, 1 to 86400 (900 is the default)")
        if self.max_token_uses < 1:
            raise ConfigError("identity.max_token_uses", "must be 1 or more", "use e.g. 50")

    def _mac(self, payload: str) -> str:
        return hmac.new(self.secret, payload.encode("utf-8"), hashlib.sha256).hexdigest()

    # -- visitors ----------------------------------------------------------------------------------
    def issue_visitor(self) -> str:
        """A new visitor cookie value ``<id>.<mac>``; the subject is ``visitor:<id>``."""
        ident = secrets.token_hex(_VISITOR_HEX // 2)
        return f"{ident}.{self._mac(f'{VISITOR}:{ident}')[:_MAC_HEX]}"

    def visitor_of(self, cookie: str | None) -> str | None:
        """``visitor:<id>`` for a cookie value this server issued; None for anything else."""
        if not cookie or len(cookie) != _VISITOR_HEX + 1 + _MAC_HEX or not cookie.isascii():
            return None
        ident, _, mac = cookie.partition(".")
        if len(ident) != _VISITOR_HEX or any(c not in "0123456789abcdef" for c in ident):
            return None
        if not hmac.compare_digest(self._mac(f"{VISITOR}:{ident}")[:_MAC_HEX], mac):
            return None
        return f"{VISITOR}:{ident}"

    # -- users -------------------------------------------------------------------------------------
    def sign_user(self, user_id: str, lifetime: float | None = None) -> str:
        """A token vouching for ``user_id`` for ``lifetime`` seconds (default and maximum:
        ``max_token_seconds``), for the collector's X-Datamin-Subject header."""
        subject = user_subject(user_id)
        seconds = self.max_token_seconds if lifetime is None else min(int(lifetime), self.max_token_seconds)
        issued = int(self.clock())
        uid = base64.urlsafe_b64encode(subject.encode("utf-8")).decode("ascii").rstrip("=")
        payload = f"{TOKEN_VERSION}.{uid}.{issued}.{issued + seconds}.{secrets.token_hex(8)}"
        return f"{payload}.{self._mac(payload)}"

    def user_of(self, token: str) -> str | None:
        """``user:<id>`` of a valid token presented now (counted against ``max_token_uses``); None
        for a forged, malformed, expired, over-long-lived or replayed one. Never raises."""
        if not token or not token.isascii() or len(token) > 2048:
            return None
        parts = token.strip().split(".")
        if len(parts) != 6 or parts[0] != TOKEN_VERSION:
            return None
        _v, uid, issued_s, expires_s, nonce, mac = parts
        if not (issued_s.isdigit() and expires_s.isdigit() and len(issued_s) <= 12 and len(expires_s) <= 12):
            return None
        if not hmac.compare_digest(self._mac(".".join(parts[:5])), mac):
            return None
        issued, expires, now = int(issued_s), int(expires_s), self.clock()
        if expires - issued > self.max_token_seconds or issued > now + 60 or expires < now:
            return None
        try:
            subject = base64.urlsafe_b64decode(uid + "=" * (-len(uid) % 4)).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        if not subject.startswith(f"{USER}:") or not self._use(nonce + mac, expires, now):
            return None
        return subject

    def _use(self, nonce: str, expires: float, now: float) -> bool:
        with self._lock:
            if len(self._seen) > 100_000:
                for key in [k for k, (until, _) in self._seen.items() if until < now]:
                    del self._seen[key]
            until, uses = self._seen.get(nonce, (expires, 0))
            if uses >= self.max_token_uses:
                return False
            self._seen[nonce] = (until, uses + 1)
            return True


def identity_from_config(config: IdentityConfig, *, clock: Callable[[], float] = time.time) -> Identity:
    """The Identity of the ``[identity]`` settings; ConfigError when the secret file is missing or short."""
    return load_identity(config.secret_file, max_token_seconds=config.max_token_seconds,
                         max_token_uses=config.max_token_uses, clock=clock)


def load_identity(secret_file: str, *, max_token_seconds: int = 900, max_token_uses: int = 50,
                  clock: Callable[[], float] = time.time) -> Identity:
    """An Identity from a secret file (never created here: the web server and the collector must share
    it). Raises ConfigError naming ``identity.secret_file`` when it is missing, empty or short."""
    from pathlib import Path

    key = "identity.secret_file"
    if not secret_file:
        raise ConfigError(key, "no identity secret file is configured",
                          "write 32+ random bytes to a file readable only by datamin and the web server, "
                          "and name it in [identity] secret_file")
    try:
        secret = Path(secret_file).read_bytes().strip()
    except FileNotFoundError:
        raise ConfigError(key, f"{secret_file} does not exist",
                          "create it once with `python -c 'import secrets; print(secrets.token_hex(32))' > FILE` "
                          "and give the same file to the web server and the collector") from None
    except OSError as exc:
        raise ConfigError(key, f"{secret_file} cannot be read ({exc.strerror})", "check its permissions") from None
    return Identity(secret, max_token_seconds=max_token_seconds, max_token_uses=max_token_uses, clock=clock,
                    secret_key=key)
