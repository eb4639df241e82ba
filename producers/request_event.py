"""One HTTP request -> one raw http_request record: the logic the WSGI and ASGI middleware share.

Pure: no I/O, no framework. The adapters hand in the request's parts (headers as a mapping of
lower-case names) and get back the record to publish.

Client address: the socket peer, unless the peer is one of the configured trusted proxies; then the
chain in ``Forwarded`` (RFC 7239, preferred when present) or ``X-Forwarded-For`` is walked from the
right and the first address that is not a trusted proxy is the client. From any other peer those
headers are ignored: a client can write whatever it likes into them. An entry that is not an IP
address (``unknown``, an obfuscated name) ends the walk at the proxy that reported it.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from datamin.exceptions import ConfigError
from datamin.identity import Identity, IdentityError, user_subject
from schemas.limits import MAX_MAP_ENTRIES

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Publisher(Protocol):
    """What the middleware publishes through: an EventProducer, or a fake in tests."""

    def publish(self, event_type: str, record: dict[str, Any]) -> bool: ...


@dataclass(frozen=True)
class MiddlewareSettings:
    """How the middleware reads a request. Everything optional; the defaults trust no proxy."""

    trusted_proxies: tuple[str, ...] = ()
    """CIDRs (or single addresses) of the reverse proxies and load balancers in front of the app"""
    session_cookie: str | None = None
    """cookie holding the session id, e.g. "session" (Flask) or "sessionid" (Django)"""
    client_id_cookie: str | None = None
    """cookie holding an analytics client id"""
    consent_cookie: str | None = "datamin_consent"
    """cookie holding the server-issued visitor id: the subject of visitors who are not logged in"""
    identity: Identity | None = None
    """verifies visitor cookies (`datamin.identity`); None: visitor cookies are ignored (no subject)"""
    cdn_country_header: str | None = None
    """header a CDN sets to the client's country, e.g. "CF-IPCountry" or "CloudFront-Viewer-Country\""""
    user_id: Callable[[Any], str | None] | None = None
    """given the WSGI environ or ASGI scope (after the app ran), the authenticated user's id or None"""
    networks: tuple[IPNetwork, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        nets: list[IPNetwork] = []
        for cidr in self.trusted_proxies:
            try:
                nets.append(ipaddress.ip_network(cidr.strip(), strict=False))
            except ValueError:
                raise ConfigError("trusted_proxies", f"{cidr!r} is not an address or CIDR",
                                  "write proxies as e.g. 10.0.0.0/8, 127.0.0.1 or 2001:db8::/32") from None
        object.__setattr__(self, "networks", tuple(nets))
        if self.cdn_country_header is not None:
            object.__setattr__(self, "cdn_country_header", self.cdn_country_header.lower())


@functools.lru_cache(maxsize=4096)
def parse_ip(text: str) -> IPAddress | None:
    """An address from a header entry: bare, with a port, or [IPv6]:port, in quotes or not (remembered:
    a server sees the same few peers, its proxies, again and again)."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1:text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@functools.lru_cache(maxsize=4096)
def address_text(address: IPAddress) -> str:
    """An address as text (remembered, as `parse_ip`)."""
    return str(address)


def forwarded_for(header: str) -> list[str]:
    """The ``for=`` values of a Forwarded header, in order (RFC 7239)."""
    out: list[str] = []
    for element in header.split(","):
        for pair in element.split(";"):
            name, _, value = pair.partition("=")
            if name.strip().lower() == "for":
                out.append(value.strip())
    return out


def _trusted(address: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(address in net for net in networks)


def client_address(peer: str | None, x_forwarded_for: str | None, forwarded: str | None,
                   networks: tuple[IPNetwork, ...]) -> str | None:
    """The client's IP address by the rules in the module docstring."""
    if peer is None:
        return None
    peer_ip = parse_ip(peer)
    if peer_ip is None or not networks or not _trusted(peer_ip, networks):
        return address_text(peer_ip) if peer_ip is not None else None
    if forwarded:
        hops = forwarded_for(forwarded)
    elif x_forwarded_for:
        hops = x_forwarded_for.split(",")
    else:
        return address_text(peer_ip)
    current = peer_ip
    for hop in reversed(hops):
        address = parse_ip(hop)
        if address is None:
            return address_text(current)
        current = address
        if not _trusted(address, networks):
            return address_text(address)
    return address_text(current)  # every hop is a proxy: the left-most is as far as anyone vouches


def cookies(header: str | None, names: tuple[str, ...]) -> dict[str, str]:
    """The values of the named cookies in a Cookie header (first one wins; quotes stripped)."""
    found: dict[str, str] = {}
    if not header or not names:
        return found
    for part in header.split(";"):
        name, sep, value = part.partition("=")
        name = name.strip()
        if sep and name in names and name not in found:
            found[name] = value.strip().strip('"')
    return found


def client_hints(headers: Mapping[str, str]) -> dict[str, str] | None:
    """The Sec-CH-UA-* headers, at most MAX_MAP_ENTRIES of them (first by name): a client sending more
    would otherwise make the whole request's event fail to encode and be lost."""
    names = [name for name in headers if name.startswith("sec-ch-ua")]
    if not names:  # Firefox, Safari, bots: no hints
        return None
    names.sort()
    return {name: headers[name] for name in names[:MAX_MAP_ENTRIES]}


def build_record(settings: MiddlewareSettings, *, started: float, method: str | None, host: str | None,
                 url: str | None, status: int | None, bytes_sent: int | None, duration_ms: float,
                 headers: Mapping[str, str], peer: str | None, user_id: str | None) -> dict[str, Any]:
    """The raw http_request record of one request. ``started`` is epoch seconds; headers lower-case."""
    wanted = tuple(n for n in (settings.session_cookie, settings.client_id_cookie, settings.consent_cookie) if n)
    jar = cookies(headers.get("cookie"), wanted)
    return {
        "time": datetime.fromtimestamp(started, UTC),
        "subject_key": request_subject(settings, jar, user_id),
        "client_ip": client_address(peer, headers.get("x-forwarded-for"), headers.get("forwarded"),
                                    settings.networks),
        "method": method,
        "host": host,
        "url": url,
        "status": status,
        "bytes_sent": bytes_sent,
        "duration_ms": duration_ms,
        "referrer": headers.get("referer"),
        "user_agent": headers.get("user-agent"),
        "accept_language": headers.get("accept-language"),
        "client_hints": client_hints(headers),
        "do_not_track": headers.get("dnt", "").strip() == "1",
        "global_privacy_control": headers.get("sec-gpc", "").strip() == "1",
        "cdn_country": headers.get(settings.cdn_country_header) if settings.cdn_country_header else None,
        "session_id": jar.get(settings.session_cookie) if settings.session_cookie else None,
        "user_id": user_id,
        "client_id": jar.get(settings.client_id_cookie) if settings.client_id_cookie else None,
    }


def request_subject(settings: MiddlewareSettings, jar: Mapping[str, str], user_id: str | None) -> str | None:
    """``user:<id>`` for the user the app vouches for, else ``visitor:<id>`` for a visitor cookie this
    server issued; a cookie it did not issue is ignored (see `datamin.identity`)."""
    if user_id:
        try:
            return user_subject(user_id)
        except IdentityError:
            return None
    cookie = jar.get(settings.consent_cookie) if settings.consent_cookie else None
    if cookie and settings.identity is not None:
        return settings.identity.visitor_of(cookie)
    return None


class RequestPublisher:
    """What the WSGI and ASGI middleware share: the producer, the settings, the clocks, and publishing
    that never fails a request (a refusal or an error is counted in ``publish_errors`` and logged).

    With an `EventProducer` the record is built in its sender thread, in batches (``publish_later``):
    the request pays only for asking the app who the user is and for a queue append. With any other
    publisher it is built here and handed to ``publish``."""

    server = "web"
    """the kind of middleware, for the log"""

    def __init__(self, producer: Publisher, settings: MiddlewareSettings | None = None, *,
                 wall_clock: Callable[[], float] = time.time, timer: Callable[[], float] = time.perf_counter) -> None:
        self.producer = producer
        self.settings = settings or MiddlewareSettings()
        self.publish_errors = 0
        """publishes that raised or were refused; the requests themselves were unaffected"""
        self._wall = wall_clock
        self._timer = timer
        self._later: Callable[..., bool] | None = getattr(producer, "publish_later", None)

    def _publish_record(self, build: Callable[..., dict[str, Any]], request: Any, *args: Any) -> None:
        """Publishes ``build(*args, user_id)``, where ``user_id`` is what ``settings.user_id(request)``
        answers now, in the request's thread; never raises."""
        try:
            user = self.settings.user_id(request) if self.settings.user_id else None
            user = user if isinstance(user, str) and user else None
            if self._later is not None:
                ok = self._later("http_request", build, *args, user)
            else:
                ok = self.producer.publish("http_request", build(*args, user))
            if not ok:
                self.publish_errors += 1
        except Exception:  # the request must never fail because of datamin
            self.publish_errors += 1
            log.warning("datamin %s middleware: could not publish an http_request event", self.server, exc_info=True)
