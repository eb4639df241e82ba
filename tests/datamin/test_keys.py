import hashlib
import hmac
import os
import stat
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from datamin.clock import utc_now
from datamin.keys import KeyStore, pseudonymise

KEY_A = bytes(range(32))
KEY_B = bytes(range(1, 33))


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def make_store(tmp_path: Path) -> Callable[..., KeyStore]:
    def factory(rotation: str = "monthly", clock: Callable[[], datetime] = utc_now) -> KeyStore:
        return KeyStore(tmp_path / "keys", rotation=rotation, clock=clock)

    return factory


# --- pseudonymise -----------------------------------------------------------------------


def test_golden_vector() -> None:
    # Pinned: changing the scheme must change the "p1_" version tag, not silently the output.
    golden = "p1_7db69a987aa9cfba27aa50ad6a4fb6307009f6e243a8b289c177c6a056883122"
    assert pseudonymise("alice@example.com", KEY_A, "user_id") == golden
    reference = hmac.new(KEY_A, b"user_id\x00alice@example.com", hashlib.sha256).hexdigest()
    assert golden == "p1_" + reference


def test_format_is_versioned_full_digest() -> None:
    out = pseudonymise("42", KEY_A, "user_id")
    assert out is not None
    assert out.startswith("p1_")
    assert len(out) == 3 + 64
    int(out[3:], 16)  # hex


def test_stable_for_same_key_and_namespace() -> None:
    assert pseudonymise("42", KEY_A, "user_id") == pseudonymise("42", KEY_A, "user_id")


def test_differs_across_keys_namespaces_and_values() -> None:
    base = pseudonymise("42", KEY_A, "user_id")
    assert pseudonymise("42", KEY_B, "user_id") != base
    assert pseudonymise("42", KEY_A, "session_id") != base
    assert pseudonymise("43", KEY_A, "user_id") != base


def test_namespace_and_value_cannot_be_shifted_into_each_other() -> None:
    assert pseudonymise("c", KEY_A, "ab") != pseudonymise("bc", KEY_A, "a")


def test_output_does_not_contain_the_value() -> None:
    out = pseudonymise("alice", KEY_A, "user_id")
    assert out is not None
    assert "alice" not in out


@pytest.mark.parametrize("value", [None, "", 42, b"alice"])
def test_missing_or_non_string_values_give_none(value: object) -> None:
    assert pseudonymise(value, KEY_A, "user_id") is None  # type: ignore[arg-type]


def test_odd_strings_do_not_raise() -> None:
    for value in ["\ud800", "\x00", "🙂" * 10_000, " "]:
        out = pseudonymise(value, KEY_A, "user_id")
        assert out is not None
        assert len(out) == 67


@pytest.mark.parametrize("key", [b"", b"short", "a" * 32, bytearray(32), None])
def test_bad_keys_are_refused(key: object) -> None:
    with pytest.raises(ValueError, match="key"):
        pseudonymise("42", key, "user_id")  # type: ignore[arg-type]


@pytest.mark.parametrize("namespace", ["", "user\x00id", None])
def test_bad_namespaces_are_refused(namespace: object) -> None:
    with pytest.raises(ValueError, match="namespace"):
        pseudonymise("42", KEY_A, namespace)  # type: ignore[arg-type]


@settings(deadline=None)
@given(st.text(min_size=1), st.text(min_size=1))
def test_distinct_values_give_distinct_pseudonyms(a: str, b: str) -> None:
    same = pseudonymise(a, KEY_A, "f") == pseudonymise(b, KEY_A, "f")
    assert same == (a == b)


# --- KeyStore: periods ------------------------------------------------------------------


def test_utc_now_is_aware_utc() -> None:
    now = utc_now()
    assert now.tzinfo is not None
    assert now.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("rotation", "when", "expected"),
    [
        ("monthly", datetime(2026, 11, 25, 12, tzinfo=UTC), "2026-11"),
        ("weekly", datetime(2026, 11, 25, 12, tzinfo=UTC), "2026-W48"),
        ("daily", datetime(2026, 11, 25, 12, tzinfo=UTC), "2026-11-25"),
        ("weekly", datetime(2027, 1, 1, tzinfo=UTC), "2026-W53"),  # ISO year, not calendar year
        ("weekly", datetime(2024, 12, 30, tzinfo=UTC), "2025-W01"),
        ("monthly", datetime(2026, 11, 30, 23, 30, tzinfo=timezone(timedelta(hours=-2))), "2026-12"),
        ("daily", datetime(2026, 11, 26, 0, 30, tzinfo=timezone(timedelta(hours=1))), "2026-11-25"),
    ],
)
def test_period_for(make_store: Callable[..., KeyStore], rotation: str, when: datetime, expected: str) -> None:
    assert make_store(rotation).period_for(when) == expected


