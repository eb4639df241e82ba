"""Keys and keyed hashing, shared by the processors and the warehouse.

- `pseudonymise` with a `KeyStore`: keyed, rotating pseudonyms, HMAC-SHA-256 with one secret key per period;
- `subject_hash`: the keyed hash of a subject key (HMAC-SHA-256 with ``<key_dir>/rights.secret``) that the
  rights trail and the erased-subjects topic are keyed by, and that the processor recomputes to
  recognise an erased subject;
- `require_subject_key`: the one check that a subject key is usable, giving its canonical form
  (`datamin.identity`), so that a hash or pseudonym is always of the canonical subject.

A pseudonym is stable within a period and unlinkable across periods and across namespaces.
No mapping from pseudonym back to the identifier is stored anywhere; deleting a period's key
(:meth:`KeyStore.delete_before`) makes that period's pseudonyms impossible to recompute from
an identifier (crypto-shredding).
"""

from __future__ import annotations

import hmac
import os
import re
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Final

from datamin.clock import utc_now
from datamin.config import Config
from datamin.files import create_secret, read_secret, sync_dir
from datamin.identity import IdentityError, canonical

__all__ = ["KeyStore", "key_store", "known_subject_hash", "pseudonymise", "require_subject_key", "subject_hash"]

KEY_BYTES: Final = 32
PSEUDONYM_PREFIX: Final = "p1_"
"""Version tag of the scheme: HMAC-SHA-256, full 64-hex-digit digest."""
_MIN_KEY_BYTES: Final = 16

_PERIOD_FORMATS: Final = {
    "monthly": re.compile(r"(\d{4})-(\d{2})"),
    "weekly": re.compile(r"(\d{4})-W(\d{2})"),
    "daily": re.compile(r"(\d{4})-(\d{2})-(\d{2})"),
}
_KEY_FILE: Final = re.compile(r"(\d{4}-(?:W?\d{2}|\d{2}-\d{2}))\.key")
_TEMP_FILE: Final = re.compile(r"\.(\d{4}-(?:W?\d{2}|\d{2}-\d{2}))\..*\.tmp")


def pseudonymise(value: str | None, key: bytes, namespace: str) -> str | None:
    """Return ``"p1_"`` + the 64 hex digits of HMAC-SHA-256(key, namespace + NUL + value).

    The same ``value`` gives the same pseudonym for the same key and namespace, and unrelated
    ones otherwise: the namespace (e.g. the field name) keeps one identifier unlinkable across
    fields. ``None``, ``""`` and non-strings give ``None``. Raises ``ValueError`` for a key
    shorter than 16 bytes or an empty namespace or one containing NUL (configuration errors).
    """
    if not isinstance(key, bytes) or len(key) < _MIN_KEY_BYTES:
        raise ValueError(f"pseudonym key must be at least {_MIN_KEY_BYTES} bytes")
    if not isinstance(namespace, str) or not namespace or "\x00" in namespace:
        raise ValueError("pseudonym namespace must be a non-empty string without NUL")
    if not isinstance(value, str) or not value:
        return None
    message = (namespace + "\x00" + value).encode("utf-8", "surrogatepass")
    keyed = _keyed.get(key)
    if keyed is None:
        if len(_keyed) >= 16:
            _keyed.clear()
        keyed = _keyed[key] = hmac.new(key, digestmod="sha256")
    mac = keyed.copy()
    mac.update(message)
    return PSEUDONYM_PREFIX + mac.hexdigest()


_keyed: dict[bytes, hmac.HMAC] = {}
"""an HMAC object per key with the key already absorbed, copied per message: the same digest as
hmac.digest, and unlike hmac.digest it keeps the GIL for short messages, so that a stream processor
does not hand its thread to kafka-python's I/O thread at every pseudonym"""


