"""The configuration: defaults, file, environment, and errors that name the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from datamin.config import RETENTION_CAP_DAYS, load_config
from datamin.exceptions import ConfigError


def test_defaults_need_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(environ={})
    assert config.minimise.ipv4_prefix == 16 and config.minimise.ipv6_prefix == 32
    assert config.kafka.client_kwargs()["bootstrap_servers"] == ["127.0.0.1:9092"]
    assert all(days <= RETENTION_CAP_DAYS for days in config.warehouse.retention_days.values())


def test_file_then_environment_win(tmp_path: Path) -> None:
    toml = tmp_path / "datamin.toml"
    toml.write_text('[minimise]\nipv4_prefix = 24\n[warehouse.retention_days]\nhttp_request = 30\n')
    config = load_config(toml, environ={"KAFKA_BOOTSTRAP_SERVERS": "k1:9092, k2:9092",
                                         "DATAMIN__MINIMISE__IPV6_PREFIX": "48"})
    assert config.minimise.ipv4_prefix == 24
    assert config.minimise.ipv6_prefix == 48
    assert config.warehouse.retention_days["http_request"] == 30
    assert config.warehouse.retention_days["usage_event"] == 180  # other defaults kept
    assert config.kafka.client_kwargs()["bootstrap_servers"] == ["k1:9092", "k2:9092"]


@pytest.mark.parametrize(("env", "key"), [
    ({"DATAMIN__WAREHOUSE__RETENTION_DAYS__HTTP_REQUEST": "366"}, "warehouse.retention_days.http_request"),
    ({"DATAMIN__TOPICS__MINIMISED_RETENTION_DAYS": "400"}, "topics.minimised_retention_days"),
    ({"DATAMIN__TOPICS__RAW_RETENTION_HOURS": "720"}, "topics.raw_retention_hours"),
    ({"DATAMIN__MINIMISE__IPV4_PREFIX": "32"}, "minimise.ipv4_prefix"),
    ({"DATAMIN__MINIMISE__IPV6_PREFIX": "64"}, "minimise.ipv6_prefix"),
    ({"DATAMIN__MINIMISE__CONSENT_VALIDITY_DAYS": "500"}, "minimise.consent_validity_days"),
    ({"DATAMIN__PSEUDONYMISE__ROTATION": '"yearly"'}, "pseudonymise.rotation"),
    ({"DATAMIN__KAFKA__SECURITY_PROTOCOL": '"TLS"'}, "kafka.security_protocol"),
    ({"DATAMIN__KAFKA__SECURITY_PROTOCOL": '"SASL_SSL"', "DATAMIN__KAFKA__SASL_MECHANISM": '"PLAIN"'},
     "kafka.sasl_username"),
    ({"DATAMIN__MINIMISE__HONOUR_GPC": '"yes"'}, "minimise.honour_gpc"),
    ({"DATAMIN__NOPE__X": "1"}, "nope"),
    ({"DATAMIN__WAREHOUSE__RETENTION_DAYS__CLICKS": "10"}, "warehouse.retention_days.clicks"),
    ({"DATAMIN__PRODUCER__AGENT_SOCKET": f'"/run/{"a" * 110}.sock"'}, "producer.agent_socket"),
])
def test_bad_values_name_the_key_and_the_fix(env: dict[str, str], key: str, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as err:
        load_config(environ=env)
    assert err.value.key == key
    assert "Fix:" in str(err.value) and err.value.fix


def test_retention_cap_names_the_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="one year"):
        load_config(environ={"DATAMIN__WAREHOUSE__RETENTION_DAYS__CONSENT_RECORD": "366"})


def test_tls_and_sasl_reach_kafka_python(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    config = load_config(environ={
        "DATAMIN__KAFKA__SECURITY_PROTOCOL": '"SASL_SSL"', "DATAMIN__KAFKA__SASL_MECHANISM": '"SCRAM-SHA-512"',
        "DATAMIN__KAFKA__SASL_USERNAME": '"svc"', "DATAMIN__KAFKA__SASL_PASSWORD": '"s3cret"',
        "DATAMIN__KAFKA__SSL_CAFILE": f'"{ca}"',
    })
    kwargs = config.kafka.client_kwargs()
    assert kwargs["security_protocol"] == "SASL_SSL"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["sasl_plain_username"] == "svc" and kwargs["sasl_plain_password"] == "s3cret"
    assert kwargs["ssl_cafile"] == str(ca)
    assert "s3cret" not in str(config.redacted())


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "datamin.toml"
    bad.write_text("[kafka\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad, environ={})


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", environ={})


def test_repr_hides_the_passwords(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no datamin.toml here
    env = {"DATAMIN__KAFKA__SECURITY_PROTOCOL": "SASL_PLAINTEXT", "DATAMIN__KAFKA__SASL_MECHANISM": "PLAIN",
           "DATAMIN__KAFKA__SASL_USERNAME": "svc", "DATAMIN__KAFKA__SASL_PASSWORD": "s3cret-sasl",
           "DATAMIN__KAFKA__SSL_PASSWORD": "s3cret-ssl"}
    config = load_config(None, environ=env)
    assert config.kafka.sasl_password == "s3cret-sasl" and config.kafka.ssl_password == "s3cret-ssl"
    for text in (repr(config), str(config), repr(config.kafka)):
        assert "s3cret" not in text
        assert "svc" in text  # the rest of the settings still shows
