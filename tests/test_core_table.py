"""AddressTable's bookkeeping: ownership, links, errors, sizes. Every test runs on both implementations."""

from __future__ import annotations

import ipaddress
import sys
import threading

import pytest

from tests.packets import ipv4, ipv6
from venetfilter import (
    AddressInUseError,
    Container,
    InvalidAddressError,
    InvalidContainerError,
    LinkInUseError,
    UnknownContainerError,
    Verdict,
)


def test_empty_table(table_class):
    table = table_class()
    assert len(table) == 0
    assert table.containers() == {}
    assert table.counters() == {}
    assert table.owner("192.0.2.1") is None
    assert table.owner("2001:db8::1") is None
    assert table.remove_container("101") is False
    assert table.classify(ipv4("192.0.2.1", "198.51.100.1"), 1, 2) is Verdict.ACCEPT


def test_set_container_and_lookups(table_class):
    table = table_class()
    table.set_container("101", 7, ["192.0.2.1", ipaddress.ip_address("2001:DB8::1"), "2001:db8:0:0::2"])
    assert len(table) == 3
    assert table.owner("192.0.2.1") == "101"
    assert table.owner(ipaddress.IPv4Address("192.0.2.1")) == "101"
    assert table.owner("2001:db8::1") == "101"
    assert table.owner("2001:0db8::0002") == "101"
    assert table.owner("192.0.2.2") is None
    assert table.containers() == {"101": Container("101", 7, ("192.0.2.1", "2001:db8::1", "2001:db8::2"))}


def test_set_container_replaces_addresses_and_link(table_class):
    table = table_class()
    table.set_container("101", 7, ["192.0.2.1", "192.0.2.2"])
    table.set_container("101", 8, ["192.0.2.2", "192.0.2.3"])
    assert table.containers() == {"101": Container("101", 8, ("192.0.2.2", "192.0.2.3"))}
    assert table.owner("192.0.2.1") is None
    packet = ipv4("192.0.2.2", "198.51.100.1")
    assert table.classify(packet, 7, 0) is Verdict.ACCEPT  # old link: not a container's any more
    assert table.classify(ipv4("192.0.2.1", "198.51.100.1"), 8, 0) is Verdict.DROP_SOURCE


def test_mixed_families_are_apart(table_class):
    table = table_class()
    table.set_container("101", 1, ["192.0.2.5"])
    table.set_container("102", 2, ["::ffff:192.0.2.5"])
    assert table.owner("192.0.2.5") == "101"
    assert table.owner("::ffff:192.0.2.5") == "102"
    assert table.classify(ipv6("::ffff:192.0.2.5", "2001:db8::9"), 1, 0) is Verdict.DROP_SOURCE
    assert table.classify(ipv6("::ffff:192.0.2.5", "2001:db8::9"), 2, 0) is Verdict.ACCEPT
    assert table.containers()["102"].addresses == ("::ffff:192.0.2.5",)


def test_readding_is_not_an_error(table_class):
    table = table_class()
    table.set_container("101", 1, ["192.0.2.1", "192.0.2.1"])
    table.add_addresses("101", ["192.0.2.1", "192.0.2.2", "192.0.2.2"])
    table.set_container("101", 1, ["192.0.2.1", "192.0.2.2"])
    assert len(table) == 2
    assert table.containers()["101"].addresses == ("192.0.2.1", "192.0.2.2")


def test_removing_what_is_absent(table_class):
    table = table_class()
    table.set_container("101", 1, ["192.0.2.1"])
    table.set_container("102", 2, ["192.0.2.2"])
    assert table.remove_addresses("101", ["192.0.2.9", "192.0.2.2"]) == 0  # 192.0.2.2 is 102's
    assert table.owner("192.0.2.2") == "102"
    assert table.remove_addresses("101", ["192.0.2.1", "192.0.2.1"]) == 1
    assert table.remove_container("nope") is False
    assert table.remove_container("101") is True
    assert table.remove_container("101") is False
    with pytest.raises(UnknownContainerError, match="'101'"):
        table.remove_addresses("101", ["192.0.2.1"])
    with pytest.raises(UnknownContainerError):
        table.add_addresses("101", ["192.0.2.1"])
    assert table.containers() == {"102": Container("102", 2, ("192.0.2.2",))}


