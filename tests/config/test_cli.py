"""``venetctl set/show/list``: output, messages and vzctl's exit codes, in-process and as a process."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from venetfilter.cli import main
from venetfilter.config import ContainerManager, NoopApplier

from .conftest import VENETCTL, Dirs, Result, subprocess_env
from .worker_stub import WorkerStub

Cli = Callable[..., Result]


def running(dirs: Dirs, ctid: str = "101", ifindex: int = 7) -> ContainerManager:
    manager = ContainerManager(dirs.conf, dirs.run, notify=False)
    manager.start(ctid, ifindex)
    return manager


def test_set_stopped_with_save(cli: Cli, dirs: Dirs) -> None:
    r = cli("set", "101", "--ipadd", "192.0.2.1,2001:DB8::1/64", "--ipadd", "192.0.2.2 0.0.0.0", "--save")
    assert r.code == 0, r.err
    assert r.out == "Adding IP address(es): 192.0.2.1 2001:db8::1/64 192.0.2.2\nSaved parameters for CT 101\n"
    assert r.err == ""
    assert (dirs.conf / "101.conf").read_text() == 'IP_ADDRESS="192.0.2.1 2001:db8::1/64 192.0.2.2"\n'


def test_set_running_without_save_warns(cli: Cli, dirs: Dirs) -> None:
    running(dirs)
    r = cli("set", "101", "--ipadd", "192.0.2.1")
    assert r.code == 0
    assert r.out == "Adding IP address(es): 192.0.2.1\n"
    assert r.err == "Warning: Settings were not saved to config and will be lost after CT restart\n"
    assert not (dirs.conf / "101.conf").exists()


def test_set_deletes(cli: Cli, dirs: Dirs) -> None:
    cli("set", "101", "--ipadd", "192.0.2.1,192.0.2.2,192.0.2.3", "--save")
    r = cli("set", "101", "--ipdel", "192.0.2.1", "--ipdel", "192.0.2.2/24", "--ipadd", "192.0.2.1/8", "--save")
    assert r.code == 0
    assert r.out.splitlines() == [
        "Deleting IP address(es): 192.0.2.1 192.0.2.2/24",
        "Adding IP address(es): 192.0.2.1/8",
        "Saved parameters for CT 101",
    ]
    assert (dirs.conf / "101.conf").read_text() == 'IP_ADDRESS="192.0.2.3 192.0.2.1/8"\n'
    r = cli("set", "101", "--ipdel", "all", "--save")
    assert r.code == 0 and r.out.startswith("Deleting all IP addresses\n")
    assert (dirs.conf / "101.conf").read_text() == 'IP_ADDRESS=""\n'


def test_not_running_is_31(cli: Cli, dirs: Dirs) -> None:
    r = cli("set", "101", "--ipadd", "192.0.2.1")
    assert r.code == 31 and r.out == ""
    assert r.err == (
        "venetctl: Unable to apply new settings: container 101 is not running (use --save to change only its config file)\n"
    )
    assert not dirs.conf.exists()


def test_address_in_use_is_78(cli: Cli, dirs: Dirs) -> None:
    assert cli("set", "102", "--ipadd", "2001:db8::5", "--save").code == 0
    r = cli("set", "101", "--ipadd", "192.0.2.1,2001:DB8:0::5/64", "--save")
    assert r.code == 78 and r.out == ""
    assert r.err == "venetctl: Unable to add IP 2001:db8::5: Address already in use by container 102\n"
    assert not (dirs.conf / "101.conf").exists()


def test_failing_live_apply_is_34(cli: Cli, dirs: Dirs, monkeypatch: pytest.MonkeyPatch) -> None:
    cli("set", "101", "--ipadd", "192.0.2.1", "--save")
    running(dirs)
    before = (dirs.run / "state.json").read_bytes(), (dirs.conf / "101.conf").read_bytes()

    def fail(self: object, ctid: str, added: object, removed: object) -> None:
        raise RuntimeError("vnf101: no such device")

    monkeypatch.setattr(NoopApplier, "apply", fail)
    r = cli("set", "101", "--ipadd", "192.0.2.2", "--save")
    assert r.code == 34 and r.out == ""
    assert r.err == (
        "venetctl: Unable to add IP address(es) to container 101, nothing was saved: vnf101: no such device\n"
    )
    assert ((dirs.run / "state.json").read_bytes(), (dirs.conf / "101.conf").read_bytes()) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ipadd", "192.0.2.256"], "Bad parameter for --ipadd: 192.0.2.256 (not an IPv4 address)"),
        (["--ipadd", "192.0.2.1,300.1.1.1"], "Bad parameter for --ipadd: 300.1.1.1 (not an IPv4 address)"),
        (["--ipadd", "fe80::1%eth0"], "Bad parameter for --ipadd: fe80::1%eth0 (zone ids are not allowed)"),
        (["--ipadd", "192.0.2.1/33"], "Bad parameter for --ipadd: 192.0.2.1/33 (bad prefix length (0-32))"),
        (["--ipadd", "2001:db8::/129"], "Bad parameter for --ipadd: 2001:db8::/129 (bad prefix length (0-128))"),
        (["--ipadd", "gibberish"], "Bad parameter for --ipadd: gibberish (not an IPv4 address)"),
        (["--ipdel", "1.2.3"], "Bad parameter for --ipdel: 1.2.3 (not an IPv4 address)"),
        (["--ipdel", "ALL"], "Bad parameter for --ipdel: ALL (not an IPv4 address)"),
        (["--ipadd", ""], "Bad parameter for --ipadd:  (no address given)"),
        (["--ipadd", "192.0.2.1", "--ipdel", " , "], "Bad parameter for --ipdel:  ,  (no address given)"),
        ([], "set: nothing to do: give --ipadd and/or --ipdel"),
    ],
)
def test_bad_parameters_are_21(cli: Cli, dirs: Dirs, args: list[str], message: str) -> None:
    r = cli("set", "101", *args, "--save")
    assert (r.code, r.out, r.err) == (21, "", f"venetctl: {message}\n")
    assert not dirs.conf.exists()


@pytest.mark.parametrize("ctid", ["../x", "/x", "", "a" * 13, "a b", " 101", ".x", "x/y"])
def test_bad_ctids_are_21(cli: Cli, dirs: Dirs, ctid: str) -> None:
    for args in (["set", ctid, "--ipadd", "192.0.2.1", "--save"], ["show", ctid]):
        r = cli(*args)
        assert r.code == 21 and r.out == ""
        assert r.err.startswith(f"venetctl: invalid container id {ctid!r}") and r.err.count("\n") == 1
    assert not dirs.conf.exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ([], "the following arguments are required: COMMAND"),
        (["bogus"], "invalid choice: 'bogus'"),
        (["set"], "the following arguments are required: CTID"),
        (["set", "101", "--ipadd"], "argument --ipadd: expected one argument"),
        (["set", "101", "--frobnicate"], "unrecognized arguments: --frobnicate"),
        (["show", "101", "--notify-timeout", "soon"], "argument --notify-timeout: invalid float value: 'soon'"),
        (["list", "extra"], "unrecognized arguments: extra"),
    ],
)
def test_usage_errors_are_21_not_2(cli: Cli, args: list[str], fragment: str) -> None:
    r = cli(*args)
    assert r.code == 21 and r.out == ""
    assert r.err.startswith("venetctl: ") and fragment in r.err and r.err.count("\n") == 1


def test_help_is_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "set" in capsys.readouterr().out
    assert main(["set", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--ipadd" in out and "--ipdel" in out and "--save" in out


def test_show(cli: Cli, dirs: Dirs) -> None:
    cli("set", "101", "--ipadd", "192.0.2.1,2001:db8::1/64", "--save")
    assert cli("show", "101").out == "CT 101: stopped\n  saved:   192.0.2.1 2001:db8::1/64\n  runtime: -\n"
    manager = ContainerManager(dirs.conf, dirs.run, notify=False)
    manager.start("101", 7, netns="ct101")
    manager.set("101", delete="192.0.2.1")
    r = cli("show", "101")
    assert r.code == 0 and r.out == (
        "CT 101: running (link vnf101, ifindex 7, netns ct101)\n"
        "  saved:   192.0.2.1 2001:db8::1/64\n"
        "  runtime: 2001:db8::1/64\n"
    )
    r = cli("show", "101", "--json")
    assert json.loads(r.out) == {
        "ctid": "101", "running": True, "saved": ["192.0.2.1", "2001:db8::1/64"], "runtime": ["2001:db8::1/64"],
        "ifindex": 7, "link": "vnf101", "netns": "ct101",
    }


def test_show_unknown_is_14(cli: Cli) -> None:
    r = cli("show", "999")
    assert (r.code, r.out) == (14, "")
    assert r.err == "venetctl: container 999 does not exist: no config file and not running\n"


def test_show_running_without_config(cli: Cli, dirs: Dirs) -> None:
    running(dirs, "web", 9)
    r = cli("show", "web")
    assert r.out == "CT web: running (link vnfweb, ifindex 9)\n  saved:   (no config file)\n  runtime: -\n"
    assert json.loads(cli("show", "web", "--json").out)["saved"] is None


def test_list(cli: Cli, dirs: Dirs) -> None:
    assert cli("list").out == "CTID  STATE  SAVED  RUNTIME\n"
    assert json.loads(cli("list", "--json").out) == []
    cli("set", "101", "--ipadd", "192.0.2.1,2001:db8::1/64", "--save")
    cli("set", "7", "--ipadd", "192.0.2.7", "--save")
    running(dirs, "7", 3)
    cli("set", "7", "--ipadd", "192.0.2.8")
    r = cli("list")
    assert r.code == 0 and r.out.splitlines() == [
        "CTID  STATE    SAVED                     RUNTIME",
        "7     running  192.0.2.7                 192.0.2.7,192.0.2.8",
        "101   stopped  192.0.2.1,2001:db8::1/64  -",
    ]
    listed = json.loads(cli("list", "--json").out)
    assert [(c["ctid"], c["running"], c["runtime"]) for c in listed] == [
        ("7", True, ["192.0.2.7", "192.0.2.8"]), ("101", False, None)
    ]


def test_config_warnings_go_to_stderr(cli: Cli, dirs: Dirs) -> None:
    dirs.conf.mkdir()
    (dirs.conf / "101.conf").write_text('ONBOOT="yes"\nIP_ADDRESS="192.0.2.1 nope"\n')
    r = cli("show", "101")
    assert r.code == 0 and r.out.splitlines()[1] == "  saved:   192.0.2.1"
    assert r.err == f'Warning at {dirs.conf / "101.conf"}:2: invalid value for IP_ADDRESS ("nope"), skipped\n'
    r = cli("list")
    assert r.code == 0 and "nope" in r.err


def test_corrupt_state_is_a_clear_error(cli: Cli, dirs: Dirs) -> None:
    dirs.run.mkdir()
    (dirs.run / "state.json").write_text("{")
    for args in (["list"], ["show", "101"], ["set", "101", "--ipadd", "192.0.2.1", "--save"]):
        r = cli(*args)
        assert r.code == 3 and r.out == ""
        assert r.err.startswith(f"venetctl: corrupt runtime state {dirs.run / 'state.json'}: not JSON")
    assert not dirs.conf.exists()


def test_options_after_the_subcommand_and_environment(cli: Cli, dirs: Dirs, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other"
    assert main(["set", "101", "--ipadd", "192.0.2.1", "--save", "--conf-dir", str(other)]) == 0
    assert (other / "101.conf").exists()
    assert main(["set", "102", "--ipadd", "192.0.2.2", "--save"]) == 0  # $VENETFILTER_CONF_DIR
    assert (tmp_path / "default-conf" / "102.conf").exists()
    capsys.readouterr()


def test_worker_notified_by_the_command(cli: Cli, dirs: Dirs) -> None:
    running(dirs)
    with WorkerStub(dirs.run) as stub:
        r = cli("set", "101", "--ipadd", "192.0.2.1", "--save")
    assert r.code == 0 and r.err == "" and stub.requests == [b"reload\n"]
    with WorkerStub(dirs.run, "garbage"):
        r = cli("set", "101", "--ipadd", "192.0.2.2", "--save", "--notify-timeout", "0.5")
    assert r.code == 0 and r.err.startswith("Warning: the worker answered")


# -- as real processes -----------------------------------------------------------------------------


def run(command: list[str], dirs: Dirs, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command, *dirs.options(), *args], capture_output=True, text=True, env=subprocess_env(), timeout=30
    )


COMMANDS = {"script": [str(VENETCTL)], "module": [sys.executable, "-m", "venetfilter.cli"]}


@pytest.mark.parametrize("how", sorted(COMMANDS))
def test_as_a_process(dirs: Dirs, how: str) -> None:
    command = COMMANDS[how]
    p = run(command, dirs, "set", "101", "--ipadd", "192.0.2.1", "--save")
    assert (p.returncode, p.stdout, p.stderr) == (0, "Adding IP address(es): 192.0.2.1\nSaved parameters for CT 101\n", "")
    p = run(command, dirs, "set", "101", "--ipadd", "192.0.2.2")
    assert p.returncode == 31 and "not running" in p.stderr
    p = run(command, dirs, "set", "101", "--ipadd", "192.0.2.x", "--save")
    assert p.returncode == 21 and p.stderr == "venetctl: Bad parameter for --ipadd: 192.0.2.x (not an IPv4 address)\n"
    p = run(command, dirs, "set", "102", "--ipadd", "192.0.2.1", "--save")
    assert p.returncode == 78 and "Address already in use by container 101" in p.stderr
    p = run(command, dirs, "set", "101", "--no-such-option")
    assert p.returncode == 21 and p.stderr.count("\n") == 1
    p = run(command, dirs, "show", "101", "--json")
    assert p.returncode == 0 and json.loads(p.stdout)["saved"] == ["192.0.2.1"]
