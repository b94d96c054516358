"""venet's per-packet rules, one by one, on both implementations."""

from __future__ import annotations

from array import array

import pytest

from tests.packets import EXT_FRAGMENT, EXT_HOP_BY_HOP, EXT_ROUTING, ipv4, ipv6
from venetfilter import Ours, Verdict

A, B, HOST, OUT = 11, 12, 3, 4  # ifindexes: containers A and B, a host interface, the uplink


def with_total_length(packet: bytes, total_length: int) -> bytes:
    return packet[:2] + total_length.to_bytes(2, "big") + packet[4:]


@pytest.fixture
def table(table_class):
    table = table_class()
    table.set_container("101", A, ["192.0.2.1", "2001:db8::1"])
    table.set_container("102", B, ["192.0.2.2", "2001:db8::2"])
    return table


def test_not_our_business(table):
    junk = b"\x00\x01garbage"
    for indev, outdev in [(0, 0), (HOST, OUT), (OUT, 0), (0, OUT), (999, 1000)]:
        assert table.classify(junk, indev, outdev) is Verdict.ACCEPT
        assert table.classify(ipv4("203.0.113.9", "224.0.0.1"), indev, outdev) is Verdict.ACCEPT
    assert all(sum(c.values()) == 0 for c in table.counters().values())


UNKNOWN = 77  # a container link (by the kernel's name match) the table does not know


@pytest.mark.parametrize(
    "indev, outdev, ours",
    [
        (UNKNOWN, OUT, Ours.IN),  # leaving an unregistered link
        (UNKNOWN, A, Ours.IN),  # ... for a known container: still unknown
        (0, UNKNOWN, Ours.OUT),  # the node itself into an unregistered link
        (OUT, UNKNOWN, Ours.OUT),
        (A, UNKNOWN, Ours.BOTH),  # from a known container into an unknown one
        (UNKNOWN, A, Ours.BOTH),
        (0, OUT, Ours.IN),  # "the incoming device is ours" without one
    ],
)
def test_unknown_link_is_dropped_and_charged_to_nobody(table, indev, outdev, ours):
    for packet in (ipv4("192.0.2.1", "192.0.2.2"), ipv6("2001:db8::1", "2001:db8::2"), b"", b"\x00junk"):
        assert table.classify(packet, indev, outdev, ours) is Verdict.DROP_UNKNOWN_LINK
    assert table.unknown_links == 4
    assert all(sum(c.values()) == 0 for c in table.counters().values())


def test_known_links_flagged_ours_are_judged_as_usual(table):
    packet = ipv4("192.0.2.1", "192.0.2.2")
    assert table.classify(packet, A, B, Ours.BOTH) is Verdict.ACCEPT
    assert table.classify(packet, A, OUT, Ours.IN) is Verdict.ACCEPT
    assert table.classify(packet, OUT, B, Ours.OUT) is Verdict.ACCEPT
    assert table.classify(ipv4("192.0.2.9", "192.0.2.2"), A, 0, Ours.IN) is Verdict.DROP_SOURCE
    assert table.unknown_links == 0


def test_unknown_link_count_survives_a_reload(table):
    table.classify(b"", UNKNOWN, 0, Ours.IN)
    table.load({"101": (A, ["192.0.2.1"])})
    assert table.unknown_links == 1


@pytest.mark.parametrize("ours", [-1, 4, 255, "1", 1.0, None])
def test_bad_ours_flags_are_refused(table, ours):
    with pytest.raises((TypeError, ValueError, OverflowError)):
        table.classify(b"", A, 0, ours)


