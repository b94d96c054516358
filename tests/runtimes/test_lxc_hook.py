"""``venetctl hook lxc`` given what LXC gives it (arguments and environment), without LXC: bad input
with its exit codes and one-line messages, and the start/stop mapping on containers that are
processes in throwaway namespaces (the real LXC runs are in test_lxc.py)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli_runner import in_process
from venetfilter.errors import EXIT_ADDRESS_IN_USE, EXIT_INVALID, EXIT_NO_CONFIG, EXIT_RUNNING

LXC_ENV = ("LXC_NAME", "LXC_PID", "LXC_HOOK_TYPE", "LXC_HOOK_SECTION", "LXC_HOOK_VERSION", "LXC_CONFIG_FILE")


@pytest.fixture
def venetctl(capsys, tmp_path, monkeypatch):
    """``venetctl --conf-dir ... --run-dir ...`` in this process, with no LXC variable set."""
    for name in LXC_ENV:
        monkeypatch.delenv(name, raising=False)
    return in_process(capsys, ["--conf-dir", str(tmp_path / "conf"), "--run-dir", str(tmp_path / "run")])


# -- refused before anything is read or changed: no host needed -----------------------------------


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ((), {}, "not run by LXC (LXC_NAME not given)"),
        (("101",), {"LXC_NAME": "101"}, "unexpected arguments '101': LXC appends NAME SECTION HOOKTYPE"),
        (("101", "lxc", "start-host"), {}, "LXC_PID is not set"),
        (("101", "lxc", "start-host"), {"LXC_PID": "12ab"}, "LXC_PID='12ab' is not a process id"),
        (("101", "lxc", "start-host"), {"LXC_PID": "0"}, "LXC_PID='0' is not a process id"),
        (("101", "lxc", "pre-start"), {"LXC_PID": "1"}, "LXC hook type 'pre-start' is not handled"),
        (("101", "lxc", "stop", "net:/proc/1/fd/4"), {}, "LXC hook type 'stop' is not handled"),
        (("101", "net", "up", "veth", "vethX"), {}, "this is a container hook, not a network script"),
        (("101", "lxc", "post-stop"), {"LXC_NAME": "102"}, "LXC passed two container names: '101' as argument, "
                                                           "'102' in LXC_NAME"),
        ((), {"LXC_NAME": "101", "LXC_HOOK_VERSION": "1"}, "not run by LXC (the hook type not given)"),
        (("web frontend", "lxc", "start-host"), {"LXC_PID": "1"},
         "LXC container name 'web frontend' is not a valid CTID"),
        (("frontend-web-01", "lxc", "post-stop"), {}, "give one in the hook line, 'venetctl hook lxc --ctid CTID'"),
    ],
)
def test_bad_input_is_refused_with_one_line(venetctl, monkeypatch, tmp_path, args, env, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = venetctl("hook", "lxc", *args)
    assert result.code == EXIT_INVALID, result
    assert result.out == ""
    assert result.err.startswith("venetctl: ") and message in result.err and result.err.count("\n") == 1, result.err
    assert not (tmp_path / "run").exists() and not (tmp_path / "conf").exists()


@pytest.mark.parametrize(
    ("ctid", "message"),
    [("0", "CT 0 is the hardware node itself"), ("../101", "invalid container id '../101'"),
     ("1234567890123", "longer than 12 characters"), ("", "must not be empty")],
)
def test_bad_ctid_option_is_refused(venetctl, monkeypatch, ctid, message):
    monkeypatch.setenv("LXC_PID", str(os.getpid()))
    result = venetctl("hook", "lxc", "--ctid", ctid, "web", "lxc", "start-host")
    assert result.code == EXIT_INVALID, result
    assert message in result.err and result.err.count("\n") == 1, result.err


def test_post_stop_of_a_container_never_started_exits_0(venetctl):
    """LXC runs post-stop after a refused start too: no config, no record is nothing to stop."""
    result = venetctl("hook", "lxc", "101", "lxc", "post-stop")
    assert (result.code, result.err) == (0, ""), result
    assert result.out == "LXC container 101: CT 101: Container is not running\n"


def test_post_stop_of_a_stopped_container_exits_0(venetctl):
    assert venetctl("set", "web1", "--ipadd", "192.0.2.31", "--save").code == 0
    result = venetctl("hook", "lxc", "web1", "lxc", "post-stop")
    assert (result.code, result.err) == (0, ""), result
    assert result.out == "LXC container web1: CT web1: Container is not running\n"


# -- the mapping on the host: a node namespace, containers that are sleeping processes -------------


@dataclass
class HookNode:
    """A node namespace and the state directories; `hook` runs venetctl hook lxc in the node with
    the LXC environment given (a subprocess: what LXC does)."""

    netns: str
    conf_dir: Path
    run_dir: Path

    def venetctl(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        environ = {k: v for k, v in os.environ.items() if k not in LXC_ENV}
        environ.update(VENETFILTER_CONF_DIR=str(self.conf_dir), VENETFILTER_RUN_DIR=str(self.run_dir), **(env or {}))
        return subprocess.run(["nsenter", f"--net=/run/netns/{self.netns}", sys.executable, "-m", "venetfilter.cli",
                               *args], capture_output=True, text=True, env=environ, cwd="/")

    def hook(self, name: str, hook_type: str, pid: int | None, *options: str) -> subprocess.CompletedProcess[str]:
        env = {"LXC_NAME": name, "LXC_HOOK_VERSION": "0"} | ({"LXC_PID": str(pid)} if pid is not None else {})
        return self.venetctl("hook", "lxc", *options, name, "lxc", hook_type, env=env)

    def state(self) -> dict:
        path = self.run_dir / "state.json"
        return json.loads(path.read_text())["containers"] if path.exists() else {}

    def links(self) -> list[str]:
        out = subprocess.run(["ip", "-n", self.netns, "-j", "link", "show"], check=True, capture_output=True, text=True)
        return sorted(link["ifname"] for link in json.loads(out.stdout))


@pytest.fixture
def node(make_netns, tmp_path) -> Iterator[HookNode]:
    if os.geteuid() != 0:
        pytest.fail("the LXC hook tests need root (network namespaces)")
    built = HookNode(make_netns("vfl"), tmp_path / "conf", tmp_path / "run")
    installed = built.venetctl("rules", "install", "--netns", built.netns)  # a hook refuses a node without it
    assert installed.returncode == 0, installed.stderr
    yield built
    for ctid in list(built.state()):
        built.venetctl("stop", ctid)


@pytest.fixture
def sleeper(make_netns) -> Iterator:
    """Start processes that stand for a container's init, each in a new namespace of its own (or in
    the one given); ``sleeper.processes`` lists them."""
    processes: list[subprocess.Popen] = []

    def start(netns: str | None = None) -> int:
        netns = netns or make_netns("vfs")
        process = subprocess.Popen(["ip", "netns", "exec", netns, "sleep", "60"])
        processes.append(process)
        deadline = time.monotonic() + 5
        while os.stat(f"/proc/{process.pid}/ns/net").st_ino != os.stat(f"/run/netns/{netns}").st_ino:
            if time.monotonic() > deadline:
                raise AssertionError("the sleeper did not enter its namespace")
            time.sleep(0.01)
        return process.pid

    start.processes = processes  # type: ignore[attr-defined]
    yield start
    for process in processes:
        process.kill()
        process.wait()


@pytest.mark.netns
def test_start_host_and_post_stop_map_to_start_and_stop(node, sleeper):
    pid, other = sleeper(), sleeper()
    assert node.venetctl("set", "101", "--ipadd", "192.0.2.41", "--ipadd", "2001:db8:41::41", "--save").returncode == 0

    started = node.hook("101", "start-host", pid)
    assert started.returncode == 0, started.stderr
    assert "LXC container 101: CT 101 started, link vnf101" in started.stdout
    record = node.state()["101"]
    assert (record["phase"], record["netns"], record["addresses"]) == (
        "running", f"/proc/{pid}/ns/net", ["192.0.2.41", "2001:db8:41::41"])
    assert "vnf101" in node.links()
    inside = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", "ip", "-j", "addr", "show", "venet0"],
                            check=True, capture_output=True, text=True)
    assert {a["local"] for a in json.loads(inside.stdout)[0]["addr_info"]} >= {"192.0.2.41", "2001:db8:41::41"}

    # the same CTID given to a second LXC container: its start is refused, and its post-stop (LXC
    # runs it after the refused start) must not stop the first one's network
    again = node.hook("web2", "start-host", other, "--ctid", "101")
    assert again.returncode == EXIT_RUNNING and "container 101 is already running" in again.stderr, again
    left = node.hook("web2", "post-stop", other, "--ctid", "101")
    assert left.returncode == 0, left.stderr
    assert f"CT 101 runs in network namespace /proc/{pid}/ns/net, not in LXC container web2's" in left.stderr
    assert node.state()["101"]["phase"] == "running" and "vnf101" in node.links()

    stopped = node.hook("101", "post-stop", pid)
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout == "LXC container 101: CT 101: network stopped\n"
    assert node.state() == {} and "vnf101" not in node.links()
    repeated = node.hook("101", "post-stop", pid)
    assert (repeated.returncode, repeated.stdout) == (0, "LXC container 101: CT 101: Container is not running\n")


@pytest.mark.netns
def test_hook_version_1_and_directories_on_the_hook_line(node, sleeper, tmp_path):
    """lxc.hook.version = 1: no arguments, the environment says it all; --conf-dir/--run-dir in the
    hook line win over the environment."""
    pid = sleeper()
    conf, run = tmp_path / "other-conf", tmp_path / "other-run"
    options = ["--conf-dir", str(conf), "--run-dir", str(run)]
    assert node.venetctl("set", "7", "--ipadd", "192.0.2.47", "--save", *options).returncode == 0
    env = {"LXC_NAME": "database", "LXC_HOOK_VERSION": "1", "LXC_HOOK_SECTION": "lxc", "LXC_PID": str(pid)}
    started = node.venetctl("hook", "lxc", "--ctid", "7", *options, env=env | {"LXC_HOOK_TYPE": "start-host"})
    assert started.returncode == 0, started.stderr
    assert json.loads((run / "state.json").read_text())["containers"]["7"]["netns"] == f"/proc/{pid}/ns/net"
    assert not node.run_dir.exists()
    stopped = node.venetctl("hook", "lxc", "--ctid", "7", *options, env=env | {"LXC_HOOK_TYPE": "post-stop"})
    assert stopped.returncode == 0, stopped.stderr
    assert json.loads((run / "state.json").read_text())["containers"] == {}
    assert "vnf7" not in node.links()


@pytest.mark.netns
@pytest.mark.parametrize(
    ("case", "config", "code", "message"),
    [
        ("unknown CTID", None, EXIT_NO_CONFIG, "container 102 does not exist: no config file and not running"),
        ("address in use", '"2001:db8:51::51 192.0.2.51"', EXIT_ADDRESS_IN_USE,
         "Unable to add IP 192.0.2.51: Address already in use by container 101"),
        ("no such process", '"192.0.2.52"', EXIT_INVALID,
         "LXC_PID=4194305: no such process, the container's init is gone"),
    ],
)
def test_refused_start_leaves_nothing_behind(node, sleeper, case, config, code, message):
    pid = sleeper()
    assert node.venetctl("set", "101", "--ipadd", "192.0.2.51", "--save").returncode == 0
    if config is not None:  # written by hand: set would refuse another container's address
        node.conf_dir.joinpath("102.conf").write_text(f"IP_ADDRESS={config}\n")
    before = node.links()
    result = node.hook("102", "start-host", 4194305 if case == "no such process" else pid)  # beyond pid_max
    assert (result.returncode, result.stdout, result.stderr) == (code, "", f"venetctl: {message}\n")
    assert node.state() == {} and node.links() == before
    inside = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", "ip", "-o", "link"], check=True,
                            capture_output=True, text=True)
    assert "venet0" not in inside.stdout


@pytest.mark.netns
def test_what_the_hook_does_goes_to_syslog(node, sleeper, tmp_path):
    """LXC keeps what a hook prints for its debug log only: the hook also tells syslog
    (facility daemon, ident venetctl), a refusal at priority err. /dev/log is faked in a mount
    namespace of the hook's own."""
    pid = sleeper()
    path = tmp_path / "log"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as log:
        log.bind(str(path))
        log.settimeout(5)
        fake = f"mount -t tmpfs tmpfs /dev && ln -s {path} /dev/log && exec \"$@\""

        def hook(hook_type: str) -> subprocess.CompletedProcess[str]:
            environ = {k: v for k, v in os.environ.items() if k not in LXC_ENV}
            environ |= {"VENETFILTER_CONF_DIR": str(node.conf_dir), "VENETFILTER_RUN_DIR": str(node.run_dir),
                        "LXC_NAME": "102", "LXC_PID": str(pid)}
            command = ["nsenter", f"--net=/run/netns/{node.netns}", "unshare", "--mount", "sh", "-c", fake, "sh",
                       sys.executable, "-m", "venetfilter.cli", "hook", "lxc", "102", "lxc", hook_type]
            return subprocess.run(command, capture_output=True, text=True, env=environ, cwd="/")

        refused = hook("start-host")
        assert refused.returncode == EXIT_NO_CONFIG, refused.stderr
        message = log.recv(4096).decode()
        assert message.startswith("<27>") and "venetctl[" in message, message  # daemon.err
        assert message.endswith("hook lxc: LXC container 102: unknown container '102' (exit 14)"), message
        assert hook("post-stop").returncode == 0
        message = log.recv(4096).decode()
        assert message.startswith("<30>"), message  # daemon.info
        assert message.endswith("hook lxc: LXC container 102: CT 102: Container is not running"), message


