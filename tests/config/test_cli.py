"""``venetctl set/show/list`` (and start/stop over a dry `Node`): output, messages and vzctl's exit
codes, in-process and as a process. No test here touches the host's network (see conftest)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from venetfilter.config.runtime import table_entries

from venetfilter import __version__
from venetfilter.cli import main
from venetfilter.errors import HostNetworkError
from venetfilter.lifecycle import DryNetwork

from .conftest import DRY_MAIN, VENETCTL, Dirs, Result, record_running, subprocess_env, write_config
from .worker_stub import WorkerStub

Cli = Callable[..., Result]

UNUSABLE = {
    "224.0.0.1": "it is a multicast address",
    "127.0.0.9": "it is a loopback address",
    "ff02::1": "it is a multicast address",
    "fe80::1": "it is a link-local address",
    "::ffff:192.0.2.1": "it is an IPv4-mapped address (use 192.0.2.1)",
    "255.255.255.255": "it is the broadcast address",
}


def running(dirs: Dirs, ctid: str = "101", ifindex: int = 7, addresses: str = "", netns: str | None = None) -> int:
    """`ctid` recorded as running in state.json, as a start would have left it."""
    return record_running(dirs.run, ctid, ifindex, addresses, netns)


def files(directory: Path) -> dict[str, bytes]:
    """Every file of `directory` and its content ({} when it does not exist)."""
    if not directory.exists():
        return {}
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file() and p.name != "lock"}


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
    running(dirs, addresses="192.0.2.1")
    before = (dirs.run / "state.json").read_bytes(), (dirs.conf / "101.conf").read_bytes()

    def fail(self: object, *args: object) -> None:
        raise HostNetworkError("vnf101: no such device")

    monkeypatch.setattr(DryNetwork, "change", fail)
    r = cli("set", "101", "--ipadd", "192.0.2.2", "--save")
    assert r.code == 34 and r.out == ""
    assert r.err == (
        "venetctl: Unable to add IP address(es) to container 101, nothing was saved: vnf101: no such device\n"
    )
    assert ((dirs.run / "state.json").read_bytes(), (dirs.conf / "101.conf").read_bytes()) == before
    assert sorted(p.name for p in dirs.conf.iterdir()) == ["101.conf"]


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


@pytest.mark.parametrize("address", sorted(UNUSABLE))
def test_unusable_addresses_are_21_and_nothing_is_saved(cli: Cli, dirs: Dirs, address: str) -> None:
    assert cli("set", "101", "--ipadd", "192.0.2.1", "--save").code == 0
    conf_before = files(dirs.conf)
    message = f"venetctl: invalid address {address!r}: not usable for a container: {UNUSABLE[address]}\n"
    for ctid in ("101", "102"):  # an existing config file and a new one
        r = cli("set", ctid, "--ipadd", f"192.0.2.2,{address}", "--save")
        assert (r.code, r.out, r.err) == (21, "", message)
    assert files(dirs.conf) == conf_before and not (dirs.run / "state.json").exists()
    running(dirs, addresses="192.0.2.1")
    state_before = files(dirs.run)
    for save in ([], ["--save"]):
        r = cli("set", "101", "--ipadd", address, *save)
        assert (r.code, r.out, r.err) == (21, "", message)
    assert files(dirs.conf) == conf_before and files(dirs.run) == state_before


@pytest.mark.parametrize("address", sorted(UNUSABLE))
def test_start_refuses_an_unusable_address_in_the_file(cli: Cli, dirs: Dirs, address: str) -> None:
    write_config(dirs, "101", f"192.0.2.1 {address}")
    r = cli("start", "101")
    assert (r.code, r.out) == (21, "")
    assert r.err == f"venetctl: invalid address {address!r}: not usable for a container: {UNUSABLE[address]}\n"
    assert not (dirs.run / "state.json").exists()


def test_unspecified_addresses_are_ignored(cli: Cli, dirs: Dirs) -> None:
    r = cli("set", "101", "--ipadd", "0.0.0.0,192.0.2.1", "--ipadd", "::", "--save")
    assert r.code == 0 and r.out == "Adding IP address(es): 192.0.2.1\nSaved parameters for CT 101\n"
    assert (dirs.conf / "101.conf").read_text() == 'IP_ADDRESS="192.0.2.1"\n'
    write_config(dirs, "102", "0.0.0.0 192.0.2.2")
    r = cli("start", "102")
    assert r.code == 0 and r.out.endswith("Adding IP address(es): 192.0.2.2\n")


def test_start_and_stop_over_a_dry_node(cli: Cli, dirs: Dirs) -> None:
    assert cli("set", "101", "--ipadd", "192.0.2.1", "--save").code == 0
    r = cli("start", "101", "--netns", "ct101")
    assert (r.code, r.err) == (0, "")
    assert r.out == "Container 101: link vnf101 (ifindex 1001), netns ct101\nAdding IP address(es): 192.0.2.1\n"
    r = cli("start", "101")
    assert (r.code, r.out, r.err) == (32, "", "venetctl: container 101 is already running\n")
    r = cli("stop", "101")
    assert (r.code, r.out, r.err) == (0, "Container 101: network stopped\n", "")
    r = cli("stop", "101")  # vzctl: not an error
    assert (r.code, r.out, r.err) == (0, "Container is not running\n", "")
    r = cli("start", "102")  # start needs the config file
    assert (r.code, r.out) == (14, "") and r.err == "venetctl: container 102 does not exist: no config file and not running\n"
    assert cli("stop", "102").code == 14
    assert not (dirs.conf / "102.conf").exists()


@pytest.mark.parametrize("ctid", ["0", "00"])
def test_ct_0_is_refused_and_never_listed(cli: Cli, dirs: Dirs, ctid: str) -> None:
    write_config(dirs, ctid, "192.0.2.1")
    before = files(dirs.conf)
    for args in (["set", ctid, "--ipadd", "192.0.2.2", "--save"], ["set", ctid, "--ipdel", "all"], ["show", ctid],
                 ["start", ctid], ["stop", ctid]):
        r = cli(*args)
        assert (r.code, r.out) == (21, ""), args
        assert r.err == f"venetctl: invalid container id {ctid!r}: CT 0 is the hardware node itself\n"
    assert files(dirs.conf) == before and not (dirs.run / "state.json").exists()
    r = cli("list", "-a")
    assert (r.code, r.out, r.err) == (0, "", "Container(s) not found\n")
    assert json.loads(cli("list", "-a", "--json").out) == []
    assert cli("set", "101", "--ipadd", "192.0.2.1", "--save").code == 0  # 0.conf owns no address
    assert [c["ctid"] for c in json.loads(cli("list", "-a", "--json").out)] == ["101"]


def test_a_ct_0_record_is_never_listed(cli: Cli, dirs: Dirs) -> None:
    """An old version could record CT 0: it is left out (not listed, not given to the filter) and
    gone at the next change of the state."""
    running(dirs, "0", 7)
    r = cli("list", "-a")
    assert (r.out, r.err) == ("", "Container(s) not found\n")
    assert table_entries(dirs.run) == {}


def _without_dac_override() -> list[str]:
    """A command prefix that makes root obey file modes (no CAP_DAC_OVERRIDE); nothing for others."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv to drop CAP_DAC_OVERRIDE as root")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"]