@pytest.mark.parametrize(
    "packet, verdict",
    [
        (ipv4("192.0.2.1", "198.51.100.1"), Verdict.ACCEPT),
        (ipv4("192.0.2.2", "198.51.100.1"), Verdict.DROP_SOURCE),  # B's address
        (ipv4("192.0.2.3", "198.51.100.1"), Verdict.DROP_SOURCE),  # nobody's
        (ipv4("192.0.2.255", "198.51.100.1"), Verdict.DROP_SOURCE),
        (ipv4("192.0.2.1", "255.255.255.255"), Verdict.ACCEPT),  # broadcast: no special case
        (ipv4("192.0.2.1", "224.0.0.251"), Verdict.DROP_MULTICAST),
        (ipv4("192.0.2.1", "239.255.255.250"), Verdict.DROP_MULTICAST),
        (ipv4("192.0.2.9", "224.0.0.1"), Verdict.DROP_MULTICAST),  # multicast checked first
        (ipv4("192.0.2.1", "198.51.100.1", options=b"\x94\x04\x00\x00"), Verdict.ACCEPT),
        (ipv4("192.0.2.1", "198.51.100.1", fragment_offset=100), Verdict.ACCEPT),
        (ipv6("2001:db8::1", "2001:db8:ffff::1"), Verdict.ACCEPT),
        (ipv6("2001:db8::2", "2001:db8:ffff::1"), Verdict.DROP_SOURCE),
        (ipv6("fe80::1", "2001:db8:ffff::1"), Verdict.DROP_SOURCE),
        (ipv6("::ffff:192.0.2.1", "2001:db8:ffff::1"), Verdict.DROP_SOURCE),  # not the IPv4 192.0.2.1
        (ipv6("2001:db8::1", "ff02::1"), Verdict.DROP_MULTICAST),
        (ipv6("2001:db8::1", "ff02::1:ff00:1"), Verdict.DROP_MULTICAST),
        (ipv6("2001:db8::1", "2001:db8:ffff::1", extensions=(EXT_HOP_BY_HOP, EXT_ROUTING, EXT_FRAGMENT)), Verdict.ACCEPT),
    ],
)
def test_leaving_a_container(table, packet, verdict):
    assert table.classify(packet, A, OUT) is verdict
    assert table.classify(packet, A, 0) is verdict  # to the host itself
    assert table.counters()["101"][verdict] == 2


@pytest.mark.parametrize(
    "packet, verdict",
    [
        (ipv4("198.51.100.1", "192.0.2.1"), Verdict.ACCEPT),
        (ipv4("198.51.100.1", "192.0.2.2"), Verdict.DROP_DESTINATION),
        (ipv4("198.51.100.1", "192.0.2.3"), Verdict.DROP_DESTINATION),
        (ipv4("0.0.0.0", "192.0.2.1"), Verdict.ACCEPT),  # the source is not checked going in
        (ipv4("198.51.100.1", "224.0.0.1"), Verdict.DROP_MULTICAST),
        (ipv6("2001:db8:ffff::1", "2001:db8::1"), Verdict.ACCEPT),
        (ipv6("2001:db8:ffff::1", "::ffff:192.0.2.1"), Verdict.DROP_DESTINATION),
        (ipv6("2001:db8:ffff::1", "ff05::2"), Verdict.DROP_MULTICAST),
    ],
)
def test_entering_a_container(table, packet, verdict):
    assert table.classify(packet, OUT, A) is verdict
    assert table.classify(packet, 0, A) is verdict  # from the host itself
    assert table.counters()["101"][verdict] == 2


def test_container_to_container(table):
    assert table.classify(ipv4("192.0.2.1", "192.0.2.2"), A, B) is Verdict.ACCEPT
    assert table.classify(ipv6("2001:db8::2", "2001:db8::1"), B, A) is Verdict.ACCEPT
    # A lies about its source: A's rule
    assert table.classify(ipv4("192.0.2.2", "192.0.2.2"), A, B) is Verdict.DROP_SOURCE
    # A is honest but the destination is not B's: B's rule, charged to B
    assert table.classify(ipv4("192.0.2.1", "192.0.2.1"), A, B) is Verdict.DROP_DESTINATION
    counters = table.counters()
    assert counters["101"][Verdict.ACCEPT] == 1 and counters["101"][Verdict.DROP_SOURCE] == 1
    assert counters["102"][Verdict.ACCEPT] == 1 and counters["102"][Verdict.DROP_DESTINATION] == 1


