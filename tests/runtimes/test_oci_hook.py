"""``venetctl hook oci`` given what an OCI runtime gives it (the state as JSON on stdin), without a
runtime: the state parsed, each bad input's exit code and one-line message with nothing left
behind, and start/stop on containers that are processes in throwaway namespaces (the real podman
runs are in test_podman.py)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runtimes.conftest import Stack, hook, leftovers, process_in
from venetfilter.config import load_state
from venetfilter.errors import (
    EXIT_ADDRESS_IN_USE,
    EXIT_INVALID,
    EXIT_NO_CONFIG,
    EXIT_RUNNING,
    InvalidContainerError,
    InvalidOptionError,
)
from venetfilter.runtimes.oci import ANNOTATION, action_of, ctid_of, parse_state

SHIPPED = Path(__file__).parents[2] / "contrib" / "oci-hooks.d" / "venetfilter.json"
ADDRESSES = {"101": ("192.0.2.11", "2001:db8:11::11"), "102": ("192.0.2.12", "2001:db8:12::12")}


def state(status: str = "creating", pid: int | None = None, ctid: str | None = "101", **extra: object) -> dict:
    """A runtime-spec state as podman + runc hand it over."""
    doc: dict = {"ociVersion": "1.0.2-dev", "id": "c0ffee" * 10 + "abcd", "status": status,
                 "bundle": "/nonexistent/userdata", "annotations": {"io.container.manager": "libpod"}}
    if pid is not None:
        doc["pid"] = pid
    if ctid is not None:
        doc["annotations"][ANNOTATION] = ctid
    return {**doc, **extra}


# -- the state and the stage, parsed in this process ----------------------------------------------


def test_parse_state_takes_what_runc_and_podman_give() -> None:
    parsed = parse_state(json.dumps(state(pid=4242)).encode())
    assert (parsed.status, parsed.pid, parsed.annotations[ANNOTATION]) == ("creating", 4242, "101")
    assert parsed.name == "OCI container c0ffeec0ffee"
    stopped = parse_state(json.dumps(state("stopped")))  # podman's poststop state has no pid
    assert stopped.pid is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "is not JSON"),
        (b"{\"id\": ", "is not JSON"),
        (b"\xff\xfe", "is not JSON"),
        (b"[]", "is not a JSON object"),
        (json.dumps(state(id="")), "has no container id"),
        (json.dumps({"id": "x"}), "has no status"),
        (json.dumps(state(pid="4242")), "has an invalid pid '4242'"),
        (json.dumps(state(pid=True)), "has an invalid pid True"),
        (json.dumps(state(pid=-1)), "has an invalid pid -1"),
        (json.dumps(state(annotations=[])), "has invalid annotations"),
        (json.dumps(state(annotations={ANNOTATION: 101})), "has invalid annotations"),
    ],
)
def test_bad_state_is_refused(data: bytes | str, message: str) -> None:
    with pytest.raises(InvalidOptionError, match=message) as caught:
        parse_state(data)
    assert caught.value.exit_code == EXIT_INVALID


def test_stage_from_status_or_argument() -> None:
    assert action_of(parse_state(json.dumps(state("creating")))) == "start"
    assert action_of(parse_state(json.dumps(state("stopped")))) == "stop"
    running = parse_state(json.dumps(state("running")))
    with pytest.raises(InvalidOptionError, match="status 'running': the hook runs at createRuntime"):
        action_of(running)
    assert action_of(running, "createRuntime") == "start"
    assert action_of(running, "prestart") == "start"
    assert action_of(running, "poststop") == "stop"


def test_ctid_from_the_annotation() -> None:
    assert ctid_of(parse_state(json.dumps(state(ctid="ct-7")))) == "ct-7"
    with pytest.raises(InvalidOptionError, match=f"has no annotation {ANNOTATION}: give --annotation"):
        ctid_of(parse_state(json.dumps(state(ctid=None))))
    with pytest.raises(InvalidContainerError, match=f"annotation {ANNOTATION}: invalid container id '../x'"):
        ctid_of(parse_state(json.dumps(state(ctid="../x"))))


def test_shipped_hooks_file() -> None:
    """The hooks.d file podman reads: version 1.0.0, both stages, the annotation regex, the env."""
    doc = json.loads(SHIPPED.read_text())
    assert doc["version"] == "1.0.0"
    assert doc["stages"] == ["createRuntime", "poststop"]
    assert doc["when"] == {"annotations": {r"^io\.venetfilter\.ctid$": ".+"}}
    assert doc["hook"]["path"].endswith("/venetctl") and doc["hook"]["args"] == ["venetctl", "hook", "oci"]
    env = dict(item.split("=", 1) for item in doc["hook"]["env"])
    assert env == {"VENETFILTER_CONF_DIR": "/etc/venetfilter", "VENETFILTER_RUN_DIR": "/run/venetfilter"}


# -- the command, run as a runtime runs it, in a node namespace -------------------------------------


@pytest.fixture
def node(bare_node: Stack) -> Stack:
    """The bare node with config files for 101 and 102."""
    for ctid, addresses in ADDRESSES.items():
        bare_node.node().set(ctid, addresses, save=True)
    return bare_node


@pytest.fixture
def container(make_netns) -> Iterator[subprocess.Popen[bytes]]:
    """A process in a fresh namespace with nothing but ``lo``: a container as runc creates it."""
    proc = process_in(make_netns("vfc"))
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def _refused(stack: Stack, stdin: object, code: int, message: str, *ctids: str) -> None:
    result = hook(stack, ["oci"], stdin)  # type: ignore[arg-type]
    assert (result.returncode, result.stdout) == (code, ""), result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("venetctl: ") and message in lines[0], result.stderr
    for ctid in ctids or ("101",):
        assert leftovers(stack, ctid) == []


def test_refusals_exit_codes_and_messages(node: Stack, container: subprocess.Popen[bytes], make_netns) -> None:
    pid = container.pid
    _refused(node, b"not json", EXIT_INVALID, "the container state on stdin is not JSON")
    _refused(node, state(pid=pid, ctid=None), EXIT_INVALID, f"has no annotation {ANNOTATION}")
    _refused(node, state(pid=pid, ctid="../101"), EXIT_INVALID, "invalid container id '../101'")
    _refused(node, state(pid=pid, ctid="0"), EXIT_INVALID, "CT 0 is the hardware node itself")
    _refused(node, state(pid=pid, ctid="105"), EXIT_NO_CONFIG, "container 105 does not exist", "105")
    _refused(node, state(), EXIT_INVALID, "has no pid ('pid')")
    _refused(node, state("running", pid=pid), EXIT_INVALID, "has status 'running'")
    gone = subprocess.Popen(["true"])
    gone.wait()
    _refused(node, state(pid=gone.pid), EXIT_INVALID, f"process {gone.pid} does not exist")
    # a hand-written config that gives 103 the address 101's config has
    (node.conf_dir / "103.conf").write_text(f'IP_ADDRESS="{ADDRESSES["101"][0]}"\n')
    _refused(node, state(pid=pid, ctid="103"), EXIT_ADDRESS_IN_USE,
             f"Unable to add IP {ADDRESSES['101'][0]}: Address already in use by container 101", "103")
    assert load_state(node.run_dir).containers == {}


def test_a_namespace_that_is_not_bare_is_refused(node: Stack, make_netns) -> None:
    """Another link in the container (podman's default network) would carry its packets unjudged;
    the host's own namespace (--network host) is no container's."""
    netns = make_netns("vfc")
    subprocess.run(["ip", "-n", netns, "link", "add", "eth0", "type", "veth", "peer", "name", "eth1"], check=True)
    proc = process_in(netns)
    host = process_in(node.host)
    try:
        _refused(node, state(pid=proc.pid), EXIT_INVALID, "network namespace already has eth0, eth1, which venetfilter "
                 "would not filter: run it with --network none")
        _refused(node, state(pid=host.pid), EXIT_INVALID,
                 "the container shares the host's network namespace: run it with --network none")
    finally:
        for p in (proc, host):
            p.kill()
            p.wait()


def test_start_then_poststop(node: Stack, container: subprocess.Popen[bytes]) -> None:
    result = hook(node, ["oci"], state(pid=container.pid))
    assert (result.returncode, result.stdout) == (0, ""), result.stderr
    record = load_state(node.run_dir).containers["101"]
    assert (record.phase, record.netns, record.netns_created) == ("running", f"/proc/{container.pid}/ns/net", False)
    assert "link vnf101" in leftovers(node, "101")
    inside = subprocess.run(["nsenter", f"--net=/proc/{container.pid}/ns/net", "ip", "-o", "addr", "show", "venet0"],
                            capture_output=True, text=True, check=True).stdout
    assert all(a in inside for a in ADDRESSES["101"])
    container.kill()  # the container ends: its namespace, and the link with it, are gone
    container.wait()
    result = hook(node, ["oci"], state("stopped"))
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert leftovers(node, "101") == []
    again = hook(node, ["oci"], state("stopped"))  # already stopped: quietly nothing
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")


def test_poststop_while_the_process_lives_with_explicit_stage(node: Stack, container: subprocess.Popen[bytes]) -> None:
    """A runtime that gives the pid at poststop (runc's own poststop) stops the record of that pid,
    and ``--stage`` overrides the status."""
    assert hook(node, ["oci", "--stage", "createRuntime"], state("created", pid=container.pid)).returncode == 0
    result = hook(node, ["oci", "--stage", "poststop"], state("running", pid=container.pid))
    assert (result.returncode, result.stderr) == (0, "")
    assert leftovers(node, "101") == []


def test_same_ctid_twice_and_the_refused_containers_poststop(
    node: Stack, container: subprocess.Popen[bytes], make_netns
) -> None:
    """The second container of a CTID is refused (32); its poststop (no pid) must leave the first
    one's network alone, since the first one's process lives and its link is there."""
    assert hook(node, ["oci"], state(pid=container.pid)).returncode == 0
    second = process_in(make_netns("vfc"))
    try:
        result = hook(node, ["oci"], state(pid=second.pid, id="b" * 64))
        assert result.returncode == EXIT_RUNNING and "container 101 is already running" in result.stderr
    finally:
        second.kill()
        second.wait()
    result = hook(node, ["oci"], state("stopped", id="b" * 64))
    assert (result.returncode, result.stderr) == (0, "")
    assert load_state(node.run_dir).containers["101"].netns == f"/proc/{container.pid}/ns/net"
    assert "link vnf101" in leftovers(node, "101")


def test_a_record_left_by_a_gone_container_is_stopped_first(
    node: Stack, container: subprocess.Popen[bytes], make_netns
) -> None:
    """No worker noticed the container die and no poststop ran: the next container of the CTID
    still starts (the stale record and its proxy entries are cleaned first, with a warning)."""
    assert hook(node, ["oci"], state(pid=container.pid)).returncode == 0
    container.kill()
    container.wait()
    assert load_state(node.run_dir).containers["101"].phase == "running"  # stale: no worker here
    second = process_in(make_netns("vfc"))
    try:
        result = hook(node, ["oci"], state(pid=second.pid))
        assert result.returncode == 0, result.stderr
        assert "container 101 was left running by an OCI container that is gone: stopped first" in result.stderr
        assert load_state(node.run_dir).containers["101"].netns == f"/proc/{second.pid}/ns/net"
    finally:
        second.kill()
        second.wait()


def test_a_record_started_by_hand_is_never_the_hooks(node: Stack, make_netns) -> None:
    """``venetctl start 101 --netns NAME``: an OCI container given CTID 101 is refused, and its
    poststop leaves 101 running."""
    netns = make_netns("vfc")
    node.node().start("101", netns=netns)
    proc = process_in(make_netns("vfc"))
    try:
        assert hook(node, ["oci"], state(pid=proc.pid)).returncode == EXIT_RUNNING
    finally:
        proc.kill()
        proc.wait()
    assert hook(node, ["oci"], state("stopped")).returncode == 0
    assert load_state(node.run_dir).containers["101"].netns == netns


def test_poststop_of_a_refused_container_is_quiet(node: Stack) -> None:
    """Whatever create refused (no annotation, a bad or unknown CTID) started nothing: poststop
    exits 0 and says nothing. A state that is not one is still an error."""
    for stdin in (state("stopped", ctid=None), state("stopped", ctid="../x"), state("stopped", ctid="0"),
                  state("stopped", ctid="105")):
        result = hook(node, ["oci"], stdin)
        assert (result.returncode, result.stdout, result.stderr) == (0, "", ""), stdin
    assert load_state(node.run_dir).containers == {}
    _refused(node, b'{"status": "stopped"}', EXIT_INVALID, "has no container id")
