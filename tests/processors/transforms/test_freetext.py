import ipaddress
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.transforms.freetext import MAX_TEXT_LENGTH, TRUNCATED, scrub_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # e-mail addresses
        ("mail ola.nordmann@example.no now", "mail [email] now"),
        ("<Øyvind.Ås+tag@firma.co.uk>", "<[email]>"),
        ("email=alice%40example.com&x=1", "email=[email]&x=1"),
        ("ALICE@EXAMPLE.COM.", "[email]."),
        ("alice\u200b@example.com", "[email]"),  # zero-width space removed first
        ("alice\x00@example.com", "[email]"),  # NUL removed first
        ("\uff41\uff4c\uff49\uff43\uff45\uff20\uff45\uff58.com", "[email]"),  # full-width
        ("not an address: @handle, a@b, x@localhost", "not an address: @handle, a@b, x@localhost"),
        # credentials in URLs
        ("https://alice:s3cret@example.com/x", "https://[user]@example.com/x"),
        ("redis://:pw@10.0.0.5:6379", "redis://[user]@[ip]:6379"),
        # IP addresses
        ("from 203.0.113.77 port 22", "from [ip] port 22"),
        ("ip=203.0.113.77:8080.", "ip=[ip]:8080."),
        ("client 2001:db8::1 connected", "client [ip] connected"),
        ("[2001:DB8::1]:443", "[[ip]]:443"),
        ("fe80::1%eth0 and ::ffff:1.2.3.4", "[ip] and [ip]"),
        ("addr:fe80::1.", "addr:[ip]."),
        ("connect to ::1: refused; 2001:db8:::", "connect to ::1: refused; [ip]:"),  # loopback stays
        ("0.0.0.0 and :: are not personal", "0.0.0.0 and :: are not personal"),
        ("999.1.1.1 and 1.2.3.4.5", "999.1.1.1 and 1.2.3.4.5"),
        (
            "std::vector<int> Foo::bar 12:30:45 00:1a:2b:3c:4d:5e",
            "std::vector<int> Foo::bar 12:30:45 [device]",
        ),
        # MAC addresses: device identification numbers
        ("wlan0 hwaddr AA-BB-CC-DD-EE-FF up", "wlan0 hwaddr [device] up"),
        ("mac=f0:18:98:4a:2b:01,", "mac=[device],"),
        ("mixed aa:bb-cc:dd:ee:ff and 7 pairs 01:02:03:04:05:06:07 stay",
         "mixed aa:bb-cc:dd:ee:ff and 7 pairs 01:02:03:04:05:06:07 stay"),
        # phone numbers
        ("call +47 912 34 567 today", "call [phone] today"),
        ("call (415) 555-2671", "call [phone]"),
        ("call (555) 123-4567", "call (555) 123-4567"),  # 555-1xxx: fictional, invalid
        ("call 415-555-2671 or 415.555.2671", "call [phone] or [phone]"),
        ("ring 91234567 eller 22 22 22 22", "ring [phone] eller [phone]"),
        ("+4791234567", "[phone]"),
        ("on 2024-01-15 12:30:45 and 15.01.2024", "on 2024-01-15 12:30:45 and 15.01.2024"),
        ("order 1234567, pi 3.14159265, 12345678.5 ms", "order 1234567, pi 3.14159265, 12345678.5 ms"),
        # card numbers
        ("card 4111 1111 1111 1111 exp", "card [card] exp"),
        ("4111-1111-1111-1111", "[card]"),
        ("4111111111111111", "[card]"),
        ("amex 3782 822463 10005", "amex [card]"),
        ("4111 1111 1111 1112", "[card]"),  # 16 digits: card-like even if the check fails
        # tokens and secrets
        ("Authorization: Bearer abc.def-ghi_jkl\nnext", "Authorization: [token]\nnext"),
        ("{'authorization': 'Basic dXNlcjpwYXNz', 'host': 'x'}", "{'authorization': '[token]', 'host': 'x'}"),
        ("Cookie: sid=abc; theme=dark\nok", "Cookie: [token]\nok"),
        ("sent bearer abcdefgh12345678 to api", "sent bearer [token] to api"),
        ("password=hunter2 user=bob", "password=[token] user=[user]"),
        ('{"password": "correct horse battery", "x": 1}', '{"password": [token], "x": 1}'),
        (
            "api_key: abc123 csrf_token=xyz DB-PASSWORD = pw",
            "api_key: [token] csrf_token=[token] DB-PASSWORD = [token]",
        ),
        ("?access_token=ya29.a0AfH6&state=1", "?access_token=[token]&state=1"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws_secret_access_key = [token]"),
        ('{"password": "' + "p" * 5000 + '"}', '{"password": [token]}'),
        ('password="unterminated secret', "password=[token]"),
        ("Cookie: " + "a=b; " * 1000 + "\nok", "Cookie: [token]\nok"),
        ('{"key": "-----BEGIN PRIVATE KEY-----\\nMIIEv+/A==\\n-----END PRIVATE KEY-----\\n"}', '{"key": "[token]\\n"}'),
        ("mail alice%40example%2Ecom", "mail [email]"),
        ("key sk_live_4eC39HqLyjWDarjtT1zdp7dc ok", "key [token] ok"),
        ("AKIAIOSFODNN7EXAMPLE", "[token]"),
        ("ghp_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghij", "[token]"),
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "jwt [token]",
        ),
        ("xoxb-123456789012-abcdefghij", "[token]"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nIBAAK==\n-----END RSA PRIVATE KEY----- done", "[token] done"),
        ("id 550e8400-e29b-41d4-a716-446655440000.", "id 550e8400-e29b-41d4-a716-446655440000."),  # request ids stay
        ("t=aB3dE5fG7hJ9kL1mN3pQrS5tU7vW", "t=[token]"),
        # identifiers that are not secrets stay
        ("test_scrub_text_handles_ipv6_zone", "test_scrub_text_handles_ipv6_zone"),
        ("/usr/lib/x86_64-linux-gnu/libssl.so.3", "/usr/lib/x86_64-linux-gnu/libssl.so.3"),
        ("org.springframework.boot.SpringApplication", "org.springframework.boot.SpringApplication"),
        # user names in home directories
        ('File "/home/alice/app.py", line 3', 'File "/home/[user]/app.py", line 3'),
        ("/Users/Bob/Library/x", "/Users/[user]/Library/x"),
        ("C:\\Users\\Carol\\AppData\\Local", "C:\\Users\\[user]\\AppData\\Local"),
        ("c:\\\\users\\\\dave\\\\x.txt", "c:\\\\users\\\\[user]\\\\x.txt"),
        ("C:/Users/Eve/Desktop", "C:/Users/[user]/Desktop"),
        ("C:\\USERS\\John Smith\\Documents", "C:\\USERS\\[user]\\Documents"),
        ("D:\\Documents and Settings\\frank\\x", "D:\\Documents and Settings\\[user]\\x"),
        ("/var/home/gina", "/var/home/[user]"),
        ("cd /home/hank; ls", "cd /home/[user]; ls"),
        # plain text
        ("", ""),
        ("søk etter sko størrelse 42", "søk etter sko størrelse 42"),
        ("日本語のテキスト 🙂", "日本語のテキスト 🙂"),
    ],
)
def test_scrub_text(text: str, expected: str) -> None:
    assert scrub_text(text) == expected


