"""The retention inventory: every place datamin keeps anything, its maximum age, and what deletes it.

The privacy policy says nothing is kept "longer than one year". This module makes that a list one can
read and a rule code enforces: each place (a warehouse table, a Kafka topic, the producer spool, the
shipper's read positions, the rights and audit trails, the keys, log files, backups…) is a `Store`
with a declared cap, at most ``RETENTION_CAP_DAYS`` (raw topics, which hold full IP addresses, at most
``RAW_RETENTION_CAP_HOURS``). `inventory` refuses a store declared beyond its cap with a ConfigError
naming the setting, so no configuration can make datamin keep anything longer.

A store is enforced either by the scheduler (its ``expire(now)`` deletes what is past the cap, and
``oldest(now)`` tells what the oldest item is) or by the Kafka broker (``retention.ms`` plus
``segment.ms``, set by `datamin topics`). ``datamin retention`` prints the inventory.

Stores come from providers, functions ``Config -> Iterable[Store]`` registered with `register_stores`.
This module registers those of datamin's core (topics, spool, shipper state, log files); the warehouse
registers its own (``warehouse.retention``), and so can any later store (backups): register a
provider, and the store is listed, capped, expired by the scheduler and named in the record of
processing. File I/O only; no Kafka.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from datamin.config import RAW_RETENTION_CAP_HOURS, RETENTION_CAP_DAYS, Config
from datamin.exceptions import ConfigError
from datamin.topics import Topics

log = logging.getLogger(__name__)

CAP = timedelta(days=RETENTION_CAP_DAYS)
"""the policy's one year, as a duration"""
RAW_CAP = timedelta(hours=RAW_RETENTION_CAP_HOURS)
"""the week that data in clear (full IP addresses, identifiers) may live at most"""
SCHEDULER = "scheduler"
BROKER = "kafka broker"
LOG_FILE_DAYS = 30
"""days datamin keeps the local broker's log files (``datamin kafka start``) after their last write"""
SPOOL_SEGMENT_ROLL = timedelta(hours=1)
"""the longest a spool segment takes appends after its first one (producers.spool rolls it then): its
oldest record is at most this much older than its last write"""
SECRET = "secret"  # noqa: S105 - a kind of store, not a secret
"""the kind of a store that holds a secret key and no personal data (see `Store.unaged`)"""


@dataclass(frozen=True)
class Store:
    """One place datamin keeps something, with its cap and what enforces it."""

    name: str
    """unique, for people: e.g. ``table http_request``, ``topic datamin.raw.http_request``"""
    kind: str
    """warehouse_table, topic, files, keys or trail"""
    location: str
    """where it is: a folder, a topic name"""
    holds: str
    """what it holds, in a few words (personal data named as such)"""
    cap: timedelta
    """the longest anything may stay in it"""
    enforced_by: str
    """SCHEDULER (``expire`` runs daily) or BROKER (Kafka's retention)"""
    how: str
    """how the cap is enforced, in a few words"""
    setting: str | None = None
    """the configuration key the cap comes from, if any"""
    raw: bool = False
    """holds data in clear (full IP addresses, identifiers): capped at RAW_CAP, not CAP"""
    oldest: Callable[[datetime], datetime | None] | None = None
    """the time of the oldest item in it now (None when empty or not knowable without Kafka)"""
    expire: Callable[[datetime], int] | None = None
    """deletes what is past the cap at ``now``; returns the number of items deleted"""
    unaged: str | None = None
    """only for a SECRET store (a key, no personal data): why it is not deleted at an age, said to the
    privacy officer; ``cap`` is then not applied and the inventory shows no cap"""

    def next_deletion(self, now: datetime) -> datetime | None:
        """When the oldest item goes (``now`` when it is overdue); None when nothing is known to be kept."""
        oldest = self.oldest(now) if self.oldest is not None else None
        if oldest is None or self.unaged is not None:
            return None
        return max(oldest + self.cap, now)

    def limit(self) -> timedelta:
        """The hard limit of this kind of store: RAW_CAP for raw data, else CAP."""
        return RAW_CAP if self.raw else CAP


Provider = Callable[[Config], Iterable[Store]]
_PROVIDERS: list[Provider] = []


def register_stores(provider: Provider) -> Provider:
    """Adds a provider of stores to the inventory (usable as a decorator). Registering twice is harmless."""
    if provider not in _PROVIDERS:
        _PROVIDERS.append(provider)
    return provider


def inventory(config: Config) -> list[Store]:
    """Every store of every registered provider, checked against the caps.

    Raises ConfigError (naming the setting) for a store whose cap is beyond the policy's year (a week
    for raw data), and ValueError for two stores of one name (a provider bug)."""
    stores: list[Store] = []
    names: set[str] = set()
    for provider in _PROVIDERS:
        for store in provider(config):
            check_cap(store)
            if store.name in names:
                raise ValueError(f"two stores are named {store.name!r}")
            names.add(store.name)
            stores.append(store)
    return stores


