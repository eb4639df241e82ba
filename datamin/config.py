"""datamin's one configuration: typed, validated, frozen.

Sources, later ones winning: the embedded defaults below, `datamin.toml` (the file named by
--config or DATAMIN_CONFIG, else ./datamin.toml when present), then the environment:
KAFKA_BOOTSTRAP_SERVERS, and DATAMIN__<SECTION>__<KEY> for any setting (e.g.
DATAMIN__MINIMISE__IPV4_PREFIX=16). A wrong value stops start-up with a ConfigError that names the
key, the problem and the fix. Secrets (passwords) are never printed: see `redacted()`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datamin import rules
from datamin.exceptions import ConfigError

RETENTION_CAP_DAYS = 365
"""The policy's hard limit: 'No purpose in this statement will require us to keep your personal
information for longer than one year.' Nothing datamin keeps may be configured beyond it."""
RAW_RETENTION_CAP_HOURS = 7 * 24
"""Raw topics hold full IP addresses and identifiers in clear: they are kept for hours, a week at most."""

TABLE_RETENTION_MAX_DAYS = RETENTION_CAP_DAYS - 1
"""the longest retention a warehouse table may have: expiry deletes whole day partitions, so a row written
at the first second of its day is up to retention + 1 days old when its partition goes"""
CLEAR_SEGMENT_HOURS = 1
"""segment.ms of topics with data in clear (raw, dead-letter): Kafka deletes whole segments, so a record
can outlive the topic's retention by one segment roll"""
SEGMENT_DAYS = 1
"""segment.ms of every other topic"""
IPV4_PREFIX_BITS = (8, 24)
"""the IPv4 prefixes datamin accepts, strongest to weakest: more than 24 bits (Google Analytics' /24)
can identify a household"""
IPV6_PREFIX_BITS = (16, 48)
"""the IPv6 prefixes datamin accepts, strongest to weakest: a /48 is often one customer's site"""

log = logging.getLogger(__name__)

SECRET_KEYS = frozenset({"ssl_password", "sasl_password"})
TABLES = ("http_request", "usage_event", "device_report", "consent_record", "privacy_request")