class KeyStore:
    """Pseudonymisation keys on disk, one file ``<directory>/<period>.key`` per period.

    Periods are ``"2026-11"`` (monthly), ``"2026-W48"`` (ISO week, weekly) or
    ``"2026-11-25"`` (daily), all in UTC. A missing key is created with 32 bytes from
    :func:`secrets.token_bytes`, mode 0o600, in a directory created with mode 0o700. Creation
    is atomic and safe between processes: the key is written and fsynced under a temporary
    name, then hard-linked to its final name, which fails if another process got there first,
    in which case that process's key is used. Every instance on the same directory therefore
    agrees. The directory must be on a file system with hard links (any local POSIX one).

    Keys are cached in memory for the life of the instance; :meth:`delete_before` evicts what
    it deletes from this instance only, so other processes keep old keys until restarted.
    """

    def __init__(
        self,
        directory: Path,
        rotation: str = "monthly",
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if rotation not in _PERIOD_FORMATS:
            raise ValueError(
                f"pseudonymise.rotation = {rotation!r} is not accepted: use one of "
                f"{', '.join(repr(r) for r in _PERIOD_FORMATS)} (default 'monthly')"
            )
        self.directory = Path(directory)
        self.rotation = rotation
        self._clock = clock
        self._keys: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"KeyStore({str(self.directory)!r}, rotation={self.rotation!r})"

    def period_for(self, when: datetime) -> str:
        """The period id containing ``when`` (an aware datetime; naive raises ValueError)."""
        if when.tzinfo is None or when.utcoffset() is None:
            raise ValueError("period_for needs an aware datetime; naive times are ambiguous")
        moment = when.astimezone(UTC)
        if self.rotation == "monthly":
            return f"{moment.year:04d}-{moment.month:02d}"
        if self.rotation == "weekly":
            year, week, _ = moment.isocalendar()
            return f"{year:04d}-W{week:02d}"
        return moment.strftime("%Y-%m-%d")

    def current_period(self) -> str:
        """The period id of the injected clock's current time."""
        return self.period_for(self._clock())

    def current_key(self) -> tuple[str, bytes]:
        """The current period id and its key."""
        period = self.current_period()
        return period, self.key_for(period)

    def key_for(self, period: str, *, create: bool = True) -> bytes:
        """The key of ``period``, loading it or, unless ``create=False``, creating it if missing.

        Raises ``ValueError`` if ``period`` is not a period id of this store's rotation,
        ``FileNotFoundError`` if the key is missing and ``create`` is false (e.g. when only
        recomputing pseudonyms of periods that still have a key), and ``OSError`` if the
        directory cannot be used or an existing key file is not 32 bytes.
        """
        key = self._keys.get(period)
        if key is not None:
            return key
        if _PERIOD_FORMATS[self.rotation].fullmatch(period) is None or _bounds(period) is None:
            raise ValueError(f"{period!r} is not a {self.rotation} key period")
        with self._lock:
            key = self._keys.get(period)
            if key is None:
                if create:
                    key = self._load_or_create(period)
                else:
                    key = _read_key(self.directory / f"{period}.key")
                self._keys[period] = key
            return key

    def periods(self) -> list[str]:
        """The periods that have a key file, oldest first (any rotation's format)."""
        if not self.directory.is_dir():
            return []
        found = []
        for entry in os.scandir(self.directory):
            match = _KEY_FILE.fullmatch(entry.name)
            if match and _bounds(match.group(1)) is not None:
                found.append(match.group(1))
        return sorted(found, key=_sort_key)

    def delete_before(self, period: str) -> list[str]:
        """Delete every key whose period ends on or before the start of ``period``.

        Works across rotation formats (a monthly key is deleted once its month is over),
        removes leftover temporary files of those periods too, and returns the deleted
        periods, oldest first. Raises ``ValueError`` if ``period`` is not a period id.
        """
        bounds = _bounds(period)
        if bounds is None:
            raise ValueError(f"{period!r} is not a key period (e.g. 2026-11, 2026-W48, 2026-11-25)")
        cutoff = bounds[0]
        if not self.directory.is_dir():
            return []
        deleted = []
        with self._lock:
            for entry in os.scandir(self.directory):
                match = _KEY_FILE.fullmatch(entry.name) or _TEMP_FILE.fullmatch(entry.name)
                if match is None:
                    continue
                old = _bounds(match.group(1))
                if old is None or old[1] > cutoff:
                    continue
                try:
                    os.unlink(entry.path)
                except FileNotFoundError:
                    continue  # another process deleted it first
                if entry.name.endswith(".key"):
                    deleted.append(match.group(1))
                self._keys.pop(match.group(1), None)
            sync_dir(self.directory)
        return sorted(deleted, key=_sort_key)

    def _load_or_create(self, period: str) -> bytes:
        return create_secret(self.directory / f"{period}.key", KEY_BYTES)


def _read_key(path: Path) -> bytes:
    return read_secret(path, KEY_BYTES)


def _bounds(period: str) -> tuple[datetime, datetime] | None:
    """``[start, end)`` of a period id of any rotation, in UTC; None if it is not one."""
    try:
        if match := _PERIOD_FORMATS["daily"].fullmatch(period):
            year, month, day_of_month = map(int, match.groups())
            start = datetime(year, month, day_of_month, tzinfo=UTC)
            return start, start + timedelta(days=1)
        if match := _PERIOD_FORMATS["weekly"].fullmatch(period):
            year, week = map(int, match.groups())
            day = date.fromisocalendar(year, week, 1)
            start = datetime(day.year, day.month, day.day, tzinfo=UTC)
            return start, start + timedelta(weeks=1)
        if match := _PERIOD_FORMATS["monthly"].fullmatch(period):
            year, month = map(int, match.groups())
            start = datetime(year, month, 1, tzinfo=UTC)
            end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
            return start, end
    except ValueError:  # month 13, day 32, week 54, year 0
        return None
    return None


def _sort_key(period: str) -> tuple[datetime, datetime]:
    return _bounds(period) or (datetime.max.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))


