from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.transforms.urls import MAX_URL_LENGTH, referrer_origin, strip_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.com/a/b", "https://example.com/a/b"),
        ("https://example.com", "https://example.com"),
        ("HTTPS://Example.COM/Path", "https://example.com/Path"),  # path case is kept
        ("https://example.com/p#section-2", "https://example.com/p"),
        ("https://example.com/p?q=secret&page=2", "https://example.com/p"),
        (
            "https://example.com/p?utm_source=news&q=x&utm_medium=mail&UTM_Campaign=c",
            "https://example.com/p?utm_source=news&utm_medium=mail&UTM_Campaign=c",
        ),
        ("https://example.com/p?utm%5Fsource=x", "https://example.com/p?utm%5Fsource=x"),
        ("https://example.com/p?utm_source=x;email=a@b.no", "https://example.com/p?utm_source=x"),
        ("https://example.com/p?utm_flag&&q", "https://example.com/p?utm_flag"),
        ("https://user:pass@example.com:8443/x", "https://example.com:8443/x"),
        ("https://alice@example.com/x", "https://example.com/x"),
        ("http://example.com:80/x", "http://example.com:80/x"),
        ("http://[2001:DB8::1]:8080/p", "http://{ip}:8080/p"),
        ("http://[::1]:8080/p", "http://[::1]:8080/p"),
        ("http://192.168.1.23/p", "http://{ip}/p"),
        ("http://127.0.0.1:8000/p", "http://127.0.0.1:8000/p"),
        ("//cdn.example.com/lib.js?v=3", "//cdn.example.com/lib.js"),
        ("/search?q=x", "/search"),
        ("/search?q=alice%40example.com&utm_term=shoes", "/search?utm_term=shoes"),
        ("  /padded  ", "/padded"),
        # identifiers in the path
        ("https://example.com/users/alice@example.com/x", "https://example.com/users/{user}/x"),
        ("https://example.com/share/alice@example.com/x", "https://example.com/share/{email}/x"),
        ("https://example.com/share/alice%2540example.com", "https://example.com/share/{email}"),
        ("https://example.com/share/alice%EF%BC%A0example.com", "https://example.com/share/{email}"),
        ("https://example.com/share/alice%26%2364%3Bexample.com", "https://example.com/share/{email}"),
        ("https://example.com/u/1234/posts", "https://example.com/u/{user}/posts"),
        ("https://example.com/@kari/posts", "https://example.com/{user}/posts"),
        ("https://example.com/~ola/index.html", "https://example.com/{user}/index.html"),
        ("https://example.com/account/settings", "https://example.com/account/settings"),
        ("https://example.com/session/ab12cd34/x", "https://example.com/session/{token}/x"),
        ("https://example.com/lookup/203.0.113.7/x", "https://example.com/lookup/{ip}/x"),
        ("https://example.com/lookup/2001:db8::7/x", "https://example.com/lookup/{ip}/x"),
        ("https://example.com/lookup/010.000.113.007", "https://example.com/lookup/{ip}"),
        ("https://example.com/call/+4791234567", "https://example.com/call/{phone}"),
        ("https://example.com/call/912%2034%20567", "https://example.com/call/{phone}"),
        ("https://example.com/home/kari/file.txt", "https://example.com/home/{user}/file.txt"),
        ("https://maps.example.com/place/@59.9139,10.7522,15z", "https://maps.example.com/place/@{location},15z"),
        ("https://example.com/x/203.0.113.7/notes", "https://example.com/x/{ip}/notes"),
        ("https://example.com/p?utm_source=203.0.113.7", "https://example.com/p?utm_source={ip}"),
        ("https://example.com/p?utm_source=%2B47%20912%2034%20567", "https://example.com/p?utm_source={phone}"),
        ("https://example.com/p?utm_x%40example.com=1&utm_a=b", "https://example.com/p?utm_a=b"),
        ("https://example.com/product/988077917", "https://example.com/product/988077917"),
        ("https://example.com/v/1.2.3.4/notes", "https://example.com/v/1.2.3.4/notes"),
        ("https://example.com/u/alice%40example.com", "https://example.com/u/{user}"),
        ("https://example.com/x/alice%40example%2Ecom/x", "https://example.com/x/{email}/x"),
        ("https://example.com/orders/12345678/items", "https://example.com/orders/12345678/items"),
        ("https://example.com/year/2024/page/12345", "https://example.com/year/2024/page/12345"),
        ("https://example.com/reset/aB3dE5fG7hJ9kL1mN3pQ", "https://example.com/reset/{token}"),
        ("https://example.com/f/aB3dE5fG7hJ9kL1m.pdf", "https://example.com/f/{token}.pdf"),
        (
            "https://example.com/x/550E8400-e29b-41d4-a716-446655440000/y",
            "https://example.com/x/550E8400-e29b-41d4-a716-446655440000/y",  # product and request ids stay
        ),
        ("https://example.com/sha/deadbeefcafebabe", "https://example.com/sha/{token}"),
        ("https://example.com/blog/top-10-tips-2024", "https://example.com/blog/top-10-tips-2024"),
        ("https://example.com/blog/how_to_train_2", "https://example.com/blog/how_to_train_2"),
        ("https://example.com/a/verylongwordwithoutdigits", "https://example.com/a/verylongwordwithoutdigits"),
        ("https://example.com/cart;jsessionid=0AAB12C/checkout", "https://example.com/cart/checkout"),
        ("https://example.com/?utm_content=bob@example.org", "https://example.com/?utm_content={email}"),
        ("https://example.com/?utm_id=123456789", "https://example.com/?utm_id=123456789"),
        ("https://bücher.de/straße?utm_x=1", "https://bücher.de/straße?utm_x=1"),
    ],
)
def test_strip_url(url: str, expected: str) -> None:
    assert strip_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "",
        "   ",
        "-",  # nginx's empty referrer
        "search?q=x",  # relative but not a path
        "?q=x",
        "www.example.com/path",
        "javascript:alert(document.cookie)",
        "mailto:alice@example.com",
        "data:text/html,<script>alert(1)</script>",
        "ftp://example.com/file",
        "file:///etc/passwd",
        "android-app://com.example/",
        "http://",
        "http:///path",
        "https://user@/path",
        "http://[::1",
        "http://example.com:99999/",
        "http://example.com:port/",
        "http://example.com:+80/",
        "http://exa mple.com/",
        "http://example.com/a\x00b",
        "http://example.com/a\nb",
        "https://example.com/\x7f",
        "/" + "a" * MAX_URL_LENGTH,
        "https://example.com/" + "a" * 10_000_000,
    ],
)
def test_invalid_urls_give_none(url: str) -> None:
    assert strip_url(url) is None


