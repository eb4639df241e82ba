"""Configuration validation applies the rules the code applies at run time: what `datamin config`
accepts works, what would break later is refused at load with the key and the fix."""

from __future__ import annotations

import grp
import os
from pathlib import Path

import pytest

from datamin.config import load_config
from datamin.exceptions import ConfigError
from processors.transforms.urls import strip_url


def load(tmp_path: Path, **env: str):
    base = {
        "DATAMIN__PSEUDONYMISE__KEY_DIR": f'"{tmp_path / "keys"}"',
        "DATAMIN__WAREHOUSE__ROOT": f'"{tmp_path / "warehouse"}"',
        "DATAMIN__WAREHOUSE__CATALOG": f'"{tmp_path / "catalog.duckdb"}"',
        "DATAMIN__PRODUCER__SPOOL_DIR": f'"{tmp_path / "spool"}"',
    }
    base.update({f"DATAMIN__{k}": v for k, v in env.items()})
    return load_config(path=None, environ=base)


ALLOWLISTS = ['["*"]', '["**"]', '[" "]', '[""]', '["utm_*", "*"]', '["utm_*"]', '["ref", "utm_*"]', "[]",
              '["*ref"]', '["Utm_*"]']


@pytest.mark.parametrize("allowlist", ALLOWLISTS)
def test_the_allowlist_is_refused_at_load_exactly_when_the_url_transform_would_refuse_it(tmp_path, allowlist):
    import tomllib
    entries = tomllib.loads(f"v = {allowlist}")["v"]
    try:
        strip_url("https://shop.example/p?utm_source=x&ref=y&email=a@b.example", entries)
        works = True
    except ValueError:
        works = False
    if works:
        config = load(tmp_path, MINIMISE__QUERY_ALLOWLIST=allowlist)
        assert strip_url("https://shop.example/?a=1", config.minimise.query_allowlist) is not None
    else:
        with pytest.raises(ConfigError) as err:
            load(tmp_path, MINIMISE__QUERY_ALLOWLIST=allowlist)
        assert err.value.key == "minimise.query_allowlist"
        assert "utm_*" in err.value.fix


@pytest.mark.parametrize("key", ["PSEUDONYMISE__KEY_DIR", "WAREHOUSE__ROOT", "PRODUCER__SPOOL_DIR",
                                 "WAREHOUSE__CATALOG"])
@pytest.mark.parametrize("value", ['""', '"  "'])
def test_an_empty_path_is_refused_with_the_key(tmp_path, key, value):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, **{key: value})
    assert err.value.key == key.lower().replace("__", ".")
    assert "empty" in err.value.problem and err.value.fix


def test_a_folder_setting_naming_a_file_is_refused(tmp_path):
    (tmp_path / "afile").write_text("x")
    for key in ("PSEUDONYMISE__KEY_DIR", "WAREHOUSE__ROOT", "PRODUCER__SPOOL_DIR"):
        with pytest.raises(ConfigError, match="not a folder") as err:
            load(tmp_path, **{key: f'"{tmp_path / "afile"}"'})
        assert err.value.key == key.lower().replace("__", ".")


def test_the_catalog_may_not_be_a_folder(tmp_path):
    with pytest.raises(ConfigError, match="is a folder") as err:
        load(tmp_path, WAREHOUSE__CATALOG=f'"{tmp_path}"')
    assert err.value.key == "warehouse.catalog"


@pytest.mark.parametrize("key", ["PSEUDONYMISE__KEY_DIR", "PRODUCER__SPOOL_DIR"])
def test_keys_and_spool_stay_outside_the_analyst_readable_warehouse(tmp_path, key):
    with pytest.raises(ConfigError, match="analysts can read") as err:
        load(tmp_path, **{key: f'"{tmp_path / "warehouse" / "keys"}"'})
    assert err.value.key == key.lower().replace("__", ".")
    with pytest.raises(ConfigError, match="analysts can read"):
        load(tmp_path, **{key: f'"{tmp_path}"'})  # the warehouse inside it


def test_the_defaults_keep_keys_and_spool_outside_the_warehouse(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(path=None, environ={})
    root = Path(config.warehouse.root).resolve()
    for folder in (config.pseudonymise.key_dir, config.producer.spool_dir):
        assert root not in Path(folder).resolve().parents


def test_the_analyst_group_must_exist(tmp_path):
    existing = grp.getgrgid(os.getgid())
    assert load(tmp_path, WAREHOUSE__ANALYST_GROUP=f'"{existing.gr_name}"').warehouse.analyst_group == existing.gr_name
    assert load(tmp_path, WAREHOUSE__ANALYST_GROUP=f'"{existing.gr_gid}"').warehouse.analyst_group
    with pytest.raises(ConfigError, match="no group named") as err:
        load(tmp_path, WAREHOUSE__ANALYST_GROUP='"no-such-group-datamin"')
    assert err.value.key == "warehouse.analyst_group" and "groupadd" in err.value.fix