@pytest.mark.parametrize("is_running", [False, True])
def test_read_only_conf_dir_is_3_and_nothing_changes(dirs: Dirs, is_running: bool) -> None:
    write_config(dirs, "101", "192.0.2.1")
    if is_running:
        running(dirs, addresses="192.0.2.1")
    conf_before, run_before = files(dirs.conf), files(dirs.run)
    os.chmod(dirs.conf, 0o555)
    try:
        p = subprocess.run(
            [*_without_dac_override(), sys.executable, "-c", DRY_MAIN, *dirs.options(),
             "set", "101", "--ipadd", "192.0.2.2", "--save"],
            capture_output=True, text=True, env=subprocess_env(), timeout=30,
        )
    finally:
        os.chmod(dirs.conf, 0o700)
    assert (p.returncode, p.stdout) == (3, "")
    assert p.stderr == (f"venetctl: {dirs.conf / '101.conf'}: cannot be written (Permission denied); "
                        "nothing was changed\n")
    assert files(dirs.conf) == conf_before and files(dirs.run) == run_before


@pytest.mark.parametrize("ctid", ["../x", "/x", "", "a" * 13, "a b", " 101", ".x", "x/y"])
def test_bad_ctids_are_21(cli: Cli, dirs: Dirs, ctid: str) -> None:
    for args in (["set", ctid, "--ipadd", "192.0.2.1", "--save"], ["show", ctid], ["start", ctid], ["stop", ctid]):
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
        (["set", "101", "--ipadd"], "argument --ipadd/--ip: expected one argument"),
        (["set", "101", "--frobnicate"], "unrecognized arguments: --frobnicate"),
        (["show", "101", "--notify-timeout", "soon"], "argument --notify-timeout: 'soon' is not a number"),
        (["list", "extra"], "unrecognized arguments: extra"),
        (["stop", "101", "--host-netns", "x"], "unrecognized arguments: --host-netns"),  # the record knows it
    ],
)
def test_usage_errors_are_21_not_2(cli: Cli, args: list[str], fragment: str) -> None:
    r = cli(*args)
    assert r.code == 21 and r.out == ""
    assert r.err.startswith("venetctl: ") and fragment in r.err and r.err.count("\n") == 1


