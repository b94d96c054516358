"""End-to-end benchmark: whole-machine CPU per delivered packet and delivery, worker not pinned.

    sudo .venv/bin/python bench/e2e.py [--rounds 6] [--seconds 3] [--json .benchmarks/e2e.json]
                                       [--configs none,default,queue,naive,cloop] [--flood none,default,queue]
                                       [--backend native|netfilterqueue] [--quiet-wait 2] [--no-pin]

One topology, in namespaces of its own (removed at the end, also on failure, Ctrl-C or SIGTERM):

    container 101 --venet0/vnf101--\\
    192.0.2.1 (+ .250, not its own)  >-- node netns (table + worker) --up0/eth0--> outside netns
    container 102 --venet0/vnf102--/      forwarding                        198.51.100.2 (receiver)
    192.0.2.2 (+ spoofed sources)

The containers are given their addresses and started with `venetctl set --save` and `venetctl
start`, run inside the node namespace. Configurations, alternated round-robin within the run (the
first configuration of each round moves on by one), one run of S seconds each per round:

- none:    no table, no worker: plain forwarding (the reference of every ratio);
- default: `venetctl worker --mode default`: honest traffic passed in the kernel by the table's
           (link, address) sets, only what they refuse queued to the worker;
- queue:   `venetctl worker --mode queue`: every container packet goes through the worker;
- naive:   `venetctl rules install --mode queue` and bench/naive_worker.py (netfilterqueue and
           `ipaddress`, one Python callback per packet) bound to queue 0;
- cloop:   the same table and bench/c_loop.c, a plain libnetfilter_queue loop that accepts
           everything (a reference for the queue round trip, not a filter).

Load: 64-byte UDP payloads from container 101 to the outside host, sent by vfgen (C, sendmmsg in
batches of 64) pinned to CPU 0; the workers are not pinned. Measured per run: delivered packets/s
(the outside namespace's Udp InDatagrams + RcvbufErrors: its receiver never reads), and busy CPU
per delivered packet: the /proc/stat jiffies of both CPUs that are not idle, iowait or steal, minus
the CPU time other users' processes (not this benchmark's, not kernel threads) had meanwhile, in
ns, divided by the packets delivered in the same window (the raw whole-machine figure is kept
too). Medians over the rounds, and ratios against `none` measured in the same run.

Flood scenario (default, queue, and none as the reference): the same honest load from 101 while
container 102 floods 64-byte UDP from addresses that are not its own (101's 192.0.2.1 and
192.0.2.250, added to its venet0 by its root) to a port of the outside host with no socket
(pinned to CPU 1). The "with flood" run and the "alone" run of the same configuration follow each
other, in alternating order. Spoofed packets that reached the outside host are its Udp NoPorts.

Needs root, cc, iproute2, nft (python3-nftables) and, for cloop, libnetfilter-queue-dev.
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from venetfilter.netns import run_in_netns  # noqa: E402
from venetfilter.worker import request  # noqa: E402

HONEST, NEIGHBOUR = "101", "102"
ADDRESSES = {HONEST: ("192.0.2.1", "2001:db8:1::1"), NEIGHBOUR: ("192.0.2.2", "2001:db8:2::2")}
NOT_OWN = "192.0.2.250"  # put on a container's venet0 by its root; nobody was given it
FLOOD_SOURCES = [ADDRESSES[HONEST][0], NOT_OWN]  # 102 impersonating 101, and an address of no one
UPLINK, OUTSIDE = "198.51.100.1", "198.51.100.2"
SINK_PORT, FLOOD_PORT, PROBE_PORT = 5001, 5002, 5003  # only SINK_PORT has a socket
PAYLOAD = 64
SEND_CPU, FLOOD_CPU = "0", "1"
WARMUP, TAIL = 0.6, 0.4
MAX_PACKETS = 50_000_000  # per sender and run, whatever the duration
CLK_TCK = os.sysconf("SC_CLK_TCK")
PY = sys.executable

TARGET_CPU = 1.10  # default mode CPU per delivered packet, at most this times none's
TARGET_DELIVERY = 0.95  # default mode delivery, at least this times none's
TARGET_FLOOD = 0.80  # 101's delivery during 102's flood, at least this times without it


@dataclass(frozen=True)
class Config:
    name: str
    label: str
    kind: str  # none | worker | naive | cloop
    mode: str = ""  # the worker's --mode, or the table's for naive/cloop
    filters: bool = True  # judges packets (a spoofed probe must be dropped)
    extra: tuple[str, ...] = ()  # more worker options


CONFIGS = [
    Config("none", "none: no table, no worker", "none", filters=False),
    Config("default", "default mode (netdev chain per link, refused logged)", "worker", "default"),
    Config("queue", "queue mode (every packet to the worker)", "worker", "queue"),
    Config("queue2", "queue mode, two queues (one thread each, by CPU)", "worker", "queue",
           extra=("--queues", "2", "--queue-cpu-fanout")),
    Config("naive", "naive worker (netfilterqueue + ipaddress), queue layout", "naive", "queue"),
    Config("cloop", "plain C loop, accepts all, queue layout (reference)", "cloop", "queue", filters=False),
]
# Layout experiments (only when named in --configs): hand-written tables, no worker, to measure what
# a design would cost before building it. See bench/README.md, "Layout experiments".
EXPERIMENTS = [
    Config("x-inet-empty", "experiment: two empty inet base chains at -450", "nft", "inet-empty", filters=False),
    Config("x-netdev-empty", "experiment: netdev ingress+egress on the links, accept all", "nft", "netdev-empty",
           filters=False),
    Config("x-netdev-concat", "experiment: netdev, (link . address) set lookup", "nft", "netdev-concat"),
    Config("x-netdev-vmap", "experiment: netdev, iif vmap to a chain per container, address set", "nft",
           "netdev-vmap"),
    Config("x-netdev-per-link", "experiment: a netdev chain per link, address compares", "nft", "netdev-per-link"),
    Config("x-netdev-no-counter", "experiment: the default mode's chains without counters", "nft", "netdev-no-counter"),
    Config("x-netdev-no-mcast", "experiment: the default mode's chains without the multicast test", "nft",
           "netdev-no-mcast"),
    Config("x-netdev-ingress-only", "experiment: the default mode's ingress chains only", "nft",
           "netdev-ingress-only"),
    Config("x-netdev-named-counters", "experiment: the default mode's chains with named counter objects", "nft",
           "netdev-named-counters"),
    Config("x-tc-empty", "experiment: tc clsact on the links, a classic BPF filter that passes all", "tc",
           "empty", filters=False),
    Config("x-tc-cbpf", "experiment: tc clsact on the links, classic BPF address compares, direct action", "tc",
           "cbpf"),
    Config("x-tc-ebpf", "experiment: tc clsact on the links, venetfilter.rules.tc's filter without counts (eBPF "
           "address compares), the rest redirected to a logging sink", "tc", "ebpf"),
    Config("x-tc-map", "experiment: tc clsact on the links, one eBPF program, a per-CPU hash map of (link, "
           "address) with counts, the rest redirected to a logging sink", "tc", "ebpf-map"),
    Config("x-tc-lib", "experiment: venetfilter.rules.tc's filter (compares, per-address counts), the rest "
           "redirected to a logging sink", "tc", "ebpf-lib"),
    Config("x-xdp", "experiment: XDP on the links (compares; the rest dropped, no copy) and x-tc-ebpf's egress "
           "filter", "tc", "ebpf-xdp"),
]
SINK = "vfsink"  # x-tc-ebpf: refused packets arrive here, marked with their link, to be logged and dropped
SINK_TABLE = f"""table netdev vfexp {{
  chain sink {{ type filter hook ingress device {SINK} priority -500; policy drop;
    meta mark != 0 counter log group 0 drop
    counter drop
  }}
}}"""
EXPERIMENT_TABLES = {
    "inet-empty": """table inet vfexp {
  chain a { type filter hook prerouting priority -450; policy accept; }
  chain b { type filter hook postrouting priority -450; policy accept; }
}""",
    "netdev-empty": """table netdev vfexp {
  chain leaving { type filter hook ingress devices = { vnf101, vnf102 } priority -500; policy accept; }
  chain entering { type filter hook egress devices = { vnf101, vnf102 } priority -500; policy accept; }
}""",
    "netdev-concat": """table netdev vfexp {
  set own4 { type iface_index . ipv4_addr; counter; elements = { "vnf101" . 192.0.2.1, "vnf102" . 192.0.2.2 } }
  set own6 { type iface_index . ipv6_addr; counter; elements = { "vnf101" . 2001:db8:1::1, "vnf102" . 2001:db8:2::2 } }
  chain leaving { type filter hook ingress devices = { vnf101, vnf102 } priority -500; policy drop;
    meta protocol ip iif . ip saddr @own4 accept
    meta protocol ip6 iif . ip6 saddr @own6 accept
  }
  chain entering { type filter hook egress devices = { vnf101, vnf102 } priority -500; policy drop;
    meta protocol ip oif . ip daddr @own4 accept
    meta protocol ip6 oif . ip6 daddr @own6 accept
  }
}""",
    "netdev-vmap": """table netdev vfexp {
  chain c101 { ip saddr { 192.0.2.1 } accept; ip6 saddr { 2001:db8:1::1 } accept; drop; }
  chain c102 { ip saddr { 192.0.2.2 } accept; ip6 saddr { 2001:db8:2::2 } accept; drop; }
  chain leaving { type filter hook ingress devices = { vnf101, vnf102 } priority -500; policy drop;
    iif vmap { "vnf101" : jump c101, "vnf102" : jump c102 }
  }
  chain d101 { ip daddr { 192.0.2.1 } accept; ip6 daddr { 2001:db8:1::1 } accept; drop; }
  chain d102 { ip daddr { 192.0.2.2 } accept; ip6 daddr { 2001:db8:2::2 } accept; drop; }
  chain entering { type filter hook egress devices = { vnf101, vnf102 } priority -500; policy drop;
    oif vmap { "vnf101" : jump d101, "vnf102" : jump d102 }
  }
}""",
    "netdev-per-link": """table netdev vfexp {
  chain l101 { type filter hook ingress device vnf101 priority -500; policy drop;
    ip saddr 192.0.2.1 counter accept
    ip6 saddr 2001:db8:1::1 counter accept
  }
  chain l102 { type filter hook ingress device vnf102 priority -500; policy drop;
    ip saddr 192.0.2.2 counter accept
    ip6 saddr 2001:db8:2::2 counter accept
  }
  chain e101 { type filter hook egress device vnf101 priority -500; policy drop;
    ip daddr 192.0.2.1 counter accept
    ip6 daddr 2001:db8:1::1 counter accept
  }
  chain e102 { type filter hook egress device vnf102 priority -500; policy drop;
    ip daddr 192.0.2.2 counter accept
    ip6 daddr 2001:db8:2::2 counter accept
  }
}""",
}


def _default_mode_table(counter: bool = True, multicast: bool = True, egress: bool = True,
                        named: bool = False) -> str:
    """The default mode's table for vnf101/vnf102, hand-written with parts left out (or, `named`,
    with named counter objects, one per link and address, in place of the rules' own counters)."""
    count = " counter" if counter else ""
    chains = []
    for ct, last in (("101", 1), ("102", 2)):
        v4, v6 = f"192.0.2.{last}", f"2001:db8:{last}::{last}"
        if named:
            chains.append(f"  counter c{ct}_4 {{ }}\n  counter c{ct}_6 {{ }}")
        mc4, mc6 = ("ip daddr != 224.0.0.0/4 ", "ip6 daddr != ff00::/8 ") if multicast else ("", "")
        count4, count6 = (f' counter name "c{ct}_4"', f' counter name "c{ct}_6"') if named else (count, count)
        chains.append(f"""  chain in{ct} {{ type filter hook ingress device vnf{ct} priority -500; policy accept;
    {mc4}ip saddr {v4}{count4} accept
    {mc6}ip6 saddr {v6}{count6} accept
    goto refused
  }}""")
        if egress:
            chains.append(f"""  chain out{ct} {{ type filter hook egress device vnf{ct} priority -500; policy accept;
    ip daddr {v4}{count4} accept
    ip6 daddr {v6}{count6} accept
    goto refused
  }}""")
    return "table netdev vfexp {\n  chain refused {\n    log group 0 drop\n  }\n" + "\n".join(chains) + "\n}"