def test_naive_datetimes_are_refused(make_store: Callable[..., KeyStore]) -> None:
    with pytest.raises(ValueError, match="aware"):
        make_store().period_for(datetime(2026, 11, 25))


@pytest.mark.parametrize("rotation", ["yearly", "Monthly", "", "hourly"])
def test_unknown_rotation_is_refused(tmp_path: Path, rotation: str) -> None:
    with pytest.raises(ValueError, match="pseudonymise.rotation") as excinfo:
        KeyStore(tmp_path, rotation=rotation)
    assert "monthly" in str(excinfo.value)
    assert not (tmp_path / "keys").exists()


def test_current_period_follows_the_injected_clock(make_store: Callable[..., KeyStore]) -> None:
    clock = FakeClock(datetime(2026, 11, 30, 23, 59, tzinfo=UTC))
    store = make_store("monthly", clock)
    november, key_november = store.current_key()
    clock.now += timedelta(minutes=2)
    december, key_december = store.current_key()
    assert (november, december) == ("2026-11", "2026-12")
    assert key_november != key_december
    assert pseudonymise("42", key_november, "user_id") != pseudonymise("42", key_december, "user_id")


# --- KeyStore: keys on disk -------------------------------------------------------------


def test_key_is_created_once_with_private_modes(make_store: Callable[..., KeyStore]) -> None:
    store = make_store()
    key = store.key_for("2026-11")
    path = store.directory / "2026-11.key"
    assert len(key) == 32
    assert path.read_bytes() == key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.directory.stat().st_mode) == 0o700
    assert store.key_for("2026-11") == key
    assert os.listdir(store.directory) == ["2026-11.key"]  # no temp files, no mapping


def test_stable_within_a_period_and_different_across_periods(
    make_store: Callable[..., KeyStore],
) -> None:
    store = make_store("daily")
    first = pseudonymise("42", store.key_for("2026-11-25"), "user_id")
    again = pseudonymise("42", make_store("daily").key_for("2026-11-25"), "user_id")
    next_day = pseudonymise("42", store.key_for("2026-11-26"), "user_id")
    assert first == again
    assert first != next_day


def test_two_instances_on_one_directory_agree(make_store: Callable[..., KeyStore]) -> None:
    first, second = make_store(), make_store()
    assert first.key_for("2026-11") == second.key_for("2026-11")
    assert second.key_for("2026-12") == first.key_for("2026-12")


def test_losing_the_creation_race_adopts_the_winners_key(
    make_store: Callable[..., KeyStore], monkeypatch: pytest.MonkeyPatch
) -> None:
    loser, winner = make_store(), make_store()
    real_link = os.link
    winner_key: list[bytes] = []

    def link_after_the_winner(src: str, dst: str) -> None:
        # The winner creates the key between the loser's "not found" and its link.
        monkeypatch.setattr(os, "link", real_link)
        winner_key.append(winner.key_for("2026-11"))
        real_link(src, dst)  # raises FileExistsError

    monkeypatch.setattr(os, "link", link_after_the_winner)
    assert loser.key_for("2026-11") == winner_key[0]
    assert (loser.directory / "2026-11.key").read_bytes() == winner_key[0]
    assert os.listdir(loser.directory) == ["2026-11.key"]  # the loser's temp file is gone