def check_cap(store: Store) -> None:
    """Raises ConfigError when ``store`` may keep anything longer than its hard limit. Only a secret that
    holds no personal data may go unaged, and it must say why (ValueError: a provider bug)."""
    if store.unaged is not None:
        if store.kind != SECRET or not store.unaged.strip() or store.expire is not None:
            raise ValueError(f"{store.name}: only a secret holding no personal data may be unaged, with the reason")
        return
    limit = store.limit()
    if store.cap <= timedelta(0) or store.cap > limit:
        words = "a week (data in clear)" if store.raw else f"the policy's {RETENTION_CAP_DAYS} days"
        raise ConfigError(store.setting or store.name,
                          f"lets {store.name} keep data for {_words(store.cap)}, beyond {words}",
                          f"lower it so that the store's cap is at most {_words(limit)}")


def expire_stores(stores: Iterable[Store], now: datetime) -> dict[str, int]:
    """Runs ``expire`` of every scheduler-enforced store at ``now``; returns items deleted per store.

    One store failing (a permission, a full disk) is logged and the others still run; the error is
    raised at the end so the scheduler reports it."""
    deleted: dict[str, int] = {}
    failures: list[tuple[str, Exception]] = []
    for store in stores:
        if store.expire is None:
            continue
        try:
            deleted[store.name] = store.expire(now)
        except Exception as exc:  # noqa: BLE001 - one store must not stop the others' expiry
            log.error("retention of %s failed: %s", store.name, exc)
            failures.append((store.name, exc))
    if failures:
        name, first = failures[0]
        raise RuntimeError(f"retention of {len(failures)} store(s) failed, first {name}: {first}") from first
    return deleted


# -- files: age by last write -------------------------------------------------------------------------
def files_matching(folder: Path, pattern: str) -> Iterator[Path]:
    """Regular files under ``folder`` matching the glob ``pattern`` (none when the folder is missing)."""
    if not folder.is_dir():
        return iter(())
    return (p for p in folder.glob(pattern) if p.is_file() and not p.is_symlink())


def mtime(path: Path) -> datetime | None:
    try:
        return datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except FileNotFoundError:
        return None


def oldest_file(folder: Path, pattern: str) -> datetime | None:
    """The last-write time of the least recently written matching file."""
    times = [t for t in (mtime(p) for p in files_matching(folder, pattern)) if t is not None]
    return min(times, default=None)


def delete_files_older(folder: Path, pattern: str, cap: timedelta, now: datetime,
                       skip: Callable[[Path], bool] | None = None) -> int:
    """Deletes matching files last written more than ``cap`` before ``now``; returns how many."""
    cutoff = now - cap
    deleted = 0
    for path in list(files_matching(folder, pattern)):
        written = mtime(path)
        if written is None or written >= cutoff or (skip is not None and skip(path)):
            continue
        path.unlink(missing_ok=True)
        deleted += 1
        log.info("retention: deleted %s (last written %s, past %s)", path, written.isoformat(), _words(cap))
    return deleted


def file_store(name: str, folder: Path, pattern: str, cap: timedelta, *, holds: str, kind: str = "files",
               setting: str | None = None, skip: Callable[[Path], bool] | None = None) -> Store:
    """A store of files deleted by the scheduler once last written more than ``cap`` ago."""
    return Store(name=name, kind=kind, location=str(folder / pattern), holds=holds, cap=cap,
                 enforced_by=SCHEDULER, how=f"files deleted {_words(cap)} after their last write",
                 setting=setting, oldest=lambda now: oldest_file(folder, pattern),
                 expire=lambda now: delete_files_older(folder, pattern, cap, now, skip))


def _held_by_a_process(path: Path) -> bool:
    """True when a live producer holds the spool folder of ``path`` (its ``lock`` file is locked)."""
    lock_path = path.parent / "lock"
    try:
        with open(lock_path, "rb") as lock:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                return True
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    except FileNotFoundError:
        return False
    return False


def _words(span: timedelta) -> str:
    if span % timedelta(days=1) == timedelta(0):
        days = span // timedelta(days=1)
        return f"{days} day{'s' if days != 1 else ''}"
    hours = span / timedelta(hours=1)
    return f"{hours:g} hour{'s' if hours != 1 else ''}"


def cap_cells(store: Store) -> dict[str, object]:
    """The inventory's cap columns of ``store``: ``cap`` (words), ``cap_days`` (None for an unaged
    secret) and ``not_aged_because`` (the reason, for an unaged secret only)."""
    if store.unaged is not None:
        return {"cap": "none: no personal data", "cap_days": None, "not_aged_because": store.unaged}
    return {"cap": _words(store.cap), "cap_days": round(store.cap / timedelta(days=1), 3), "not_aged_because": None}