@pytest.mark.netns
@pytest.mark.parametrize("case", ["the node's namespace", "a veth of its own"])
def test_a_namespace_that_is_not_bare_is_refused(node, sleeper, make_netns, case):
    """``lxc.net.0.type = none`` runs the container in the node's namespace; ``veth`` gives it a link
    that bypasses venet: either way the start is refused and nothing is changed."""
    assert node.venetctl("set", "101", "--ipadd", "192.0.2.71", "--save").returncode == 0
    if case == "the node's namespace":
        pid = sleeper(node.netns)
        message = "the container shares the host's network namespace"
    else:
        netns = make_netns("vfs")
        subprocess.run(["ip", "-n", node.netns, "link", "add", "vethX", "type", "veth", "peer", "name", "eth0",
                        "netns", netns], check=True)
        pid = sleeper(netns)
        message = "the container's network namespace already has eth0, which venetfilter would not filter"
    before = node.links()
    result = node.hook("101", "start-host", pid)
    assert result.returncode == EXIT_INVALID, result
    assert result.stderr == (f"venetctl: {message}: give it 'lxc.net.0.type = empty' and no other lxc.net.N "
                             "('none' shares the host's namespace)\n")
    assert node.state() == {} and node.links() == before


@pytest.mark.netns
def test_a_record_left_by_a_gone_container_is_stopped_first(node, sleeper):
    """An LXC container killed without its post-stop (the monitor killed too) and no worker to
    notice: its next start-host finds the record of a gone process and replaces it."""
    assert node.venetctl("set", "101", "--ipadd", "192.0.2.72", "--save").returncode == 0
    first = sleeper()
    assert node.hook("101", "start-host", first).returncode == 0
    sleeper.processes[0].kill()
    sleeper.processes[0].wait()
    second = sleeper()
    result = node.hook("101", "start-host", second)
    assert result.returncode == 0, result.stderr
    assert "container 101 was left running by an LXC container that is gone: stopped first" in result.stderr
    assert node.state()["101"]["netns"] == f"/proc/{second}/ns/net"
    assert node.hook("101", "post-stop", second).returncode == 0
    assert node.state() == {}