def test_concurrent_creation_in_threads_agrees(make_store: Callable[..., KeyStore]) -> None:
    stores = [make_store() for _ in range(8)]
    keys: list[bytes] = []
    barrier = threading.Barrier(len(stores))

    def worker(store: KeyStore) -> None:
        barrier.wait()
        keys.append(store.key_for("2026-11"))

    threads = [threading.Thread(target=worker, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == len(stores)
    assert len(set(keys)) == 1


def test_key_for_without_create_never_creates(make_store: Callable[..., KeyStore]) -> None:
    store = make_store()
    with pytest.raises(FileNotFoundError):
        store.key_for("2026-11", create=False)
    assert store.periods() == []
    key = make_store().key_for("2026-11")
    assert store.key_for("2026-11", create=False) == key


def test_keys_are_cached_in_memory(make_store: Callable[..., KeyStore]) -> None:
    store = make_store()
    key = store.key_for("2026-11")
    (store.directory / "2026-11.key").unlink()
    assert store.key_for("2026-11") == key  # cached
    assert make_store().key_for("2026-11") != key  # a new store makes a new key


@pytest.mark.parametrize("period", ["2026-13", "2026-00", "2026-W48", "../2026-11", "2026-11.key", ""])
def test_bad_periods_are_refused(make_store: Callable[..., KeyStore], period: str) -> None:
    store = make_store("monthly")
    with pytest.raises(ValueError, match="period"):
        store.key_for(period)
    assert not store.directory.exists()


def test_damaged_key_file_is_an_error(make_store: Callable[..., KeyStore]) -> None:
    store = make_store()
    store.directory.mkdir(mode=0o700)
    (store.directory / "2026-11.key").write_bytes(b"truncated")
    with pytest.raises(OSError, match="damaged") as excinfo:
        store.key_for("2026-11")
    assert "truncated" not in str(excinfo.value)


def test_repr_shows_no_key(make_store: Callable[..., KeyStore]) -> None:
    store = make_store()
    key = store.key_for("2026-11")
    assert key.hex() not in repr(store)
    assert "keys" in repr(store)


# --- KeyStore: listing and crypto-shredding ---------------------------------------------


def test_periods_lists_key_files_oldest_first(make_store: Callable[..., KeyStore]) -> None:
    store = make_store("daily")
    assert store.periods() == []
    for period in ["2026-11-25", "2026-10-01", "2026-11-02"]:
        store.key_for(period)
    make_store("weekly").key_for("2026-W44")
    for junk in ["notes.txt", "2026-13.key", ".2026-11-03.abc.tmp", "2026-11-25.key.bak"]:
        (store.directory / junk).write_bytes(b"x")
    assert store.periods() == ["2026-10-01", "2026-W44", "2026-11-02", "2026-11-25"]


def test_delete_before_shreds_older_keys_only(make_store: Callable[..., KeyStore]) -> None:
    store = make_store("monthly")
    old_key = store.key_for("2026-09")
    for period in ["2026-10", "2026-11", "2026-12"]:
        store.key_for(period)
    assert store.delete_before("2026-11") == ["2026-09", "2026-10"]
    assert store.periods() == ["2026-11", "2026-12"]
    assert store.delete_before("2026-11") == []
    assert store.key_for("2026-09") != old_key  # the old key is gone, also from memory


def test_delete_before_works_across_rotation_formats(make_store: Callable[..., KeyStore]) -> None:
    make_store("monthly").key_for("2026-10")
    make_store("monthly").key_for("2026-11")
    make_store("weekly").key_for("2026-W47")  # 16-22 November
    make_store("weekly").key_for("2026-W48")  # 23-29 November
    daily = make_store("daily")
    daily.key_for("2026-11-22")
    daily.key_for("2026-11-23")
    assert daily.delete_before("2026-11-23") == ["2026-10", "2026-W47", "2026-11-22"]
    assert daily.periods() == ["2026-11", "2026-11-23", "2026-W48"]  # by start, then end


def test_delete_before_removes_leftover_temp_files(make_store: Callable[..., KeyStore]) -> None:
    store = make_store()
    store.key_for("2026-12")
    # A crash between link and unlink leaves a second name for the key: it must go too.
    (store.directory / ".2026-10.x1y2z3.tmp").write_bytes(bytes(32))
    (store.directory / ".2026-12.a1b2c3.tmp").write_bytes(bytes(32))
    assert store.delete_before("2026-11") == []
    assert sorted(os.listdir(store.directory)) == [".2026-12.a1b2c3.tmp", "2026-12.key"]


def test_delete_before_on_missing_directory(make_store: Callable[..., KeyStore]) -> None:
    assert make_store().delete_before("2026-11") == []


@pytest.mark.parametrize("period", ["2026-13", "last month", "", "2026-W60"])
def test_delete_before_refuses_bad_periods(make_store: Callable[..., KeyStore], period: str) -> None:
    store = make_store()
    store.key_for("2026-01")
    with pytest.raises(ValueError, match="period"):
        store.delete_before(period)
    assert store.periods() == ["2026-01"]
