"""The checks types alone cannot make; each failure a ConfigError naming the key, the problem and the fix."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from datamin import rules
from datamin.config.bounds import (
    CLEAR_SEGMENT_HOURS,
    KAFKA_CLIENTS,
    RAW_RETENTION_CAP_HOURS,
    SEGMENT_DAYS,
    TABLES,
    _positive,
    _retention,
    check_ip_prefixes,
    check_min_visitors,
)
from datamin.config.sections import Config
from datamin.exceptions import ConfigError


def validate(config: Config) -> None:
    """Checks the values that types alone cannot; raises ConfigError naming the key and the fix."""
    k = config.kafka
    if not k.client_kwargs()["bootstrap_servers"]:
        raise ConfigError("kafka.bootstrap_servers", "is empty", "set it to host:port, or set KAFKA_BOOTSTRAP_SERVERS")
    protocols = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
    if k.security_protocol not in protocols:
        raise ConfigError("kafka.security_protocol", f"{k.security_protocol!r} is not supported",
                          f"use one of {', '.join(protocols)}")
    if k.security_protocol.startswith("SASL_"):
        mechanisms = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
        if k.sasl_mechanism not in mechanisms:
            raise ConfigError("kafka.sasl_mechanism", f"{k.sasl_mechanism!r} is not supported with "
                              f"{k.security_protocol}", f"use one of {', '.join(mechanisms)}")
        if not k.sasl_username or k.sasl_password is None:
            raise ConfigError("kafka.sasl_username", "SASL needs a user name and a password",
                              "set kafka.sasl_username and kafka.sasl_password (or DATAMIN__KAFKA__SASL_PASSWORD)")
    if k.client not in KAFKA_CLIENTS:
        raise ConfigError("kafka.client", f"{k.client!r} is not a Kafka transport datamin has",
                          f"use one of {', '.join(repr(c) for c in KAFKA_CLIENTS)}")
    if k.client == "confluent-kafka" and importlib.util.find_spec("confluent_kafka") is None:
        raise ConfigError("kafka.client", "'confluent-kafka' is chosen but the confluent-kafka package is not "
                          "installed", "install it with `pip install 'datamin[confluent]'`, or use 'kafka-python'")
    for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
        value = getattr(k, key)
        if value is not None and not Path(value).is_file():
            raise ConfigError(f"kafka.{key}", f"file {value!r} does not exist", "give the path of a PEM file")

    t = config.topics
    _positive("topics.partitions", t.partitions)
    _positive("topics.replication_factor", t.replication_factor)
    for key, hours in (("topics.raw_retention_hours", t.raw_retention_hours),
                       ("topics.dead_letter_retention_hours", t.dead_letter_retention_hours)):
        _positive(key, hours)
        most = RAW_RETENTION_CAP_HOURS - CLEAR_SEGMENT_HOURS
        if hours > most:
            raise ConfigError(key, f"{hours} hours plus the {CLEAR_SEGMENT_HOURS}-hour segment roll is beyond the "
                              f"cap of {RAW_RETENTION_CAP_HOURS} hours for topics that hold unminimised data",
                              f"set it to {most} or less")
    _retention("topics.minimised_retention_days", t.minimised_retention_days, extra=SEGMENT_DAYS,
               why=f" plus the {SEGMENT_DAYS}-day segment roll")

    m = config.minimise
    check_ip_prefixes(m.ipv4_prefix, m.ipv6_prefix)
    _retention("minimise.consent_validity_days", m.consent_validity_days)
    if len(m.phone_region) != 2 or not m.phone_region.isalpha() or m.phone_region.upper() == "ZZ":
        raise ConfigError("minimise.phone_region", f"{m.phone_region!r} is not a two-letter region code",
                          'use an ISO 3166 code such as "NO" (the default), "SE" or "GB"')
    for host in m.site_hosts:
        if not host or any(c in host for c in "/@:? ") or host.count("*") > (1 if host.startswith("*.") else 0):
            raise ConfigError("minimise.site_hosts", f"{host!r} is not a host name",
                              'list bare host names, e.g. ["www.example.no", "*.example.no"]')
    if not 0 <= m.clock_skew_seconds <= 24 * 3600:
        raise ConfigError("minimise.clock_skew_seconds", f"{m.clock_skew_seconds} is outside 0..86400 seconds",
                          "set it to 86400 or less; 300 (five minutes) is the default")

    if config.minimise.marketing_basis not in ("consent", "legitimate_interest"):
        raise ConfigError("minimise.marketing_basis", f"{config.minimise.marketing_basis!r} is not a legal basis "
                          "datamin supports for marketing", 'use "consent" (the default) or "legitimate_interest"')
    if config.pseudonymise.rotation not in ("monthly", "weekly", "daily"):
        raise ConfigError("pseudonymise.rotation", f"{config.pseudonymise.rotation!r} is not a rotation period",
                          "use monthly (the default), weekly or daily")

    w = config.warehouse
    _positive("warehouse.flush_rows", w.flush_rows)
    check_min_visitors(w.min_visitors)
    if not 0 < w.flush_seconds < float("inf"):  # also refuses nan
        raise ConfigError("warehouse.flush_seconds", "must be a finite number more than 0", "use e.g. 2.0")
    for table, days in w.retention_days.items():
        if table not in TABLES:
            raise ConfigError(f"warehouse.retention_days.{table}", "is not a warehouse table",
                              f"use one of {', '.join(TABLES)}")
        _retention(f"warehouse.retention_days.{table}", days, extra=1,
                   why=" plus the day a partition spans")

    for key in ("controller", "contact", "version"):
        if not getattr(config.policy, key).strip():
            raise ConfigError(f"policy.{key}", "is empty", "name it as the privacy policy does")

    p = config.producer
    _positive("producer.spool_max_bytes", p.spool_max_bytes)
    _positive("producer.queue_size", p.queue_size)
    if not 0 <= p.linger_ms <= 1000:
        raise ConfigError("producer.linger_ms", f"{p.linger_ms} is outside 0..1000 milliseconds",
                          "use 200 (the default); 0 sends each event at once")
    if len(os.fsencode(p.agent_socket)) >= 108:  # sun_path: 108 bytes with its terminating NUL
        raise ConfigError("producer.agent_socket", "is longer than a Unix socket's path may be (107 bytes)",
                          "use a shorter path, e.g. /run/datamin/agent.sock")

    c = config.collector
    for origin in c.allowed_origins:
        scheme, sep, rest = origin.partition("://")
        if not sep or scheme not in ("http", "https") or not rest or "/" in rest:
            raise ConfigError("collector.allowed_origins", f"{origin!r} is not an origin",
                              'write origins as scheme://host[:port], e.g. "https://techpros.no", no path')
    for key in ("rate_per_second", "header_timeout_seconds", "body_timeout_seconds"):
        if not 0 < getattr(c, key) < float("inf"):
            raise ConfigError(f"collector.{key}", "must be a finite number more than 0", "use e.g. 10.0")
    _positive("collector.burst", c.burst)
    _positive("collector.consent_records_per_day", c.consent_records_per_day)
    _positive("collector.max_body_bytes", c.max_body_bytes)
    if not c.prefix.startswith("/"):
        raise ConfigError("collector.prefix", f"{c.prefix!r} is not a path", 'write it as e.g. "/collect"')
    _positive("producer.spool_retention_days", p.spool_retention_days)
    if p.spool_retention_days * 24 > RAW_RETENTION_CAP_HOURS:
        raise ConfigError("producer.spool_retention_days", f"{p.spool_retention_days} days is beyond the cap of "
                          f"{RAW_RETENTION_CAP_HOURS // 24} days for raw events in clear",
                          f"set it to {RAW_RETENTION_CAP_HOURS // 24} or less")
    _positive("processor.ledger_memory_subjects", config.processor.ledger_memory_subjects)
    _positive("processor.transaction_bytes", config.processor.transaction_bytes)
    if not 0 < config.processor.transaction_seconds <= 60:  # also refuses nan
        raise ConfigError("processor.transaction_seconds", "must be more than 0 and at most 60",
                          "use e.g. 0.5: events reach the minimised topics at most this much later")

    _retention("backup.retention_days", config.backup.retention_days)
    if config.backup.key_file is not None and not Path(config.backup.key_file).is_file():
        raise ConfigError("backup.key_file", f"file {config.backup.key_file!r} does not exist",
                          "create one with `datamin backup keygen PATH`, or leave backup.key_file unset")
    i = config.identity
    if not 0 < i.max_token_seconds <= 86400:
        raise ConfigError("identity.max_token_seconds", f"{i.max_token_seconds} is outside 1..86400 seconds",
                          "keep user tokens short-lived: 900 (the default) or less")
    _positive("identity.max_token_uses", i.max_token_uses)

    try:  # the very rule the URL transform applies to every event
        rules.query_allowlist(m.query_allowlist)
    except ValueError as exc:
        raise ConfigError("minimise.query_allowlist", str(exc), 'list parameter names or prefixes ending in "*", '
                          'e.g. query_allowlist = ["utm_*", "ref"], or [] to keep none') from None
    _validate_paths(config)


def _validate_paths(config: Config) -> None:
    """Every path setting as the code that uses it needs it, and the stores kept apart: keys, the rights
    secret and the spool (full IP addresses) never inside the warehouse that analysts read."""
    folders = {"warehouse.root": config.warehouse.root, "pseudonymise.key_dir": config.pseudonymise.key_dir,
               "producer.spool_dir": config.producer.spool_dir}
    for key, value in folders.items():
        try:
            rules.folder_path(value)
        except ValueError as exc:
            raise ConfigError(key, str(exc),
                              f'give the path of a folder datamin may create, e.g. "{_default(key)}"') from None
    files = {"warehouse.catalog": config.warehouse.catalog, "identity.secret_file": config.identity.secret_file}
    for key, value in files.items():
        try:
            rules.file_path(value)
        except ValueError as exc:
            raise ConfigError(key, str(exc), f'give the path of a file, e.g. "{_default(key)}"') from None
    root = Path(config.warehouse.root)
    if rules.inside(Path(config.identity.secret_file), root):
        raise ConfigError("identity.secret_file", f"{config.identity.secret_file!r} is inside the warehouse root "
                          f"{config.warehouse.root!r}, which analysts can read",
                          f'keep it outside warehouse.root, e.g. "{_default("identity.secret_file")}"')
    for key in ("pseudonymise.key_dir", "producer.spool_dir"):
        if rules.inside(Path(folders[key]), root) or rules.inside(root, Path(folders[key])):
            raise ConfigError(key, f"{folders[key]!r} overlaps the warehouse root {config.warehouse.root!r}, which "
                              "analysts can read", f'keep it outside warehouse.root, e.g. "{_default(key)}"')
    if rules.inside(Path(config.pseudonymise.key_dir), Path(config.producer.spool_dir)) or \
            rules.inside(Path(config.producer.spool_dir), Path(config.pseudonymise.key_dir)):
        raise ConfigError("producer.spool_dir", "overlaps pseudonymise.key_dir", "give each its own folder")
    group = config.warehouse.analyst_group
    if group is not None:
        try:
            rules.group_id(group)
        except ValueError as exc:
            raise ConfigError("warehouse.analyst_group", str(exc),
                              "create the group (groupadd analysts) or name an existing one; leave it out to keep "
                              "the warehouse to datamin's own user and group") from None


def _default(key: str) -> str:
    section, name = key.split(".")
    return str(getattr(Config(), section).__dataclass_fields__[name].default)


