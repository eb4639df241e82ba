"""Fuzzing the config loader: whatever the file and the environment say, load_config returns a valid
Config or raises ConfigError, and never accepts a retention beyond the policy's year or an IP prefix
weaker than /24 and /48."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from datamin.config import RAW_RETENTION_CAP_HOURS, RETENTION_CAP_DAYS, Config, load_config
from datamin.exceptions import ConfigError
from processors.transforms.urls import strip_url

SETTINGS = {
    "kafka": ["bootstrap_servers", "security_protocol", "ssl_cafile", "ssl_password", "ssl_check_hostname",
              "sasl_mechanism", "sasl_username", "sasl_password", "client_id"],
    "topics": ["prefix", "partitions", "replication_factor", "raw_retention_hours", "dead_letter_retention_hours",
               "minimised_retention_days"],
    "minimise": ["ipv4_prefix", "ipv6_prefix", "query_allowlist", "consent_validity_days", "honour_gpc"],
    "pseudonymise": ["key_dir", "rotation"],
    "warehouse": ["root", "flush_rows", "flush_seconds", "retention_days"],
    "producer": ["spool_dir", "spool_max_bytes", "queue_size"],
    "processor": ["group_id"],
    "nope": ["x"],
}
TABLES = ["http_request", "usage_event", "device_report", "consent_record", "privacy_request", "clicks"]
_CONFIG_ERRORS_ONLY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.sampled_from([0, 1, 8, 16, 24, 25, 32, 48, 49, 64, 128, 168, 169, 365, 366, 10**6]),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
    st.text(max_size=20), st.sampled_from(["SSL", "SASL_SSL", "PLAIN", "monthly", "yearly", "k:9092", ""]),
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
    st.sampled_from(TABLES + ["x"]), inner, max_size=3), max_leaves=6)


def toml_value(value: object) -> str:
    """A TOML rendering of ``value`` (Python repr where TOML has no spelling: the loader must cope)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value == math.inf else
                                                "-inf" if value == -math.inf else repr(value))
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"' if value.isprintable() else repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    return str(value)


@st.composite
def toml_documents(draw: st.DrawFn) -> str:
    """Mostly well-formed datamin.toml files with arbitrary values, sometimes with a line of noise."""
    lines = []
    for section in draw(st.lists(st.sampled_from(sorted(SETTINGS)), max_size=4, unique=True)):
        lines.append(f"[{section}]")
        for key in draw(st.lists(st.sampled_from(SETTINGS[section]), max_size=4, unique=True)):
            lines.append(f"{key} = {toml_value(draw(values))}")
    if draw(st.booleans()):
        lines.insert(draw(st.integers(0, len(lines))), draw(st.text(max_size=30)))
    return "\n".join(lines)


@st.composite
def environments(draw: st.DrawFn) -> dict[str, str]:
    env = {}
    for _ in range(draw(st.integers(0, 4))):
        section = draw(st.sampled_from(sorted(SETTINGS)))
        key = draw(st.sampled_from(SETTINGS[section]))
        name = f"DATAMIN__{section.upper()}__{key.upper()}"
        if key == "retention_days" and draw(st.booleans()):
            name += "__" + draw(st.sampled_from(TABLES)).upper()
        raw = draw(st.one_of(st.text(max_size=25), values.map(toml_value)))
        env[name] = raw.replace("\x00", "")  # an environment cannot hold NUL
    if draw(st.booleans()):
        env[draw(st.from_regex(r"DATAMIN(__[A-Z_]{0,8}){1,4}", fullmatch=True))] = draw(st.text(max_size=10))
    return env


def assert_within_policy(config: Config) -> None:
    assert isinstance(config, Config)
    assert 8 <= config.minimise.ipv4_prefix <= 24
    assert 16 <= config.minimise.ipv6_prefix <= 48
    assert 0 < config.minimise.consent_validity_days <= RETENTION_CAP_DAYS
    assert 0 < config.topics.minimised_retention_days <= RETENTION_CAP_DAYS
    assert 0 < config.topics.raw_retention_hours <= RAW_RETENTION_CAP_HOURS
    assert 0 < config.topics.dead_letter_retention_hours <= RAW_RETENTION_CAP_HOURS
    assert all(0 < days < RETENTION_CAP_DAYS for days in config.warehouse.retention_days.values())
    assert 0 < config.producer.spool_retention_days * 24 <= RAW_RETENTION_CAP_HOURS
    assert math.isfinite(config.warehouse.flush_seconds) and config.warehouse.flush_seconds > 0
    # what the config accepts, the code accepts at run time (the same rules, not a copy of them)
    assert strip_url("https://a.example/p?utm_x=1&ref=2", config.minimise.query_allowlist) is not None
    for path in (config.warehouse.root, config.pseudonymise.key_dir, config.producer.spool_dir,
                 config.warehouse.catalog):
        assert path.strip() and "\0" not in path


