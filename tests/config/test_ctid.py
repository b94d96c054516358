"""Container ids and link names: the contract other modules rely on (file names, ``vnfCTID`` interface names)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from venetfilter.config import CTID_PATTERN, host_ifname, is_valid_ctid, validate_ctid
from venetfilter.config.ctid import validate_link_prefix
from venetfilter.config.nodeconf import NODE_CONF_NAME, NodeConfig, read_node_config
from venetfilter.errors import ConfigFileError, InvalidContainerError

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


@pytest.mark.parametrize("prefix", ["vnf", "ct", "x", "v0", "vzn", "ven"])
def test_good_link_prefixes(prefix: str) -> None:
    assert validate_link_prefix(prefix) == prefix
    assert len(host_ifname("A" * 12, prefix)) <= 15


@pytest.mark.parametrize(
    "prefix",
    # another tool's links (nspawn ve-/vb-/vz-, veth of Docker/LXC/podman, libvirt vnet) or a prefix of them
    ["ve", "v", "vb", "vz", "vet", "vn", "vne"]
    # not a short lower-case name
    + ["", "vnfx", "VNF", "1ct", "c-t", "c t", "c*", "c/", "é", None, 1],
)
def test_bad_link_prefixes(prefix: object) -> None:
    with pytest.raises(InvalidContainerError, match="invalid link prefix"):
        validate_link_prefix(prefix)


def test_node_config_sets_the_prefix_and_refuses_a_bad_one(tmp_path) -> None:
    assert read_node_config(tmp_path) == NodeConfig("vnf")
    (tmp_path / NODE_CONF_NAME).write_text('# the node\nLINK_PREFIX="ct"\nOTHER=1\n')
    assert read_node_config(tmp_path).link_prefix == "ct"
    (tmp_path / NODE_CONF_NAME).write_text('LINK_PREFIX="veth"\n')
    with pytest.raises(ConfigFileError, match="LINK_PREFIX: invalid link prefix 'veth'"):
        read_node_config(tmp_path)
    assert not is_valid_ctid(NODE_CONF_NAME.removesuffix(".conf"))  # never listed as a container
