"""Hypothesis: the two implementations agree, and both match an oracle built on `ipaddress`."""

from __future__ import annotations

import ipaddress
from array import array
from collections.abc import Mapping

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.conftest import IMPLEMENTATIONS
from tests.oracle import NaiveClassifier
from tests.packets import EXT_DEST_OPTS, EXT_FRAGMENT, EXT_HOP_BY_HOP, EXT_ROUTING, ipv4, ipv6
from venetfilter import Verdict

CAddressTable, PyAddressTable = IMPLEMENTATIONS["cython"], IMPLEMENTATIONS["python"]

# A small pool so that packets often carry owned addresses, and ::ffff:-mapped twins of IPv4 ones.
V4_POOL = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "198.51.100.7", "203.0.113.255", "0.0.0.0"]
V6_POOL = ["2001:db8::1", "2001:db8::2", "2001:db8:1::", "fe80::1", "::ffff:192.0.2.1", "::1"]
DEVICES = st.integers(0, 6)
OURS = st.integers(0, 3)  # Ours flags: devices known to be container links

v4_addresses = st.one_of(st.sampled_from(V4_POOL), st.ip_addresses(v=4).map(str))
v6_addresses = st.one_of(st.sampled_from(V6_POOL), st.ip_addresses(v=6).map(str))

tables = st.dictionaries(
    st.sampled_from(["101", "102", "103", "web"]),
    st.tuples(st.integers(1, 6), st.lists(st.sampled_from(V4_POOL + V6_POOL), max_size=6)),
    max_size=4,
)


@st.composite
def valid_packets(draw: st.DrawFn) -> bytes:
    payload = draw(st.binary(max_size=24))
    if draw(st.booleans()):
        options = draw(st.binary(max_size=40))
        return ipv4(
            draw(v4_addresses),
            draw(v4_addresses),
            payload,
            options=options,
            fragment_offset=draw(st.integers(0, 0x1FFF)),
            more_fragments=draw(st.booleans()),
        )
    extensions = draw(st.lists(st.sampled_from([EXT_HOP_BY_HOP, EXT_ROUTING, EXT_FRAGMENT, EXT_DEST_OPTS]), max_size=3))
    return ipv6(draw(v6_addresses), draw(v6_addresses), payload, extensions=tuple(extensions))


@st.composite
def damaged_packets(draw: st.DrawFn) -> bytes:
    packet = bytearray(draw(valid_packets()))
    for _ in range(draw(st.integers(0, 3))):
        position = draw(st.integers(0, len(packet) - 1))
        packet[position] = draw(st.integers(0, 255))
    return bytes(packet[: draw(st.integers(0, len(packet)))])


packets = st.one_of(valid_packets(), damaged_packets(), st.binary(max_size=64))


def build(cls: type, entries: Mapping[str, tuple[int, list[str]]]):
    """A table of `cls` from entries that may clash; clashing containers are left out in both."""
    table = cls()
    for ctid, (ifindex, addresses) in entries.items():
        try:
            table.set_container(ctid, ifindex, addresses)
        except ValueError:
            pass
        except Exception as error:  # AddressInUseError
            assert type(error).__name__ == "AddressInUseError"
    return table


def oracle(table_snapshot: dict, packet: bytes, indev: int, outdev: int, ours: int = 0) -> Verdict:
    """venet's rules written again from the text of the spec, with ipaddress objects."""
    naive = NaiveClassifier()
    for container in table_snapshot.values():
        naive.set_container(container.ctid, container.ifindex, container.addresses)
    return naive.classify(packet, indev, outdev, ours)


@settings(max_examples=400, deadline=None)
@given(tables, st.lists(st.tuples(packets, DEVICES, DEVICES, OURS), max_size=12))
def test_implementations_agree_with_each_other_and_the_oracle(entries, traffic):
    c_table, py_table = build(CAddressTable, entries), build(PyAddressTable, entries)
    snapshot = py_table.containers()
    assert c_table.containers() == snapshot
    for packet, indev, outdev, ours in traffic:
        expected = oracle(snapshot, packet, indev, outdev, ours)
        assert c_table.classify(packet, indev, outdev, ours) is expected
        assert py_table.classify(packet, indev, outdev, ours) is expected
    assert c_table.counters() == py_table.counters()
    assert c_table.unknown_links == py_table.unknown_links


