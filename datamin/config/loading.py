"""Loading the configuration: defaults, then datamin.toml, then the environment; validated before it is returned."""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from datamin.config.sections import Config
from datamin.config.validation import validate
from datamin.exceptions import ConfigError


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