def cap_words(span: timedelta) -> str:
    """A cap for people: '90 days', '25 hours'."""
    return _words(span)


# -- datamin core's own stores ---------------------------------------------------------------------
@register_stores
def core_stores(config: Config) -> list[Store]:
    """The topics, the producer spool, the shipper's state and the local broker's log files."""
    stores = [topic_store(spec) for spec in Topics(config).all()]
    stores.append(spool_store(config))
    stores.append(file_store(
        "shipper state", Path(config.producer.shipper_state_dir), "*.state", CAP - timedelta(days=1),
        holds="per access log: device, inode, byte offset and line number; no personal data"))
    home = Path(os.environ.get("DATAMIN_HOME", ".datamin")) / "kafka"
    stores.append(file_store(
        "local broker log files", home, "*.log*", timedelta(days=LOG_FILE_DAYS),
        holds="the local Kafka broker's own log (`datamin kafka start`); datamin itself logs to stderr"))
    stores += secret_stores(config)
    return stores


def spool_store(config: Config) -> Store:
    """The producer spool, aged honestly: a segment's oldest record is at most `SPOOL_SEGMENT_ROLL` older
    than its last write, so a segment goes once its last write is ``cap - SPOOL_SEGMENT_ROLL`` old and
    the oldest item shown is its last write minus that roll."""
    folder, pattern = Path(config.producer.spool_dir), "p-*/seg-*.spool"
    cap = timedelta(days=config.producer.spool_retention_days)

    def oldest(now: datetime) -> datetime | None:
        written = oldest_file(folder, pattern)
        return None if written is None else written - SPOOL_SEGMENT_ROLL

    return Store(name="producer spool", kind="files", location=str(folder / pattern),
                 holds="raw events waiting for Kafka: full IP addresses, identifiers, URLs (data in clear)",
                 cap=cap, enforced_by=SCHEDULER, raw=True, setting="producer.spool_retention_days",
                 how=(f"a segment takes appends for at most {_words(SPOOL_SEGMENT_ROLL)} and is deleted "
                      f"{_words(cap - SPOOL_SEGMENT_ROLL)} after its last write, so no record outlives "
                      f"{_words(cap)}; a segment a running producer holds is left to it"),
                 oldest=oldest,
                 expire=lambda now: delete_files_older(folder, pattern, cap - SPOOL_SEGMENT_ROLL, now,
                                                       _held_by_a_process))


def secret_stores(config: Config) -> list[Store]:
    """The two secrets: keys, not data about anyone, each declared with why it is not deleted at an age."""
    from datamin.keys import SECRET_FILE

    rights = Path(config.pseudonymise.key_dir) / SECRET_FILE
    identity = Path(config.identity.secret_file)
    return [
        Store(name="rights secret", kind=SECRET, location=str(rights), cap=CAP, enforced_by="not aged",
              holds="one random 32-byte key for keyed hashes of subject keys; no personal data",
              how="kept while the deployment runs; every store holding hashes made with it is capped",
              oldest=lambda now: mtime(rights),
              unaged=("holds no personal data. Rotating it would unlink the erased-subjects list (keyed hashes) "
                      "from the people on it, so an erased person's replayed or late events would be kept again; "
                      "the hashes it makes live only in capped stores (privacy-requests topic, rights trail, "
                      "erased-subjects list). Deleting the key folder with the deployment ends it.")),
        Store(name="identity secret", kind=SECRET, location=str(identity), cap=CAP, enforced_by="not aged",
              holds="the web server's key that signs visitor cookies and user tokens; no personal data",
              how="owned and rotated by the web server's operator (datamin never creates it)",
              setting="identity.secret_file", oldest=lambda now: mtime(identity),
              unaged=("holds no personal data; it signs visitor ids and short-lived user tokens. Rotating it "
                      "makes every visitor id (and the consent given with it) start over, a choice for the "
                      "web server's operator, who owns the file.")),
    ]


def topic_store(spec: object) -> Store:
    """A topic as a store: kept by the broker for ``retention.ms`` plus at most one ``segment.ms`` roll."""
    from datamin.topics import TopicSpec

    assert isinstance(spec, TopicSpec)
    cap = timedelta(milliseconds=spec.retention_ms + spec.segment_ms)
    return Store(name=f"topic {spec.name}", kind="topic", location=spec.name, holds=spec.holds, cap=cap,
                 enforced_by=BROKER, raw=spec.role in ("raw", "dead-letter"),
                 how=(f"retention.ms {_words(timedelta(milliseconds=spec.retention_ms))} + segment.ms "
                      f"{_words(timedelta(milliseconds=spec.segment_ms))}, log-append time"
                      + (", compacted" if spec.compacted else "")),
                 setting=spec.setting)
