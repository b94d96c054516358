"""The whole stack on namespaces of its own: ``python -m venetfilter.demo`` (as root).

A namespace plays the hardware node; two containers get addresses the vzctl way and are started;
an outside host sits behind the node's uplink. The worker starts (it installs the kernel table),
and then: honest traffic passes, a container that helps itself to an extra address is stopped, live
changes take effect, another tool's ``nft flush ruleset`` is undone, and the worker's counters are
shown. Everything it made is removed at the end, also on
failure or Ctrl-C.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

__all__ = ["main"]

UPLINK = ("198.51.100.1/24", "2001:db8:ffff::1/64")
OUTSIDE = ("198.51.100.2", "2001:db8:ffff::2")
CONTAINERS = {"101": ("192.0.2.1", "2001:db8:1::1"), "102": ("192.0.2.2", "2001:db8:2::2")}


class Demo:
    def __init__(self, workdir: Path) -> None:
        tag = uuid.uuid4().hex[:6]
        self.node, self.outside = f"vfdemo-node-{tag}", f"vfdemo-out-{tag}"
        self.cts = {ctid: f"vfdemo-ct{ctid}-{tag}" for ctid in CONTAINERS}
        self.conf_dir, self.run_dir = workdir / "conf", workdir / "run"
        self.namespaces: list[str] = []
        self.worker: subprocess.Popen[bytes] | None = None

    # -- helpers -----------------------------------------------------------------------------------

    def sh(self, argv: Sequence[str], *, show: bool = True, check: bool = True) -> subprocess.CompletedProcess[str]:
        if show:
            print(f"  $ {shlex.join(argv)}")
        result = subprocess.run(list(argv), capture_output=True, text=True)
        if show and (result.stdout.strip() or result.stderr.strip()):
            for line in (result.stdout + result.stderr).strip().splitlines():
                print(f"    {line}")
        if check and result.returncode != 0:
            raise RuntimeError(f"{shlex.join(argv)} failed with {result.returncode}: {result.stderr.strip()}")
        return result

    def venetctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """venetctl as the node's admin types it (run inside the node namespace)."""
        print(f"  node# venetctl {shlex.join(args)}")
        env_args = ["--conf-dir", str(self.conf_dir), "--run-dir", str(self.run_dir)]
        result = self.sh(["ip", "netns", "exec", self.node, sys.executable, "-m", "venetfilter.cli", *env_args, *args],
                         show=False, check=check)
        for line in (result.stdout + result.stderr).strip().splitlines():
            print(f"    {line}")
        return result

    def ping(self, ctid: str, source: str, destination: str) -> bool:
        ok = self.sh(["ip", "netns", "exec", self.cts[ctid], "ping", "-n", "-q", "-c", "1", "-W", "1",
                      "-I", source, destination], show=False, check=False).returncode == 0
        print(f"  ct{ctid}$ ping -I {source} {destination}: {'reply' if ok else 'no reply (dropped)'}")
        return ok

    # -- the story ---------------------------------------------------------------------------------

    def build(self) -> None:
        print("\n== A hardware node, an outside host behind its uplink, two container namespaces")
        for ns in (self.node, self.outside, *self.cts.values()):
            self.sh(["ip", "netns", "add", ns], show=False)
            self.namespaces.append(ns)
            self.sh(["ip", "-n", ns, "link", "set", "lo", "up"], show=False)
        self.sh(["ip", "-n", self.node, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", self.outside])
        for address in UPLINK:
            self.sh(["ip", "-n", self.node, "addr", "add", address, "dev", "eth0", *(["nodad"] if ":" in address else [])])
        self.sh(["ip", "-n", self.node, "link", "set", "eth0", "up"])
        for address, gateway in zip(OUTSIDE, UPLINK):
            prefix = "/24" if ":" not in address else "/64"
            self.sh(["ip", "-n", self.outside, "addr", "add", address + prefix, "dev", "eth0",
                     *(["nodad"] if ":" in address else [])], show=False)
        self.sh(["ip", "-n", self.outside, "link", "set", "eth0", "up"], show=False)
        self.sh(["ip", "-n", self.outside, "route", "add", "default", "via", UPLINK[0].split("/")[0]], show=False)
        self.sh(["ip", "-n", self.outside, "-6", "route", "add", "default", "via", UPLINK[1].split("/")[0]], show=False)
        self.venetctl("sysctl", "--apply")

    def start_containers(self) -> None:
        print("\n== Addresses are the admin's to give (vzctl set --ipadd --save), then the containers start")
        for ctid, addresses in CONTAINERS.items():
            self.venetctl("set", ctid, "--ipadd", ",".join(addresses), "--save")
            self.venetctl("start", ctid, "--netns", self.cts[ctid])
        self.venetctl("list")

    def enforce(self) -> None:
        print("\n== The worker installs the kernel table: honest traffic stays in the kernel, the rest is judged")
        argv = [sys.executable, "-m", "venetfilter.cli", "worker", "--netns", self.node, "--run-dir", str(self.run_dir)]
        print(f"  node# venetctl worker --netns {self.node} &")
        with open(self.run_dir / "worker.log", "wb") as log:  # the worker keeps its own copy
            self.worker = subprocess.Popen(argv, stdout=log, stderr=log)
        for _ in range(100):
            if (self.run_dir / "worker.sock").exists():
                break
            time.sleep(0.05)
        time.sleep(0.2)

    def traffic(self) -> bool:
        ok = True
        print("\n== Honest traffic passes: each container by its own addresses, IPv4 and IPv6")
        for ctid, (v4, v6) in CONTAINERS.items():
            ok &= self.ping(ctid, v4, OUTSIDE[0])
            ok &= self.ping(ctid, v6, OUTSIDE[1])
        ok &= self.ping("101", CONTAINERS["101"][0], CONTAINERS["102"][0])

        print("\n== Container 101's root gives itself 192.0.2.99 and 102's address: venet drops both")
        for address in ("192.0.2.99/32", CONTAINERS["102"][0] + "/32"):
            self.sh(["ip", "-n", self.cts["101"], "addr", "add", address, "dev", "venet0"])
        ok &= not self.ping("101", "192.0.2.99", OUTSIDE[0])
        ok &= not self.ping("101", CONTAINERS["102"][0], OUTSIDE[0])

        print("\n== Only the admin can give it: a live change, no restart of anything")
        self.venetctl("set", "101", "--ipadd", "192.0.2.99")
        ok &= self.ping("101", "192.0.2.99", OUTSIDE[0])
        self.venetctl("set", "101", "--ipdel", "192.0.2.99")
        print("  (the address is gone inside; when the container's root puts it back by hand, it is dropped)")
        self.sh(["ip", "-n", self.cts["101"], "addr", "add", "192.0.2.99/32", "dev", "venet0"])
        ok &= not self.ping("101", "192.0.2.99", OUTSIDE[0])

        print("\n== Another tool flushes the node's whole firewall: the worker puts its table back")
        self.sh(["ip", "netns", "exec", self.node, "nft", "flush", "ruleset"])
        time.sleep(1.0)
        ok &= not self.ping("101", "192.0.2.99", OUTSIDE[0])
        ok &= self.ping("101", CONTAINERS["101"][0], OUTSIDE[0])
        self.venetctl("rules", "show", "--netns", self.node)
        return ok

    def report(self) -> None:
        print("\n== What is true on the node now: every container isolated, the worker serving the state")
        self.venetctl("status")
        print("\n== The worker's counters and drop log")
        self.venetctl("stats")
        log = (self.run_dir / "worker.log").read_text(errors="replace").strip().splitlines()
        for line in log[-6:]:
            print(f"    {line}")

    def cleanup(self) -> None:
        if self.worker is not None:
            self.worker.terminate()
            try:
                self.worker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.worker.kill()
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def main(argv: Sequence[str] | None = None) -> int:
    if os.geteuid() != 0:
        print("the demo needs root: it creates network namespaces", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="venetfilter-demo-") as workdir:
        demo = Demo(Path(workdir))
        try:
            demo.build()
            demo.start_containers()
            demo.enforce()
            ok = demo.traffic()
            demo.report()
        finally:
            demo.cleanup()
    print("\n== Demo", "passed: venet's isolation held" if ok else "FAILED: see above")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