@pytest.mark.parametrize("timeout", ["-1", "0", "nan", "inf"])
@pytest.mark.parametrize("where", ["before", "after"])
def test_notify_timeout_must_be_positive(cli: Cli, dirs: Dirs, timeout: str, where: str) -> None:
    option = ["--notify-timeout", timeout]
    for args in (["set", "101", "--ipadd", "192.0.2.1", "--save"], ["start", "101"], ["stop", "101"], ["list"]):
        r = cli(*option, *args) if where == "before" else cli(*args, *option)
        assert (r.code, r.out) == (21, ""), args
        assert r.err.startswith("venetctl: argument --notify-timeout: ") and r.err.count("\n") == 1
    assert not dirs.conf.exists() and not dirs.run.exists()  # refused before anything happened


def test_notify_timeout_upper_bound(cli: Cli) -> None:
    assert cli("--notify-timeout", "3600", "list").code == 0
    assert cli("--notify-timeout", "3600.5", "list").code == 21


def test_notify_timeout_on_a_running_container_changes_nothing(cli: Cli, dirs: Dirs) -> None:
    running(dirs, addresses="192.0.2.1")
    before = files(dirs.run)
    for timeout in ("-1", "0"):
        assert cli("set", "101", "--ipadd", "192.0.2.2", "--notify-timeout", timeout).code == 21
    assert files(dirs.run) == before and not dirs.conf.exists()


@pytest.mark.parametrize("option", ["--run-dir", "--conf-dir"])
@pytest.mark.parametrize("value", ["", " "])
def test_empty_directories_are_21(capsys: pytest.CaptureFixture[str], tmp_path: Path, option: str, value: str) -> None:
    cwd = os.getcwd()
    os.chdir(tmp_path)  # an empty path would mean here
    try:
        for args in (["set", "101", "--ipadd", "192.0.2.1", "--save"], ["list"], ["stop", "101"]):
            capsys.readouterr()
            assert main([option, value, *args]) == 21
            assert main([*args, option, value]) == 21
            out, err = capsys.readouterr()
            assert out == "" and f"argument {option}: {value!r} is not a directory path" in err
    finally:
        os.chdir(cwd)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"venetctl (venetfilter) {__version__}\n"