KAFKA_CLIENTS = ("kafka-python", "confluent-kafka")
"""the Kafka transports datamin has (datamin.kafka.client and datamin.kafka.confluent)"""


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap_servers: str = "127.0.0.1:9092"
    """host:port[,host:port…] of the brokers; KAFKA_BOOTSTRAP_SERVERS overrides it"""
    security_protocol: str = "PLAINTEXT"
    """PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"""
    ssl_cafile: str | None = None
    """CA bundle (PEM) that signed the brokers' certificates"""
    ssl_certfile: str | None = None
    """client certificate (PEM) for mutual TLS"""
    ssl_keyfile: str | None = None
    """client private key (PEM) for mutual TLS"""
    ssl_password: str | None = field(default=None, repr=False)
    """password of the client private key (never printed: hidden from repr() and `datamin config`)"""
    ssl_check_hostname: bool = True
    """verify that a broker's certificate names the host connected to"""
    sasl_mechanism: str | None = None
    """PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (with a SASL_* protocol)"""
    sasl_username: str | None = None
    """user name for SASL"""
    sasl_password: str | None = field(default=None, repr=False)
    """password for SASL (never printed: hidden from repr() and `datamin config`)"""
    client_id: str = "datamin"
    """client id the brokers see in their logs and quotas"""
    client: str = "kafka-python"
    """the Kafka transport: "kafka-python" (pure Python, the default) or "confluent-kafka" (librdkafka,
    several times less CPU per event; install it with `pip install datamin[confluent]`)"""

    def client_kwargs(self) -> dict[str, Any]:
        """The settings as keyword arguments for kafka-python's clients."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()],
            "security_protocol": self.security_protocol,
            "client_id": self.client_id,
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            kwargs["ssl_check_hostname"] = self.ssl_check_hostname
            for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_password"):
                if getattr(self, key) is not None:
                    kwargs[key] = getattr(self, key)
        if self.security_protocol.startswith("SASL_"):
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_password
        return kwargs


@dataclass(frozen=True)
class TopicsConfig:
    prefix: str = "datamin"
    """every topic datamin uses is named <prefix>.<role>[.<event type>]"""
    partitions: int = 3
    """partitions of each topic datamin provisions; processors and sinks scale up to this many"""
    replication_factor: int = 1
    """copies of each partition (3 in production; 1 for a single local broker)"""
    raw_retention_hours: int = 24
    """how long raw topics (full IP addresses, identifiers) are kept; with the one-hour segment roll at
    most a week (167 hours)"""
    dead_letter_retention_hours: int = 72
    """how long the dead-letter topic is kept; at most 167 hours, like raw topics"""
    minimised_retention_days: int = 7
    """how long minimised topics keep events (and pseudonyms) before only the warehouse has them; with the
    one-day segment roll at most 364 days"""


@dataclass(frozen=True)
class MinimiseConfig:
    ipv4_prefix: int = 16
    """bits of an IPv4 address kept; the weakest accepted is 24"""
    ipv6_prefix: int = 32
    """bits of an IPv6 address kept; the weakest accepted is 48"""
    query_allowlist: tuple[str, ...] = ("utm_*",)
    """query parameters kept in URLs; a trailing * matches a prefix"""
    consent_validity_days: int = 365
    """how long a consent choice counts before it counts as none until renewed"""
    honour_gpc: bool = True
    """treat Sec-GPC: 1 as an objection to marketing"""
    honour_dnt: bool = False
    """treat DNT: 1 as an objection to marketing (the policy as written does not)"""
    marketing_basis: str = "consent"
    """legal basis of marketing effectiveness: "consent" (datamin's default, stricter than the policy: a
    pseudonym is kept for it only with consent to marketing) or "legitimate_interest" (the policy's
    section 3: kept unless the person objected: declined marketing in the banner, withdrew consent,
    sent Global Privacy Control when honoured, or asked for restriction or objection)"""
    phone_region: str = "NO"
    """region (ISO 3166 code) whose national phone number format scrubbing recognises without a +country code"""
    site_hosts: tuple[str, ...] = ()
    """host names a kept "host" field may hold ("*.example.no" matches sub-domains); empty: any host name"""
    clock_skew_seconds: int = 300
    """an event dated more than this far in the future is refused (dead-lettered with the reason) where it
    enters and by the processor, so no one can create a partition the scheduler would not expire; an
    event older than its table's retention is refused the same way"""


@dataclass(frozen=True)
class PseudonymiseConfig:
    key_dir: str = "data/keys"
    """where pseudonymisation keys live, outside the warehouse; deleting a key unlinks its period"""
    rotation: str = "monthly"
    """how often a new key starts: monthly, weekly or daily"""


@dataclass(frozen=True)
class WarehouseConfig:
    root: str = "data/warehouse"
    """folder of the Parquet partitions: <root>/<table>/event_date=YYYY-MM-DD/"""
    group_id: str = "datamin-sink"
    """consumer group of the warehouse sinks"""
    catalog: str = "data/catalog.duckdb"
    """the DuckDB file analysts open read-only; views over the partitions"""
    min_visitors: int = 10
    """small-cell suppression: analyst views that group people (pages, referrers, search terms,
    countries, devices…) show a group only with at least this many distinct visitors, folding smaller
    ones into one "(other)" row (warehouse.suppression); at least 2"""
    flush_rows: int = 50_000
    """the sink writes a file when this many rows are waiting…"""
    flush_seconds: float = 2.0
    """…or when the oldest waiting row is this old, whichever comes first"""
    analyst_group: str | None = None
    """Unix group (name or number) of the analysts: the warehouse's folders are created 0750 and its
    files 0640 for it, so its members can read the tables and nothing else datamin keeps; unset, the
    warehouse is 0700/0600, datamin's own user alone"""
    retention_days: Mapping[str, int] = field(default_factory=lambda: {
        "http_request": 90,
        "usage_event": 180,
        "device_report": 90,
        "consent_record": 364,
        "privacy_request": 364,
    })
    """days each table keeps a day partition before expiry deletes it; at most 364, since a whole day
    partition goes at once (its first rows are then 365 days old)"""

    def retention_for(self, table: str) -> int:
        """Days ``table`` keeps a day partition (the cap for a table not listed); see `retention_for`."""
        return retention_for(table, self.retention_days)