EXPERIMENT_TABLES.update({
    "netdev-no-counter": _default_mode_table(counter=False),
    "netdev-no-mcast": _default_mode_table(multicast=False),
    "netdev-ingress-only": _default_mode_table(egress=False),
    "netdev-named-counters": _default_mode_table(named=True),
})
BY_NAME = {c.name: c for c in CONFIGS + EXPERIMENTS}


def _cbpf(program: list[tuple[int, int, int, int]]) -> str:
    """tc's `bpf bytecode` text for a classic BPF program."""
    return f"{len(program)}," + ",".join(f"{c} {jt} {jf} {k}" for c, jt, jf, k in program)


def _cbpf_filter(ingress: bool, v4: str, v6: str) -> str:
    """A classic BPF filter on a link's node end, as cls_bpf runs it in direct-action mode (offsets
    from the MAC header): TC_ACT_OK (0) for the container's own address as source (ingress, not to a
    multicast group) or destination (egress), TC_ACT_SHOT (2) for everything else. (This kernel has
    no gact module: `action drop` is not available.)"""
    ldh, ld, ldb, jeq, and_, ret = 0x28, 0x20, 0x30, 0x15, 0x54, 0x06
    word4 = int.from_bytes(socket.inet_aton(v4), "big")
    words6 = [int.from_bytes(socket.inet_pton(socket.AF_INET6, v6)[i:i + 4], "big") for i in range(0, 16, 4)]
    at4, at6 = (26, 22) if ingress else (30, 38)  # saddr or daddr, after a 14-byte ethernet header
    # (code, k, jump if true, jump if false), jumps to labels: "pass", "drop", "v6", or None (next)
    steps: list[tuple[str, int, int, str | None, str | None]] = [("", ldh, 12, None, None),
                                                                 ("", jeq, 0x0800, None, "v6")]
    if ingress:
        steps += [("", ld, 30, None, None), ("", and_, 0xF0000000, None, None), ("", jeq, 0xE0000000, "drop", None)]
    steps += [("", ld, at4, None, None), ("", jeq, word4, "pass", "drop"), ("v6", jeq, 0x86DD, None, "drop")]
    if ingress:
        steps += [("", ldb, 38, None, None), ("", jeq, 0xFF, "drop", None)]
    for i, word in enumerate(words6):
        steps += [("", ld, at6 + 4 * i, None, None), ("", jeq, word, None, "drop")]
    steps += [("pass", ret, 0, None, None), ("drop", ret, 2, None, None)]
    labels = {label: i for i, (label, *_) in enumerate(steps) if label}
    program = [(code, labels[t] - i - 1 if t else 0, labels[f] - i - 1 if f else 0, k)
               for i, (_, code, k, t, f) in enumerate(steps)]
    return _cbpf(program)


