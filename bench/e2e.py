"""End-to-end benchmark: real traffic from a container through the rules and the worker (issue 6).

    sudo .venv/bin/python bench/e2e.py [--seconds S] [--repeats N] [--json FILE]

One topology, in namespaces of its own (removed at the end, also on failure or Ctrl-C):

    container netns --venet0/vnf101--> node netns (rules + worker) --up0/eth0--> outside netns
    192.0.2.1-8/32 (+ a spoofed .250)      forwarding, NFQUEUE               198.51.100.2 (receiver)

The container is given its addresses and started with `venetctl set --save` and `venetctl start`. For each worker -- kernel only (no rules), the plain C libnetfilter_queue loop
(bench/c_loop.c, accepts everything, one verdict per packet), the naive netfilterqueue + ipaddress
worker (bench/naive_worker.py), venetfilter's netfilterqueue backend, the native backend on one queue
and on two (--queue-balance 0:1) -- and for each traffic -- 64-byte UDP payloads, 1400-byte UDP
payloads, a TCP stream -- it runs the load N times for S seconds and reports medians of:
delivered packets/s at the receiver (UDP: the receiver's Udp InDatagrams + RcvbufErrors, i.e. every
datagram that reached its socket; TCP: Mbit/s the receiver read), the worker's user and system CPU per
packet it handled (/proc/PID/stat utime/stime deltas / the worker's own packet counter), and the
queue drops (/proc/net/netfilter/nfnetlink_queue of the node: queue_dropped, user_dropped).

Load: a small C sender (vfgen, compiled at run time with c_loop.c) that sends from 8 container
addresses (8 flows, so --queue-balance, which hashes addresses, can spread them) with sendmmsg() in
batches of 64: the most packets per CPU second a single core can offer. TCP: 4 streams.
Pinning (taskset): the sender on CPU 0, the worker and the TCP receiver on CPU 1 (the two-queue
worker on 0-1, so its threads can run in parallel). The UDP receiver only binds its socket and never
reads (its datagrams are counted by the kernel as they reach the socket), so it competes for no CPU. Needs root, cc, libnetfilter-queue-dev, iproute2, iptables.
"""

from __future__ import annotations

import argparse
import atexit
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from venetfilter.host import apply_sysctls, run_in_netns  # noqa: E402
from venetfilter.rules import QueueSpec  # noqa: E402
from venetfilter.rules import install as install_rules  # noqa: E402
from venetfilter.rules import remove as remove_rules  # noqa: E402
from venetfilter.worker import request  # noqa: E402

CTID = "101"
CT_ADDRESSES = [f"192.0.2.{i}" for i in range(1, 9)]
CT_V6 = "2001:db8:1::1"
SPOOFED = "192.0.2.250"  # the container's root adds it to venet0; it is not the container's
UPLINK, OUTSIDE = "198.51.100.1", "198.51.100.2"
TCP_STREAMS = 4
SEND_CPU, WORKER_CPU, BOTH_CPUS = "0", "1", "0,1"
RECV_CPU = WORKER_CPU  # the TCP receiver: on CPU 0 with the sender, kernel-only TCP loses ~20 %
WARMUP, TAIL = 0.6, 0.3
MAX_PACKETS = 50_000_000  # per measurement, whatever the duration
MAX_BYTES = 20 * 2**30
CLK_TCK = os.sysconf("SC_CLK_TCK")
PY = sys.executable

TRAFFIC = {  # name: (protocol, UDP payload bytes)
    "udp64": ("udp", 64),
    "udp1400": ("udp", 1400),
    "tcp": ("tcp", 0),
}
TRAFFIC_LABEL = {"udp64": "UDP 64 B", "udp1400": "UDP 1400 B", "tcp": "TCP stream"}


@dataclass(frozen=True)
class Case:
    name: str
    label: str
    kind: str  # kernel | cloop | naive | venetfilter
    backend: str = ""
    queues: int = 1
    cpus: str = WORKER_CPU


CASES = [
    Case("kernel", "kernel only (no rules)", "kernel", cpus=""),
    Case("cloop", "plain C loop, 1 verdict/pkt", "cloop"),
    Case("naive", "naive: netfilterqueue + ipaddress", "naive"),
    Case("nfq", "venetfilter, netfilterqueue backend", "venetfilter", "netfilterqueue"),
    Case("native1", "venetfilter, native, 1 queue", "venetfilter", "native"),
    Case("native2", "venetfilter, native, 2 queues (balance 0:1)", "venetfilter", "native", queues=2, cpus=BOTH_CPUS),
]