def test_help_is_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "set" in capsys.readouterr().out
    assert main(["set", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--ipadd" in out and "--ipdel" in out and "--save" in out


def test_show(cli: Cli, dirs: Dirs) -> None:
    cli("set", "101", "--ipadd", "192.0.2.1,2001:db8::1/64", "--save")
    assert cli("show", "101").out == "CT 101: stopped\n  saved:   192.0.2.1 2001:db8::1/64\n  runtime: -\n"
    assert json.loads(cli("show", "101", "--json").out) == {
        "ctid": "101", "running": False, "phase": "stopped", "saved": ["192.0.2.1", "2001:db8::1/64"],
        "runtime": None, "ifindex": None, "link": None, "netns": None,
    }
    running(dirs, "101", 7, "192.0.2.1 2001:db8::1/64", netns="ct101")
    assert cli("set", "101", "--ipdel", "192.0.2.1").code == 0
    r = cli("show", "101")
    assert r.code == 0 and r.out == (
        "CT 101: running (link vnf101, ifindex 7, netns ct101)\n"
        "  saved:   192.0.2.1 2001:db8::1/64\n"
        "  runtime: 2001:db8::1/64\n"
    )
    r = cli("show", "101", "--json")
    assert json.loads(r.out) == {
        "ctid": "101", "running": True, "phase": "running", "saved": ["192.0.2.1", "2001:db8::1/64"],
        "runtime": ["2001:db8::1/64"],
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
    """vzlist's layout and default fields; more in test_cli_vzlist.py."""
    assert (cli("list").out, cli("list").err) == ("", "Container(s) not found\n")
    assert json.loads(cli("list", "--json").out) == []
    cli("set", "101", "--ipadd", "192.0.2.1,2001:db8::1/64", "--save")
    cli("set", "7", "--ipadd", "192.0.2.7", "--save")
    running(dirs, "7", 3, "192.0.2.7")
    cli("set", "7", "--ipadd", "192.0.2.8")
    r = cli("list", "-a")
    assert r.code == 0 and r.out.splitlines() == [
        "      CTID STATUS    IP_ADDR",
        "         7 running   192.0.2.7 192.0.2.8",
        "       101 stopped   192.0.2.1 2001:db8::1/64",
    ]
    r = cli("list", "-a", "-o", "ctid,status,saved,runtime")
    assert r.code == 0 and r.out.splitlines() == [
        "      CTID STATUS    SAVED                    RUNTIME",
        "         7 running   192.0.2.7                192.0.2.7 192.0.2.8",
        "       101 stopped   192.0.2.1,2001:db8::1/64 -",
    ]
    listed = json.loads(cli("list", "-a", "--json").out)
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
    write_config(dirs, "101", "192.0.2.1")
    for args in (["list"], ["show", "101"], ["set", "101", "--ipadd", "192.0.2.1", "--save"], ["start", "101"],
                 ["stop", "101"]):
        r = cli(*args)
        assert r.code == 3 and r.out == ""
        assert r.err.startswith(f"venetctl: corrupt runtime state {dirs.run / 'state.json'}: not JSON")
    assert (dirs.run / "state.json").read_text() == "{"
    assert (dirs.conf / "101.conf").read_text() == 'IP_ADDRESS="192.0.2.1"\n'


def test_options_after_the_subcommand_and_environment(cli: Cli, dirs: Dirs, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    other = tmp_path / "other"
    assert main(["set", "101", "--ipadd", "192.0.2.1", "--save", "--conf-dir", str(other)]) == 0
    assert (other / "101.conf").exists()
    assert main(["set", "102", "--ipadd", "192.0.2.2", "--save"]) == 0  # $VENETFILTER_CONF_DIR
    assert (tmp_path / "default-conf" / "102.conf").exists()
    capsys.readouterr()


def test_worker_notified_by_the_command(cli: Cli, dirs: Dirs, notifying_cli: None) -> None:
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
    p = run(command, dirs, "set", "101", "--ipadd", "224.0.0.1", "--save")
    assert p.returncode == 21 and "not usable for a container" in p.stderr
    p = run(command, dirs, "set", "0", "--ipadd", "192.0.2.9", "--save")
    assert p.returncode == 21 and "CT 0" in p.stderr
    p = run(command, dirs, "stop", "101")  # stopped: nothing reaches the host
    assert (p.returncode, p.stdout, p.stderr) == (0, "Container is not running\n", "")
    p = run(command, dirs, "--version")
    assert p.returncode == 0 and p.stdout.startswith("venetctl (venetfilter) ")
    assert (dirs.conf / "101.conf").read_text() == 'IP_ADDRESS="192.0.2.1"\n' and not (dirs.conf / "0.conf").exists()