def tc_experiment(kind: str) -> dict[str, list[tuple[str, str]]]:
    """Per link, the (direction, bytecode) filters of a tc experiment."""
    never = _cbpf([(0x06, 0, 0, 0)])
    filters = {}
    for ct, (v4, v6) in ADDRESSES.items():
        if kind.startswith("ebpf"):  # attached by bench/tc_ebpf.py; removed like the others
            filters[f"vnf{ct}"] = []
        elif kind == "empty":
            filters[f"vnf{ct}"] = [("ingress", never), ("egress", never)]
        else:
            filters[f"vnf{ct}"] = [("ingress", _cbpf_filter(True, v4, v6)), ("egress", _cbpf_filter(False, v4, v6))]
    return filters

# -- the C tools ---------------------------------------------------------------------------------

VFGEN_C = r"""
/* vfgen: UDP load generator and idle receiver for bench/e2e.py. Counters live in a shared file. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAXS 64
#define BATCH 64

static volatile sig_atomic_t stopping;
static void on_signal(int s) { (void)s; stopping = 1; }

static volatile uint64_t *counter(const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || ftruncate(fd, 4096) < 0) { perror(path); exit(1); }
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) { perror("mmap"); exit(1); }
    close(fd);
    return (volatile uint64_t *)p;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void sockaddr_of(const char *addr, int port, struct sockaddr_in *sa)
{
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons(port);
    if (inet_pton(AF_INET, addr, &sa->sin_addr) != 1) { fprintf(stderr, "bad address %s\n", addr); exit(2); }
}

static int bound_socket(const char *addr, int port)
{
    struct sockaddr_in sa;
    sockaddr_of(addr, port, &sa);
    int fd = socket(AF_INET, SOCK_DGRAM, 0), one = 1;
    if (fd < 0) { perror("socket"); exit(1); }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) { perror("bind"); exit(1); }
    return fd;
}

/* send CNT PORT SIZE SECONDS MAXPKTS DST SRC... : sendmmsg batches, round robin over the sources */
static int udp_send(char **a, int n)
{
    volatile uint64_t *cnt = counter(a[0]);
    int port = atoi(a[1]), size = atoi(a[2]);
    double seconds = atof(a[3]);
    uint64_t limit = strtoull(a[4], NULL, 10);
    struct sockaddr_in dst;
    sockaddr_of(a[5], port, &dst);
    int fds[MAXS], ns = 0;
    for (int i = 6; i < n && ns < MAXS; i++) {
        fds[ns] = bound_socket(a[i], 0);
        if (connect(fds[ns], (struct sockaddr *)&dst, sizeof dst) < 0) { perror("connect"); return 1; }
        ns++;
    }
    static char payload[2048];
    memset(payload, 'v', sizeof payload);
    struct iovec iov = { payload, (size_t)size };
    struct mmsghdr msgs[BATCH];
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < BATCH; i++) { msgs[i].msg_hdr.msg_iov = &iov; msgs[i].msg_hdr.msg_iovlen = 1; }
    double end = now() + seconds;
    uint64_t sent = 0, calls = 0;
    for (int k = 0; !stopping && sent < limit; k = (k + 1) % ns) {
        if ((calls & 15) == 0 && now() >= end)
            break;
        int r = sendmmsg(fds[k], msgs, BATCH, 0);
        calls++;
        if (r > 0) sent += r;
        cnt[0] = sent; cnt[1] = calls;
    }
    printf("%llu\n", (unsigned long long)sent);
    return 0;
}

/* sink ADDR PORT : binds and never reads (the kernel counts what reaches the socket) */
static int udp_sink(char **a)
{
    bound_socket(a[0], atoi(a[1]));
    printf("ready\n"); fflush(stdout);
    while (!stopping) pause();
    return 0;
}

int main(int argc, char **argv)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    if (argc >= 9 && !strcmp(argv[1], "send")) return udp_send(argv + 2, argc - 2);
    if (argc == 4 && !strcmp(argv[1], "sink")) return udp_sink(argv + 2);
    fprintf(stderr, "usage: vfgen send CNT PORT SIZE SECONDS MAXPKTS DST SRC... | vfgen sink ADDR PORT\n");
    return 2;
}
"""


def compile_tools(workdir: Path) -> tuple[Path, Path | None, str]:
    """vfgen (required) and c_loop (None when libnetfilter_queue is missing), built with cc -O2."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise SystemExit("bench/e2e.py needs a C compiler (cc): run scripts/bootstrap")
    source = workdir / "vfgen.c"
    source.write_text(VFGEN_C)
    vfgen = workdir / "vfgen"
    subprocess.run([cc, "-O2", "-Wall", "-o", str(vfgen), str(source)], check=True)
    c_loop = workdir / "c_loop"
    result = subprocess.run([cc, "-O2", "-o", str(c_loop), str(ROOT / "bench" / "c_loop.c"), "-lnetfilter_queue"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        return vfgen, None, result.stderr.strip()
    return vfgen, c_loop, ""


# -- processes and counters ------------------------------------------------------------------------

PROCESSES: list[subprocess.Popen] = []
PIN = True  # --no-pin: the senders are not pinned either


def spawn(argv: list[str], **kwargs) -> subprocess.Popen:
    proc = subprocess.Popen(argv, **kwargs)
    PROCESSES.append(proc)
    return proc


def finish(proc: subprocess.Popen | None, timeout: float = 5.0) -> int | None:
    """SIGTERM, then SIGKILL after `timeout`: only processes this script started, by their PID."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc in PROCESSES:
        PROCESSES.remove(proc)
    return proc.returncode


def in_netns(netns: str, argv: list[str], cpus: str = "") -> list[str]:
    """`ip netns exec` and `taskset` both exec(): the PID of the Popen is the program's."""
    pin = ["taskset", "-c", cpus] if PIN and cpus else []
    return ["ip", "netns", "exec", netns, *pin, *argv]


STAT_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
BUSY_FIELDS = ("user", "nice", "system", "irq", "softirq")  # guest time is already inside user