@pytest.mark.parametrize("value", [None, 42, b"https://example.com/", ["/x"]])
def test_non_strings_give_none(value: object) -> None:
    assert strip_url(value) is None  # type: ignore[arg-type]
    assert referrer_origin(value) is None  # type: ignore[arg-type]


def test_custom_allow_list() -> None:
    url = "https://example.com/p?ref=home&REF=x&refx=1&lang=nb&utm_source=s"
    assert strip_url(url, ["ref", "lang"]) == "https://example.com/p?ref=home&REF=x&lang=nb"
    assert strip_url(url, ("ref*",)) == "https://example.com/p?ref=home&REF=x&refx=1"
    assert strip_url(url, frozenset()) == "https://example.com/p"
    assert strip_url(url, []) == "https://example.com/p"


@pytest.mark.parametrize("allowed", ["utm_*", ["*"], ["**"], [""], [" "], [None], [3]])
def test_unusable_allow_lists_are_refused(allowed: object) -> None:
    with pytest.raises(ValueError, match="allowed_params"):
        strip_url("/x", allowed)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://www.Example.com/path?q=1#x", "https://www.example.com"),
        ("HTTP://A.B:80/", "http://a.b"),
        ("https://a.b:443/", "https://a.b"),
        ("https://a.b:8443/x", "https://a.b:8443"),
        ("http://a.b:443/", "http://a.b:443"),
        ("https://user:pw@a.b/x", "https://a.b"),
        ("https://[2001:DB8::1]:8443/", "https://{ip}:8443"),
        ("https://203.0.113.9/x", "https://{ip}"),
        ("/relative/path", None),
        ("//cdn.example.com/x", None),
        ("-", None),
        ("", None),
        ("android-app://com.google.android.gm/", None),
        ("javascript:void(0)", None),
        ("https://", None),
        ("https://a.b:99999/", None),
        ("https://a.b/" + "x" * 10_000_000, None),
    ],
)
def test_referrer_origin(url: str, expected: str | None) -> None:
    assert referrer_origin(url) == expected