@dataclass(frozen=True)
class ProducerConfig:
    spool_dir: str = "data/spool"
    """where events wait on local disk while Kafka cannot be reached"""
    spool_max_bytes: int = 256 * 1024 * 1024
    """bound of the spool; events beyond it are dropped, counted and logged"""
    queue_size: int = 10_000
    """events a request thread may queue for the background sender before spooling"""
    linger_ms: int = 200
    """how long the sender, woken by an event, waits for more before sending them together: one
    wake-up per batch keeps the CPU a request costs small (0: send each event at once); it is also
    the most an event waits before it is sent"""
    spool_retention_days: int = 7
    """spool segments (raw events in clear) last written longer ago than this are deleted by the
    scheduler even if Kafka never came back; at most 7 days, like raw topics"""
    shipper_state_dir: str = "data/shipper"
    """where `datamin ship-logs` keeps its read positions (default of its --state-dir)"""


@dataclass(frozen=True)
class ProcessorConfig:
    group_id: str = "datamin-processor"
    """consumer group of the minimisation processors"""
    transactional_id: str = "datamin-processor"
    """prefix of the transactional ids (one per instance) that make output and offsets commit together"""
    transaction_seconds: float = 0.5
    """a transaction (minimised events and the input offsets they came from) commits when it is this
    old, however few records it holds: a caught-up processor commits twice a second, not per poll…"""
    transaction_bytes: int = 4 * 1024 * 1024
    """…or when it has read this many bytes of input, whichever comes first"""
    ledger_memory_subjects: int = 200_000
    """subjects whose consent state an instance keeps in memory per input partition (about 160 bytes
    each); the least recently used beyond that spill to an SQLite temporary file (SQLITE_TMPDIR)"""


@dataclass(frozen=True)
class CollectorConfig:
    prefix: str = "/collect"
    """path the collector answers at (POST events there; the page snippet is <prefix>/datamin.js)"""
    allowed_origins: tuple[str, ...] = ()
    """origins (https://host[:port]) whose pages may post from a browser, the site's own included:
    browsers send Origin on same-origin POSTs too"""
    consent_cookie: str = "datamin_consent"
    """cookie holding the visitor id the web server issued (`Identity.issue_visitor`)"""
    trusted_proxies: tuple[str, ...] = ()
    """CIDRs of the reverse proxies in front of the collector, whose X-Forwarded-For is believed"""
    rate_per_second: float = 5.0
    """requests a second one client (IP address) may make after its burst"""
    burst: int = 50
    """requests one client may make at once"""
    consent_records_per_day: int = 20
    """consent choices one visitor may record a day; more are refused (a banner needs a few)"""
    header_timeout_seconds: float = 10.0
    """time a client has to send a request's headers before the connection is closed (slowloris)"""
    body_timeout_seconds: float = 10.0
    """time a client has to send a request's body once its headers came; then 408"""
    max_body_bytes: int = 256 * 1024
    """largest request body accepted (413 beyond)"""


@dataclass(frozen=True)
class BackupConfig:
    retention_days: int = 30
    """days a backup is kept before the scheduler deletes it; at most 365 (backups are within the cap)"""
    dest: str | None = None
    """where `datamin backup create` writes by default and the scheduler expires: a folder, or an
    s3:// / gs:// URL (pyarrow's filesystems, credentials from the usual environment)"""
    key_file: str | None = None
    """file holding the 32-byte backup key (raw, hex or base64); when set, every backup file is
    encrypted with AES-256-GCM. Keep it apart from the backups; it is never printed"""


@dataclass(frozen=True)
class PolicyConfig:
    controller: str = "TECHPROS AS"
    """the data controller named in the record of processing (the privacy policy's company)"""
    address: str = "Lille Grensen 3, 0159 Oslo, Norge"
    """the controller's postal address"""
    contact: str = "post@techpros.no"
    """where people send questions and requests about their data"""
    version: str = "2023-12-01"
    """the version (revision date) of the privacy policy this deployment implements"""
    recipients: tuple[str, ...] = ("Data analysis services",)
    """categories of recipients the policy names (section 4: 'Data analysis services')"""