def cpu_times() -> dict[str, dict[str, int]]:
    """/proc/stat per CPU, in jiffies (USER_HZ)."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                name, *values = line.split()
                out[name] = dict(zip(STAT_FIELDS, (int(v) for v in values)))
    return out


def cpu_delta(a: dict[str, dict[str, int]], b: dict[str, dict[str, int]]) -> dict:
    """Busy ns summed over every CPU, and per CPU the shares of busy, softirq and steal."""
    busy_ns, per_cpu = 0.0, {}
    for cpu in b:
        d = {k: b[cpu][k] - a[cpu][k] for k in STAT_FIELDS}
        total = sum(d.values()) or 1
        busy = sum(d[k] for k in BUSY_FIELDS)
        busy_ns += busy * 1e9 / CLK_TCK
        per_cpu[cpu] = {"busy": busy / total, "softirq": d["softirq"] / total, "system": d["system"] / total,
                        "user": (d["user"] + d["nice"]) / total, "steal": d["steal"] / total}
    return {"busy_ns": busy_ns, "per_cpu": per_cpu}


def process_cpu_ns(pid: int | None) -> float:
    """utime + stime of a process (all its threads), in ns."""
    if pid is None:
        return 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) * 1e9 / CLK_TCK


def others_cpu_ns() -> float:
    """CPU time of the processes that are not this benchmark's, in ns: utime + stime + cutime +
    cstime (the last two: children they reaped) of every process except kernel threads, this one
    and its descendants. Its change over a window is what other users of the machine ran."""
    procs: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        procs[int(entry)] = (int(fields[1]), sum(int(v) for v in fields[11:15]))
    ours, grown = {os.getpid()}, True
    while grown:
        grown = False
        for pid, (ppid, _) in procs.items():
            if ppid in ours and pid not in ours:
                ours.add(pid)
                grown = True
    return sum(ticks for pid, (ppid, ticks) in procs.items()
               if pid not in ours and pid != 2 and ppid != 2) * 1e9 / CLK_TCK


def wait_for_quiet(limit: float, threshold: float = 0.05, window: float = 0.25) -> float:
    """Up to `limit` seconds, until other users' processes used less than `threshold` CPUs over
    `window`; returns the seconds waited. Lowers the odds that a run starts in a burst of theirs."""
    start = time.monotonic()
    while time.monotonic() - start < limit:
        a = others_cpu_ns()
        time.sleep(window)
        if (others_cpu_ns() - a) / window / 1e9 < threshold:
            break
    return time.monotonic() - start


def queue_stats(pid: int | None) -> dict[int, dict[str, int]]:
    """The nfnetlink_queue lines of the namespace `pid` lives in."""
    if pid is None:
        return {}
    try:
        text = Path(f"/proc/{pid}/net/netfilter/nfnetlink_queue").read_text()
    except FileNotFoundError:
        return {}
    stats = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 8:
            stats[int(f[0])] = {"waiting": int(f[2]), "queue_dropped": int(f[5]), "user_dropped": int(f[6]),
                                "id_sequence": int(f[7])}
    return stats


def snmp(pid: int) -> dict[str, int]:
    """/proc/net/snmp of the namespace `pid` lives in, as {"Udp.InDatagrams": n, ...}."""
    lines = Path(f"/proc/{pid}/net/snmp").read_text().splitlines()
    out = {}
    for head, values in zip(lines[::2], lines[1::2]):
        proto = head.split(":")[0]
        for key, value in zip(head.split()[1:], values.split()[1:]):
            out[f"{proto}.{key}"] = int(value)
    return out


def read_counter(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return int.from_bytes(f.read(8), "little")
    except (FileNotFoundError, ValueError):
        return 0


def verdict_delta(a: dict, b: dict) -> dict[str, dict[str, int]]:
    """Per container, the verdict counters that moved between two `stats` answers."""
    out: dict[str, dict[str, int]] = {}
    for ctid, counts in b.get("containers", {}).items():
        before = a.get("containers", {}).get(ctid, {})
        moved = {k: v - before.get(k, 0) for k, v in counts.items() if v != before.get(k, 0)}
        if moved:
            out[ctid] = moved
    return out


# -- the topology ----------------------------------------------------------------------------------


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


class Topology:
    def __init__(self, workdir: Path, vfgen: Path) -> None:
        tag = uuid.uuid4().hex[:6]
        self.node, self.out = f"vfb-{tag}-node", f"vfb-{tag}-out"
        self.ct = {ctid: f"vfb-{tag}-ct{ctid}" for ctid in ADDRESSES}
        self.workdir, self.vfgen = workdir, vfgen
        self.conf_dir, self.run_dir = workdir / "conf", workdir / "run"
        self.created: list[str] = []
        self.sink: subprocess.Popen | None = None

    def build(self) -> None:
        for ns in (self.node, self.out, *self.ct.values()):
            ip("netns", "add", ns)
            self.created.append(ns)
            ip("-n", ns, "link", "set", "lo", "up")
        # the uplink: the outside host's default route points at the node
        ip("-n", self.node, "link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", self.out)
        ip("-n", self.node, "addr", "add", f"{UPLINK}/24", "dev", "up0")
        ip("-n", self.node, "link", "set", "up0", "up")
        ip("-n", self.out, "addr", "add", f"{OUTSIDE}/24", "dev", "eth0")
        ip("-n", self.out, "link", "set", "eth0", "up")
        ip("-n", self.out, "route", "add", "default", "via", UPLINK)
        self._wait_for_uplink()
        self.run_dir.mkdir(mode=0o700)
        self.venetctl("sysctl", "--apply")  # forwarding etc., inside the node namespace only
        for ctid, (v4, v6) in ADDRESSES.items():
            self.venetctl("set", ctid, "--ipadd", f"{v4},{v6}", "--save")
            self.venetctl("start", ctid, "--netns", self.ct[ctid])
        # what a container's root may do anyway: addresses that are not the container's
        ip("-n", self.ct[HONEST], "addr", "add", f"{NOT_OWN}/32", "dev", "venet0")
        for address in FLOOD_SOURCES:
            ip("-n", self.ct[NEIGHBOUR], "addr", "add", f"{address}/32", "dev", "venet0")
        # the receiver: binds SINK_PORT and never reads; its process also names the namespace
        self.sink = spawn(in_netns(self.out, [str(self.vfgen), "sink", OUTSIDE, str(SINK_PORT)]),
                          stdout=subprocess.PIPE, text=True)
        if self.sink.stdout is None or self.sink.stdout.readline().strip() != "ready":
            raise RuntimeError("the receiver did not start")

    def _wait_for_uplink(self) -> None:
        deadline = time.monotonic() + 5
        while subprocess.run(["ip", "netns", "exec", self.node, "ping", "-n", "-q", "-c", "1", "-W", "0.5",
                              "-I", UPLINK, OUTSIDE], capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the uplink does not work: {UPLINK} -> {OUTSIDE}")

    def venetctl(self, *args: str) -> str:
        """`venetctl ARGS`, run on the node (inside its namespace)."""
        result = subprocess.run(["ip", "netns", "exec", self.node, PY, "-m", "venetfilter.cli",
                                 "--conf-dir", str(self.conf_dir), "--run-dir", str(self.run_dir), *args],
                                capture_output=True, text=True, cwd=ROOT)
        if result.returncode != 0:
            raise RuntimeError(f"venetctl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout

    def outside_udp(self) -> dict[str, int]:
        assert self.sink is not None
        return snmp(self.sink.pid)

    def cleanup(self) -> None:
        for proc in list(PROCESSES):
            finish(proc, timeout=3)
        for ns in reversed(self.created):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.created.clear()


# -- the configurations' workers -------------------------------------------------------------------


class Running:
    """One configuration set up on the node: its table and its worker process (if any)."""

    def __init__(self, config: Config, topo: Topology, c_loop: Path | None, backend: str) -> None:
        self.config, self.topo = config, topo
        self.proc: subprocess.Popen | None = None
        self.experiment = ""
        self.tc_links: list[str] = []
        self.log = topo.workdir / f"worker-{config.name}.log"
        if config.kind == "none":
            topo.venetctl("rules", "remove")
            return
        if config.kind == "nft":  # a layout experiment: its table alone, no worker
            topo.venetctl("rules", "remove")
            self.experiment = EXPERIMENT_TABLES[config.mode]
            subprocess.run(in_netns(topo.node, ["nft", "-f", "-"]), input=self.experiment, text=True, check=True)
            return
        if config.kind == "tc":  # a classifier experiment: filters on the links alone, no table, no worker
            topo.venetctl("rules", "remove")
            self.tc_links = list(tc_experiment(config.mode))
            if config.mode.startswith("ebpf"):  # bench/tc_ebpf.py: programs on the links, a logging sink
                self.experiment = SINK_TABLE
                node = topo.node
                subprocess.run(in_netns(node, ["ip", "link", "add", SINK, "type", "veth", "peer", "name",
                                               SINK + "1"]), check=True)
                for name in (SINK, SINK + "1"):
                    subprocess.run(in_netns(node, ["ip", "link", "set", name, "up"]), check=True)
                subprocess.run(in_netns(node, ["nft", "-f", "-"]), input=SINK_TABLE, text=True, check=True)
                tool = [PY, str(ROOT / "bench" / "tc_ebpf.py")]
                if config.mode == "ebpf-map":
                    subprocess.run(in_netns(node, [*tool, "--map", SINK, *(f"vnf{ct}={v4},{v6}" for ct, (v4, v6)
                                                                             in ADDRESSES.items())]), check=True)
                option = {"ebpf": "--plain", "ebpf-lib": "--lib", "ebpf-xdp": "--xdp"}.get(config.mode)
                for ct, (v4, v6) in ADDRESSES.items() if option else ():
                    subprocess.run(in_netns(node, [*tool, option, f"vnf{ct}", SINK, v4, v6]), check=True)
                return
            for link, filters in tc_experiment(config.mode).items():
                subprocess.run(in_netns(topo.node, ["tc", "qdisc", "add", "dev", link, "clsact"]), check=True)
                for direction, code in filters:
                    subprocess.run(in_netns(topo.node, ["tc", "filter", "add", "dev", link, direction, "bpf",
                                                        "bytecode", code, "da"]), check=True)
            return
        if config.kind == "worker":  # installs its own table once its queue is bound
            argv = [PY, "-m", "venetfilter.cli", "worker", "--conf-dir", str(topo.conf_dir),
                    "--run-dir", str(topo.run_dir), "--netns", topo.node, "--mode", config.mode,
                    *(["--backend", backend] if config.mode == "queue" else []), *config.extra]
        elif config.kind == "naive":
            argv = [PY, str(ROOT / "bench" / "naive_worker.py"), "--netns", topo.node,
                    "--run-dir", str(topo.run_dir), "--queue", "0"]
        else:
            assert c_loop is not None
            argv = in_netns(topo.node, [str(c_loop), "0"])
        with open(self.log, "ab") as log:
            self.proc = spawn(argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + 20
        while not self._ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{config.name} exited with {self.proc.returncode}: {self.log.read_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{config.name} did not come up: {self.log.read_text()}")
            time.sleep(0.05)
        if config.kind in ("naive", "cloop"):
            topo.venetctl("rules", "install", "--mode", config.mode, "--queue", "0")
        time.sleep(0.2)  # let the start-up's CPU settle before the first window

    def _ready(self) -> bool:
        if self.config.mode == "default":  # no queue: ready once it answers (the table is installed)
            return bool(self.stats())
        if 0 not in queue_stats(self.pid):
            return False
        return self.config.kind == "cloop" or bool(self.stats())

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def stats(self) -> dict:
        """The worker's `stats` (the naive worker answers them too); {} when none answers."""
        if self.config.kind not in ("worker", "naive"):
            return {}
        try:
            answer = request(self.topo.run_dir, b"stats\n", timeout=5)
        except OSError:
            return {}
        return json.loads(answer) if answer.startswith(b"{") else {}

    def queues(self) -> dict[int, dict[str, int]]:
        return queue_stats(self.pid)

    def settle(self) -> None:
        """Until the queue is empty, so that a run does not inherit the last one's backlog."""
        deadline = time.monotonic() + 3
        while self.pid and time.monotonic() < deadline:
            if all(q["waiting"] == 0 for q in self.queues().values()):
                break
            time.sleep(0.05)
        time.sleep(0.3)

    def stop(self) -> None:
        if self.config.mode.startswith("ebpf"):  # show that the refused packets reached the sink with their link's mark
            listing = subprocess.run(in_netns(self.topo.node, ["nft", "list", "table", "netdev", "vfexp"]),
                                     capture_output=True, text=True, check=True).stdout
            marked, other = (int(n) for n in re.findall(r"counter packets (\d+)", listing))
            print(f"   {self.config.name}: the sink logged {marked:,} marked packets, dropped {other:,} unmarked")
            if self.config.mode == "ebpf-map":
                passed = subprocess.run([PY, str(ROOT / "bench" / "tc_ebpf.py"), "--counts"], capture_output=True,
                                        text=True, check=True).stdout.splitlines()
                print(f"   {self.config.name}: the map counted (ifindex address direction packets) {'; '.join(passed)}")
        if self.experiment:
            family = self.experiment.split()[1]
            subprocess.run(in_netns(self.topo.node, ["nft", "delete", "table", family, "vfexp"]), check=True)
        for link in self.tc_links:
            subprocess.run(in_netns(self.topo.node, ["tc", "qdisc", "del", "dev", link, "clsact"]), check=True)
            if self.config.mode == "ebpf-xdp":
                subprocess.run(in_netns(self.topo.node, ["ip", "link", "set", "dev", link, "xdp", "off"]), check=True)
        if self.config.mode.startswith("ebpf"):
            subprocess.run(in_netns(self.topo.node, ["ip", "link", "del", SINK]), check=True)
        code = finish(self.proc, timeout=10)
        if code not in (None, 0, -signal.SIGTERM):
            print(f"   warning: {self.config.name} exited with {code}; log: {self.log}", file=sys.stderr)