@settings(max_examples=300, deadline=None)
@given(tables, st.lists(st.tuples(st.binary(max_size=80), DEVICES, DEVICES, OURS), max_size=10), st.booleans())
def test_arbitrary_bytes_never_raise_and_agree(entries, traffic, with_ours):
    c_table, py_table = build(CAddressTable, entries), build(PyAddressTable, entries)
    data = b"".join(p for p, _, _, _ in traffic)
    offsets = array("I", [0])
    for packet, _, _, _ in traffic:
        offsets.append(offsets[-1] + len(packet))
    indevs, outdevs = array("I", [t[1] for t in traffic]), array("I", [t[2] for t in traffic])
    ours = bytes(t[3] for t in traffic) if with_ours else None
    c_out, py_out = bytearray(len(traffic)), bytearray(len(traffic))
    c_table.classify_batch(data, offsets, indevs, outdevs, c_out, ours)
    py_table.classify_batch(data, offsets, indevs, outdevs, py_out, ours)
    assert c_out == py_out
    assert c_table.counters() == py_table.counters()
    assert c_table.unknown_links == py_table.unknown_links
    flags = [t[3] if with_ours else 0 for t in traffic]
    assert [py_table.classify(p, i, o, f) for (p, i, o, _), f in zip(traffic, flags)] == list(c_out)


def outcome(call):
    try:
        return ("ok", call())
    except Exception as error:  # the exact class and message must agree too
        return (type(error).__name__, str(error))


operations = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(["101", "102", ""]), st.integers(0, 4),
              st.lists(st.one_of(st.sampled_from(V4_POOL + V6_POOL), st.text(max_size=8)), max_size=5)),
    st.tuples(st.just("add"), st.sampled_from(["101", "102", "9"]), st.lists(st.sampled_from(V4_POOL + V6_POOL), max_size=3)),
    st.tuples(st.just("remove"), st.sampled_from(["101", "102", "9"]), st.lists(st.sampled_from(V4_POOL + V6_POOL), max_size=3)),
    st.tuples(st.just("drop"), st.sampled_from(["101", "102"])),
    st.tuples(st.just("load"), tables),
    st.tuples(st.just("owner"), st.one_of(st.sampled_from(V4_POOL + V6_POOL), st.text(max_size=12))),
)


def apply(table, operation):
    kind, *args = operation
    if kind == "set":
        return outcome(lambda: table.set_container(*args))
    if kind == "add":
        return outcome(lambda: table.add_addresses(*args))
    if kind == "remove":
        return outcome(lambda: table.remove_addresses(*args))
    if kind == "drop":
        return outcome(lambda: table.remove_container(*args))
    if kind == "load":
        return outcome(lambda: table.load(*args))
    return outcome(lambda: table.owner(*args))


@settings(max_examples=300, deadline=None)
@given(st.lists(operations, max_size=15))
def test_changes_agree(sequence):
    c_table, py_table = CAddressTable(), PyAddressTable()
    for operation in sequence:
        assert apply(c_table, operation) == apply(py_table, operation)
        assert c_table.containers() == py_table.containers()
        assert len(c_table) == len(py_table)


@settings(max_examples=500, deadline=None)
@given(st.one_of(st.text(max_size=50), st.ip_addresses().map(str), st.binary(max_size=8), st.integers()))
def test_address_parsing_agrees_with_ipaddress(value):
    expected = outcome(lambda: PyAddressTable().owner(value))
    assert outcome(lambda: CAddressTable().owner(value)) == expected
    if expected[0] == "ok" and isinstance(value, str):
        ipaddress.ip_address(value)  # whatever we accept, ipaddress accepts too
