"""The configuration's sections: frozen dataclasses, a docstring under every setting, the embedded defaults."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from datamin.config.bounds import SECRET_KEYS, retention_for


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
    agent_socket: str = ""
    """Unix socket of the `datamin agent` on this machine: producers (web apps, the collector,
    ship-logs) hand it their encoded events instead of each running a Kafka client of its own, which
    costs a web server's process far less CPU per request; a producer that cannot reach it sends
    directly. Empty: every producer sends to Kafka itself"""


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

