"""The errors datamin raises, as one small tree.

Callers see only these types; a dependency's own exceptions (kafka-python's, fastavro's, duckdb's)
are translated where datamin calls it. Every message says what is wrong and, where there is one,
the fix; none repeats a submitted value, since a value may be personal data.

    DataminError
    ├── ConfigError            a setting is wrong: names the key, the value and the fix; start-up stops
    ├── SchemaError            an .avsc file or its privacy annotations are wrong; start-up stops
    ├── EventError             one event is bad; it goes to the dead-letter topic and the stream goes on
    │   ├── DecodeError        bytes that are not an event datamin knows
    │   ├── ValidationError    a value that does not fit its schema (JSON or a record to encode)
    │   └── EventTimeError     dated beyond the clock skew in the future, or older than its table's retention
    ├── BrokerError            the local Kafka broker could not be fetched, started or stopped
    └── BackupError            a backup is damaged, needs another key, or cannot be restored there
"""

from __future__ import annotations


class DataminError(Exception):
    """Root of every error datamin raises on purpose."""


class ConfigError(DataminError):
    """A configuration value is wrong. Start-up stops; the message names the key and the fix."""

    def __init__(self, key: str, problem: str, fix: str) -> None:
        self.key = key
        self.problem = problem
        self.fix = fix
        super().__init__(f"config {key}: {problem}. Fix: {fix}")


class SchemaError(DataminError):
    """A schema file or a privacy annotation is wrong. Start-up stops."""

    def __init__(self, schema: str, problem: str, field: str | None = None) -> None:
        self.schema = schema
        self.field = field
        self.problem = problem
        where = f"{schema}.{field}" if field else schema
        super().__init__(f"schema {where}: {problem}")


class EventError(DataminError):
    """One event is bad. It is dead-lettered with this message as the reason; the stream goes on."""

    reason = "bad_event"


class DecodeError(EventError):
    """Bytes that are not a datamin event (no header, unknown schema, truncated or corrupt body)."""

    reason = "undecodable"


class EventTimeError(EventError):
    """An event dated too far in the future or older than its table's retention: nothing may create data
    the scheduler would not expire. The message gives the bound, never the event's value."""

    reason = "event_time"


class ValidationError(EventError):
    """A value does not fit its schema. The message names the event type and field, never the value."""

    reason = "invalid"


class BrokerError(DataminError):
    """The local Kafka broker could not be fetched, started, reached or stopped."""


class BackupError(DataminError):
    """A backup cannot be made, verified or restored: a damaged or missing file (named), a wrong or
    missing backup key, a sink still running on the target. Nothing was changed; the message has the fix."""
