"""vzctl's and vzlist's habits: ``set --ip``, the ``set`` options venetfilter does not manage, ``list``'s
``-a -S -H -o -1 -L`` and the stable JSON keys of ``show --json`` and ``list --json``. Over a dry
`Node`, like every CLI test of this directory."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from venetfilter.cli.containers import FIELD_ALIASES, FIELDS, JSON_KEYS

from .conftest import Dirs, Result, record_running

Cli = Callable[..., Result]

ROOT = Path(__file__).resolve().parents[2]

# Pinned on purpose: scripts parse these. Changing the set is an incompatible change of the output,
# to be made here, in JSON_KEYS and in docs/json.md together.
STABLE_JSON_KEYS = {"ctid", "running", "phase", "saved", "runtime", "ifindex", "link", "netns"}


def three_containers(cli: Cli, dirs: Dirs) -> None:
    """7 and 101 running (101 in netns ct101, with an address added live), 55 stopped."""
    for ctid, addresses in (("7", "192.0.2.7"), ("55", "192.0.2.55,2001:db8::55/64"), ("101", "192.0.2.1")):
        assert cli("set", ctid, "--ipadd", addresses, "--save").code == 0
    record_running(dirs.run, "7", 3, "192.0.2.7")
    record_running(dirs.run, "101", 12, "192.0.2.1", netns="ct101")
    assert cli("set", "101", "--ipadd", "192.0.2.2").code == 0  # not saved: runtime and saved differ


# -- set -------------------------------------------------------------------------------------------


def test_ip_is_ipadd(cli: Cli, dirs: Dirs) -> None:
    r = cli("set", "101", "--ip", "192.0.2.1", "--ip", "2001:db8::1", "--ipadd", "192.0.2.2", "--save")
    assert (r.code, r.err) == (0, "")
    assert r.out == "Adding IP address(es): 192.0.2.1 2001:db8::1 192.0.2.2\nSaved parameters for CT 101\n"
    assert (dirs.conf / "101.conf").read_text() == 'IP_ADDRESS="192.0.2.1 2001:db8::1 192.0.2.2"\n'
    r = cli("set", "101", "--ip", "192.0.2.x", "--save")
    assert (r.code, r.out) == (21, "") and r.err == "venetctl: Bad parameter for --ipadd: 192.0.2.x (not an IPv4 address)\n"


def test_unmanaged_options_warn_and_the_rest_is_done(cli: Cli, dirs: Dirs) -> None:
    r = cli("set", "101", "--hostname", "web.example", "--ipadd", "192.0.2.1", "--nameserver", "192.0.2.53",
            "--nameserver", "2001:db8::53", "--searchdomain", "example", "--save")
    assert r.code == 0
    assert r.out == "Adding IP address(es): 192.0.2.1\nSaved parameters for CT 101\n"
    assert r.err == "Warning: venetfilter does not manage --hostname, --nameserver, --searchdomain: ignored\n"
    assert (dirs.conf / "101.conf").read_text() == 'IP_ADDRESS="192.0.2.1"\n'  # nothing else written


@pytest.mark.parametrize("option", ["--hostname", "--nameserver", "--searchdomain"])
@pytest.mark.parametrize("save", [[], ["--save"]])
def test_only_unmanaged_options_warn_and_exit_0(cli: Cli, dirs: Dirs, option: str, save: list[str]) -> None:
    """A vzctl script's ``vzctl set CTID --hostname NAME --save`` runs on: a warning, nothing changes,
    stopped or running, saved or not (vzctl would need a running container without --save: there is
    nothing to apply here)."""
    r = cli("set", "101", option, "", *save)  # even an empty value counts as given
    assert (r.code, r.out, r.err) == (0, "", f"Warning: venetfilter does not manage {option}: ignored\n")
    assert not dirs.conf.exists() and not dirs.run.exists()
    record_running(dirs.run, "101", 7, "192.0.2.1")
    before = (dirs.run / "state.json").read_bytes()
    r = cli("set", "101", option, "x", *save)
    assert (r.code, r.out) == (0, "") and "does not manage" in r.err
    assert (dirs.run / "state.json").read_bytes() == before and not dirs.conf.exists()


def test_unmanaged_options_do_not_hide_errors(cli: Cli, dirs: Dirs) -> None:
    r = cli("set", "1/2", "--hostname", "x")
    assert (r.code, r.out) == (21, "") and r.err.startswith("venetctl: invalid container id '1/2'")
    r = cli("set", "101", "--hostname", "x", "--ipadd", "300.1.1.1", "--save")
    assert (r.code, r.out, r.err) == (21, "", "venetctl: Bad parameter for --ipadd: 300.1.1.1 (not an IPv4 address)\n")
    r = cli("set", "101", "--hostname", "x", "--ipadd", "192.0.2.1")  # stopped, no --save
    assert r.code == 31 and "not running" in r.err
    assert not dirs.conf.exists()
    r = cli("set", "101", "--hostname")
    assert (r.code, r.out) == (21, "") and "argument --hostname: expected one argument" in r.err


# -- list ------------------------------------------------------------------------------------------


def test_list_shows_running_containers_unless_a(cli: Cli, dirs: Dirs) -> None:
    three_containers(cli, dirs)
    assert cli("list").out.splitlines() == [
        "      CTID STATUS    IP_ADDR",
        "         7 running   192.0.2.7",
        "       101 running   192.0.2.1 192.0.2.2",
    ]
    for option in ("-a", "--all"):
        assert [line.split()[0] for line in cli("list", option).out.splitlines()] == ["CTID", "7", "55", "101"]
    for option in ("-S", "--stopped"):
        assert cli("list", option).out.splitlines() == [
            "      CTID STATUS    IP_ADDR",
            "        55 stopped   192.0.2.55 2001:db8::55/64",
        ]
    r = cli("list", "-a", "-S")
    assert (r.code, r.out) == (21, "") and "not allowed with argument -a/--all" in r.err


def test_list_no_header(cli: Cli, dirs: Dirs) -> None:
    three_containers(cli, dirs)
    for option in ("-H", "--no-header"):
        assert cli("list", option).out.splitlines() == [
            "         7 running   192.0.2.7",
            "       101 running   192.0.2.1 192.0.2.2",
        ]


def test_list_output_fields(cli: Cli, dirs: Dirs) -> None:
    three_containers(cli, dirs)
    r = cli("list", "-a", "-o", "ctid,status,ip,saved,runtime,link,ifindex,netns")
    assert (r.code, r.err) == (0, "")
    assert r.out.splitlines() == [
        "      CTID STATUS    IP_ADDR                    SAVED                      RUNTIME             LINK   IFINDEX NETNS",
        "         7 running   192.0.2.7                  192.0.2.7                  192.0.2.7           vnf7         3 -",
        "        55 stopped   192.0.2.55,2001:db8::55/64 192.0.2.55,2001:db8::55/64 -                   -            - -",
        "       101 running   192.0.2.1,192.0.2.2        192.0.2.1                  192.0.2.1,192.0.2.2 vnf101      12 ct101",
    ]
    # the order is the one asked for; a list of addresses in the last column is space-separated
    assert cli("list", "-H", "--output", "netns,ifindex,ip").out.splitlines() == [
        "-           3 192.0.2.7",
        "ct101      12 192.0.2.1 192.0.2.2",
    ]
    # vzlist's old names for ctid, and state for status
    assert cli("list", "-H", "-o", "veid,vpsid,state").out == cli("list", "-H", "-o", "ctid,ctid,status").out
    assert cli("list", "-o", "ctid").out.splitlines() == ["      CTID", "         7", "       101"]


@pytest.mark.parametrize("fields", ["nproc", "ctid,hostname", "ctid,", "", "CTID"])
def test_list_unknown_field_is_21_and_names_the_valid_ones(cli: Cli, dirs: Dirs, fields: str) -> None:
    three_containers(cli, dirs)
    r = cli("list", "-o", fields)
    assert (r.code, r.out) == (21, "") and r.err.count("\n") == 1
    assert r.err.startswith("venetctl: argument -o/--output: unknown field ")
    valid = re.search(r"\(valid fields: ([^)]*)\)", r.err)
    assert valid is not None and valid.group(1).split(", ") == [*FIELDS, *FIELD_ALIASES]


def test_list_ctids_only(cli: Cli, dirs: Dirs) -> None:
    three_containers(cli, dirs)
    assert cli("list", "-1").out == "7\n101\n"  # bare ids, no header
    assert cli("list", "-1", "-a").out == "7\n55\n101\n"
    assert cli("list", "-1", "-S").out == "55\n"
    r = cli("list", "-1", "-o", "ctid")
    assert (r.code, r.out) == (21, "") and "not allowed with argument" in r.err


def test_list_fields_L(cli: Cli) -> None:
    r = cli("list", "-L")
    assert r.code == 0 and [line.split()[:2] for line in r.out.splitlines()] == [
        ["ctid", "CTID"], ["status", "STATUS"], ["ip", "IP_ADDR"], ["saved", "SAVED"], ["runtime", "RUNTIME"],
        ["link", "LINK"], ["ifindex", "IFINDEX"], ["netns", "NETNS"],
        ["veid", "CTID"], ["vpsid", "CTID"], ["state", "STATUS"],
    ]


def test_list_nothing_found(cli: Cli, dirs: Dirs) -> None:
    """As vzlist: a message on stderr, no header, exit 0 (a script's loop just runs zero times)."""
    for args in ([], ["-a"], ["-H"], ["-1"], ["-o", "ip"]):
        assert cli("list", *args) == Result(0, "", "Container(s) not found\n"), args
    assert cli("list", "--json") == Result(0, "[]\n", "")
    assert cli("set", "55", "--ipadd", "192.0.2.55", "--save").code == 0
    assert cli("list") == Result(0, "", "Container(s) not found\n")  # 55 is stopped
    assert cli("list", "-S", "-1") == Result(0, "55\n", "")


# -- JSON ------------------------------------------------------------------------------------------


def test_json_keys_are_pinned(cli: Cli, dirs: Dirs) -> None:
    assert set(JSON_KEYS) == STABLE_JSON_KEYS
    three_containers(cli, dirs)
    listed = json.loads(cli("list", "-a", "--json").out)
    assert [c["ctid"] for c in listed] == ["7", "55", "101"]
    assert [set(c) for c in listed] == [STABLE_JSON_KEYS] * 3
    assert listed[1] == {"ctid": "55", "running": False, "phase": "stopped",
                         "saved": ["192.0.2.55", "2001:db8::55/64"], "runtime": None, "ifindex": None,
                         "link": None, "netns": None}
    assert listed[2] == {"ctid": "101", "running": True, "phase": "running", "saved": ["192.0.2.1"],
                         "runtime": ["192.0.2.1", "192.0.2.2"], "ifindex": 12, "link": "vnf101", "netns": "ct101"}
    assert json.loads(cli("list", "-j").out) == [listed[0], listed[2]]  # running only, as the table
    assert json.loads(cli("list", "-S", "--json").out) == [listed[1]]
    for ctid, entry in zip(("7", "55", "101"), listed):
        assert json.loads(cli("show", ctid, "--json").out) == entry
    r = cli("list", "--json", "-o", "ctid")
    assert (r.code, r.out) == (21, "") and "not allowed with argument" in r.err


def test_json_keys_are_documented() -> None:
    """docs/json.md has one table row per key, each key once, in JSON_KEYS' order."""
    text = (ROOT / "docs" / "json.md").read_text()
    rows = re.findall(r"^\| `([a-z_]+)` \|", text, flags=re.MULTILINE)
    assert rows == list(JSON_KEYS)
