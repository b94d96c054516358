"""The tc layer's per-link filter in a real kernel: a container and a node namespace joined by a
NOARP veth (as `venetctl start` makes them), the filter on the node end, a sink link whose netdev
chain counts what the filter refused, by mark."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import subprocess
import time

import pytest
from pyroute2 import IPRoute

from venetfilter.netns import run_in_netns
from venetfilter.rules.tc import attach, asm, program, syscall

pytestmark = pytest.mark.netns

OWN4, OWN6 = "192.0.2.1", "2001:db8:1::1"
FORGED4, FORGED6 = "192.0.2.250", "2001:db8:1::250"  # on the container's venet0 too: its root put them there
NODE4, NODE6 = "203.0.113.1", "2001:db8:ff::1"
PORT = 4000
ADDRESSES = [ipaddress.ip_address(OWN4), ipaddress.ip_address(OWN6)]


def sh(ns: str, *argv: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, *argv], check=True, capture_output=True, text=True).stdout


class Pair:
    """Node and container namespaces, the link between them and the sink, with the filter on."""

    def __init__(self, make_netns) -> None:
        self.node, self.ct = make_netns("vftn"), make_netns("vftc")
        ip = ["ip", "-n", self.node]
        subprocess.run([*ip, "link", "add", "vnf1", "address", "02:00:00:00:00:01", "type", "veth", "peer", "name",
                        "venet0", "address", "02:00:00:00:00:01", "netns", self.ct], check=True)
        subprocess.run([*ip, "link", "add", "vfsink", "type", "veth", "peer", "name", "vfsink1"], check=True)
        for name in ("vnf1", "vfsink", "vfsink1"):
            subprocess.run([*ip, "link", "set", name, "arp", "off", "up"], check=True)
        for address in (f"{NODE4}/32", f"{NODE6}/128"):
            subprocess.run([*ip, "addr", "add", address, "dev", "lo", "nodad"] if ":" in address
                           else [*ip, "addr", "add", address, "dev", "lo"], check=True)
        for address in (OWN4, FORGED4, OWN6, FORGED6):
            subprocess.run([*ip, "route", "add", address, "dev", "vnf1"], check=True)
        ct = ["ip", "-n", self.ct]
        subprocess.run([*ct, "link", "set", "venet0", "arp", "off", "up"], check=True)
        for address in (f"{OWN4}/32", f"{FORGED4}/32"):
            subprocess.run([*ct, "addr", "add", address, "dev", "venet0"], check=True)
        for address in (f"{OWN6}/128", f"{FORGED6}/128"):
            subprocess.run([*ct, "addr", "add", address, "dev", "venet0", "nodad"], check=True)
        subprocess.run([*ct, "route", "add", "default", "dev", "venet0"], check=True)
        subprocess.run([*ct, "-6", "route", "add", "default", "dev", "venet0"], check=True)
        self.link, self.sink = int(sh(self.node, "cat", "/sys/class/net/vnf1/ifindex")), 0
        self.sink = int(sh(self.node, "cat", "/sys/class/net/vfsink/ifindex"))
        marks = [program.mark(self.link, False), program.mark(self.link, True)]
        table = ("table netdev sinkcount {\n chain c {\n  type filter hook ingress device vfsink priority 0;\n"
                 f"  meta mark {marks[0]} counter\n  meta mark {marks[1]} counter\n  drop\n }}\n}}\n")
        subprocess.run(["ip", "netns", "exec", self.node, "nft", "-f", "-"], input=table, text=True, check=True)
        self.programs: dict[str, int] = {}
        self.counters = syscall.create_map(syscall.MAP_TYPE_PERCPU_ARRAY, 4, 8, len(ADDRESSES), "vf_test_acc")
        self.put()

    def put(self, addresses=ADDRESSES) -> None:
        def work() -> dict[str, int]:
            with IPRoute() as ipr:
                return attach.put_link_filters(ipr, self.link, self.sink, addresses, self.counters, "vf-test")

        self.programs = run_in_netns(self.node, work)

    def refused(self) -> tuple[int, int]:
        """Packets the sink saw marked as refused leaving the container, and entering it."""
        counts = re.findall(r"counter packets (\d+)", sh(self.node, "nft", "list", "table", "netdev", "sinkcount"))
        return int(counts[0]), int(counts[1])

    def accepted(self, slot: int) -> int:
        return syscall.read_percpu(self.counters, slot)


@pytest.fixture
def pair(make_netns):
    made = Pair(make_netns)
    yield made
    os.close(made.counters)


def received(ns: str, family: int, bind: str, send) -> list[bytes]:
    """Datagrams a socket bound to `bind` in `ns` receives while `send()` runs."""
    sock = run_in_netns(ns, lambda: socket.socket(family, socket.SOCK_DGRAM))
    try:
        sock.bind((bind, PORT))
        sock.settimeout(0.3)
        send()
        got = []
        while True:
            try:
                got.append(sock.recv(100))
            except TimeoutError:
                return got
    finally:
        sock.close()


def sender(ns: str, family: int, source: str, destination: str, payload: bytes):
    def send() -> None:
        sock = run_in_netns(ns, lambda: socket.socket(family, socket.SOCK_DGRAM))
        try:
            sock.bind((source, 0))
            sock.sendto(payload, (destination, PORT))
        finally:
            sock.close()
    return send


@pytest.mark.parametrize("family, own, forged, node", [
    (socket.AF_INET, OWN4, FORGED4, NODE4), (socket.AF_INET6, OWN6, FORGED6, NODE6)])
def test_leaving_the_container_only_its_own_sources_pass(pair, family, own, forged, node) -> None:
    slot = 0 if family == socket.AF_INET else 1
    before, accepted = pair.refused(), pair.accepted(slot)
    got = received(pair.node, family, node, lambda: (sender(pair.ct, family, own, node, b"own")(),
                                                     sender(pair.ct, family, forged, node, b"forged")()))
    assert got == [b"own"]
    after = pair.refused()
    assert after[0] >= before[0] + 1, "the forged datagram did not reach the sink with its link's mark"
    assert pair.accepted(slot) == accepted + 1


@pytest.mark.parametrize("family, own, forged, node", [
    (socket.AF_INET, OWN4, FORGED4, NODE4), (socket.AF_INET6, OWN6, FORGED6, NODE6)])
def test_entering_the_container_only_its_own_destinations_pass(pair, family, own, forged, node) -> None:
    before = pair.refused()
    got = received(pair.ct, family, "::" if family == socket.AF_INET6 else "0.0.0.0",
                   lambda: (sender(pair.node, family, node, own, b"own")(),
                            sender(pair.node, family, node, forged, b"forged")()))
    assert got == [b"own"]
    assert pair.refused()[1] >= before[1] + 1, "the datagram to a forged address was not refused on egress"


@pytest.mark.parametrize("group", ["224.0.0.1", "239.1.2.3", "ff02::1", "ff0e::1"])
def test_multicast_from_an_own_source_is_refused(pair, group) -> None:
    family = socket.AF_INET6 if ":" in group else socket.AF_INET
    source = OWN6 if ":" in group else OWN4
    before = pair.refused()[0]
    sock = run_in_netns(pair.ct, lambda: socket.socket(family, socket.SOCK_DGRAM))
    try:
        sock.bind((source, 0))
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, int(sh(pair.ct, "cat",
                            "/sys/class/net/venet0/ifindex")))
        for _ in range(3):
            sock.sendto(b"multicast", (group, PORT))
    finally:
        sock.close()
    time.sleep(0.1)
    assert pair.refused()[0] >= before + 3


def test_a_replaced_filter_takes_over_in_place(pair) -> None:
    """`put` again with fewer addresses: one filter per direction still, and the address left out
    is refused from then on."""
    pair.put([ipaddress.ip_address(OWN6)])
    def listing() -> list[list[attach.Filter]]:
        with IPRoute() as ipr:
            return [attach.filters(ipr, pair.link, parent) for parent in (attach.INGRESS, attach.EGRESS)]

    listed = run_in_netns(pair.node, listing)
    assert [[(f.kind, f.priority, f.handle, f.name, f.direct_action, f.prog_id) for f in one] for one in listed] == \
        [[("bpf", 1, 1, "vf-test", True, pair.programs[parent])] for parent in (attach.INGRESS, attach.EGRESS)]
    got = received(pair.node, socket.AF_INET, NODE4, sender(pair.ct, socket.AF_INET, OWN4, NODE4, b"own"))
    assert got == []


def test_assembler_refuses_what_it_cannot_encode() -> None:
    a = asm.Assembler()
    a.jump("nowhere")
    with pytest.raises(asm.AssemblerError, match="undefined label"):
        a.code()
    a = asm.Assembler()
    a.label("here")
    with pytest.raises(asm.AssemblerError, match="twice"):
        a.label("here")


def test_assembler_counts_jumps_in_slots() -> None:
    """A 64-bit immediate takes two slots: a jump over one is +2."""
    a = asm.Assembler()
    a.jump("after")
    a.load_imm64(asm.R1, 1 << 40)
    a.label("after")
    a.exit()
    code = a.code()
    assert len(code) == 8 * 4
    assert int.from_bytes(code[2:4], "little", signed=True) == 2


def test_the_verifier_takes_a_filter_of_many_addresses(pair) -> None:
    """64 addresses of each family (the compares stay within the verifier's limits)."""
    many = [ipaddress.ip_address(f"192.0.2.{n}") for n in range(1, 65)]
    many += [ipaddress.ip_address(f"2001:db8:1::{n:x}") for n in range(1, 65)]
    for egress in (False, True):
        os.close(syscall.load_program(program.link_filter(egress, pair.link, pair.sink, many), "vf_many"))


def test_a_program_the_verifier_refuses_is_a_clear_error() -> None:
    a = asm.Assembler()
    a.exit()  # r0 never written
    with pytest.raises(OSError, match="refused program"):
        syscall.load_program(a.code(), "vf_bad")


def test_counts_can_be_carried_into_a_new_map(pair) -> None:
    """What `update` will do when a link's slots move: write the old count into the new map."""
    fresh = syscall.create_map(syscall.MAP_TYPE_PERCPU_ARRAY, 4, 8, 2, "vf_test_carry")
    try:
        syscall.update_percpu(fresh, 1, 12345)
        assert (syscall.read_percpu(fresh, 0), syscall.read_percpu(fresh, 1)) == (0, 12345)
        with pytest.raises(OSError):
            syscall.read_percpu(fresh, 2)  # past the end
    finally:
        os.close(fresh)


def test_taking_the_filters_off(pair) -> None:
    def work() -> tuple[bool, list[attach.Filter], bool]:
        with IPRoute() as ipr:
            removed = attach.remove_clsact(ipr, pair.link)
            return removed, attach.filters(ipr, pair.link, attach.INGRESS), attach.remove_clsact(ipr, pair.link)

    assert run_in_netns(pair.node, work) == (True, [], False)
    got = received(pair.node, socket.AF_INET, NODE4, sender(pair.ct, socket.AF_INET, FORGED4, NODE4, b"forged"))
    assert got == [b"forged"], "control: without the filter the forged datagram arrives"


def test_the_kernels_sk_buff_layout_is_read_from_btf(tmp_path) -> None:
    from venetfilter.rules.tc import btf

    layout = btf.skb_layout()
    with open(btf.VMLINUX, "rb") as f:
        fields = btf.struct_fields(f.read(), "sk_buff")
    assert fields["csum_start"].bit_offset == 8 * layout.csum_start
    assert fields["csum_offset"].bit_offset == 8 * layout.csum_start + 16  # the two halves of one union member
    assert fields["ip_summed"].bit_size == 2 and fields["pkt_type"].bit_size == 3
    assert fields["network_header"].bit_offset == 8 * layout.network_header
    with pytest.raises(btf.BtfError, match="not BTF"):
        btf.struct_fields(b"\0" * 64, "sk_buff")
    with open(btf.VMLINUX, "rb") as f:
        with pytest.raises(btf.BtfError, match="no struct venetfilter_nothing"):
            btf.struct_fields(f.read(), "venetfilter_nothing")
