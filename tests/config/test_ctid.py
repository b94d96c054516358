"""Container ids: the contract other modules rely on (file names, ``ve-CTID`` interface names)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from venetfilter.config import CTID_PATTERN, host_ifname, is_valid_ctid, validate_ctid
from venetfilter.errors import InvalidContainerError

GOOD = ["101", "0", "4294967295", "web", "web-1", "db_2", "a.b.c", "_x", "A" * 12, "1.2-3_4"]
BAD = ["", "../x", "..", ".", "/x", "x/y", "a" * 13, "1234567890123", " 101", "101 ", "a b", "-x", ".hidden",
       "x\n", "\n", "ct:1", "ct@1", "é", "x\0", "x\t"]


@pytest.mark.parametrize("ctid", GOOD)
def test_good_ids(ctid: str) -> None:
    assert validate_ctid(ctid) == ctid
    assert is_valid_ctid(ctid)
    assert host_ifname(ctid) == "vnf" + ctid
    assert len(host_ifname(ctid)) <= 15


@pytest.mark.parametrize("ctid", BAD)
def test_bad_ids(ctid: str) -> None:
    with pytest.raises(InvalidContainerError, match="invalid container id"):
        validate_ctid(ctid)
    assert not is_valid_ctid(ctid)
    with pytest.raises(InvalidContainerError):
        host_ifname(ctid)


@pytest.mark.parametrize("value", [None, 101, b"101", ["101"]])
def test_non_strings(value: object) -> None:
    with pytest.raises(InvalidContainerError):
        validate_ctid(value)
    assert not is_valid_ctid(value)


def test_messages_name_the_reason() -> None:
    with pytest.raises(InvalidContainerError, match="must not be empty"):
        validate_ctid("")
    with pytest.raises(InvalidContainerError, match="longer than 12"):
        validate_ctid("a" * 13)
    with pytest.raises(InvalidContainerError, match=r"'\.\./x'"):
        validate_ctid("../x")


@given(st.text(max_size=20))
def test_arbitrary_text_is_accepted_safely_or_refused(text: str) -> None:
    try:
        ctid = validate_ctid(text)
    except InvalidContainerError:
        assert CTID_PATTERN.fullmatch(text) is None
        return
    assert "/" not in ctid and ctid not in (".", "..") and not ctid.startswith((".", "-"))
    assert 1 <= len(ctid) <= 12 and len(host_ifname(ctid)) <= 15