# -- one measurement -------------------------------------------------------------------------------


class Bench:
    def __init__(self, topo: Topology, seconds: float, quiet_wait: float) -> None:
        self.topo, self.seconds, self.quiet_wait = topo, seconds, quiet_wait

    def _sender(self, ctid: str, counter: Path, port: int, sources: list[str], cpu: str) -> subprocess.Popen:
        duration = WARMUP + self.seconds + TAIL
        argv = [str(self.topo.vfgen), "send", str(counter), str(port), str(PAYLOAD), f"{duration:.3f}",
                str(MAX_PACKETS), OUTSIDE, *sources]
        return spawn(in_netns(self.topo.ct[ctid], argv, cpu), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                     text=True)

    def measure(self, running: Running, flood: bool) -> dict:
        """One run: 101's honest load (and 102's flood), counters over the middle `seconds`."""
        honest_cnt, flood_cnt = self.topo.workdir / "honest.cnt", self.topo.workdir / "flood.cnt"
        for path in (honest_cnt, flood_cnt):
            path.unlink(missing_ok=True)
        waited = wait_for_quiet(self.quiet_wait) if self.quiet_wait else 0.0
        senders = [self._sender(HONEST, honest_cnt, SINK_PORT, [ADDRESSES[HONEST][0]], SEND_CPU)]
        if flood:
            senders.append(self._sender(NEIGHBOUR, flood_cnt, FLOOD_PORT, FLOOD_SOURCES, FLOOD_CPU))
        try:
            time.sleep(WARMUP)
            # the worker's stats first and last: answering them costs CPU that is not the load's
            stats_a, ts_a = running.stats(), time.monotonic()
            queues_a, worker_a = running.queues(), process_cpu_ns(running.pid)
            # senders' counters before the receiver's at the start, after them at the end: a packet
            # is counted as sent once it was delivered, so arrivals never exceed what was sent
            honest_a, flood_a = read_counter(honest_cnt), read_counter(flood_cnt)
            udp_a = self.topo.outside_udp()
            others_a = others_cpu_ns()
            cpu_a, t_a = cpu_times(), time.monotonic()
            time.sleep(self.seconds)
            cpu_b, t_b = cpu_times(), time.monotonic()
            others_b = others_cpu_ns()
            udp_b = self.topo.outside_udp()
            honest_b, flood_b = read_counter(honest_cnt), read_counter(flood_cnt)
            queues_b, worker_b = running.queues(), process_cpu_ns(running.pid)
            ts_b, stats_b = time.monotonic(), running.stats()
            for sender in senders:
                _, err = sender.communicate(timeout=WARMUP + self.seconds + TAIL + 30)
                if sender.returncode != 0:
                    raise RuntimeError(f"a sender failed ({sender.returncode}): {err.strip()}")
        finally:
            for sender in senders:
                finish(sender)
        running.settle()
        dt = t_b - t_a
        delivered = (udp_b["Udp.InDatagrams"] + udp_b["Udp.RcvbufErrors"]
                     - udp_a["Udp.InDatagrams"] - udp_a["Udp.RcvbufErrors"])
        cpu = cpu_delta(cpu_a, cpu_b)
        q = {k: sum(b[k] - queues_a.get(n, {}).get(k, 0) for n, b in queues_b.items())
             for k in ("queue_dropped", "user_dropped", "id_sequence")}
        others = others_b - others_a
        ours = cpu["busy_ns"] - others
        result = {
            "seconds": dt,
            "quiet_wait": waited,
            "delivered_pps": delivered / dt,
            "sent_pps": (honest_b - honest_a) / dt,
            "busy_cpus": ours / dt / 1e9,
            "others_cpus": others / dt / 1e9,
            "cpu_ns_per_pkt": ours / delivered if delivered else None,
            "raw_cpu_ns_per_pkt": cpu["busy_ns"] / delivered if delivered else None,
            "worker_ns_per_pkt": (worker_b - worker_a) / delivered if delivered and running.pid else None,
            "queued": q["id_sequence"],
            "queue_dropped": q["queue_dropped"],
            "user_dropped": q["user_dropped"],
            "per_cpu": cpu["per_cpu"],
            "verdicts": verdict_delta(stats_a, stats_b) if stats_a and stats_b else None,
            "verdict_seconds": ts_b - ts_a,  # the window of `verdicts` (the stats are read outside the CPU window)
        }
        if flood:
            result["flood_sent_pps"] = (flood_b - flood_a) / dt
            result["spoofed_arrived"] = udp_b["Udp.NoPorts"] - udp_a["Udp.NoPorts"]
        return result

    def probe(self, running: Running, source: str, count: int = 20) -> tuple[int, dict]:
        """`count` datagrams from `source` in container 101 to a port of the outside host with no
        socket: (how many arrived there, the verdicts they got)."""
        before, stats_a = self.topo.outside_udp()["Udp.NoPorts"], running.stats()

        def send() -> None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.bind((source, 0))
                for _ in range(count):
                    sock.sendto(b"probe", (OUTSIDE, PROBE_PORT))

        run_in_netns(self.topo.ct[HONEST], send)
        time.sleep(0.3)
        arrived = self.topo.outside_udp()["Udp.NoPorts"] - before
        return arrived, verdict_delta(stats_a, running.stats()).get(HONEST, {})


