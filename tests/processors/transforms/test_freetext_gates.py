"""The gated ASCII path of scrub_text and the IPv4 fast path of truncate_ip give exactly what the
ungated / ipaddress paths give."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from processors.detect import decode
from processors.detect.scrub import STEPS
from processors.transforms import scrub_text
from processors.transforms.ip import _parse, _truncate, ip_truncator, truncate_ip

_FRAGMENTS = ["a@b.no", "x%40ex%2ecom", "https://u:p@h.no/", "/home/", "\\Users\\", "Documents and Settings",
              "-----BEGIN RSA PRIVATE KEY-----", "MIIabc", "Authorization:", "Set-Cookie: a=b", "password=",
              "PWD:", "token=", "phpsessid=", "sid=", "Bearer ", "eyJhbGciOiJI.eyJzdWIiOiIx.sig",
              "AKIAABCDEFGHIJKLMNOP",
              "xoxb-1234567890", "aa:bb:cc:dd:ee:ff",
              "0A-1B-2C-3D-4E-5F", "fe80::1%eth0", "::", "2001:db8::1", ":", "1.2.3.4", "0.0.0.0", "999.1.1.1",
              "123e4567-e89b-12d3-a456-426614174000", "a1b2c3d4e5f6g7h8i9j0k1l2m3", "4111 1111 1111 1111",
              "+47 912 34 567", "415.555.2671", "passord=", "name at ex dot com", "Kari Hansen", "59.91387, 10.75225",
              "001a.2b3c.4d5e", "NO9386011117947", "15108695088", "&#64;", "%40", "\\u0040", "user=", "~bob",
              "2026-11-25", " ", "\n", "=", "'", "0", "12", "345", "6789", "x",
              "kari", "/", "\\", "-", "."]


def _ungated(text: str) -> str:
    text = decode(text)
    for step, _gate in STEPS:
        text = step(text)
    return text


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(_FRAGMENTS), min_size=1, max_size=12).map("".join))
def test_gates_never_change_the_result(text: str) -> None:
    assert scrub_text(text) == _ungated(text)


def test_a_gated_step_still_scrubs() -> None:
    assert scrub_text("java.lang.X at /home/kari/x token=abcd1234efgh5678 from 192.168.1.23") == \
        "java.lang.X at /home/[user]/x token=[token] from [ip]"


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(["0", "00", "01", "1", "99", "255", "256", "999", "1000", "a", "", " 1"]),
                min_size=3, max_size=5).map(".".join), st.sampled_from([8, 16, 24]))
def test_ipv4_fast_path_matches_ipaddress(text: str, v4: int) -> None:
    address = _parse(text.strip())
    expected = None if address is None else truncate_ip(str(ipaddress.ip_address(address)), v4, 32)
    assert _truncate.__wrapped__(text, v4, 32) == expected
    assert ip_truncator(v4, 32)(text) == truncate_ip(text, v4, 32)
