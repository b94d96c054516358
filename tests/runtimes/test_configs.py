"""The runtimes' configs for the hook (the OCI hooks.d file, the LXC snippet): one template each,
rendered with real paths by ``venetctl install-hook``, read back exactly by the runtime (the real
podman and LXC runs with rendered files are in test_podman.py and test_lxc.py)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.cli_runner import in_process
from venetfilter.errors import EXIT_INVALID
from venetfilter.runtimes import configs

CONTRIB = Path(__file__).resolve().parents[2] / "contrib"
SHIPPED_VENETCTL = Path("/usr/local/bin/venetctl")
DEFAULTS = ("--conf-dir", "/etc/venetfilter", "--run-dir", "/run/venetfilter")
ODD = "it's a \"venv\" $HOME #1 \\ ü"  # quotes, a variable, a comment sign, a backslash, not ASCII


@pytest.fixture
def venetctl(capsys):
    return in_process(capsys, [])


def test_contrib_copies_are_the_renderings_for_default_paths() -> None:
    """contrib/ keeps what the templates give for a pip install into /usr/local (regenerate with
    'venetctl install-hook oci|lxc --print --venetctl /usr/local/bin/venetctl')."""
    assert (CONTRIB / "oci-hooks.d" / "venetfilter.json").read_text() == configs.render_oci(SHIPPED_VENETCTL)
    assert (CONTRIB / "lxc" / "venetfilter.conf").read_text() == configs.render_lxc(SHIPPED_VENETCTL)


def test_oci_paths_are_json_strings(tmp_path: Path) -> None:
    odd = tmp_path / ODD / "line\nbreak"
    doc = json.loads(configs.render_oci(odd / "venetctl", odd / "conf", odd / "run"))
    assert doc["hook"]["path"] == f"{odd}/venetctl"
    assert doc["hook"]["env"] == [f"VENETFILTER_CONF_DIR={odd}/conf", f"VENETFILTER_RUN_DIR={odd}/run"]


def lxc_value(line: str) -> str:
    """What LXC makes of ``key = value`` (confile.c parse_line): white space around the value
    trimmed, then one pair of quotes stripped when the value starts and ends with the same one."""
    value = line.split("=", 1)[1].strip(" \t\r\n")
    if len(value) > 1 and value[0] in "'\"" and value[-1] == value[0]:
        value = value[1:-1]
    return value


@pytest.mark.parametrize("ctid", [None, "101"])
def test_lxc_hook_line_reaches_the_hook_as_its_words(tmp_path: Path, ctid: str | None) -> None:
    """LXC runs ``sh -c "exec VALUE NAME lxc HOOKTYPE"``: a stand-in venetctl in a directory with
    an odd name gets exactly its directories, ``hook lxc`` and what LXC appends."""
    bin_dir, conf, run = tmp_path / ODD / "bin", tmp_path / ODD / "conf", tmp_path / "'run'"
    bin_dir.mkdir(parents=True)
    script = bin_dir / "venetctl"
    script.write_text("#!/bin/sh\nfor arg; do printf '%s\\0' \"$arg\"; done\n")
    script.chmod(0o755)
    lines = [line for line in configs.render_lxc(script, conf, run, ctid).splitlines() if line.startswith("lxc.hook.")]
    assert [line.split(" = ", 1)[0] for line in lines] == ["lxc.hook.start-host", "lxc.hook.post-stop"]
    value = lxc_value(lines[0])
    out = subprocess.run(["sh", "-c", f"exec {value} web lxc start-host"], capture_output=True, check=True).stdout
    words = ["--conf-dir", str(conf), "--run-dir", str(run), "hook", "lxc", *(["--ctid", ctid] if ctid else [])]
    assert out.decode().split("\0")[:-1] == [*words, "web", "lxc", "start-host"]


def test_lxc_refuses_what_a_config_line_cannot_hold() -> None:
    with pytest.raises(configs.HookConfigError, match="line break"):
        configs.render_lxc(Path("/opt/a\nb/venetctl"))
    with pytest.raises(configs.HookConfigError, match="not an absolute path"):
        configs.render_lxc(Path("venetctl"))
    with pytest.raises(configs.HookConfigError, match="not UTF-8"):
        configs.render_oci(Path(os.fsdecode(b"/opt/\xff/venetctl")))


def test_install_hook_writes_both_files_for_this_environment(venetctl, tmp_path: Path) -> None:
    own = configs.installed_venetctl()
    assert own.is_absolute() and own.is_file()
    for runtime, render in (("oci", configs.render_oci), ("lxc", configs.render_lxc)):
        result = venetctl("install-hook", runtime, "--dir", str(tmp_path / runtime), *DEFAULTS)
        assert result.code == 0 and not result.err, result
        path = tmp_path / runtime / configs.CONFIG_NAME[runtime]
        assert f"wrote {path} (venetctl {own})" in result.out
        assert path.read_text() == render(own) and path.stat().st_mode & 0o777 == 0o644


def test_root_print_and_refusals(venetctl, tmp_path: Path) -> None:
    assert venetctl("install-hook", "oci", "--root", str(tmp_path), *DEFAULTS).code == 0
    assert (tmp_path / "etc/containers/oci/hooks.d/venetfilter.json").is_file()
    assert venetctl("install-hook", "lxc", "--root", str(tmp_path), *DEFAULTS).code == 0
    assert (tmp_path / "etc/lxc/venetfilter.conf").is_file()
    printed = venetctl("install-hook", "lxc", "--print", "--venetctl", "/opt/my venv/bin/venetctl", "--ctid", "101",
                       "--conf-dir", "/etc/vf", "--run-dir", "/run/vf")
    assert printed.code == 0
    assert printed.out == configs.render_lxc(Path("/opt/my venv/bin/venetctl"), Path("/etc/vf"), Path("/run/vf"), "101")
    assert "'/opt/my venv/bin/venetctl' --conf-dir /etc/vf --run-dir /run/vf hook lxc --ctid 101\n" in printed.out
    missing = venetctl("install-hook", "oci", "--dir", str(tmp_path / "d"), "--venetctl", "/nonexistent/venetctl")
    assert missing.code == 0 and "/nonexistent/venetctl does not exist (yet): the hook cannot run" in missing.err
    for args, message in (
        (["oci", "--print", "--conf-dir", "etc/vf"], "the conf dir etc/vf is not an absolute path"),
        (["lxc", "--print", "--run-dir", "/run/a\nb"], "has a line break"),
        (["lxc", "--print", "--ctid", "../x"], "invalid container id '../x'"),
        (["oci", "--print", "--dir", str(tmp_path)], "not allowed with argument"),
    ):
        refused = venetctl("install-hook", *args)
        assert refused.code == EXIT_INVALID and message in refused.err, refused