# --- properties -------------------------------------------------------------------------

param_names = st.text(min_size=1, max_size=12)
param_values = st.text(max_size=20)


@settings(deadline=None)
@given(st.lists(st.tuples(param_names, param_values), max_size=8), st.text(max_size=10))
def test_never_keeps_a_parameter_outside_the_allow_list(pairs: list[tuple[str, str]], fragment: str) -> None:
    url = "https://example.com/p?" + urlencode(pairs) + "#" + quote(fragment)
    out = strip_url(url)
    assert out is not None
    parts = urlsplit(out)
    assert parts.fragment == ""
    for name, _ in parse_qsl(parts.query, keep_blank_values=True):
        assert name.strip().lower().startswith("utm_")
    kept = {name.strip().lower() for name, _ in pairs if name.strip().lower().startswith("utm_")}
    assert {n.strip().lower() for n, _ in parse_qsl(parts.query, keep_blank_values=True)} == kept


@settings(deadline=None)
@given(
    st.lists(st.sampled_from(["ref", "lang", "id", "q", "REF", "ref_x"]), max_size=6),
    st.lists(st.tuples(param_names, param_values), max_size=6),
)
def test_never_keeps_a_parameter_outside_a_custom_allow_list(allowed: list[str], pairs: list[tuple[str, str]]) -> None:
    out = strip_url("/p?" + urlencode(pairs), allowed)
    assert out is not None
    allowed_lower = {name.lower() for name in allowed}
    for name, _ in parse_qsl(urlsplit(out).query, keep_blank_values=True):
        assert name.strip().lower() in allowed_lower


# An address whose local part ends in "/", "=", "?" or "'" is, in a URL, a path or query
# delimiter followed by "@host": out of scope.
def _valid_no(number: str) -> bool:
    return phonenumbers.is_valid_number(phonenumbers.parse(number, "NO"))


# A "%" in the local part is %-decoded first, by design ("%00@a.ae" is "@a.ae" once decoded: no address).
url_emails = st.emails().filter(lambda e: e.rpartition("@")[0][-1] not in "/=?'" and "%" not in e)


@settings(deadline=None)
@given(url_emails, st.integers(min_value=0, max_value=9_999_999).map(lambda n: f"9{n:07d}").filter(_valid_no))
def test_identifiers_never_survive_in_path_or_kept_values(email: str, number: str) -> None:
    url = f"https://example.com/x/{email}/{number}?utm_term={email}&utm_id={number}"
    out = strip_url(url)
    assert out is not None
    assert "@" not in out
    assert str(number) not in out


@settings(deadline=None)
@given(st.text(max_size=200))
def test_any_text_gives_none_or_a_url_without_fragment_or_credentials(text: str) -> None:
    out = strip_url(text)
    if out is not None:
        assert "#" not in out
        assert "@" not in urlsplit(out).netloc
        assert strip_url(out) == out  # stripping is idempotent