# -- the report ------------------------------------------------------------------------------------

QUIET = 0.1  # a run is "quiet" when other users' processes used less than this many CPUs during it


def med(values: list) -> float | None:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def fmt(value: float | None, spec: str = ",.0f", suffix: str = "") -> str:
    return "–" if value is None else f"{value:{spec}}{suffix}"


def spread(values: list) -> str:
    values = [v for v in values if v is not None]
    return f"{min(values):.2f}–{max(values):.2f}" if values else "–"


def machine() -> dict:
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "nproc": os.cpu_count(), "cpu": model, "kernel": platform.release()}


KEYS = ("delivered_pps", "sent_pps", "busy_cpus", "others_cpus", "cpu_ns_per_pkt", "raw_cpu_ns_per_pkt",
        "worker_ns_per_pkt", "queue_dropped", "user_dropped")


def summarize(runs: dict[str, list[dict]]) -> dict[str, dict]:
    """Medians per configuration; ratios of medians against none; the same ratio round by round
    (each run against none's run of the same round); and medians over quiet runs only."""
    summary: dict[str, dict] = {name: {k: med([r[k] for r in rs]) for k in KEYS} for name, rs in runs.items() if rs}
    none_runs = runs.get("none", [])
    none = summary.get("none", {})
    quiet_none = [r for r in none_runs if r["others_cpus"] < QUIET]
    for name, m in summary.items():
        quiet = [r for r in runs[name] if r["others_cpus"] < QUIET]
        m["runs"], m["quiet_runs"] = len(runs[name]), len(quiet)
        m["cpu_ratio"] = ratio(m["cpu_ns_per_pkt"], none.get("cpu_ns_per_pkt"))
        m["raw_cpu_ratio"] = ratio(m["raw_cpu_ns_per_pkt"], none.get("raw_cpu_ns_per_pkt"))
        m["delivery_ratio"] = ratio(m["delivered_pps"], none.get("delivered_pps"))
        m["cpu_ratio_rounds"] = [ratio(r["cpu_ns_per_pkt"], n["cpu_ns_per_pkt"]) for r, n in zip(runs[name], none_runs)]
        m["delivery_ratio_rounds"] = [ratio(r["delivered_pps"], n["delivered_pps"])
                                      for r, n in zip(runs[name], none_runs)]
        m["quiet_cpu_ratio"] = ratio(med([r["cpu_ns_per_pkt"] for r in quiet]),
                                     med([r["cpu_ns_per_pkt"] for r in quiet_none]))
        m["quiet_delivery_ratio"] = ratio(med([r["delivered_pps"] for r in quiet]),
                                          med([r["delivered_pps"] for r in quiet_none]))
    return summary