def load(text: str, env: dict[str, str], tmp_path: Path) -> Config | None:
    """load_config on ``text`` as the file (never ./datamin.toml) and ``env``; None for a ConfigError."""
    path = tmp_path / "datamin.toml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    try:
        return load_config(path, environ=env)
    except ConfigError:
        return None


@given(text=toml_documents(), env=environments())
@_CONFIG_ERRORS_ONLY
def test_any_file_and_environment_give_a_valid_config_or_config_error(
        text: str, env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> None:
    config = load(text, env, tmp_path_factory.mktemp("cfg"))
    if config is not None:
        assert_within_policy(config)


@given(text=st.text(max_size=200))
@_CONFIG_ERRORS_ONLY
@example(text="v = " + "[" * 5000)  # deeper than Python's recursion limit
@example(text="[minimise]\nipv4_prefix = 1e1")
@example(text="[warehouse]\nflush_seconds = nan")
def test_arbitrary_text_as_the_file(text: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    config = load(text, {}, tmp_path_factory.mktemp("cfg"))
    if config is not None:
        assert_within_policy(config)


@given(name=st.from_regex(r"DATAMIN(__[A-Za-z0-9_]{0,10}){1,4}", fullmatch=True),
       value=st.text(max_size=40).map(lambda v: v.replace("\x00", "")))
@_CONFIG_ERRORS_ONLY
@example(name="DATAMIN__WAREHOUSE__FLUSH_SECONDS", value="nan")
@example(name="DATAMIN__WAREHOUSE__FLUSH_SECONDS", value="inf")
@example(name="DATAMIN__MINIMISE__IPV4_PREFIX", value="[" * 5000)
@example(name="DATAMIN__WAREHOUSE__RETENTION_DAYS", value="{ http_request = 366 }")
def test_arbitrary_environment_variable(name: str, value: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    config = load("", {name: value, "DATAMIN__WAREHOUSE__ROOT": '"wh"'}, tmp_path_factory.mktemp("cfg"))
    if config is not None:
        assert_within_policy(config)


LIMITS = {  # key: accepted range, inclusive
    "MINIMISE__IPV4_PREFIX": (8, 24), "MINIMISE__IPV6_PREFIX": (16, 48),
    "MINIMISE__CONSENT_VALIDITY_DAYS": (1, RETENTION_CAP_DAYS),
    # retention plus one segment roll / one day partition stays within the caps
    "TOPICS__MINIMISED_RETENTION_DAYS": (1, RETENTION_CAP_DAYS - 1),
    "TOPICS__RAW_RETENTION_HOURS": (1, RAW_RETENTION_CAP_HOURS - 1),
    "WAREHOUSE__RETENTION_DAYS__HTTP_REQUEST": (1, RETENTION_CAP_DAYS - 1),
    "WAREHOUSE__RETENTION_DAYS__CONSENT_RECORD": (1, RETENTION_CAP_DAYS - 1),
    "PRODUCER__SPOOL_RETENTION_DAYS": (1, 7),
    "MINIMISE__CLOCK_SKEW_SECONDS": (0, 86400),
}


@given(key=st.sampled_from(sorted(LIMITS)), number=st.integers(-1000, 1000) | st.integers(-(2**63), 2**63 - 1))
@_CONFIG_ERRORS_ONLY
def test_limits_accept_exactly_their_range(key: str, number: int, tmp_path_factory: pytest.TempPathFactory) -> None:
    low, high = LIMITS[key]
    config = load("", {f"DATAMIN__{key}": str(number)}, tmp_path_factory.mktemp("cfg"))
    assert (config is not None) == (low <= number <= high)
    if config is not None:
        assert_within_policy(config)


# -- regressions found by the fuzzing above ---------------------------------------------------------------
@pytest.mark.parametrize("value", ["nan", "inf", "+inf"])
def test_flush_seconds_must_be_a_finite_number(value: str, tmp_path: Path) -> None:
    (tmp_path / "datamin.toml").write_text("[warehouse]\nflush_seconds = 2.5\n", encoding="utf-8")
    assert load_config(tmp_path / "datamin.toml", environ={}).warehouse.flush_seconds == 2.5
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "datamin.toml", environ={"DATAMIN__WAREHOUSE__FLUSH_SECONDS": value})
    assert err.value.key == "warehouse.flush_seconds"


def test_deeply_nested_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "datamin.toml"
    path.write_text("[minimise]\nquery_allowlist = " + "[" * 5000, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    assert err.value.key == str(path)


def test_deeply_nested_environment_value_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "datamin.toml").write_text("", encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "datamin.toml", environ={"DATAMIN__MINIMISE__QUERY_ALLOWLIST": "[" * 5000})
    assert err.value.key == "minimise.query_allowlist"