SECRET_FILE: Final = "rights.secret"  # noqa: S105 - a file name, not a secret
"""the file (in the key folder) of the secret `subject_hash` is keyed with"""
HASH_PREFIX: Final = "h1_"
"""Version tag of the keyed hash: HMAC-SHA-256 over the UTF-8 subject key, 64 hex digits."""
_SECRET_BYTES: Final = 32


def key_store(config: Config) -> KeyStore:
    """The pseudonymisation key store of ``config`` (the processor's keys)."""
    return KeyStore(Path(config.pseudonymise.key_dir), config.pseudonymise.rotation)


def require_subject_key(subject_key: object) -> str:
    """The canonical form of ``subject_key`` (`datamin.identity.canonical`: ``user:<id>`` or
    ``visitor:<id>``, one normalisation rule); raises ValueError (IdentityError) with the fix when it
    is empty or unusable."""
    if not isinstance(subject_key, str) or not subject_key.strip():
        raise IdentityError("the subject key is empty: give user:<user id> or visitor:<visitor id>")
    return canonical(subject_key)


def load_secret(key_dir: Path) -> bytes:
    """The secret of `subject_hash`, ``<key_dir>/rights.secret``; created (32 random bytes, 0600) if
    missing, atomically and safely between processes (as the KeyStore creates its keys)."""
    return create_secret(Path(key_dir) / SECRET_FILE, _SECRET_BYTES)


def known_subject_hash(key_dir: Path, subject_key: str) -> str | None:
    """`subject_hash` with the secret in ``key_dir`` if it exists; None when it does not (never creates it)."""
    try:
        secret = read_secret(Path(key_dir) / SECRET_FILE, _SECRET_BYTES)
    except FileNotFoundError:
        return None
    key = require_subject_key(subject_key)
    return HASH_PREFIX + hmac.digest(secret, key.encode("utf-8", "surrogatepass"), "sha256").hex()


def subject_hash(config: Config, subject_key: str) -> str:
    """``"h1_"`` + HMAC-SHA-256(rights secret, subject key) in hex: stable, and not reversible without
    the secret. Raises ValueError for an empty subject key."""
    key = require_subject_key(subject_key)
    secret = load_secret(Path(config.pseudonymise.key_dir))
    return HASH_PREFIX + hmac.digest(secret, key.encode("utf-8", "surrogatepass"), "sha256").hex()
