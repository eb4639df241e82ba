"""User-agent reduction: browser family and major version, OS family and major, device class.

No parser dependency: a short, ordered regex table (first match wins) covers the browsers,
operating systems and bots seen in real traffic. Every family in the output comes from the
fixed vocabulary in this module and every version is a run of at most four ASCII digits, so
nothing of the raw header (device model, build ids, app names) ever passes through.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Final

__all__ = ["UserAgentInfo", "parse_user_agent"]

MAX_UA_LENGTH: Final = 1024
"""Input beyond this many characters is cut off before parsing (and before caching)."""


@dataclass(frozen=True, slots=True)
class UserAgentInfo:
    """What datamin keeps of a user agent."""

    browser_family: str | None
    """e.g. "Chrome", "Firefox", "Safari", "Googlebot"; None if unknown or an app's HTTP client."""
    browser_major: str | None
    """Major version as ASCII digits ("120"), or None."""
    os_family: str | None
    """"Windows", "macOS", "iOS", "Android", "Linux", "ChromeOS", "Windows Phone", or None."""
    os_major: str | None
    """Major OS version ("10", "8.1", "17", "14"), or None."""
    device_class: str
    """"desktop" | "mobile" | "tablet" | "bot" | "unknown"."""


UNKNOWN: Final = UserAgentInfo(None, None, None, None, "unknown")

_V = r"([0-9]+)"  # a version; longer than 4 digits is treated as no version

# (family, pattern with the major version in group 1 if any). Order matters: first match wins.
_BOTS: Final = tuple(
    (family, re.compile(pattern, re.IGNORECASE | re.ASCII))
    for family, pattern in (
        ("Googlebot", r"Googlebot(?:-\w+)?/" + _V),
        ("bingbot", r"bingbot/" + _V),
        ("curl", r"\bcurl/" + _V),
        ("Wget", r"\bWget/" + _V),
        ("python-requests", r"\bpython-requests/" + _V),
    )
)
_ANY_BOT: Final = re.compile(
    r"(?<!cu)bot\b|crawl|spider|slurp|facebookexternalhit|headlesschrome|"
    r"python-urllib|go-http-client|libwww-perl|\bjava/|scrapy|phantomjs|\bhttpie/",
    re.IGNORECASE,
)
_APP_CLIENT: Final = re.compile(r"\bokhttp/|\bCFNetwork/|\bDalvik/", re.IGNORECASE)

_BROWSERS: Final = tuple(
    (family, re.compile(pattern, re.ASCII))
    for family, pattern in (
        ("Edge", r"\bEdg(?:e|A|iOS)?/" + _V),
        ("Opera", r"\bOPR/" + _V),
        ("Opera", r"\bOPiOS/" + _V),
        ("Opera", r"\bOpera/9\.80\b.*?\bVersion/" + _V),
        ("Opera", r"\bOpera[/ ]" + _V),
        ("Samsung Internet", r"\bSamsungBrowser/" + _V),
        ("Yandex", r"\bYaBrowser/" + _V),
        ("Firefox", r"\b(?:Firefox|FxiOS)/" + _V),
        ("IE", r"\bMSIE " + _V),
        ("IE", r"\bTrident/\d+.*?\brv:" + _V),
        ("Chromium", r"\bChromium/" + _V),
        ("Chrome", r"\b(?:Chrome|CriOS)/" + _V),  # Brave, Vivaldi and WebViews say Chrome too
        ("Android Browser", r"\bAndroid\b.*?\bVersion/" + _V + r"\S*\s+(?:Mobile\s+)?Safari/"),
        ("Safari", r"\bVersion/" + _V + r"\S*\s+(?:Mobile/\S+\s+)?Safari/"),
    )
)

_WINDOWS_NT: Final = {
    "10.0": "10",  # Windows 11 also sends "NT 10.0"
    "6.3": "8.1",
    "6.2": "8",
    "6.1": "7",
    "6.0": "Vista",
    "5.2": "XP",
    "5.1": "XP",
}
_WINDOWS_PHONE: Final = re.compile(r"\bWindows Phone(?: OS)? " + _V)
_WINDOWS: Final = re.compile(r"\bWindows NT (\d+\.\d+)")
_WINDOWS_OTHER: Final = re.compile(r"\bWin(?:dows|32|64)\b")
_IOS: Final = re.compile(
    r"\bOS " + _V + r"[_.]\d+(?:[_.]\d+)? like Mac OS X"  # "CPU iPhone OS 17_1 like Mac OS X"
    r"|\bi(?:Pad)?OS[ /]" + _V  # apps: "(iPhone; iOS 17.1; Scale/3.00)"
)
_IOS_DEVICE: Final = re.compile(r"\bi(?:Phone|Pad|Pod)\b")
_MACOS: Final = re.compile(r"\bMac OS X " + _V)
_MACINTOSH: Final = re.compile(r"\bMacintosh\b")
_ANDROID: Final = re.compile(r"\bAndroid(?:[ /]" + _V + r")?")
_CHROMEOS: Final = re.compile(r"\bCrOS\b")
_LINUX: Final = re.compile(r"\b(?:Linux|Ubuntu|Fedora|Debian)\b")

