"""Checks before any right is carried out: the stores exist, the secrets exist, the topics exist.

A rights command run from the wrong directory (so that the relative defaults point at nothing) must
not report "held no rows", record the request as done and create a fresh ``data/`` with a new
secret while the real warehouse keeps every row. So, before anything is written:

- the configured warehouse root (``warehouse.root``) and key folder (``pseudonymise.key_dir``) must
  exist and hold something; otherwise a ConfigError names the path and the config key;
- the rights secret (``<key_dir>/rights.secret``) must exist: the rights commands never create a
  secret (the processor creates it when it starts, see `ensure_rights_secret`);
- the topics the action uses must exist on the broker: one clear BrokerError naming them and the fix
  (``datamin topics``), instead of kafka-python logging an error ten times a second for a minute.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from datamin.config import Config
from datamin.exceptions import BrokerError, ConfigError
from datamin.keys import SECRET_FILE, load_secret


def check_stores(config: Config) -> None:
    """Raises ConfigError when the warehouse or key folder is missing or empty, or the rights secret
    is missing. Creates nothing."""
    stores = (("warehouse.root", config.warehouse.root), ("pseudonymise.key_dir", config.pseudonymise.key_dir))
    for key, value in stores:
        path = Path(value)
        where = f"{value!r} (resolved to {path.resolve()})"
        if not path.is_dir():
            raise ConfigError(key, f"{where} does not exist",
                              f"run from the folder the pipeline runs in, or pass --config / set {key} to the real "
                              "path; nothing was done and nothing was created")
        if not any(path.iterdir()):
            raise ConfigError(key, f"{where} is empty",
                              f"set {key} to the folder the pipeline writes; nothing was done")
    secret = Path(config.pseudonymise.key_dir) / SECRET_FILE
    if not secret.is_file():
        raise ConfigError("pseudonymise.key_dir", f"the rights secret {str(secret)!r} does not exist",
                          "restore the key folder from backup, or start the processor once (it creates the "
                          "secret); the rights commands never create secrets")


def ensure_rights_secret(config: Config) -> None:
    """Creates the rights secret if missing (the processor calls this when it starts)."""
    load_secret(Path(config.pseudonymise.key_dir))


def check_topics(config: Config, topics: Iterable[str], *, doing: str = "carrying out a privacy request") -> None:
    """Raises one BrokerError naming the missing ``topics`` (and the fix) when any does not exist."""
    from datamin.kafka import new_admin, require_reachable, translate_kafka_errors

    wanted = sorted(set(topics))
    require_reachable(doing, config)
    with translate_kafka_errors(doing, config):
        admin = new_admin(config, request_timeout_ms=10_000)
        try:
            existing = set(admin.list_topics())
        finally:
            admin.close()
    missing = [t for t in wanted if t not in existing]
    if missing:
        raise BrokerError(f"{doing}: the topic(s) {', '.join(missing)} do not exist on "
                          f"{config.kafka.bootstrap_servers}. Create them with `datamin topics` (and check "
                          "topics.prefix); nothing was done")