@pytest.mark.parametrize(
    "packet, verdict",
    [
        (b"", Verdict.DROP_MALFORMED),
        (b"\x00", Verdict.DROP_NOT_IP),
        (b"\x08\x06" + bytes(26), Verdict.DROP_NOT_IP),  # an ARP-looking frame
        (bytes([0x55]) + bytes(39), Verdict.DROP_NOT_IP),
        (bytes([0xF0]) + bytes(39), Verdict.DROP_NOT_IP),
        (b"\x45", Verdict.DROP_MALFORMED),
        (ipv4("192.0.2.1", "198.51.100.1")[:19], Verdict.DROP_MALFORMED),
        (b"\x44" + ipv4("192.0.2.1", "198.51.100.1")[1:], Verdict.DROP_MALFORMED),  # IHL 4
        (b"\x40" + ipv4("192.0.2.1", "198.51.100.1")[1:], Verdict.DROP_MALFORMED),  # IHL 0
        (b"\x46" + ipv4("192.0.2.1", "198.51.100.1", payload=b"")[1:], Verdict.DROP_MALFORMED),  # IHL beyond
        (with_total_length(ipv4("192.0.2.1", "198.51.100.1"), 19), Verdict.DROP_MALFORMED),
        (with_total_length(ipv4("192.0.2.1", "198.51.100.1"), 20), Verdict.ACCEPT),
        (with_total_length(ipv4("192.0.2.1", "198.51.100.1"), 65535), Verdict.ACCEPT),  # cut short
        (ipv4("192.0.2.1", "198.51.100.1", payload=b"x" * 1000)[:20], Verdict.ACCEPT),  # cut after the header
        (ipv4("192.0.2.1", "198.51.100.1", options=b"\x01" * 8)[:27], Verdict.DROP_MALFORMED),  # options cut
        (ipv6("2001:db8::1", "2001:db8:ffff::1")[:39], Verdict.DROP_MALFORMED),
        (ipv6("2001:db8::1", "2001:db8:ffff::1", payload=b"")[:40], Verdict.ACCEPT),
        (ipv6("2001:db8::1", "2001:db8:ffff::1", extensions=(EXT_FRAGMENT,))[:40], Verdict.ACCEPT),
    ],
)
def test_malformed_and_not_ip(table, packet, verdict):
    assert table.classify(packet, A, OUT) is verdict
    assert table.classify(packet, OUT, A) is verdict or verdict is Verdict.ACCEPT


def test_batch_matches_single(table, table_class):
    packets = [
        ipv4("192.0.2.1", "198.51.100.1"),
        ipv4("192.0.2.2", "198.51.100.1"),
        b"",
        ipv6("2001:db8::1", "ff02::1"),
        ipv6("2001:db8:ffff::1", "2001:db8::2"),
        b"\x45\x00",
        ipv4("198.51.100.1", "192.0.2.2"),
    ]
    indevs = array("I", [A, A, A, A, OUT, B, OUT])
    outdevs = array("I", [OUT, OUT, 0, OUT, A, 0, B])
    offsets = array("I", [0])
    for p in packets:
        offsets.append(offsets[-1] + len(p))
    out = bytearray(len(packets))
    table.classify_batch(b"".join(packets), offsets, indevs, outdevs, out)
    single = table_class()
    single.load({c.ctid: (c.ifindex, c.addresses) for c in table.containers().values()})
    expected = [single.classify(p, i, o) for p, i, o in zip(packets, indevs, outdevs)]
    assert list(out) == expected
    assert table.counters() == single.counters()


def test_batch_of_none(table):
    table.classify_batch(b"", array("I", [0]), array("I"), array("I"), bytearray())


@pytest.mark.parametrize(
    "args",
    [
        (b"abc", array("I", [0, 4]), array("I", [A]), array("I", [0]), bytearray(1)),  # beyond the data
        (b"abcd", array("I", [2, 1]), array("I", [A]), array("I", [0]), bytearray(1)),  # out of order
        (b"abcd", array("I", [0, 4]), array("I", [A, A]), array("I", [0]), bytearray(2)),  # sizes
        (b"abcd", array("I", [0, 4]), array("I", [A]), array("I", [0]), bytearray(0)),  # out too short
        (b"abcd", array("I", [0, 4]), array("I", [A]), array("I", [0]), b"\x00"),  # out read-only
        (b"abcd", array("i", [0, 4]), array("I", [A]), array("I", [0]), bytearray(1)),  # signed offsets
        (b"abcd", array("I", [0, 4]), array("H", [A]), array("I", [0]), bytearray(1)),  # 16-bit devs
        (array("h", [1, 2]), array("I", [0, 4]), array("I", [A]), array("I", [0]), bytearray(1)),
        ("abcd", array("I", [0, 4]), array("I", [A]), array("I", [0]), bytearray(1)),
    ],
)
def test_batch_bad_arguments(table, args):
    with pytest.raises((ValueError, TypeError, BufferError)):
        table.classify_batch(*args)
    assert all(sum(c.values()) == 0 for c in table.counters().values())
