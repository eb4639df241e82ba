"""The canonical subject identity: namespaces, the normalisation rule, visitor ids, user tokens, secrets."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from datamin.config import Config
from datamin.exceptions import ConfigError
from datamin.identity import (
    Identity,
    IdentityError,
    canonical,
    identity_from_config,
    load_identity,
    subject_of_raw,
    user_subject,
)

SECRET = b"identity-unit-test-secret-32-bytes!!"


@pytest.mark.parametrize(("given", "expected"), [
    ("user-1", "user:user-1"), ("USER-1 ", "user:user-1"), (" user:User-1", "user:user-1"),
    ("USER:Ola", "user:ola"), ("visitor:ABCdef", "visitor:abcdef"), ("Ｕｓｅｒ-1", "user:user-1"),  # NFKC
    ("user:visitor:x", "user:visitor:x"), ("mailto:ola@example.no", "user:mailto:ola@example.no"),
])
def test_one_normalisation_rule(given: str, expected: str) -> None:
    assert canonical(given) == expected
    assert subject_of_raw(given) == expected


@pytest.mark.parametrize("bad", ["", "   ", "user:", "visitor:  ", "x" * 300])
def test_unusable_keys_are_refused(bad: str) -> None:
    with pytest.raises(IdentityError):
        canonical(bad)
    assert subject_of_raw(bad) is None


def test_users_and_visitors_never_collide() -> None:
    identity = Identity(SECRET)
    cookie = identity.issue_visitor()
    visitor = identity.visitor_of(cookie)
    assert visitor is not None and visitor.startswith("visitor:")
    ident = visitor.split(":", 1)[1]
    assert user_subject(ident) == f"user:{ident}" != visitor
    assert user_subject("visitor:" + ident) == f"user:visitor:{ident}"  # a user id can never be a visitor


@pytest.mark.parametrize("secret", [b"", b"short", b"x" * 31, "", None])
def test_empty_or_short_secrets_stop_start_up(secret: bytes | str | None) -> None:
    with pytest.raises(ConfigError) as err:
        Identity(secret)  # type: ignore[arg-type]
    assert err.value.key == "identity.secret_file" and "32" in str(err.value)


def test_secret_file_is_read_never_created(tmp_path: Path) -> None:
    missing = tmp_path / "identity.secret"
    with pytest.raises(ConfigError, match="does not exist"):
        load_identity(str(missing))
    assert not missing.exists()
    missing.write_bytes(b"too short\n")
    with pytest.raises(ConfigError, match="at least 32"):
        load_identity(str(missing))
    missing.write_bytes(SECRET + b"\n")
    assert load_identity(str(missing)).secret == SECRET


def test_visitor_ids_are_random_and_verifiable() -> None:
    identity = Identity(SECRET)
    cookies = {identity.issue_visitor() for _ in range(100)}
    assert len(cookies) == 100
    for cookie in cookies:
        assert identity.visitor_of(cookie) == "visitor:" + cookie.split(".")[0]
        flipped = cookie[:-1] + ("0" if cookie[-1] != "0" else "1")
        assert identity.visitor_of(flipped) is None
        assert identity.visitor_of(cookie.upper()) is None
        assert Identity(b"another-secret-of-at-least-32-bytes").visitor_of(cookie) is None
    for forged in ("user-42", "user:user-42", "", "a" * 65, "a" * 32 + "." + "b" * 32):
        assert identity.visitor_of(forged) is None


def test_tokens_expire_and_their_lifetime_and_replays_are_bounded() -> None:
    now = [1_800_000_000.0]
    identity = Identity(SECRET, clock=lambda: now[0], max_token_seconds=300, max_token_uses=2)
    token = identity.sign_user("Ola")
    assert identity.user_of(token) == "user:ola"
    assert identity.user_of(token) == "user:ola"
    assert identity.user_of(token) is None  # a third presentation is a replay
    fresh = identity.sign_user("Ola")
    now[0] += 301
    assert identity.user_of(fresh) is None  # expired
    lenient = Identity(SECRET, clock=lambda: now[0], max_token_seconds=86400)
    long_lived = lenient.sign_user("Ola")
    assert Identity(SECRET, clock=lambda: now[0], max_token_seconds=300).user_of(long_lived) is None
    future = Identity(SECRET, clock=lambda: now[0] + 3600).sign_user("Ola")
    assert identity.user_of(future) is None  # issued in the future


def test_bad_limits_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="max_token_seconds"):
        Identity(SECRET, max_token_seconds=0)
    with pytest.raises(ConfigError, match="max_token_uses"):
        Identity(SECRET, max_token_uses=0)


def test_identity_from_config(make_config: Callable[..., Config], tmp_path: Path) -> None:
    secret = tmp_path / "id.secret"
    config = make_config(**{"IDENTITY__SECRET_FILE": f'"{secret}"', "IDENTITY__MAX_TOKEN_SECONDS": "60"})
    with pytest.raises(ConfigError, match="identity.secret_file"):
        identity_from_config(config.identity)
    secret.write_bytes(SECRET)
    identity = identity_from_config(config.identity)
    assert identity.max_token_seconds == 60 and identity.secret == SECRET
    with pytest.raises(ConfigError, match="identity.max_token_seconds"):
        make_config(**{"IDENTITY__MAX_TOKEN_SECONDS": "864000"})
