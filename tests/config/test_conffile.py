"""OpenVZ config files: parsing, warnings with FILE:LINE, byte-exact rewrites of the IP_ADDRESS line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from venetfilter.config import parse_address_tokens, parse_config, read_config, render_config
from venetfilter.config.conffile import format_ip_line
from venetfilter.errors import ConfigFileError

from .conftest import FIXTURES

OPENVZ = FIXTURES / "101.conf"


def addresses(text: str) -> list:
    return parse_address_tokens(text)


def test_openvz_fixture_parses_cleanly() -> None:
    config = read_config(OPENVZ)
    assert config is not None and config.warnings == ()
    assert [str(a) for a in config.addresses] == ["192.0.2.101", "2001:db8::101/64"]
    assert len(config.values) >= 30
    assert config.values["HOSTNAME"] == "ct101.example.com"
    assert config.values["DESCRIPTION"] == 'web front, owner: ops "blue" team'
    assert config.values["BOOTORDER"] == "10" and config.values["CPULIMIT"] == "50"
    assert config.to_bytes() == OPENVZ.read_bytes()


@pytest.mark.parametrize("new", ["", "198.51.100.7", "198.51.100.7/24 2001:db8::7 192.0.2.101"])
def test_openvz_fixture_round_trips_except_the_ip_line(new: str) -> None:
    original = OPENVZ.read_bytes()
    config = parse_config(original, OPENVZ)
    rewritten = render_config(config, addresses(new))
    old_lines, new_lines = original.split(b"\n"), rewritten.split(b"\n")
    assert len(old_lines) == len(new_lines)
    changed = [i for i, (a, b) in enumerate(zip(old_lines, new_lines)) if a != b]
    assert changed == [config.ip_line]
    assert new_lines[config.ip_line] == f'IP_ADDRESS="{new}"'.encode()
    again = parse_config(rewritten, OPENVZ)
    assert [str(a) for a in again.addresses] == new.split()
    assert {k: v for k, v in again.values.items() if k != "IP_ADDRESS"} == {
        k: v for k, v in config.values.items() if k != "IP_ADDRESS"
    }


def test_ip_line_is_appended_when_absent() -> None:
    assert render_config(parse_config(b'A="1"\n', "f"), addresses("192.0.2.1")) == b'A="1"\nIP_ADDRESS="192.0.2.1"\n'
    assert render_config(parse_config(b'A="1"', "f"), addresses("192.0.2.1")) == b'A="1"\nIP_ADDRESS="192.0.2.1"\n'
    assert render_config(parse_config(b"", "f"), []) == b'IP_ADDRESS=""\n'
    assert render_config(None, addresses("2001:db8::1/64")) == b'IP_ADDRESS="2001:db8::1/64"\n'


def test_empty_list_writes_an_empty_value() -> None:
    assert format_ip_line([]) == 'IP_ADDRESS=""'


def test_last_ip_line_wins_and_is_the_one_rewritten() -> None:
    data = b'IP_ADDRESS="192.0.2.1"\nX=1\nIP_ADDRESS="192.0.2.2"\n'
    config = parse_config(data, "f")
    assert [str(a) for a in config.addresses] == ["192.0.2.2"]
    assert render_config(config, addresses("192.0.2.3")) == b'IP_ADDRESS="192.0.2.1"\nX=1\nIP_ADDRESS="192.0.2.3"\n'


def test_crlf_and_odd_bytes_survive() -> None:
    data = b'# caf\xc3\xa9 \xff\xfe\r\nIP_ADDRESS="192.0.2.1"\r\nNAME="\xe9t\xe9"\r\n'
    config = parse_config(data, "f")
    assert config.warnings == ()
    assert [str(a) for a in config.addresses] == ["192.0.2.1"]
    out = render_config(config, addresses("192.0.2.9"))
    assert out == data.replace(b"192.0.2.1", b"192.0.2.9")


@pytest.mark.parametrize(
    "line", ["export IP_ADDRESS='192.0.2.1'", "IP_ADDRESS=192.0.2.1", '  IP_ADDRESS="192.0.2.1"  # the web IP']
)
def test_other_quoting_styles(line: str) -> None:
    config = parse_config(line.encode() + b"\n", "f")
    assert config.warnings == () and [str(a) for a in config.addresses] == ["192.0.2.1"]


def test_bad_tokens_are_skipped_with_file_and_line() -> None:
    data = b'# head\n\nIP_ADDRESS="192.0.2.1 10.0.0.300 fe80::1%eth0 0.0.0.0 2001:DB8::1 192.0.2.1/24"\n'
    config = parse_config(data, "/etc/vz/conf/101.conf")
    assert [str(a) for a in config.addresses] == ["192.0.2.1", "2001:db8::1"]
    assert [str(w) for w in config.warnings] == [
        'Warning at /etc/vz/conf/101.conf:3: invalid value for IP_ADDRESS ("10.0.0.300"), skipped',
        'Warning at /etc/vz/conf/101.conf:3: invalid value for IP_ADDRESS ("fe80::1%eth0"), skipped',
    ]


@pytest.mark.parametrize(
    "line",
    ['IP_ADDRESS="192.0.2.1', "just some words", 'KEY="a" "b"', "KEY=a b", "1KEY=x", '=""', "KEY = 1", "KEY=$(reboot)",
     'KEY="x"; rm -rf /'],
)
def test_unreadable_lines_are_reported_and_kept(line: str) -> None:
    data = f'A="1"\n{line}\nB="2"\n'.encode()
    config = parse_config(data, "c.conf")
    assert [(w.path, w.line) for w in config.warnings] == [("c.conf", 2)]
    assert str(config.warnings[0]).startswith("Warning at c.conf:2: cannot parse line")
    assert config.values == {"A": "1", "B": "2"}
    out = render_config(config, addresses("192.0.2.1"))
    assert out == data + b'IP_ADDRESS="192.0.2.1"\n'


def test_read_missing_file(tmp_path: Path) -> None:
    assert read_config(tmp_path / "none.conf") is None


def test_read_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "dir.conf").mkdir()
    with pytest.raises(ConfigFileError, match="dir.conf"):
        read_config(tmp_path / "dir.conf")


@given(st.binary(max_size=300))
def test_arbitrary_bytes_round_trip(data: bytes) -> None:
    config = parse_config(data, "f")
    assert config.to_bytes() == data
    out = render_config(config, config.addresses)
    again = parse_config(out, "f")
    assert again.addresses == config.addresses
    # every line but the IP_ADDRESS line is unchanged
    if config.ip_line is not None:
        old, new = data.split(b"\n"), out.split(b"\n")
        assert len(old) == len(new)
        assert [i for i, (a, b) in enumerate(zip(old, new)) if a != b] in ([], [config.ip_line])
    else:
        assert out.startswith(data)


@given(st.lists(st.sampled_from(["A=1", "#c", "", "IP_ADDRESS=\"192.0.2.1\"", "junk line", "B='x y'"]), max_size=8))
def test_rewrite_is_idempotent(lines: list[str]) -> None:
    data = "\n".join(lines).encode()
    new = addresses("192.0.2.7 2001:db8::7/48")
    once = render_config(parse_config(data, "f"), new)
    assert render_config(parse_config(once, "f"), new) == once
    assert parse_config(once, "f").addresses == tuple(new)