def table(summary: dict[str, dict]) -> str:
    lines = ["| configuration | delivered pkt/s | delivery × none | CPU ns/pkt | CPU/pkt × none | "
             "rounds: CPU × none | whole machine ns/pkt (raw) | raw × none | busy CPUs (ours) | others' CPUs | "
             "worker ns/pkt | queue drops/run |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for config in CONFIGS + EXPERIMENTS:
        m = summary.get(config.name)
        if m is None:
            continue
        drops = None if config.kind == "none" else (m["queue_dropped"] or 0) + (m["user_dropped"] or 0)
        lines.append(
            f"| {config.label} | {fmt(m['delivered_pps'])} | {fmt(m['delivery_ratio'], '.3f', '×')} | "
            f"{fmt(m['cpu_ns_per_pkt'])} | {fmt(m['cpu_ratio'], '.3f', '×')} | "
            f"{spread(m['cpu_ratio_rounds']) if config.name != 'none' else '–'} | "
            f"{fmt(m['raw_cpu_ns_per_pkt'])} | {fmt(m['raw_cpu_ratio'], '.3f', '×')} | "
            f"{fmt(m['busy_cpus'], '.2f')} | {fmt(m['others_cpus'], '.2f')} | "
            f"{fmt(m['worker_ns_per_pkt'])} | {fmt(drops)} |")
    return "\n".join(lines)


def flood_summary(alone: dict[str, list[dict]], flooded: dict[str, list[dict]]) -> dict[str, dict]:
    """Per configuration: 101's delivery alone and during the flood (the two runs of a round follow
    each other), the ratio of medians, the ratio round by round, and over quiet pairs only."""
    out = {}
    for name, runs in flooded.items():
        if not runs:
            continue
        pairs = list(zip(alone.get(name, []), runs))
        quiet = [(a, f) for a, f in pairs if a["others_cpus"] < QUIET and f["others_cpus"] < QUIET]
        judged = [(r["verdicts"] or {}).get(NEIGHBOUR, {}).get("DROP_SOURCE", 0) / r["verdict_seconds"]
                  for r in runs if r["verdicts"] is not None]
        m = {
            "alone_pps": med([a["delivered_pps"] for a, _ in pairs]),
            "flood_pps": med([f["delivered_pps"] for _, f in pairs]),
            "ratio_rounds": [ratio(f["delivered_pps"], a["delivered_pps"]) for a, f in pairs],
            "quiet_pairs": len(quiet),
            "quiet_ratio": ratio(med([f["delivered_pps"] for _, f in quiet]),
                                 med([a["delivered_pps"] for a, _ in quiet])),
            "flood_sent_pps": med([r["flood_sent_pps"] for r in runs]),
            "judged_spoofed_pps": med(judged),
            "queue_drops": med([r["queue_dropped"] + r["user_dropped"] for r in runs]),
            "busy_cpus": med([r["busy_cpus"] for r in runs]),
            "others_cpus": med([r["others_cpus"] for r in runs]),
            "worker_cpus": med([(r["worker_ns_per_pkt"] or 0) * r["delivered_pps"] / 1e9 for r in runs]),
            "spoofed_arrived": sum(r["spoofed_arrived"] for r in runs),
            "spoofed_sent": sum(round(r["flood_sent_pps"] * r["seconds"]) for r in runs),
        }
        m["ratio"] = ratio(m["flood_pps"], m["alone_pps"])
        out[name] = m
    return out


def flood_table(summary: dict[str, dict]) -> str:
    lines = ["| configuration | 101 alone pkt/s | 101 during flood pkt/s | ratio | rounds | quiet pairs | "
             "102's flood pkt/s | judged DROP_SOURCE pkt/s | queue drops/run | worker CPUs | others' CPUs | "
             "spoofed at outside host |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for config in CONFIGS + EXPERIMENTS:
        m = summary.get(config.name)
        if m is None:
            continue
        worker = config.kind != "none"
        quiet = f"{fmt(m['quiet_ratio'], '.3f', '×')} ({m['quiet_pairs']})" if m["quiet_pairs"] else "– (0)"
        lines.append(
            f"| {config.name} | {fmt(m['alone_pps'])} | {fmt(m['flood_pps'])} | {fmt(m['ratio'], '.3f', '×')} | "
            f"{spread(m['ratio_rounds'])} | {quiet} | {fmt(m['flood_sent_pps'])} | "
            f"{fmt(m['judged_spoofed_pps'] if worker else None)} | {fmt(m['queue_drops'] if worker else None)} | "
            f"{fmt(m['worker_cpus'] if worker else None, '.2f')} | {fmt(m['others_cpus'], '.2f')} | "
            f"{m['spoofed_arrived']:,} of {m['spoofed_sent']:,} |")
    return "\n".join(lines)


def targets(summary: dict[str, dict], floods: dict[str, dict]) -> list[dict]:
    """The issue's targets, judged on all runs (no selection); the quiet-runs figure beside it."""
    default, flood = summary.get("default", {}), floods.get("default", {})
    rows = [
        ("default mode CPU per delivered packet ÷ none", default.get("cpu_ratio"), default.get("quiet_cpu_ratio"),
         med(default.get("cpu_ratio_rounds", [])), TARGET_CPU, True),
        ("default mode delivery ÷ none", default.get("delivery_ratio"), default.get("quiet_delivery_ratio"),
         med(default.get("delivery_ratio_rounds", [])), TARGET_DELIVERY, False),
        ("default mode: 101's delivery during 102's spoof flood ÷ alone", flood.get("ratio"), flood.get("quiet_ratio"),
         med(flood.get("ratio_rounds", [])), TARGET_FLOOD, False),
    ]
    out = []
    for name, value, quiet, paired, limit, at_most in rows:
        # met only when the ratio of medians and the median of the rounds' own ratios agree: the
        # second is immune to a slow drift of the machine's speed during the run, the first to one
        # odd round
        met = None if value is None else all(v <= limit if at_most else v >= limit
                                             for v in (value, paired) if v is not None)
        out.append({"target": name, "value": value, "quiet": quiet, "paired": paired, "limit": limit,
                    "at_most": at_most, "met": met})
    for name, m in floods.items():
        if BY_NAME[name].filters:
            out.append({"target": f"{name} mode: spoofed packets that reached the outside host",
                        "value": m["spoofed_arrived"], "quiet": None, "paired": None, "limit": 0, "at_most": True,
                        "met": m["spoofed_arrived"] == 0})
    return out


def target_table(rows: list[dict]) -> str:
    lines = ["| target | measured (all runs) | quiet runs only | median of the rounds' ratios | limit | met |",
             "|---|---:|---:|---:|---:|---|"]
    for r in rows:
        def show(v: float | int | None) -> str:
            return "–" if v is None else f"{v:,}" if isinstance(v, int) else f"{v:.3f}×"

        limit = f"{'≤' if r['at_most'] else '≥'} {r['limit']}" + ("" if isinstance(r["limit"], int) else "×")
        met = "not measured" if r["met"] is None else "yes" if r["met"] else "**no**"
        lines.append(f"| {r['target']} | {show(r['value'])} | {show(r['quiet'])} | {show(r['paired'])} | {limit} | "
                     f"{met} |")
    return "\n".join(lines)


def describe_run(r: dict) -> str:
    def one(cpu: str, u: dict) -> str:
        steal = f", steal {u['steal']:.0%}" if u["steal"] >= 0.01 else ""
        return f"{cpu} {u['busy']:.0%} (sirq {u['softirq']:.0%}{steal})"

    load = " ".join(one(cpu, u) for cpu, u in r["per_cpu"].items())
    text = (f"{r['delivered_pps']:,.0f} pkt/s of {r['sent_pps']:,.0f} sent; {fmt(r['cpu_ns_per_pkt'])} ns/pkt "
            f"(raw {fmt(r['raw_cpu_ns_per_pkt'])}); ours {r['busy_cpus']:.2f} + others {r['others_cpus']:.2f} CPUs "
            f"[{load}]")
    if r["worker_ns_per_pkt"] is not None:
        text += (f"; worker {r['worker_ns_per_pkt']:,.0f} ns/pkt, queued {r['queued']:,}, drops "
                 f"{r['queue_dropped']:,}+{r['user_dropped']:,}")
    if "flood_sent_pps" in r:
        text += f"; flood {r['flood_sent_pps']:,.0f} pkt/s sent, {r['spoofed_arrived']:,} spoofed arrived"
    if r["quiet_wait"] >= 0.5:
        text += f" (waited {r['quiet_wait']:.1f} s for quiet)"
    return text


# -- main ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6, help="rounds; each runs every configuration once (default 6)")
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per run (default 3)")
    parser.add_argument("--configs", default=",".join(c.name for c in CONFIGS),
                        help="comma-separated subset of " + ",".join(c.name for c in CONFIGS + EXPERIMENTS))
    parser.add_argument("--flood", default="none,default,queue",
                        help="configurations that also get the flood run ('' for none; default none,default,queue)")
    parser.add_argument("--backend", default="native", choices=["native", "netfilterqueue"],
                        help="the venetfilter worker's backend (default native)")
    parser.add_argument("--quiet-wait", type=float, default=2.0,
                        help="before each run, wait up to this many seconds for other users' processes to be "
                             "quiet (default 2; 0: do not wait)")
    parser.add_argument("--json", type=Path, default=ROOT / ".benchmarks" / "e2e.json",
                        help="where to write every run and the summary (default .benchmarks/e2e.json)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the senders either")
    args = parser.parse_args(argv)
    global PIN
    PIN = not args.no_pin
    if os.geteuid() != 0:
        print("bench/e2e.py needs root: it creates network namespaces", file=sys.stderr)
        return 1
    if not 1 <= args.seconds <= 30 or not 1 <= args.rounds <= 20 or not 0 <= args.quiet_wait <= 10:
        parser.error("--seconds must be 1..30, --rounds 1..20 and --quiet-wait 0..10 (every load stays bounded)")
    names = [n for n in args.configs.split(",") if n]
    flood_names = [n for n in args.flood.split(",") if n]
    unknown = [n for n in names + flood_names if n not in BY_NAME]
    if unknown:
        parser.error(f"unknown configuration(s): {', '.join(unknown)}")
    configs = [c for c in CONFIGS + EXPERIMENTS if c.name in names]
    flood_names = [n for n in flood_names if n in names]
    started = time.monotonic()
    info = machine()
    print(f"# venetfilter end-to-end benchmark, {info['date']}")
    print(f"machine: {info['nproc']} CPUs ({info['cpu']}), kernel {info['kernel']}; {args.rounds} rounds, "
          f"{args.seconds:g} s per run; configurations {', '.join(c.name for c in configs)}; flood runs for "
          f"{', '.join(flood_names) or 'none'}\n", flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="venetfilter-e2e-"))
    topo: Topology | None = None
    cleaned = False

    def cleanup() -> None:
        nonlocal cleaned
        if not cleaned:
            cleaned = True
            if topo is not None:
                topo.cleanup()
            shutil.rmtree(workdir, ignore_errors=True)

    atexit.register(cleanup)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with SIGINT ignored
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
    runs: dict[str, list[dict]] = {c.name: [] for c in configs}
    flood_runs: dict[str, list[dict]] = {n: [] for n in flood_names}
    checks: dict[str, dict] = {}
    notes: list[str] = []
    try:
        vfgen, c_loop, why = compile_tools(workdir)
        if c_loop is None and "cloop" in names:
            notes.append(f"cloop left out: bench/c_loop.c did not build (install libnetfilter-queue-dev): {why}")
            configs = [c for c in configs if c.name != "cloop"]
        topo = Topology(workdir, vfgen)
        topo.build()
        bench = Bench(topo, args.seconds, args.quiet_wait)
        for rnd in range(args.rounds):
            shift = rnd % len(configs)
            order = configs[shift:] + configs[:shift]
            print(f"== round {rnd + 1}/{args.rounds}", flush=True)
            for config in order:
                running = Running(config, topo, c_loop, args.backend)
                try:
                    if config.filters and config.name not in checks:
                        own, own_v = bench.probe(running, ADDRESSES[HONEST][0])
                        bad, bad_v = bench.probe(running, NOT_OWN)
                        checks[config.name] = {"own_arrived": own, "own_verdicts": own_v, "not_own_arrived": bad,
                                               "not_own_verdicts": bad_v}
                        print(f"   {config.name}: probe from 101's own address {own}/20 arrived {own_v}; from "
                              f"{NOT_OWN} {bad}/20 arrived {bad_v}", flush=True)
                        if own != 20 or bad != 0:
                            notes.append(f"{config.name}: enforcement probe failed: own {own}/20, not own {bad}/20")
                    kinds = [False, True] if config.name in flood_names else [False]
                    if rnd % 2:
                        kinds.reverse()
                    for flood in kinds:
                        r = bench.measure(running, flood)
                        (flood_runs[config.name] if flood else runs[config.name]).append(r)
                        print(f"   {config.name}{' +flood' if flood else ''}: {describe_run(r)}", flush=True)
                        honest_drops = {k: v for k, v in ((r["verdicts"] or {}).get(HONEST, {})).items()
                                        if k != "ACCEPT" and v}
                        if honest_drops:
                            notes.append(f"{config.name} round {rnd + 1}: the worker dropped honest packets of "
                                         f"101: {honest_drops}")
                        if flood and config.filters and r["spoofed_arrived"]:
                            notes.append(f"{config.name} round {rnd + 1}: {r['spoofed_arrived']} spoofed packets "
                                         "reached the outside host")
                finally:
                    running.stop()
        topo.venetctl("rules", "remove")
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        cleanup()

    summary = summarize(runs)
    floods = flood_summary(runs, flood_runs)
    rows = targets(summary, floods)
    pin = (f"the honest sender pinned to CPU {SEND_CPU}, the flooder to CPU {FLOOD_CPU}" if PIN
           else "the senders not pinned")
    quiet = sum(1 for rs in (*runs.values(), *flood_runs.values()) for r in rs if r["others_cpus"] < QUIET)
    total = sum(len(rs) for rs in (*runs.values(), *flood_runs.values()))
    print(f"\n# Results: medians of {args.rounds} rounds of {args.seconds:g} s, {info['date']}")
    print(f"machine: {info['nproc']} CPUs ({info['cpu']}), kernel {info['kernel']}; {PAYLOAD}-byte UDP from container "
          f"{HONEST} to the outside host (vfgen, sendmmsg); {pin}; workers not pinned ({args.backend} backend).")
    print("CPU ns/pkt: /proc/stat user+nice+system+irq+softirq of both CPUs, minus the CPU time of other users' "
          "processes (not this benchmark's, not kernel threads), per delivered packet; raw: without that "
          f"subtraction. {quiet} of {total} runs were quiet (others < {QUIET} CPUs).\n")
    print(table(summary))
    if floods:
        print(f"\nSpoof flood: {HONEST} sends as above while {NEIGHBOUR} floods {PAYLOAD}-byte UDP from "
              f"{' and '.join(FLOOD_SOURCES)} (not its own) at full rate; none: the node without any filtering "
              "(there the spoofed packets are forwarded). Quiet pairs: both runs quiet.\n")
        print(flood_table(floods))
    print("\n" + target_table(rows))
    default = summary.get("default", {})
    if default.get("raw_cpu_ratio") is not None:
        print(f"\nWithout subtracting other users' processes, default mode's whole-machine CPU per delivered packet "
              f"is {default['raw_cpu_ratio']:.3f}× none's.")
    if checks:
        held = all(c["own_arrived"] == 20 and c["not_own_arrived"] == 0 for c in checks.values())
        print(f"\nEnforcement probes ({', '.join(checks)}): " +
              (f"20/20 datagrams from {HONEST}'s own address arrived and 0/20 from {NOT_OWN} (DROP_SOURCE) in each."
               if held else "FAILED, see the notes."))
    if notes:
        print("\nNotes:")
        for note in notes:
            print(f"- {note}")
    elapsed = time.monotonic() - started
    print(f"\n(whole run: {elapsed:.0f} s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "machine": info, "rounds": args.rounds, "seconds": args.seconds, "backend": args.backend, "pinned": PIN,
            "quiet_threshold_cpus": QUIET, "runs": runs, "flood_runs": flood_runs, "summary": summary,
            "flood": floods, "targets": rows, "checks": checks, "notes": notes, "elapsed": elapsed}, indent=1))
        print(f"(written to {args.json})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