def test_address_in_use_leaves_table_unchanged(table_class):
    table = table_class()
    table.set_container("101", 1, ["192.0.2.1", "2001:db8::1"])
    table.set_container("102", 2, ["192.0.2.2"])
    before = table.containers()
    with pytest.raises(AddressInUseError) as error:
        table.set_container("102", 2, ["192.0.2.3", "2001:db8::1"])
    assert error.value.address == "2001:db8::1" and error.value.owner == "101"
    assert "2001:db8::1" in str(error.value) and "101" in str(error.value)
    with pytest.raises(AddressInUseError):
        table.add_addresses("102", ["192.0.2.4", "192.0.2.1"])
    with pytest.raises(AddressInUseError):
        table.set_container("103", 3, ["192.0.2.1"])
    with pytest.raises(AddressInUseError):
        table.load({"101": (1, ["192.0.2.1"]), "102": (2, ["192.0.2.1"])})
    assert table.containers() == before


def test_link_in_use(table_class):
    table = table_class()
    table.set_container("101", 1, [])
    with pytest.raises(LinkInUseError, match="101"):
        table.set_container("102", 1, ["192.0.2.2"])
    assert isinstance(LinkInUseError(1, "x"), ValueError)
    assert list(table.containers()) == ["101"]


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "192.0.2",
        "192.0.2.256",
        "192.0.2.01",
        "192.0.2.1/32",
        " 192.0.2.1",
        "192.0.2.1\x00",
        "2001:db8::1::2",
        "2001:db8::g",
        "fe80::1%eth0",
        "2001:db8::1/64",
        "١٩٢.0.2.1",
        b"192.0.2.1",
        3232235521,
        None,
        1.5,
        ipaddress.IPv6Address("fe80::1%eth0"),
        ipaddress.ip_network("192.0.2.0/24"),
    ],
)
def test_invalid_address(table_class, bad):
    table = table_class()
    table.set_container("101", 1, ["192.0.2.1"])
    for call in (
        lambda: table.set_container("101", 1, ["192.0.2.9", bad]),
        lambda: table.add_addresses("101", [bad]),
        lambda: table.remove_addresses("101", [bad]),
        lambda: table.owner(bad),
        lambda: table.set_container("102", 2, [bad]),
    ):
        with pytest.raises(InvalidAddressError) as error:
            call()
        assert isinstance(error.value, ValueError)
        assert repr(bad) in str(error.value)
    assert table.containers() == {"101": Container("101", 1, ("192.0.2.1",))}


def test_one_string_is_not_a_list_of_addresses(table_class):
    table = table_class()
    with pytest.raises(InvalidAddressError, match="not one string"):
        table.set_container("101", 1, "192.0.2.1")
    assert table.containers() == {}


@pytest.mark.parametrize("ctid", ["", None, 101, b"101"])
def test_invalid_ctid(table_class, ctid):
    table = table_class()
    with pytest.raises(InvalidContainerError):
        table.set_container(ctid, 1, [])
    with pytest.raises(InvalidContainerError):
        table.remove_container(ctid)
    with pytest.raises(InvalidContainerError):
        table.add_addresses(ctid, [])


@pytest.mark.parametrize("ifindex", [0, -1, 2**32, "1", 1.0, None])
def test_invalid_ifindex(table_class, ifindex):
    table = table_class()
    with pytest.raises(InvalidContainerError):
        table.set_container("101", ifindex, [])
    assert table.containers() == {}


@pytest.mark.parametrize("dev", [-1, 2**32])
def test_classify_device_out_of_range(table_class, dev):
    table = table_class()
    with pytest.raises(OverflowError):
        table.classify(ipv4("192.0.2.1", "192.0.2.2"), dev, 0)
    with pytest.raises(OverflowError):
        table.classify(ipv4("192.0.2.1", "192.0.2.2"), 0, dev)


def test_classify_accepts_buffers(table_class):
    table = table_class()
    table.set_container("101", 1, ["192.0.2.1"])
    packet = ipv4("192.0.2.1", "198.51.100.1")
    for form in (packet, bytearray(packet), memoryview(packet)):
        assert table.classify(form, 1, 0) is Verdict.ACCEPT
    with pytest.raises(TypeError):
        table.classify("not bytes", 1, 0)