@dataclass(frozen=True)
class IdentityConfig:
    secret_file: str = "data/identity.secret"  # noqa: S105 - a path, not the secret
    """32+ random bytes shared by the web server, its middleware and the collector: they sign visitor
    ids and user tokens (`datamin.identity`); never created by datamin"""
    max_token_seconds: int = 900
    """longest lifetime a signed user token may have (15 minutes by default, a day at most)"""
    max_token_uses: int = 50
    """how often one user token may be presented to one collector (bounded replay)"""


@dataclass(frozen=True)
class Config:
    kafka: KafkaConfig = field(default_factory=KafkaConfig)
    topics: TopicsConfig = field(default_factory=TopicsConfig)
    minimise: MinimiseConfig = field(default_factory=MinimiseConfig)
    pseudonymise: PseudonymiseConfig = field(default_factory=PseudonymiseConfig)
    warehouse: WarehouseConfig = field(default_factory=WarehouseConfig)
    producer: ProducerConfig = field(default_factory=ProducerConfig)
    processor: ProcessorConfig = field(default_factory=ProcessorConfig)
    collector: CollectorConfig = field(default_factory=CollectorConfig)
    backup: BackupConfig = field(default_factory=BackupConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    identity: IdentityConfig = field(default_factory=IdentityConfig)

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict with every secret replaced by '***'."""
        out = dataclasses.asdict(self)
        for section in out.values():
            for key in SECRET_KEYS & set(section):
                if section[key] is not None:
                    section[key] = "***"
        return out


def load_config(path: str | os.PathLike[str] | None = None,
                environ: Mapping[str, str] | None = None) -> Config:
    """Builds the configuration from defaults, the TOML file and the environment, then validates it."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    explicit = path or environ.get("DATAMIN_CONFIG")
    file = Path(explicit) if explicit else Path("datamin.toml")
    if explicit and not file.is_file():
        raise ConfigError("--config", f"file {str(file)!r} does not exist",
                          "pass the path of a datamin.toml, or leave it out to use the defaults")
    if file.is_file():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(str(file), f"is not valid TOML ({exc})", "correct the syntax at that line") from None
        except RecursionError:  # tomllib recurses once per nested array or table
            raise ConfigError(str(file), "nests arrays or tables too deeply to read",
                              "write settings as key = value lines") from None
    _apply_environment(data, environ)
    config = _build(Config, data, "")
    assert isinstance(config, Config)
    validate(config)
    return config


def _apply_environment(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    if environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        data.setdefault("kafka", {})["bootstrap_servers"] = environ["KAFKA_BOOTSTRAP_SERVERS"]
    for name, value in environ.items():
        parts = name.split("__")
        if parts[0] != "DATAMIN" or len(parts) < 3:
            continue
        target = data
        for part in parts[1:-1]:
            target = target.setdefault(part.lower(), {})
            if not isinstance(target, dict):
                raise ConfigError(".".join(p.lower() for p in parts[1:]), "is not a section",
                                  f"remove the environment variable {name}")
        target[parts[-1].lower()] = _parse_env_value(value)


def _parse_env_value(value: str) -> Any:
    try:
        return tomllib.loads(f"v = {value}")["v"]
    except (tomllib.TOMLDecodeError, RecursionError):  # not TOML (or nested too deeply): a plain string
        return value


def _build(cls: type, data: Any, prefix: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(prefix.rstrip(".") or "(top level)", "must be a table of settings",
                          f"write it as [{prefix.rstrip('.')}] with key = value lines")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in data:
        if key not in names:
            raise ConfigError(f"{prefix}{key}", "is not a setting datamin knows",
                              f"remove it or check the spelling; known here: {', '.join(sorted(names))}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        key = f"{prefix}{f.name}"
        hint = hints[f.name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            kwargs[f.name] = _build(hint, data[f.name], key + ".")
        else:
            kwargs[f.name] = _coerce(data[f.name], hint, key, f)
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, key: str, f: dataclasses.Field[Any]) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        if value is None or value == "":
            return None
        return _coerce(value, next(a for a in args if a is not type(None)), key, f)
    if origin is tuple:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(key, "must be a list of strings", f'write it as {key.split(".")[-1]} = ["a", "b"]')
        return tuple(value)
    if origin is Mapping:
        if not isinstance(value, Mapping):
            raise ConfigError(key, "must be a table", f"write it as [{key}] with name = value lines")
        merged = dict(f.default_factory()) if f.default_factory is not dataclasses.MISSING else {}
        for name, item in value.items():
            if not isinstance(item, int) or isinstance(item, bool):
                raise ConfigError(f"{key}.{name}", "must be a whole number", "write a number of days, e.g. 90")
            merged[name] = item
        return types.MappingProxyType(merged)
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, "must be true or false", f"write {key.split('.')[-1]} = true or = false")
        return value
    if hint is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(key, "must be a whole number", f"write a number, e.g. {f.default}")
        return value
    if hint is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(key, "must be a number", f"write a number, e.g. {f.default}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(key, "must be a string", f'write it in quotes, e.g. {key.split(".")[-1]} = "{f.default}"')
        return value
    raise ConfigError(key, "has a type datamin cannot read", "report this as a bug")


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


def check_ip_prefixes(ipv4_prefix: object, ipv6_prefix: object) -> None:
    """Raises ConfigError (a ValueError too) unless both prefixes are whole numbers within
    `IPV4_PREFIX_BITS` and `IPV6_PREFIX_BITS`; the one check of these bounds, for the config, the
    IP transform and the leak scan alike."""
    for key, value, (low, high), default, why in (
            ("minimise.ipv4_prefix", ipv4_prefix, IPV4_PREFIX_BITS, 16, "more than 24 bits can identify a household"),
            ("minimise.ipv6_prefix", ipv6_prefix, IPV6_PREFIX_BITS, 32, "a /48 is often one customer's site")):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ConfigError(key, f"{value!r} is outside the accepted {low}..{high} bits ({why})",
                              f"use a whole number from {low} to {high}: {default} (the default) or at most {high}")


MIN_VISITORS_FLOOR = 2
"""The smallest ``warehouse.min_visitors`` accepted: a group of one visitor is that visitor."""


def check_min_visitors(k: object) -> int:
    """``k`` when it is a whole number of at least `MIN_VISITORS_FLOOR`; else ConfigError. The one check
    of ``warehouse.min_visitors``, for the config and the catalog alike."""
    if isinstance(k, bool) or not isinstance(k, int) or k < MIN_VISITORS_FLOOR:
        raise ConfigError("warehouse.min_visitors", f"{k!r} would let views show groups of a single visitor",
                          f"use a whole number of at least {MIN_VISITORS_FLOOR}: 10 (the default) or more")
    return k


def retention_for(table: str, retention_days: Mapping[str, int]) -> int:
    """Days ``table`` keeps a day partition under ``retention_days`` (``warehouse.retention_days``): its
    value clamped to TABLE_RETENTION_MAX_DAYS (logged), else that: a day partition goes whole, so its
    first rows are then a day older (365 days). Raises ConfigError for a value below 1 (that would delete
    today's data as it arrives)."""
    days = retention_days.get(table, TABLE_RETENTION_MAX_DAYS)
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ConfigError(f"warehouse.retention_days.{table}", "must be a whole number of days, at least 1",
                          f"set it between 1 and {TABLE_RETENTION_MAX_DAYS}")
    if days > TABLE_RETENTION_MAX_DAYS:
        log.warning("retention of %s (%d days) is beyond the policy's cap; using %d days",
                    table, days, TABLE_RETENTION_MAX_DAYS)
        return TABLE_RETENTION_MAX_DAYS
    return days


def _positive(key: str, value: int) -> None:
    if value <= 0:
        raise ConfigError(key, f"{value} must be more than 0", "use a positive number")


def _retention(key: str, days: int, *, extra: int = 0, why: str = "") -> None:
    _positive(key, days)
    if days + extra > RETENTION_CAP_DAYS:
        raise ConfigError(key, f"{days} days{why} is beyond the privacy policy's cap of {RETENTION_CAP_DAYS} days "
                          "('no longer than one year')", f"set it to {RETENTION_CAP_DAYS - extra} or less")