_TABLET: Final = re.compile(r"\biPad\b|\bTablet\b|\bKindle\b|\bSilk/", re.IGNORECASE)
_HANDHELD_OS: Final = frozenset({"iOS", "Android", "Windows Phone"})
_MOBILE: Final = re.compile(r"\bMobile\b|\biPhone\b|\biPod\b|\bWindows Phone\b")


def parse_user_agent(ua: str | None) -> UserAgentInfo:
    """Reduce a User-Agent header to browser, OS and device class.

    Never raises: ``None``, non-strings, ``"-"`` and garbage give :data:`UNKNOWN`-like results.
    Input is cut to :data:`MAX_UA_LENGTH` characters; results are cached (8192 entries).
    Device class: a bot is ``"bot"``; iPad, tablets and Android without "Mobile" are
    ``"tablet"``; iPhone, iPod, Windows Phone and anything saying "Mobile" are ``"mobile"``;
    a handheld OS (iOS, Android) with no such hint is ``"unknown"``; otherwise ``"desktop"``
    when an OS was recognised, else ``"unknown"``.
    """
    if not isinstance(ua, str):
        return UNKNOWN
    return _parse(ua[:MAX_UA_LENGTH])


@functools.lru_cache(maxsize=8192)
def _parse(ua: str) -> UserAgentInfo:
    for family, pattern in _BOTS:
        match = pattern.search(ua)
        if match:
            return UserAgentInfo(family, _major(match), *_os(ua), "bot")
    if _ANY_BOT.search(ua):
        return UserAgentInfo(None, None, *_os(ua), "bot")

    browser, browser_major = _browser(ua)
    os_family, os_major = _os(ua)
    return UserAgentInfo(browser, browser_major, os_family, os_major, _device(ua, os_family))


def _browser(ua: str) -> tuple[str | None, str | None]:
    if _APP_CLIENT.search(ua):
        return None, None  # an app's HTTP library: not a browser
    for family, pattern in _BROWSERS:
        match = pattern.search(ua)
        if match:
            return family, _major(match)
    return None, None


def _os(ua: str) -> tuple[str | None, str | None]:
    match = _WINDOWS_PHONE.search(ua)
    if match:
        return "Windows Phone", _major(match)
    match = _WINDOWS.search(ua)
    if match:
        return "Windows", _WINDOWS_NT.get(match.group(1))
    if _WINDOWS_OTHER.search(ua):
        return "Windows", None
    match = _IOS.search(ua)
    if match:
        return "iOS", _major(match)
    if _IOS_DEVICE.search(ua):
        return "iOS", None
    match = _MACOS.search(ua)
    if match:
        return "macOS", _major(match)
    if _MACINTOSH.search(ua):
        return "macOS", None
    match = _ANDROID.search(ua)
    if match:
        return "Android", _major(match)
    if _CHROMEOS.search(ua):
        return "ChromeOS", None
    if _LINUX.search(ua):
        return "Linux", None
    return None, None


def _device(ua: str, os_family: str | None) -> str:
    if _TABLET.search(ua):
        return "tablet"
    if os_family == "Android" and "Mobile" not in ua:
        # Android phones say "Mobile"; tablets do not. An app's HTTP client (Dalvik, okhttp)
        # never says it, so there the absence tells nothing.
        return "unknown" if _APP_CLIENT.search(ua) else "tablet"
    if _MOBILE.search(ua):
        return "mobile"
    if os_family in _HANDHELD_OS:
        return "unknown"  # e.g. an iOS app's "CFNetwork ... iOS 17.1": phone or tablet
    return "desktop" if os_family is not None else "unknown"


def _major(match: re.Match[str]) -> str | None:
    """The first non-empty group, if it is a plausible version (1-4 ASCII digits)."""
    for group in match.groups():
        if group:
            return group if len(group) <= 4 and group.isascii() else None
    return None
