import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.transforms.useragent import MAX_UA_LENGTH, UserAgentInfo, parse_user_agent

CHROME_WIN = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)

CASES = [
    # desktop browsers
    (CHROME_WIN, ("Chrome", "120", "Windows", "10", "desktop")),
    (CHROME_WIN + " Edg/120.0.2210.91", ("Edge", "120", "Windows", "10", "desktop")),
    (
        "Mozilla/5.0 (Windows NT 6.3; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/109.0.0.0 Safari/537.36 OPR/95.0.0.0",
        ("Opera", "95", "Windows", "8.1", "desktop"),
    ),
    (
        "Opera/9.80 (Windows NT 6.1; WOW64) Presto/2.12.388 Version/12.18",
        ("Opera", "12", "Windows", "7", "desktop"),
    ),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/118.0.0.0 YaBrowser/23.11.0.0 Safari/537.36",
        ("Yandex", "23", "Windows", "10", "desktop"),
    ),
    (
        "Mozilla/5.0 (Windows NT 6.1; WOW64; Trident/7.0; rv:11.0) like Gecko",
        ("IE", "11", "Windows", "7", "desktop"),
    ),
    (
        "Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 6.1; Trident/4.0)",
        ("IE", "8", "Windows", "7", "desktop"),
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.1 Safari/605.1.15",
        ("Safari", "17", "macOS", "10", "desktop"),
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:121.0) Gecko/20100101 Firefox/121.0",
        ("Firefox", "121", "macOS", "10", "desktop"),
    ),
    (
        "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0",
        ("Firefox", "115", "Linux", None, "desktop"),
    ),
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chromium/120.0.6099.71 Chrome/120.0.6099.71 Safari/537.36",
        ("Chromium", "120", "Linux", None, "desktop"),
    ),
    (
        "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Safari/537.36",
        ("Chrome", "120", "ChromeOS", None, "desktop"),
    ),
    # phones and tablets
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
        ("Safari", "17", "iOS", "17", "mobile"),
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) CriOS/120.0.6099.119 Mobile/15E148 Safari/604.1",
        ("Chrome", "120", "iOS", "17", "mobile"),
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) FxiOS/121.0 Mobile/15E148 Safari/605.1.15",
        ("Firefox", "121", "iOS", "17", "mobile"),
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/442.0.0.40.110]",
        (None, None, "iOS", "17", "mobile"),  # in-app web view: no browser
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
        ("Safari", "16", "iOS", "16", "tablet"),
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.6099.144 Mobile Safari/537.36",
        ("Chrome", "120", "Android", "14", "mobile"),
    ),
    (
        "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Safari/537.36",
        ("Chrome", "120", "Android", "13", "tablet"),
    ),
    (
        "Mozilla/5.0 (Android 14; Mobile; rv:121.0) Gecko/121.0 Firefox/121.0",
        ("Firefox", "121", "Android", "14", "mobile"),
    ),
    (
        "Mozilla/5.0 (Android 13; Tablet; rv:121.0) Gecko/121.0 Firefox/121.0",
        ("Firefox", "121", "Android", "13", "tablet"),
    ),
    (
        "Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-S911B) AppleWebKit/537.36 "
        "(KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36",
        ("Samsung Internet", "23", "Android", "13", "mobile"),
    ),
    (
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0.0.0 Mobile Safari/537.36 EdgA/120.0.2210.115",
        ("Edge", "120", "Android", "10", "mobile"),
    ),
    (
        "Mozilla/5.0 (Linux; U; Android 4.0.3; ko-kr; LG-L160L Build/IML74K) "
        "AppleWebkit/534.30 (KHTML, like Gecko) Version/4.0 Mobile Safari/534.30",
        ("Android Browser", "4", "Android", "4", "mobile"),
    ),
    (
        "Mozilla/5.0 (Linux; Android 9; CUBOT X19) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/120.0 Mobile Safari/537.36",
        ("Chrome", "120", "Android", "9", "mobile"),  # "CUBOT" is a phone brand, not a bot
    ),
    (
        "Mozilla/5.0 (Windows Phone 10.0; Android 6.0.1; Microsoft; Lumia 950) "
        "AppleWebKit/537.36 (KHTML, like Gecko) Chrome/52.0.2743.116 Mobile Safari/537.36 "
        "Edge/15.15063",
        ("Edge", "15", "Windows Phone", "10", "mobile"),
    ),
    # bots
    (
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        ("Googlebot", "2", None, None, "bot"),
    ),
    (
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Chrome/120.0.6099.71 Mobile Safari/537.36 "
        "(compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        ("Googlebot", "2", "Android", "6", "bot"),
    ),
    (
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        ("bingbot", "2", None, None, "bot"),
    ),
    ("curl/8.4.0", ("curl", "8", None, None, "bot")),
    ("Wget/1.21.4", ("Wget", "1", None, None, "bot")),
    ("python-requests/2.31.0", ("python-requests", "2", None, None, "bot")),
    (
        "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
        (None, None, None, None, "bot"),
    ),
    ("Mozilla/5.0 (compatible; Baiduspider/2.0)", (None, None, None, None, "bot")),
    ("Some-Crawler/1.0", (None, None, None, None, "bot")),
    (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36",
        (None, None, "Linux", None, "bot"),
    ),
    # app HTTP clients
    ("okhttp/4.12.0", (None, None, None, None, "unknown")),
    (
        "MyApp/1.0 (com.example.app; build:12; iOS 17.1.0) CFNetwork/1474 Darwin/23.0.0",
        (None, None, "iOS", "17", "unknown"),
    ),
    (
        "Dalvik/2.1.0 (Linux; U; Android 11; SM-G991B Build/RP1A.200720.012)",
        (None, None, "Android", "11", "unknown"),
    ),
    # garbage
    ("", (None, None, None, None, "unknown")),
    ("-", (None, None, None, None, "unknown")),
    ("Mozilla/5.0", (None, None, None, None, "unknown")),
    ("Chrome/99999999", ("Chrome", None, None, None, "unknown")),  # absurd version dropped
    ("Chrome/\u0661\u0662\u0660", (None, None, None, None, "unknown")),  # non-ASCII digits
    ("\x00\x00\x00", (None, None, None, None, "unknown")),
    ("mOzIlLa/5.0 (WINDOWS NT 10.0) chrome/120", (None, None, None, None, "unknown")),
]


