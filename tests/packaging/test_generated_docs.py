"""venetctl(8) and the bash completion: generated from the parser, shipped up to date in contrib/,
rendered by groff without a warning, and completing for real in bash."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from venetfilter.cli import build_parser, main
from venetfilter.cli.docs import COMPLETION_NAME, MAN_NAME, REGENERATE, Command, commands, generated
from venetfilter.cli.gendocs import main as gendocs, stale

ROOT = Path(__file__).resolve().parents[2]
CONTRIB = ROOT / "contrib"
VENETCTL = Path(sys.executable).parent / "venetctl"


def every_command() -> list[Command]:
    found, todo = [], [commands(build_parser())]
    while todo:
        command = todo.pop(0)
        found.append(command)
        todo += command.subcommands
    return found


def options(command: Command) -> list[str]:
    return [s for a in command.parser._actions if a.option_strings and a.help is not argparse.SUPPRESS
            for s in a.option_strings]


# -- shipped and up to date --------------------------------------------------------------------------


def test_the_shipped_files_are_up_to_date() -> None:
    assert stale(CONTRIB) == [], f"contrib/ is out of date with the parser: run {REGENERATE}"


def test_check_notices_a_stale_copy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert gendocs(["--write", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([MAN_NAME, COMPLETION_NAME])
    assert gendocs(["--check", str(tmp_path)]) == 0
    page = tmp_path / MAN_NAME
    page.write_text(page.read_text().replace("ipdel", "ipremove"))  # as if the parser had changed
    assert gendocs(["--check", str(tmp_path)]) == 1
    assert f"{page} is out of date: run {REGENERATE}" in capsys.readouterr().err
    (tmp_path / COMPLETION_NAME).unlink()
    assert stale(tmp_path) == [MAN_NAME, COMPLETION_NAME]


def test_venetctl_prints_them(capsys: pytest.CaptureFixture[str]) -> None:
    files = generated()
    capsys.readouterr()
    assert main(["man"]) == 0
    assert capsys.readouterr().out == files[MAN_NAME]
    for args in (["completion"], ["completion", "bash"]):
        assert main(args) == 0
        assert capsys.readouterr().out == files[COMPLETION_NAME]
    assert main(["completion", "zsh"]) == 21


# -- the man page -----------------------------------------------------------------------------------


def test_the_man_page_renders_without_warnings() -> None:
    if shutil.which("groff") is None:
        pytest.skip("needs groff (Debian groff-base)")
    p = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", str(CONTRIB / MAN_NAME)],
                       capture_output=True, text=True, timeout=60)
    assert (p.returncode, p.stderr) == (0, "")


def test_the_man_page_documents_every_command_and_option() -> None:
    if shutil.which("man") is None:
        pytest.skip("needs man (Debian man-db)")
    env = {k: v for k, v in os.environ.items() if k != "MAN_KEEP_FORMATTING"} | {"MANWIDTH": "200", "LC_ALL": "C.UTF-8"}
    p = subprocess.run(["man", "--warnings", "-l", str(CONTRIB / MAN_NAME)],
                       capture_output=True, text=True, env=env, timeout=60)
    assert (p.returncode, p.stderr) == (0, "")
    text = p.stdout.replace("\u2010", "-").replace("\u2212", "-")
    assert text.startswith("VENETCTL(8)")
    for section in ("NAME", "SYNOPSIS", "COMMON OPTIONS", "COMMANDS", "JSON OUTPUT", "EXIT STATUS", "FILES"):
        assert f"\n{section}\n" in text
    for command in every_command()[1:]:
        assert f"   {command.name}\n" in text, command.name
        for option in options(command):
            if option not in ("-h", "--help"):
                assert option in text, (command.name, option)
    for code in ("0", "3", "14", "21", "31", "32", "34", "78"):
        assert f"\n       {code} " in text or f"\n              {code} " in text, code


# -- the completion ---------------------------------------------------------------------------------


def complete(*words: str, env: dict[str, str] | None = None) -> list[str]:
    """What bash offers for the command line `words` (the last one is being typed)."""
    script = (
        f'source {CONTRIB / COMPLETION_NAME}\n'
        'COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))\n'
        '_venetctl\n'
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    p = subprocess.run(["bash", "--norc", "--noprofile", "-c", script, "bash", *words],
                       capture_output=True, text=True, env=env, timeout=60)
    assert (p.returncode, p.stderr) == (0, "")
    return [line for line in p.stdout.splitlines() if line]


def test_completion_is_registered() -> None:
    p = subprocess.run(["bash", "--norc", "--noprofile", "-c", f"source {CONTRIB / COMPLETION_NAME}; complete -p venetctl"],
                       capture_output=True, text=True, timeout=60)
    assert (p.returncode, p.stdout) == (0, "complete -F _venetctl venetctl\n")


def test_completion_of_commands_and_options() -> None:
    assert complete("venetctl", "") == [c.path[0] for c in commands(build_parser()).subcommands]
    assert complete("venetctl", "se") == ["set"]
    assert complete("venetctl", "s") == ["set", "show", "start", "stop", "status", "sysctl", "stats"]
    assert complete("venetctl", "set", "101", "--ip") == ["--ipadd", "--ip", "--ipdel"]
    assert complete("venetctl", "set", "101", "--ipadd", "192.0.2.1", "--s") == ["--save", "--searchdomain"]
    # options with a value before the command are skipped, value and all
    assert complete("venetctl", "--conf-dir", "/etc", "--notify-timeout", "3", "list", "--j") == ["--json"]
    assert complete("venetctl", "--conf-dir", "/etc", "li") == ["list"]
    assert complete("venetctl", "list", "-") == options(next(c for c in every_command() if c.path == ("list",)))
    assert complete("venetctl", "hook", "") == ["oci", "lxc"]
    assert complete("venetctl", "hook", "oci", "--st") == ["--stage"]


def test_completion_of_values() -> None:
    assert complete("venetctl", "rules", "") == ["install", "remove", "show"]
    assert complete("venetctl", "rules", "install", "--mode", "") == ["default", "queue"]
    assert complete("venetctl", "worker", "--backend", "n") == ["native", "netfilterqueue"]
    assert complete("venetctl", "list", "-o", "ctid,st") == ["ctid,status", "ctid,state"]
    assert complete("venetctl", "list", "--output", "i") == ["ip", "ifindex"]
    assert complete("venetctl", "set", "101", "--ipadd", "") == []  # nothing sensible to offer


def test_completion_of_directories(tmp_path: Path) -> None:
    (tmp_path / "confs").mkdir()
    (tmp_path / "conf.txt").write_text("")
    assert complete("venetctl", "--conf-dir", f"{tmp_path}/con") == [f"{tmp_path}/confs"]
    assert complete("venetctl", "list", "--run-dir", "=", f"{tmp_path}/con") == [f"{tmp_path}/confs"]  # --run-dir=...
    assert sorted(complete("venetctl", "sysctl", "--persist", f"{tmp_path}/con")) == [
        f"{tmp_path}/conf.txt", f"{tmp_path}/confs"]


def test_completion_of_ctids(tmp_path: Path) -> None:
    """CTIDs come from ``venetctl list -a -1``, run by the venetctl being completed."""
    conf = tmp_path / "conf"
    conf.mkdir()
    for ctid in ("101", "102", "7"):
        (conf / f"{ctid}.conf").write_text('IP_ADDRESS=""\n')
    env = {**os.environ, "VENETFILTER_CONF_DIR": str(conf), "VENETFILTER_RUN_DIR": str(tmp_path / "run")}
    assert complete(str(VENETCTL), "show", "10", env=env) == ["101", "102"]
    assert complete(str(VENETCTL), "set", "", env=env) == ["7", "101", "102"]
    assert complete(str(VENETCTL), "set", "101", "", env=env) == []  # one CTID only