def test_load_replaces_everything_and_keeps_counters(table_class):
    table = table_class()
    table.set_container("101", 1, ["192.0.2.1"])
    table.set_container("102", 2, ["192.0.2.2"])
    table.classify(ipv4("192.0.2.1", "198.51.100.1"), 1, 0)
    table.classify(ipv4("192.0.2.9", "198.51.100.1"), 2, 0)
    table.load({"101": (5, ["192.0.2.1", "2001:db8::1"]), "103": (3, [])})
    assert table.containers() == {
        "101": Container("101", 5, ("192.0.2.1", "2001:db8::1")),
        "103": Container("103", 3, ()),
    }
    counters = table.counters()
    assert counters["101"][Verdict.ACCEPT] == 1
    assert sum(counters["103"].values()) == 0
    assert "102" not in counters


def test_zero_addresses_container_drops_everything(table_class):
    table = table_class()
    table.set_container("101", 1, [])
    assert table.classify(ipv4("192.0.2.1", "198.51.100.1"), 1, 0) is Verdict.DROP_SOURCE
    assert table.classify(ipv4("198.51.100.1", "192.0.2.1"), 0, 1) is Verdict.DROP_DESTINATION


def test_many_containers_reuse_slots(table_class):
    table = table_class()
    for round_ in range(3):
        for i in range(200):
            table.set_container(f"c{i}", 1000 + i, [f"198.51.100.{i % 250}" if i < 250 else "::1", f"2001:db8::{i:x}"])
        for i in range(0, 200, 2):
            assert table.remove_container(f"c{i}")
    assert len(table.containers()) == 100
    assert len(table) == 200
    assert table.owner("2001:db8::1") == "c1"
    assert table.owner("2001:db8::2") is None


def test_million_addresses(table_class):
    """1,000,000 addresses in one container, half of each family: lookups, replace, removal."""
    v4 = [str(ipaddress.IPv4Address(0x0A000000 + i)) for i in range(500_000)]
    v6 = [str(ipaddress.IPv6Address((0x20010DB8 << 96) + i * 7919)) for i in range(500_000)]
    table = table_class()
    table.set_container("big", 1, v4 + v6)
    table.set_container("small", 2, ["192.0.2.1"])
    assert len(table) == 1_000_001
    for address in v4[::49_999] + v6[::49_999]:
        assert table.owner(address) == "big"
    assert table.classify(ipv4(v4[123_456], "192.0.2.1"), 1, 2) is Verdict.ACCEPT
    assert table.classify(ipv6(v6[-1], "2001:db8::ffff:ffff:ffff"), 1, 0) is Verdict.ACCEPT
    assert table.classify(ipv4("10.255.255.255", "192.0.2.1"), 1, 0) is Verdict.DROP_SOURCE
    assert table.remove_addresses("big", v4[:250_000]) == 250_000
    assert table.owner(v4[0]) is None and table.owner(v4[250_000]) == "big"
    assert len(table.containers()["big"].addresses) == 750_000
    assert table.remove_container("big")
    assert len(table) == 1
    assert table.owner("192.0.2.1") == "small"


def test_classify_never_sees_a_half_built_table(table_class):
    """A writer flips a container between two address sets that share one address X while readers
    classify packets from X: a table caught half-way (old addresses gone, new ones not yet in) would
    drop one. Thread switches are forced as often as the interpreter allows."""
    shared = "203.0.113.77"
    old = [f"192.0.2.{i}" for i in range(1, 200)] + [shared]
    new = [shared] + [f"198.51.100.{i}" for i in range(1, 200)]
    table = table_class()
    table.set_container("101", 1, old)
    probe = ipv4(shared, "203.0.113.1")
    stop = threading.Event()
    verdicts: list[Verdict] = []

    def reader() -> None:
        while not stop.is_set():
            verdicts.append(table.classify(probe, 1, 0))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    threads = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        for i in range(400):
            table.set_container("101", 1, new if i % 2 else old)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        sys.setswitchinterval(interval)
    assert len(verdicts) > 100
    assert set(verdicts) == {Verdict.ACCEPT}
