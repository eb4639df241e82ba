"""datamin's one configuration: typed, validated, frozen.

Sources, later ones winning: the embedded defaults (`sections`), `datamin.toml` (the file named by
--config or DATAMIN_CONFIG, else ./datamin.toml when present), then the environment:
KAFKA_BOOTSTRAP_SERVERS, and DATAMIN__<SECTION>__<KEY> for any setting (e.g.
DATAMIN__MINIMISE__IPV4_PREFIX=16) (`loading`). A wrong value stops start-up with a ConfigError that
names the key, the problem and the fix (`validation`, against the limits in `bounds`). Secrets
(passwords) are never printed: see `Config.redacted()`.
"""

from datamin.config.bounds import (
    CLEAR_SEGMENT_HOURS,
    IPV4_PREFIX_BITS,
    IPV6_PREFIX_BITS,
    KAFKA_CLIENTS,
    MIN_VISITORS_FLOOR,
    RAW_RETENTION_CAP_HOURS,
    RETENTION_CAP_DAYS,
    SECRET_KEYS,
    SEGMENT_DAYS,
    TABLE_RETENTION_MAX_DAYS,
    TABLES,
    check_ip_prefixes,
    check_min_visitors,
    retention_for,
)
from datamin.config.loading import load_config
from datamin.config.sections import (
    BackupConfig,
    CollectorConfig,
    Config,
    IdentityConfig,
    KafkaConfig,
    MinimiseConfig,
    PolicyConfig,
    ProcessorConfig,
    ProducerConfig,
    PseudonymiseConfig,
    TopicsConfig,
    WarehouseConfig,
)
from datamin.config.validation import validate

__all__ = [
    "CLEAR_SEGMENT_HOURS",
    "IPV4_PREFIX_BITS",
    "IPV6_PREFIX_BITS",
    "KAFKA_CLIENTS",
    "MIN_VISITORS_FLOOR",
    "RAW_RETENTION_CAP_HOURS",
    "RETENTION_CAP_DAYS",
    "SECRET_KEYS",
    "SEGMENT_DAYS",
    "TABLES",
    "TABLE_RETENTION_MAX_DAYS",
    "BackupConfig",
    "CollectorConfig",
    "Config",
    "IdentityConfig",
    "KafkaConfig",
    "MinimiseConfig",
    "PolicyConfig",
    "ProcessorConfig",
    "ProducerConfig",
    "PseudonymiseConfig",
    "TopicsConfig",
    "WarehouseConfig",
    "check_ip_prefixes",
    "check_min_visitors",
    "load_config",
    "retention_for",
    "validate",
]
