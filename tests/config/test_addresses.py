"""Address tokens as vzctl reads them: canonical form, prefix kept, unspecified ignored, zones refused."""

from __future__ import annotations

import ipaddress
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from venetfilter.config import ConfigAddress, parse_address_token, parse_address_tokens, split_tokens
from venetfilter.config.addresses import merge_addresses, remove_addresses
from venetfilter.errors import InvalidAddressError


@pytest.mark.parametrize(
    ("text", "address", "prefixlen", "family", "shown"),
    [
        ("192.0.2.1", "192.0.2.1", None, 4, "192.0.2.1"),
        ("192.0.2.1/24", "192.0.2.1", 24, 4, "192.0.2.1/24"),
        ("192.0.2.1/0", "192.0.2.1", 0, 4, "192.0.2.1/0"),
        ("192.0.2.1/32", "192.0.2.1", 32, 4, "192.0.2.1/32"),
        ("192.0.2.1/024", "192.0.2.1", 24, 4, "192.0.2.1/24"),
        ("2001:DB8:0:0:0:0:0:1", "2001:db8::1", None, 6, "2001:db8::1"),
        ("2001:db8::1/64", "2001:db8::1", 64, 6, "2001:db8::1/64"),
        ("2001:0db8:0000::0001/128", "2001:db8::1", 128, 6, "2001:db8::1/128"),
        ("FE80::ABCD", "fe80::abcd", None, 6, "fe80::abcd"),
        ("::1", "::1", None, 6, "::1"),
        ("::FFFF:192.0.2.5", "::ffff:192.0.2.5", None, 6, "::ffff:192.0.2.5"),
        ("0.0.0.0", "0.0.0.0", None, 4, "0.0.0.0"),
    ],
)
def test_parse(text: str, address: str, prefixlen: int | None, family: int, shown: str) -> None:
    parsed = parse_address_token(text)
    assert (parsed.address, parsed.prefixlen, parsed.family, str(parsed)) == (address, prefixlen, family, shown)


BAD_TOKENS = {
    "": "not an IPv4",
    "192.0.2": "not an IPv4",
    "192.0.2.256": "not an IPv4",
    "192.0.2.1.5": "not an IPv4",
    "0x7f.0.0.1": "not an IPv4",
    "192.0.2.01x": "not an IPv4",
    " 192.0.2.1": "not an IPv4",
    "192.0.2.1/33": "bad prefix",
    "192.0.2.1/": "bad prefix",
    "192.0.2.1/-1": "bad prefix",
    "192.0.2.1/+8": "bad prefix",
    "192.0.2.1/ 8": "bad prefix",
    "192.0.2.1/8/8": "bad prefix",
    "192.0.2.1/1000": "bad prefix",
    "192.0.2.1/٣": "bad prefix",  # a non-ASCII digit
    "2001:db8::1/129": "bad prefix",
    "2001:db8::g": "not an IPv6",
    "2001:db8:::1": "not an IPv6",
    "1:2:3:4:5:6:7:8:9": "not an IPv6",
    "fe80::1%eth0": "zone ids",
    "fe80::1%1/64": "zone ids",
    "192.0.2.1\0": "not an IPv4",
    "192.0.2.1\udc80": "not an IPv4",
    "localhost": "not an IPv4",
    "[2001:db8::1]": "not an IPv6",
}


@pytest.mark.parametrize("text", sorted(BAD_TOKENS))
def test_bad_tokens(text: str) -> None:
    with pytest.raises(InvalidAddressError, match=BAD_TOKENS[text]) as info:
        parse_address_token(text)
    assert info.value.value == text


def test_non_string() -> None:
    with pytest.raises(InvalidAddressError):
        parse_address_token(b"192.0.2.1")  # type: ignore[arg-type]


def test_split_on_commas_spaces_and_tabs() -> None:
    assert split_tokens(["a,b", "c d\te", ",,", ""]) == ["a", "b", "c", "d", "e"]
    assert split_tokens("a, b") == ["a", "b"]


def test_token_lists_drop_unspecified_and_collapse_duplicates() -> None:
    parsed = parse_address_tokens(["192.0.2.1,0.0.0.0", ":: 2001:DB8::1/64", "192.0.2.1/24 2001:db8::1", "0.0.0.0/8"])
    assert [str(a) for a in parsed] == ["192.0.2.1", "2001:db8::1/64"]


def test_token_lists_fail_whole() -> None:
    with pytest.raises(InvalidAddressError, match="'nope'"):
        parse_address_tokens("192.0.2.1,nope")


def test_comparisons_ignore_the_prefix() -> None:
    a, a24, b = (parse_address_token(t) for t in ("192.0.2.1", "192.0.2.1/24", "192.0.2.2"))
    assert remove_addresses([a24, b], [a]) == [b]
    assert merge_addresses([a24], [a, b]) == [a24, b]


def test_constructor_checks_its_fields() -> None:
    assert ConfigAddress("2001:db8::1", 64, 6) == parse_address_token("2001:db8::1/64")
    for args in [("2001:DB8::1", None, 6), ("192.0.2.1", None, 6), ("192.0.2.1/8", None, 4), ("x", None, 4),
                 ("192.0.2.1", 33, 4), ("192.0.2.1", True, 4), ("2001:db8::1", -1, 6)]:
        with pytest.raises(InvalidAddressError):
            ConfigAddress(*args)  # type: ignore[arg-type]


@given(st.ip_addresses(), st.none() | st.integers(0, 128), st.booleans())
def test_canonical_form_matches_ipaddress(address: object, prefix: int | None, upper: bool) -> None:
    text = str(address)
    text = text.upper() if upper else text
    limit = 32 if isinstance(address, ipaddress.IPv4Address) else 128
    if prefix is not None:
        text = f"{text}/{prefix}"
    if prefix is not None and prefix > limit:
        with pytest.raises(InvalidAddressError):
            parse_address_token(text)
        return
    parsed = parse_address_token(text)
    assert ipaddress.ip_address(parsed.address) == address and parsed.address == parsed.address.lower()
    embedded_ipv4 = address.version == 6 and address.packed[:10] == bytes(10)  # type: ignore[attr-defined]
    if not embedded_ipv4:  # there inet_ntop writes ::ffff:1.2.3.4 where ipaddress writes ::ffff:102:304
        assert parsed.address == str(address)  # elsewhere both write RFC 5952 text
    assert parsed.prefixlen == prefix and parsed.family == address.version  # type: ignore[attr-defined]
    assert parse_address_token(str(parsed)) == parsed  # canonical text is a fixed point


@given(st.text(max_size=50) | st.from_regex(r"[0-9a-fA-F:.%/]{0,45}", fullmatch=True))
def test_arbitrary_text_is_accepted_or_refused_cleanly(text: str) -> None:
    try:
        parsed = parse_address_token(text)
    except InvalidAddressError as exc:
        assert exc.value == text
        return
    bare = text.partition("/")[0]
    family = socket.AF_INET6 if parsed.family == 6 else socket.AF_INET
    assert socket.inet_ntop(family, socket.inet_pton(family, bare)) == parsed.address
    assert parsed == parse_address_token(str(parsed))


@given(st.lists(st.text(alphabet="0123456789abcdef:./, \t%x", max_size=20), max_size=5))
def test_arbitrary_option_values(values: list[str]) -> None:
    try:
        parsed = parse_address_tokens(values)
    except InvalidAddressError:
        return
    assert len({a.address for a in parsed}) == len(parsed)
    assert not any(a.is_unspecified for a in parsed)