# -- the C tools ---------------------------------------------------------------------------------

VFGEN_C = r"""
/* vfgen: load generator and receiver for bench/e2e.py. Counters live in a shared file. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
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

static int bound_socket(int type, const char *addr, int port)
{
    struct sockaddr_in sa;
    sockaddr_of(addr, port, &sa);
    int fd = socket(AF_INET, type, 0), one = 1;
    if (fd < 0) { perror("socket"); exit(1); }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) { perror("bind"); exit(1); }
    return fd;
}

/* udp-send CNT PORT SIZE SECONDS MAXPKTS DST SRC... : sendmmsg batches, round robin over the sources */
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
        fds[ns] = bound_socket(SOCK_DGRAM, a[i], 0);
        if (connect(fds[ns], (struct sockaddr *)&dst, sizeof dst) < 0) { perror("connect"); return 1; }
        ns++;
    }
    static char payload[65536];
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

/* udp-sink CNT ADDR PORT READ : binds; reads (recvmmsg) only when READ is 1 */
static int udp_sink(char **a, int n)
{
    (void)n;
    volatile uint64_t *cnt = counter(a[0]);
    int fd = bound_socket(SOCK_DGRAM, a[1], atoi(a[2]));
    int reading = atoi(a[3]);
    printf("ready\n"); fflush(stdout);
    if (!reading) { while (!stopping) pause(); return 0; }
    static char bufs[BATCH][2048];
    struct iovec iov[BATCH];
    struct mmsghdr msgs[BATCH];
    memset(msgs, 0, sizeof msgs);
    for (int i = 0; i < BATCH; i++) {
        iov[i].iov_base = bufs[i]; iov[i].iov_len = sizeof bufs[i];
        msgs[i].msg_hdr.msg_iov = &iov[i]; msgs[i].msg_hdr.msg_iovlen = 1;
    }
    uint64_t got = 0, calls = 0;
    while (!stopping) {
        int r = recvmmsg(fd, msgs, BATCH, MSG_WAITFORONE, NULL);
        calls++;
        if (r > 0) got += r;
        cnt[0] = got; cnt[1] = calls;
    }
    return 0;
}

/* tcp-send CNT PORT SECONDS MAXBYTES DST SRC... : one stream per source */
static int tcp_send(char **a, int n)
{
    volatile uint64_t *cnt = counter(a[0]);
    int port = atoi(a[1]);
    double seconds = atof(a[2]);
    uint64_t limit = strtoull(a[3], NULL, 10);
    struct sockaddr_in dst;
    sockaddr_of(a[4], port, &dst);
    struct pollfd p[MAXS];
    int ns = 0;
    for (int i = 5; i < n && ns < MAXS; i++) {
        int fd = bound_socket(SOCK_STREAM, a[i], 0);
        if (connect(fd, (struct sockaddr *)&dst, sizeof dst) < 0) { perror("connect"); return 1; }
        fcntl(fd, F_SETFL, O_NONBLOCK);
        p[ns].fd = fd; p[ns].events = POLLOUT; ns++;
    }
    static char buf[256 * 1024];
    memset(buf, 't', sizeof buf);
    double end = now() + seconds;
    uint64_t sent = 0, calls = 0;
    while (!stopping && sent < limit && now() < end) {
        if (poll(p, ns, 100) <= 0) continue;
        for (int i = 0; i < ns; i++) {
            if (!(p[i].revents & POLLOUT)) continue;
            ssize_t r = send(p[i].fd, buf, sizeof buf, MSG_DONTWAIT | MSG_NOSIGNAL);
            calls++;
            if (r > 0) sent += r;
        }
        cnt[0] = sent; cnt[1] = calls;
    }
    for (int i = 0; i < ns; i++) close(p[i].fd);
    printf("%llu\n", (unsigned long long)sent);
    return 0;
}

/* tcp-sink CNT ADDR PORT : accepts and reads every stream, counting bytes */
static int tcp_sink(char **a, int n)
{
    (void)n;
    volatile uint64_t *cnt = counter(a[0]);
    int lfd = bound_socket(SOCK_STREAM, a[1], atoi(a[2]));
    if (listen(lfd, 64) < 0) { perror("listen"); return 1; }
    printf("ready\n"); fflush(stdout);
    struct pollfd p[MAXS + 1];
    int np = 1;
    p[0].fd = lfd; p[0].events = POLLIN;
    static char buf[1024 * 1024];
    uint64_t got = 0, calls = 0;
    while (!stopping) {
        if (poll(p, np, 200) <= 0) continue;
        if ((p[0].revents & POLLIN) && np <= MAXS) {
            int fd = accept(lfd, NULL, NULL);
            if (fd >= 0) { p[np].fd = fd; p[np].events = POLLIN; p[np].revents = 0; np++; }
        }
        for (int i = 1; i < np; i++) {
            if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            ssize_t r = recv(p[i].fd, buf, sizeof buf, MSG_DONTWAIT);
            calls++;
            if (r > 0) got += r;
            else if (r == 0 || (errno != EAGAIN && errno != EINTR)) { close(p[i].fd); p[i] = p[--np]; i--; }
        }
        cnt[0] = got; cnt[1] = calls;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (argc < 3) { fprintf(stderr, "usage: vfgen udp-send|udp-sink|tcp-send|tcp-sink CNTFILE ...\n"); return 2; }
    char **a = argv + 2;
    int n = argc - 2;
    if (!strcmp(argv[1], "udp-send") && n >= 7) return udp_send(a, n);
    if (!strcmp(argv[1], "udp-sink") && n >= 4) return udp_sink(a, n);
    if (!strcmp(argv[1], "tcp-send") && n >= 6) return tcp_send(a, n);
    if (!strcmp(argv[1], "tcp-sink") && n >= 3) return tcp_sink(a, n);
    fprintf(stderr, "vfgen: bad arguments\n");
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
    subprocess.run([cc, "-O2", "-o", str(vfgen), str(source)], check=True)
    c_loop = workdir / "c_loop"
    result = subprocess.run([cc, "-O2", "-o", str(c_loop), str(ROOT / "bench" / "c_loop.c"), "-lnetfilter_queue"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        return vfgen, None, result.stderr.strip()
    return vfgen, c_loop, ""


# -- processes and counters ------------------------------------------------------------------------

PROCESSES: list[subprocess.Popen] = []


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


PIN = True  # --no-pin: let the scheduler place everything


def taskset(cpus: str) -> list[str]:
    return ["taskset", "-c", cpus] if PIN and cpus else []


def in_netns(netns: str, argv: list[str], cpus: str = "") -> list[str]:
    """`ip netns exec` and `taskset` both exec(): the PID of the Popen is the program's."""
    return ["ip", "netns", "exec", netns, *taskset(cpus), *argv]