@pytest.mark.parametrize("value", [None, 42, b"alice@example.com", ["alice@example.com"]])
def test_non_strings_give_none(value: object) -> None:
    assert scrub_text(value) is None  # type: ignore[arg-type]


def test_long_text_is_truncated_and_says_so() -> None:
    out = scrub_text("word " * 3_000_000)  # 15 MB
    assert out is not None
    assert out.endswith(TRUNCATED)
    assert len(out) <= MAX_TEXT_LENGTH + len(TRUNCATED)


def test_truncation_does_not_leave_half_an_address() -> None:
    prefix = "x " * ((MAX_TEXT_LENGTH - 5) // 2)
    text = prefix + "alice.secret@example.com and more text"  # straddles the cut
    assert len(prefix) < MAX_TEXT_LENGTH < len(prefix) + len("alice.secret@example.com")
    out = scrub_text(text)
    assert out is not None
    assert "alice" not in out
    assert "@" not in out


def test_huge_adversarial_inputs_complete() -> None:
    for text in ["a" * 10_000_000, "1 " * 5_000_000, "a@" * 5_000_000, ":" * 10_000_000]:
        out = scrub_text(text)
        assert out is not None
        assert out.endswith(TRUNCATED)


def test_adversarial_inputs_within_the_cap_are_scrubbed_whole() -> None:
    n = MAX_TEXT_LENGTH // 20
    text = "a.b.c@" * n + " bob@example.com"
    out = scrub_text(text[:MAX_TEXT_LENGTH])
    assert out is not None
    assert "bob@example.com" not in out


# --- properties -------------------------------------------------------------------------

STANDARD_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")

words = st.text(st.characters(codec="utf-8", exclude_characters="@"), max_size=12)
separators = st.sampled_from([" ", ", ", "\n", "; ", " (", ") ", " <", "> ", "\t", ": ", " = "])
# A local part ending in "/", "=", "?" or "'" is left alone by design (those characters end
# paths, parameters and quotes in real text); STANDARD_EMAIL cannot match such an address.
def _netmask(address: ipaddress.IPv4Address) -> bool:
    """255.255.255.0 and the like are kept on purpose: they name no one"""
    inverted = ~int(address) & 0xFFFFFFFF
    return str(address).startswith("255.") and inverted & (inverted + 1) == 0


plain_emails = st.emails().filter(lambda e: e.rpartition("@")[0][-1] not in "/=?'")
personal = st.one_of(
    plain_emails,
    st.ip_addresses(v=4).filter(lambda a: not (a.is_unspecified or a.is_loopback or _netmask(a))).map(str),
    st.ip_addresses(v=6).filter(lambda a: not (a.is_unspecified or a.is_loopback)).map(str),
)


@st.composite
def texts_with_personal_data(draw: st.DrawFn) -> tuple[str, list[str]]:
    pieces: list[str] = []
    planted: list[str] = []
    for _ in range(draw(st.integers(min_value=1, max_value=6))):
        pieces.append(draw(words))
        pieces.append(draw(separators))
        value = draw(personal)
        planted.append(value)
        pieces.append(value)
        pieces.append(draw(separators))
    return "".join(pieces), planted


@settings(deadline=None, max_examples=300)
@given(texts_with_personal_data())
def test_no_email_or_ip_survives(case: tuple[str, list[str]]) -> None:
    text, planted = case
    out = scrub_text(text)
    assert out is not None
    assert STANDARD_EMAIL.search(out) is None
    for value in planted:
        if "@" in value:
            assert value not in out
        else:
            assert ipaddress.ip_address(value).compressed not in out, value


@settings(deadline=None)
@given(st.text(max_size=300))
def test_any_text_is_scrubbed_without_error(text: str) -> None:
    out = scrub_text(text)
    assert out is not None
    assert STANDARD_EMAIL.search(out) is None