@pytest.mark.parametrize(("ua", "expected"), CASES, ids=[f"{i:02d}" for i in range(len(CASES))])
def test_real_world_user_agents(ua: str, expected: tuple[str | None, ...]) -> None:
    assert parse_user_agent(ua) == UserAgentInfo(*expected)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [None, 42, b"curl/8.4.0", ["curl/8.4.0"]])
def test_non_strings_are_unknown(value: object) -> None:
    assert parse_user_agent(value) == UserAgentInfo(None, None, None, None, "unknown")  # type: ignore[arg-type]


def test_input_beyond_the_limit_is_ignored() -> None:
    padded = "x" * MAX_UA_LENGTH + " " + CHROME_WIN
    assert parse_user_agent(padded).browser_family is None
    assert parse_user_agent(CHROME_WIN + "x" * 10_000_000).browser_family == "Chrome"


def test_results_are_cached_and_immutable() -> None:
    first = parse_user_agent(CHROME_WIN)
    assert parse_user_agent(CHROME_WIN) is first
    with pytest.raises(AttributeError):
        first.browser_family = "Firefox"  # type: ignore[misc]


# deadline=None: no timing assertions on shared machines.
FAMILIES = {
    None, "Chrome", "Chromium", "Edge", "Firefox", "Safari", "Opera", "Samsung Internet",
    "Yandex", "IE", "Android Browser", "Googlebot", "bingbot", "curl", "Wget", "python-requests",
}  # fmt: skip
OS_FAMILIES = {None, "Windows", "Windows Phone", "macOS", "iOS", "Android", "ChromeOS", "Linux"}
DEVICE_CLASSES = {"desktop", "mobile", "tablet", "bot", "unknown"}
VERSION = re.compile(r"[0-9]{1,4}|8\.1|Vista|XP")

ua_fragments = st.sampled_from(
    [
        "Mozilla/5.0 ", "(Windows NT 10.0; Win64; x64) ", "(iPhone; CPU iPhone OS 17_1 like Mac OS X) ",
        "(Linux; Android 14; Pixel 8) ", "Chrome/120.0 ", "Safari/537.36 ", "Version/17.1 ",
        "Mobile ", "Firefox/121.0 ", "Edg/120 ", "bot ", "iPad ", "CrOS ", "Trident/7.0; rv:11.0 ",
        "Opera/9.80 ", "OPR/95 ", "Macintosh; Intel Mac OS X 10_15_7 ",
    ]
)  # fmt: skip


@settings(deadline=None)
@given(st.lists(ua_fragments | st.text(max_size=20), max_size=12).map("".join))
def test_output_is_always_from_the_fixed_vocabulary(ua: str) -> None:
    info = parse_user_agent(ua)
    assert info.browser_family in FAMILIES
    assert info.os_family in OS_FAMILIES
    assert info.device_class in DEVICE_CLASSES
    for version in (info.browser_major, info.os_major):
        assert version is None or VERSION.fullmatch(version)