def cpu_seconds(pid: int) -> tuple[float, float]:
    """utime and stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) / CLK_TCK, int(fields[12]) / CLK_TCK


def queue_stats(pid: int) -> dict[int, dict[str, int]]:
    """The nfnetlink_queue lines of the namespace `pid` lives in."""
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


def cpu_times() -> dict[str, list[int]]:
    """/proc/stat per CPU: user nice system idle iowait irq softirq steal (ticks)."""
    out = {}
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu") and line[3].isdigit():
                name, *values = line.split()
                out[name] = [int(v) for v in values[:8]]
    return out


def busy(a: dict[str, list[int]], b: dict[str, list[int]]) -> dict[str, dict[str, float]]:
    """Per CPU: the share of time in user, system, softirq and idle between two cpu_times()."""
    out = {}
    for cpu in b:
        d = [y - x for x, y in zip(a[cpu], b[cpu])]
        total = sum(d) or 1
        out[cpu] = {"user": (d[0] + d[1]) / total, "system": d[2] / total, "softirq": (d[5] + d[6]) / total,
                    "idle": (d[3] + d[4]) / total}
    return out


def read_counter(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return int.from_bytes(f.read(8), "little")
    except (FileNotFoundError, ValueError):
        return 0


# -- the topology ----------------------------------------------------------------------------------


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


class Topology:
    def __init__(self, workdir: Path) -> None:
        tag = uuid.uuid4().hex[:6]
        self.node, self.ct, self.out = f"vfb-{tag}-node", f"vfb-{tag}-ct", f"vfb-{tag}-out"
        self.workdir = workdir
        self.conf_dir, self.run_dir = workdir / "conf", workdir / "run"
        self.created: list[str] = []
        self.ifindex = 0

    def build(self) -> None:
        for ns in (self.node, self.ct, self.out):
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
        apply_sysctls(self.node)  # forwarding etc., inside the node namespace only
        # the container, given its addresses and started by venetctl on the node
        self.run_dir.mkdir(mode=0o700)
        self.venetctl("set", CTID, "--ipadd", ",".join([*CT_ADDRESSES, CT_V6]), "--save")
        self.venetctl("start", CTID, "--netns", self.ct)
        link = subprocess.run(["ip", "-n", self.node, "-j", "link", "show", f"ve-{CTID}"], check=True,
                              capture_output=True, text=True)
        self.ifindex = json.loads(link.stdout)[0]["ifindex"]
        # what the container's root may do anyway: an address that is not the container's
        ip("-n", self.ct, "addr", "add", f"{SPOOFED}/32", "dev", "venet0")

    def venetctl(self, *args: str) -> None:
        """`venetctl ARGS`, run on the node (inside its namespace)."""
        subprocess.run(["ip", "netns", "exec", self.node, PY, "-m", "venetfilter.cli", "--conf-dir", str(self.conf_dir),
                        "--run-dir", str(self.run_dir), *args], check=True, capture_output=True, text=True, cwd=ROOT)

    def cleanup(self) -> None:
        for proc in list(PROCESSES):
            finish(proc, timeout=3)
        for ns in reversed(self.created):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.created.clear()


# -- workers ---------------------------------------------------------------------------------------


class Worker:
    """One running worker of a case; `packets()` is its own count of packets handled."""

    def __init__(self, case: Case, topo: Topology, c_loop: Path | None) -> None:
        self.case, self.topo = case, topo
        self.proc: subprocess.Popen | None = None
        self.log = topo.workdir / f"worker-{case.name}.log"
        if case.kind == "kernel":
            return
        if case.kind == "cloop":
            assert c_loop is not None
            argv = in_netns(topo.node, [str(c_loop), "0"], case.cpus)
        elif case.kind == "naive":
            argv = [*taskset(case.cpus), PY, str(ROOT / "bench" / "naive_worker.py"),
                    "--netns", topo.node, "--run-dir", str(topo.run_dir)]
        else:
            argv = [*taskset(case.cpus), PY, "-m", "venetfilter.cli", "worker", "--netns", topo.node,
                    "--run-dir", str(topo.run_dir), "--backend", case.backend, "--queues", str(case.queues),
                    "--log-rate", "5"]
        with open(self.log, "wb") as log:
            self.proc = spawn(argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{case.label} exited with {self.proc.returncode}: {self.log.read_text()}")
            if self._ready():
                return
            time.sleep(0.05)
        raise RuntimeError(f"{case.label} did not come up: {self.log.read_text()}")

    def _ready(self) -> bool:
        bound = queue_stats(self.proc.pid)
        if any(q not in bound for q in range(self.case.queues)):
            return False
        return self.case.kind == "cloop" or self.stats() is not None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def stats(self) -> dict | None:
        if self.case.kind in ("kernel", "cloop"):
            return None
        try:
            answer = request(self.topo.run_dir, b"stats\n", timeout=5)
        except OSError:
            return None
        return json.loads(answer) if answer.startswith(b"{") else None

    def queues(self) -> dict[int, dict[str, int]]:
        return queue_stats(self.proc.pid) if self.proc else {}

    def packets(self) -> int | None:
        """The worker's own counter; for the C loop the kernel's (ids handed out minus user_dropped)."""
        if self.case.kind == "kernel":
            return None
        if self.case.kind == "cloop":
            return sum(q["id_sequence"] - q["user_dropped"] for q in self.queues().values())
        stats = self.stats()
        return None if stats is None else int(stats["packets"])

    def verdicts(self) -> dict[str, int]:
        stats = self.stats() or {}
        return dict(stats.get("containers", {}).get(CTID, {}))

    def stop(self) -> None:
        code = finish(self.proc, timeout=10)
        if code not in (None, 0, -signal.SIGTERM):
            print(f"  warning: {self.case.label} exited with {code}", file=sys.stderr)


# -- one measurement -------------------------------------------------------------------------------


@dataclass
class Sample:
    t: float
    user: float = 0.0
    system: float = 0.0
    packets: int | None = None
    queues: dict[int, dict[str, int]] = field(default_factory=dict)
    delivered: int = 0  # UDP: datagrams at the receiver's socket; TCP: bytes read
    sent: int = 0
    cpus: dict[str, list[int]] = field(default_factory=dict)


class Bench:
    def __init__(self, topo: Topology, vfgen: Path, seconds: float) -> None:
        self.topo, self.vfgen, self.seconds = topo, vfgen, seconds
        self.port = 5000

    def _sink(self, protocol: str, counter: Path, read: bool = False) -> subprocess.Popen:
        self.port += 1
        mode = ["udp-sink", str(counter), OUTSIDE, str(self.port), str(int(read))] if protocol == "udp" else \
            ["tcp-sink", str(counter), OUTSIDE, str(self.port)]
        sink = spawn(in_netns(self.topo.out, [str(self.vfgen), *mode], RECV_CPU), stdout=subprocess.PIPE, text=True)
        if sink.stdout.readline().strip() != "ready":
            raise RuntimeError("the receiver did not start")
        return sink

    def _sample(self, worker: Worker, sink: subprocess.Popen, protocol: str, sink_counter: Path,
                send_counter: Path) -> Sample:
        s = Sample(time.monotonic())
        if worker.pid:
            s.packets = worker.packets()  # first: the control socket may take a few ms under load
            s.queues = worker.queues()
            s.user, s.system = cpu_seconds(worker.pid)
        if protocol == "udp":
            counters = snmp(sink.pid)
            s.delivered = counters["Udp.InDatagrams"] + counters["Udp.RcvbufErrors"]
        else:
            s.delivered = read_counter(sink_counter)
        s.sent = read_counter(send_counter)
        s.cpus = cpu_times()
        s.t = (s.t + time.monotonic()) / 2
        return s

    def measure(self, worker: Worker, traffic: str) -> dict:
        protocol, size = TRAFFIC[traffic]
        sink_counter, send_counter = self.topo.workdir / "sink.cnt", self.topo.workdir / "send.cnt"
        for path in (sink_counter, send_counter):
            path.unlink(missing_ok=True)
        sink = self._sink(protocol, sink_counter)
        duration = WARMUP + self.seconds + TAIL
        if protocol == "udp":
            args = ["udp-send", str(send_counter), str(self.port), str(size), str(duration), str(MAX_PACKETS),
                    OUTSIDE, *CT_ADDRESSES]
        else:
            args = ["tcp-send", str(send_counter), str(self.port), str(duration), str(MAX_BYTES), OUTSIDE,
                    *CT_ADDRESSES[:TCP_STREAMS]]
        sender = spawn(in_netns(self.topo.ct, [str(self.vfgen), *args], SEND_CPU),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(WARMUP)
            a = self._sample(worker, sink, protocol, sink_counter, send_counter)
            time.sleep(self.seconds)
            b = self._sample(worker, sink, protocol, sink_counter, send_counter)
            out, err = sender.communicate(timeout=duration + 30)
            if sender.returncode != 0:
                raise RuntimeError(f"the sender failed ({sender.returncode}): {err.strip()}")
        finally:
            finish(sender)
            finish(sink)
        self._settle(worker)
        dt = b.t - a.t
        result: dict = {"seconds": dt, "sent_per_s": (b.sent - a.sent) / dt, "cpus": busy(a.cpus, b.cpus)}
        if protocol == "udp":
            result["delivered_pps"] = (b.delivered - a.delivered) / dt
        else:
            result["delivered_mbps"] = (b.delivered - a.delivered) * 8 / dt / 1e6
        if worker.pid:
            packets = (b.packets or 0) - (a.packets or 0)
            q = {k: sum(b.queues[n][k] - a.queues.get(n, {}).get(k, 0) for n in b.queues)
                 for k in ("queue_dropped", "user_dropped", "id_sequence")}
            result.update({
                "handled": packets,
                "handled_pps": packets / dt,
                "user_s": b.user - a.user,
                "system_s": b.system - a.system,
                "queue_dropped": q["queue_dropped"],
                "user_dropped": q["user_dropped"],
                "queued": q["id_sequence"] - q["user_dropped"],
                "per_queue": {n: b.queues[n]["id_sequence"] - a.queues.get(n, {}).get("id_sequence", 0)
                              for n in b.queues},
            })
            if packets > 0:
                result["user_ns"] = result["user_s"] / packets * 1e9
                result["system_ns"] = result["system_s"] / packets * 1e9
                result["total_ns"] = result["user_ns"] + result["system_ns"]
        return result

    @staticmethod
    def _settle(worker: Worker) -> None:
        """Let the worker empty its queues before the next run."""
        deadline = time.monotonic() + 3
        while worker.pid and time.monotonic() < deadline:
            if all(q["waiting"] == 0 for q in worker.queues().values()):
                break
            time.sleep(0.05)
        time.sleep(0.2)

    # -- is it enforcing? ------------------------------------------------------------------------

    def probe(self, worker: Worker, source: str, count: int = 20) -> tuple[int, dict[str, int]]:
        """`count` datagrams from `source` in the container: (how many arrived, verdict counters delta)."""
        sink = self._sink("udp", self.topo.workdir / "probe.cnt", read=True)
        try:
            before, verdicts = snmp(sink.pid)["Udp.InDatagrams"], worker.verdicts()

            def send() -> None:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    sock.bind((source, 0))
                    for _ in range(count):
                        sock.sendto(b"probe", (OUTSIDE, self.port))

            run_in_netns(self.topo.ct, send)
            time.sleep(0.3)
            arrived = snmp(sink.pid)["Udp.InDatagrams"] - before
            after = worker.verdicts()
            return arrived, {k: after.get(k, 0) - verdicts.get(k, 0) for k in after if after.get(k, 0) != verdicts.get(k, 0)}
        finally:
            finish(sink)


# -- the report ------------------------------------------------------------------------------------


def median(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def machine() -> dict:
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "nproc": os.cpu_count(), "cpu": model, "kernel": platform.release()}


def fmt(value: float | None, spec: str = ",.0f", suffix: str = "") -> str:
    return "–" if value is None else f"{value:{spec}}{suffix}"


def summarize(results: dict[str, dict[str, list[dict]]]) -> dict[str, dict[str, dict]]:
    summary: dict[str, dict[str, dict]] = {}
    for traffic in TRAFFIC:
        for case in CASES:
            runs = results.get(case.name, {}).get(traffic)
            if not runs:
                continue
            keys = ("delivered_pps", "delivered_mbps", "handled_pps", "user_ns", "system_ns", "total_ns",
                    "queue_dropped", "user_dropped", "sent_per_s")
            summary.setdefault(traffic, {})[case.name] = {k: median(runs, k) for k in keys}
    return summary


def table(summary: dict[str, dict[str, dict]]) -> str:
    lines = ["| traffic | worker | delivered | × naive | % kernel-only | handled pkt/s | user ns/pkt | "
             "sys ns/pkt | total ns/pkt | queue_dropped | user_dropped |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for traffic, cases in summary.items():
        key = "delivered_mbps" if TRAFFIC[traffic][0] == "tcp" else "delivered_pps"
        unit = " Mbit/s" if key == "delivered_mbps" else " pkt/s"
        naive, kernel = cases.get("naive", {}).get(key), cases.get("kernel", {}).get(key)
        for case in CASES:
            m = cases.get(case.name)
            if m is None:
                continue
            d = m[key]
            lines.append(
                f"| {TRAFFIC_LABEL[traffic]} | {case.label} | {fmt(d, ',.0f', unit)} | "
                f"{fmt(d / naive if d and naive else None, '.2f', '×')} | "
                f"{fmt(d / kernel * 100 if d and kernel else None, '.0f', ' %')} | {fmt(m['handled_pps'])} | "
                f"{fmt(m['user_ns'])} | {fmt(m['system_ns'])} | {fmt(m['total_ns'])} | "
                f"{fmt(m['queue_dropped'])} | {fmt(m['user_dropped'])} |")
    return "\n".join(lines)


def targets(summary: dict[str, dict[str, dict]]) -> tuple[str, list[dict]]:
    """The issue's targets, one row each, one column per traffic (CPU targets: UDP only, since the
    native backend queues TCP as GSO super-packets and the others as segments)."""
    verdicts: list[dict] = []

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a is not None and b else None

    def cell(traffic: str, name: str, value: float | None, limit: float, at_most: bool) -> str:
        if value is None:
            return "–"
        met = value <= limit if at_most else value >= limit
        verdicts.append({"target": name, "traffic": traffic, "value": value, "limit": limit, "met": met})
        return f"{value:.3f}× {'met' if met else '**not met**'}"

    def row(name: str, limit: float, at_most: bool, values: dict[str, float | None]) -> str:
        cells = [cell(t, name, values.get(t), limit, at_most) for t in summary]
        return f"| {name} | " + " | ".join(cells) + " |"

    def m(traffic: str, case: str, key: str) -> float | None:
        return summary[traffic].get(case, {}).get(key)

    def delivered(traffic: str) -> str:
        return "delivered_mbps" if TRAFFIC[traffic][0] == "tcp" else "delivered_pps"

    udp = [t for t in summary if TRAFFIC[t][0] == "udp"]
    rows = [
        row("native user CPU/pkt ÷ plain C loop (≤ 1.3)", 1.3, True,
            {t: ratio(m(t, "native1", "user_ns"), m(t, "cloop", "user_ns")) for t in udp}),
        row("native total CPU/pkt ÷ netfilterqueue backend (≤ 0.8)", 0.8, True,
            {t: ratio(m(t, "native1", "total_ns"), m(t, "nfq", "total_ns")) for t in udp}),
        row("native total CPU/pkt ÷ plain C loop (≤ 0.8)", 0.8, True,
            {t: ratio(m(t, "native1", "total_ns"), m(t, "cloop", "total_ns")) for t in udp}),
    ]
    for case, label in (("native1", "1 queue"), ("native2", "2 queues")):
        rows.append(row(f"native {label} delivered ÷ naive (≥ 2)", 2.0, False,
                        {t: ratio(m(t, case, delivered(t)), m(t, "naive", delivered(t))) for t in summary}))
        rows.append(row(f"native {label} delivered ÷ kernel-only (≥ 0.8)", 0.8, False,
                        {t: ratio(m(t, case, delivered(t)), m(t, "kernel", delivered(t))) for t in summary}))
    head = "| target | " + " | ".join(TRAFFIC_LABEL[t] for t in summary) + " |"
    rule = "|---|" + "---:|" * len(summary)
    return "\n".join([head, rule, *rows]), verdicts


# -- main ------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="measured seconds per run (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per case and traffic; medians reported")
    parser.add_argument("--json", type=Path, help="write every run and the medians to this file")
    parser.add_argument("--cases", default=",".join(c.name for c in CASES),
                        help="comma-separated subset of " + ",".join(c.name for c in CASES))
    parser.add_argument("--traffic", default=",".join(TRAFFIC), help="comma-separated subset of " + ",".join(TRAFFIC))
    parser.add_argument("--no-pin", action="store_true", help="no taskset: the scheduler places everything")
    args = parser.parse_args(argv)
    global PIN
    PIN = not args.no_pin
    if os.geteuid() != 0:
        print("bench/e2e.py needs root: it creates network namespaces", file=sys.stderr)
        return 1
    if not 0.5 <= args.seconds <= 30 or not 1 <= args.repeats <= 10:
        parser.error("--seconds must be 0.5..30 and --repeats 1..10 (every load stays bounded)")
    wanted_cases = [c for c in CASES if c.name in args.cases.split(",")]
    wanted_traffic = [t for t in TRAFFIC if t in args.traffic.split(",")]
    started = time.monotonic()
    info = machine()
    print(f"# venetfilter end-to-end benchmark, {info['date']}")
    print(f"machine: {info['nproc']} CPUs ({info['cpu']}), kernel {info['kernel']}\n", flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="venetfilter-e2e-"))
    topo = Topology(workdir)
    cleaned = False

    def cleanup() -> None:
        nonlocal cleaned
        if not cleaned:
            cleaned = True
            topo.cleanup()
            shutil.rmtree(workdir, ignore_errors=True)

    atexit.register(cleanup)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started with SIGINT ignored
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))
    results: dict[str, dict[str, list[dict]]] = {}
    checks: dict[str, dict] = {}
    notes: list[str] = []
    try:
        vfgen, c_loop, why = compile_tools(workdir)
        if c_loop is None:
            notes.append(f"the C loop was not built (install libnetfilter-queue-dev): {why}")
            wanted_cases = [c for c in wanted_cases if c.kind != "cloop"]
        topo.build()
        bench = Bench(topo, vfgen, args.seconds)
        rules = None
        for case in wanted_cases:
            spec = None if case.kind == "kernel" else QueueSpec(balance=(0, case.queues - 1)) \
                if case.queues > 1 else QueueSpec(queue=0)
            if spec != rules:
                if spec is None:
                    remove_rules(netns=topo.node)
                else:
                    install_rules(spec, netns=topo.node)
                rules = spec
            print(f"== {case.label}", flush=True)
            worker = Worker(case, topo, c_loop)
            try:
                if case.kind in ("naive", "venetfilter"):
                    ok, ok_verdicts = bench.probe(worker, CT_ADDRESSES[0])
                    bad, bad_verdicts = bench.probe(worker, SPOOFED)
                    checks[case.name] = {"own_address_arrived": ok, "own_address_verdicts": ok_verdicts,
                                         "spoofed_arrived": bad, "spoofed_verdicts": bad_verdicts}
                    print(f"   own address: {ok}/20 arrived {ok_verdicts}; spoofed {SPOOFED}: {bad}/20 arrived "
                          f"{bad_verdicts}", flush=True)
                    if ok != 20 or bad != 0:
                        notes.append(f"{case.label}: enforcement check failed: own {ok}/20, spoofed {bad}/20")
                    before = worker.verdicts()
                for traffic in wanted_traffic:
                    for i in range(args.repeats):
                        r = bench.measure(worker, traffic)
                        results.setdefault(case.name, {}).setdefault(traffic, []).append(r)
                        shown = f"{r['delivered_pps']:,.0f} pkt/s" if "delivered_pps" in r \
                            else f"{r['delivered_mbps']:,.0f} Mbit/s"
                        extra = ""
                        if "handled" in r:
                            extra = (f", handled {r['handled_pps']:,.0f}/s, user {r.get('user_ns', 0):,.0f} ns, "
                                     f"sys {r.get('system_ns', 0):,.0f} ns, drops {r['queue_dropped']:,}/"
                                     f"{r['user_dropped']:,}, per queue {r['per_queue']}")
                            if case.kind != "cloop" and abs(r["queued"] - r["handled"]) > 0.03 * max(r["queued"], 1):
                                notes.append(f"{case.label} {traffic}: the worker counted {r['handled']:,} packets, "
                                             f"the kernel queued {r['queued']:,}")
                        load = " ".join(f"{cpu} {1 - u['idle']:.0%} (sirq {u['softirq']:.0%})"
                                        for cpu, u in r["cpus"].items())
                        print(f"   {TRAFFIC_LABEL[traffic]} #{i + 1}: {shown} (sent {r['sent_per_s']:,.0f}/s){extra}; "
                              f"busy: {load}", flush=True)
                if case.kind in ("naive", "venetfilter"):
                    after = worker.verdicts()
                    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
                    checks[case.name]["load_verdicts"] = delta
                    dropped = {k: v for k, v in delta.items() if k != "ACCEPT" and v}
                    if dropped:
                        notes.append(f"{case.label}: legitimate load was dropped: {dropped}")
            finally:
                worker.stop()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        cleanup()

    summary = summarize(results)
    print(f"\n# Results: medians of {args.repeats} runs of {args.seconds:g} s, {info['date']}")
    pinning = (f"sender pinned to CPU {SEND_CPU}, worker to CPU {WORKER_CPU} (2-queue worker: CPUs {BOTH_CPUS}), "
               f"TCP receiver to CPU {RECV_CPU}" if PIN else "nothing pinned")
    print(f"machine: {info['nproc']} CPUs ({info['cpu']}), kernel {info['kernel']}; load: vfgen (C, sendmmsg, "
          f"8 source addresses; TCP: {TCP_STREAMS} streams); {pinning}\n")
    print(table(summary))
    target_text, verdicts = targets(summary)
    print("\n" + target_text)
    enforcing = [c.label for c in wanted_cases if c.name in checks]
    if enforcing:
        held = all(v["own_address_arrived"] == 20 and v["spoofed_arrived"] == 0 and
                   not any(n for k, n in v.get("load_verdicts", {}).items() if k != "ACCEPT") for v in checks.values())
        print(f"\nEnforcement ({', '.join(c.name for c in wanted_cases if c.name in checks)}): "
              + ("each let 20/20 datagrams from the container's own address through, dropped 20/20 from "
                 f"{SPOOFED} (DROP_SOURCE), and judged every load packet ACCEPT." if held else "FAILED, see the notes."))
    if notes:
        print("\nNotes:")
        for note in notes:
            print(f"- {note}")
    elapsed = time.monotonic() - started
    print(f"\n(whole run: {elapsed:.0f} s)")
    if args.json:
        args.json.write_text(json.dumps({"machine": info, "seconds": args.seconds, "repeats": args.repeats,
                                         "runs": results, "medians": summary, "targets": verdicts,
                                         "checks": checks, "notes": notes, "elapsed": elapsed}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
