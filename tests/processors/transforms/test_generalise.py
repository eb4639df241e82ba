import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import processors.transforms
from processors.transforms.generalise import country_code, primary_language


def test_package_exports_are_pinned() -> None:
    assert sorted(processors.transforms.__all__) == [
        "KeyStore",
        "UserAgentInfo",
        "country_code",
        "parse_user_agent",
        "primary_language",
        "pseudonymise",
        "referrer_origin",
        "scrub_text",
        "strip_url",
        "truncate_ip",
        "validate_prefixes",
    ]
    for name in processors.transforms.__all__:
        assert getattr(processors.transforms, name) is not None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("nb-NO,nb;q=0.9,en;q=0.8", "nb"),
        ("en-US,en;q=0.5", "en"),
        ("fr;q=0.2, de;q=0.7", "de"),  # highest q wins, not the first
        ("da, en-gb;q=0.8, en;q=0.7", "da"),
        ("de;q=0.5,fr;q=0.5", "de"),  # ties go to the first listed
        ("de;q=0,fr;q=0.001", "fr"),  # q=0 means "not acceptable"
        ("EN-us", "en"),
        ("zh-Hant-TW", "zh"),
        ("haw-US", "haw"),  # three-letter primary subtag
        ("en_US", "en"),  # as sent by some apps
        (" nb ; q=1.0 ", "nb"),
        ("*", None),
        ("*;q=1, sv;q=0.1", "sv"),
        ("i-klingon", None),
        ("x-private", None),
        ("english", None),
        ("en;q=1.5,de", "de"),  # malformed q: that entry is skipped
        ("en;q=abc", None),
        ("en;q=-1", None),
        ("", None),
        ("-", None),
        (",,,;;;", None),
        ("e\u0301n", None),
        ("\u0435n", None),  # Cyrillic "е"
        ("en," * 400, None),  # over 1 KiB
        ("nb\x00", None),
    ],
)
def test_primary_language(header: str, expected: str | None) -> None:
    assert primary_language(header) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("NO", "NO"),
        ("no", "NO"),
        (" se\n", "SE"),
        ("Us", "US"),
        ("UK", "GB"),
        ("xk", "XK"),
        ("XX", None),  # Cloudflare: unknown
        ("T1", None),  # Cloudflare: Tor
        ("A1", None),  # MaxMind: anonymous proxy
        ("A2", None),
        ("O1", None),
        ("EU", None),
        ("AP", None),
        ("ZZ", None),
        ("AA", None),
        ("", None),
        ("-", None),
        ("NOR", None),
        ("Norway", None),
        ("N O", None),
        ("n\u0131", None),  # dotless i upper-cases to "NI"
        ("\uff2e\uff2f", None),  # full-width "NO"
        ("NO" + " " * 10_000, None),
    ],
)
def test_country_code(value: str, expected: str | None) -> None:
    assert country_code(value) == expected


@pytest.mark.parametrize("value", [None, 47, b"NO", ["NO"]])
def test_non_strings_give_none(value: object) -> None:
    assert country_code(value) is None  # type: ignore[arg-type]
    assert primary_language(value) is None  # type: ignore[arg-type]


@settings(deadline=None)
@given(st.text(max_size=60))
def test_primary_language_is_two_or_three_lower_case_letters(text: str) -> None:
    out = primary_language(text)
    assert out is None or re.fullmatch(r"[a-z]{2,3}", out)


@settings(deadline=None)
@given(st.text(max_size=6))
def test_country_code_is_two_upper_case_letters(text: str) -> None:
    out = country_code(text)
    assert out is None or re.fullmatch(r"[A-Z]{2}", out)
    if out is not None:
        assert country_code(out) == out
