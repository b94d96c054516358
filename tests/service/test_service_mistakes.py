"""``venetctl install-service`` given the directories a careless admin gives it: the unit must name,
in every setting, the same directory the worker is told on its command line.

systemd reads the settings differently (systemd.unit(5), systemd.exec(5), systemd.service(5)):
every setting unquotes its words and expands ``%`` specifiers (``%%`` is one ``%``); only the
``Exec*=`` command lines also expand ``$VAR`` / ``${VAR}`` (``$$`` is one ``$``). So ``$`` must be
doubled in ExecStart= and left alone in RuntimeDirectory= and ReadWritePaths=. RuntimeDirectory= also
reads C escapes and takes ``:`` as the start of a symlink to make (``vf:x`` makes /run/vf): what systemd
itself makes of those two settings is asked of ``systemd-analyze verify``.

The worker the unit runs must be visible inside its sandbox, and so must its ``#!`` interpreter, or
every start fails with 203/EXEC; a run dir outside /run must exist at start, or it fails with 226/NAMESPACE.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from tests.cli_runner import in_process
from venetfilter.worker import unit

WORKER = Path("/usr/local/bin/venetfilter-worker")


def _settings(text: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in text.splitlines() if line.startswith(f"{key}=")]


def _specifiers(word: str) -> str:
    return word.replace("%%", "%")


def worker_run_dir(text: str) -> str:
    """The --run-dir the worker gets: ExecStart= unquoted, specifiers and then variables expanded."""
    (line,) = _settings(text, "ExecStart")
    words = [_specifiers(word).replace("$$", "$") for word in shlex.split(line)]
    return words[words.index("--run-dir") + 1]


def sandbox_run_dir(text: str) -> str:
    """The directory the unit makes writable for the run dir: RuntimeDirectory= (under /run) or the
    first ReadWritePaths=, unquoted, specifiers expanded, no variables."""
    runtime = _settings(text, "RuntimeDirectory")
    if runtime:
        (word,) = shlex.split(runtime[0])
        return "/run/" + _specifiers(word)
    (word,) = shlex.split(_settings(text, "ReadWritePaths")[0])
    return _specifiers(word)


@pytest.mark.parametrize("run_dir", [
    "/run/venetfilter",
    "/run/vf 2",
    "/run/vf%i",
    "/srv/venet filter",
    "/srv/vf%h",
    "/run/vf$x",
    "/srv/vf$HOME",
    "/srv/vf:x\"q'\\",
])
def test_the_unit_and_the_worker_agree_on_the_run_dir(run_dir: str) -> None:
    text = unit.render(WORKER, Path("/etc/venetfilter"), Path(run_dir))
    assert worker_run_dir(text) == run_dir
    assert sandbox_run_dir(text) == run_dir


@pytest.mark.parametrize("conf_dir", ["/etc/venet filter", "/etc/vf%n", "/etc/vf$USER", "/etc/vf\"q'"])
def test_the_worker_gets_the_conf_dir_as_given(conf_dir: str) -> None:
    text = unit.render(WORKER, Path(conf_dir))
    (line,) = _settings(text, "ExecStart")
    words = [_specifiers(word).replace("$$", "$") for word in shlex.split(line)]
    assert words[words.index("--conf-dir") + 1] == conf_dir


HIDERS = [h for h in unit.HIDDEN if h.count("/") == 1 or h == "/var/tmp"]  # /root, /home, /tmp, /var/tmp


@pytest.mark.parametrize("parent", HIDERS)
def test_a_worker_whose_interpreter_the_sandbox_hides_is_refused(parent: str, hidden_dir, visible_dir: Path,
                                                                 tmp_path: Path) -> None:
    """A worker in a virtual environment made from a Python the unit hides (pyenv's under /root, one
    built under /home or /tmp): the venv is visible, its python a symlink into `parent`. Made by the
    test, so the refusal is tested wherever this checkout and its interpreter are."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("hiding directories in a mount namespace needs root and unshare")
    base = hidden_dir(parent) / "bin" / "python3"
    base.parent.mkdir()
    base.write_text('#!/bin/sh\nexec /bin/sh "$@"\n')  # an interpreter: runs the worker's script
    base.chmod(0o755)
    venv_python = visible_dir / "venv" / "bin" / "python"
    venv_python.parent.mkdir(parents=True)
    venv_python.symlink_to(base)
    worker = visible_dir / "venv" / "bin" / "venetfilter-worker"
    worker.write_text(f"#!{venv_python}\necho worker ran\n")
    worker.chmod(0o755)
    # the mechanism: it runs; with the directories hidden as the unit hides them, it cannot
    assert subprocess.run([str(worker)], capture_output=True, text=True, timeout=30).stdout == "worker ran\n"
    hide = " && ".join(f"mount -t tmpfs -o mode=000 tmpfs {h}" for h in HIDERS if Path(h).is_dir() and not Path(h).is_symlink())
    run = subprocess.run(["unshare", "-m", "sh", "-c", f"mount --make-rprivate / && {hide} && exec {worker}"],
                         capture_output=True, text=True, timeout=30)
    assert run.returncode != 0 and "worker ran" not in run.stdout, f"the worker ran with {parent} hidden"
    # so install-service must not write that unit without a word, and says what the library says
    with pytest.raises(unit.UnitError) as refused:
        unit.check_runnable(worker)
    message = str(refused.value)
    assert message.startswith(f"the worker's #! interpreter {venv_python} (resolved: {base}) is under {parent}, "
                              f"which the unit's sandbox hides ({unit.HIDDEN[parent]}): "), message
    result = subprocess.run([sys.executable, "-m", "venetfilter.cli", "install-service", "--unit-dir", str(tmp_path),
                             "--no-reload", "--worker", str(worker), "--conf-dir", "/etc/venetfilter",
                             "--run-dir", "/run/venetfilter"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 21 and result.stderr == f"venetctl: {message}\n", result
    assert "-m venv" in message and not (tmp_path / unit.UNIT_NAME).exists()


@pytest.mark.parametrize("parent", HIDERS)
def test_a_worker_under_a_hidden_directory_is_refused_with_one_message(parent: str, hidden_dir, venetctl,
                                                                      visible_dir: Path) -> None:
    """The worker itself under `parent`, there or not (yet): render, check_runnable and the CLI refuse
    it alike, with one message."""
    directory = hidden_dir(parent)
    there = directory / "bin" / "venetfilter-worker"
    there.parent.mkdir()
    there.write_text("#!/bin/sh\n")
    there.chmod(0o755)
    for worker in there, directory / "not-yet" / "venetfilter-worker":
        with pytest.raises(unit.UnitError) as rendered:
            unit.render(worker)
        with pytest.raises(unit.UnitError) as checked:
            unit.check_runnable(worker)
        expected = (f"the worker {worker} is under {parent}, which the unit's sandbox hides ({unit.HIDDEN[parent]}): "
                    "the unit would fail with 203/EXEC at every start. Install venetfilter into a virtual environment")
        assert str(rendered.value) == str(checked.value) and str(checked.value).startswith(expected), checked.value
        for units in visible_dir / "units", None:  # None: a dry run (--print) refuses alike
            result = install(venetctl, units, worker)
            assert result.code == 21 and result.err == f"venetctl: {checked.value}\n", result
        assert not (visible_dir / "units").exists()


needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")


def systemd_reads(key: str, word: str, tmp_path: Path) -> str:
    """What systemd makes of `word` as the value of `key` (RuntimeDirectory= or ReadWritePaths=): the
    word is made a path that setting refuses ('/' before a directory name, 'x' before a path), and
    ``systemd-analyze verify`` names what it refused."""
    probe = ("/" if key == "RuntimeDirectory" else "x") + word
    path = tmp_path / "probe.service"
    path.write_text(f"[Service]\nExecStart=/bin/true\n{key}={probe}\n")
    result = subprocess.run(["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60)
    found = re.search(rf"{key}= path is (?:not )?absolute, ignoring: (.*)$", result.stderr, re.MULTILINE)
    assert found, result.stderr
    return found[1][1:]


@needs_analyze
@pytest.mark.parametrize("run_dir", [
    "/run/venetfilter", "/run/vf 2", "/run/vf%i", "/run/vf$x", "/run/vf:x", "/run/a b:c\"d'e\\f%g$h;i\\x41",
    "/srv/venet filter", "/srv/vf%h", "/srv/vf$HOME", "/srv/vf:x", "/srv/a b:c\"d'e\\f%g$h;i\\x41",
])
def test_systemd_reads_the_run_dir_the_worker_is_told(run_dir: str, tmp_path: Path) -> None:
    text = unit.render(WORKER, Path("/etc/venetfilter"), Path(run_dir))
    assert worker_run_dir(text) == run_dir
    runtime = _settings(text, "RuntimeDirectory")
    if run_dir.startswith("/run/"):
        assert "/run/" + systemd_reads("RuntimeDirectory", runtime[0], tmp_path) == run_dir
    else:
        assert not runtime
        assert systemd_reads("ReadWritePaths", _settings(text, "ReadWritePaths")[0], tmp_path) == run_dir


@pytest.fixture
def venetctl(capsys, monkeypatch):
    monkeypatch.setattr(unit, "systemd_running", lambda: False)  # never a daemon-reload from a test
    return in_process(capsys, [])


def install(venetctl, unit_dir: Path | None, worker: Path, *options: str):
    """install-service of `worker` into `unit_dir`, or with --print when it is None."""
    where = ("--unit-dir", str(unit_dir)) if unit_dir is not None else ("--print",)
    return venetctl("install-service", *where, "--worker", str(worker),
                    "--conf-dir", "/etc/venetfilter", "--run-dir", "/run/venetfilter", *options)


def test_a_worker_that_resolves_into_a_hidden_directory_is_refused(venetctl, make_worker, runnable_worker: Path,
                                                                   visible_dir: Path, hidden_dir) -> None:
    """hidden is under /tmp, which PrivateTmp= hides; visible_dir is not hidden."""
    units = visible_dir / "units"
    tmp_path = hidden_dir("/tmp")
    hidden_python = tmp_path / "python3"
    hidden_python.symlink_to("/usr/bin/python3")
    (visible_dir / "venv/bin").mkdir(parents=True)
    (visible_dir / "venv/bin/python").symlink_to(hidden_python)  # a venv's python -> a python under /tmp
    cases = {
        "symlinked interpreter": make_worker("w1", f"#!{visible_dir}/venv/bin/python"),
        "interpreter": make_worker("w2", f"#!{hidden_python}"),
        "env": make_worker("w3", "#!/usr/bin/env vf-test-python"),
    }
    (visible_dir / "hidden-worker").symlink_to(hidden_python)  # the worker itself resolves under /tmp
    cases["worker"] = visible_dir / "hidden-worker"
    launcher = make_worker("w4", "#!/bin/sh")  # pip's launcher for a python path with a space
    launcher.write_text(f"#!/bin/sh\n'''exec' \"{hidden_python}\" \"$0\" \"$@\"\n' '''\nimport sys\n")
    cases["sh launcher"] = launcher
    for case, worker in cases.items():
        result = install(venetctl, units, worker)
        if case == "env":  # no vf-test-python on the PATH of a system service
            assert result.code == 21 and "vf-test-python" in result.err and "PATH" in result.err, (case, result)
        else:
            assert result.code == 21 and str(tmp_path) in result.err and "sandbox hides (PrivateTmp=yes)" in result.err, (case, result)
            assert "-m venv" in result.err, result
        assert not (units / unit.UNIT_NAME).exists(), case
        printed = install(venetctl, None, worker)  # a dry run refuses alike
        assert printed.code == 21 and printed.err == result.err, (case, printed)
    (visible_dir / "venv/pyvenv.cfg").write_text(f"home = {tmp_path}\n")  # its standard library under /tmp
    (visible_dir / "venv/bin/python").unlink()
    (visible_dir / "venv/bin/python").symlink_to("/usr/bin/python3")
    result = install(venetctl, units, cases["symlinked interpreter"])
    assert result.code == 21 and "base Python" in result.err and str(tmp_path) in result.err, result
    missing = make_worker("w5", f"#!{visible_dir}/no/python")
    result = install(venetctl, units, missing)
    assert result.code == 21 and "does not exist" in result.err, result
    result = install(venetctl, units, runnable_worker)  # the same worker with the system's python3
    assert result.code == 0 and (units / unit.UNIT_NAME).is_file(), result


def test_a_run_dir_outside_run_is_made_with_the_unit(venetctl, runnable_worker: Path, visible_dir: Path,
                                                    tmp_path: Path) -> None:
    """ReadWritePaths= of a missing directory fails every start with 226/NAMESPACE; a '-' prefix would
    start the worker on a read-only run dir it cannot make (ProtectSystem=strict). So it is made."""
    run_dir = visible_dir / "state" / "run"
    options = ("--worker", str(runnable_worker), "--conf-dir", "/etc/venetfilter", "--run-dir", str(run_dir))
    printed = venetctl("install-service", "--print", *options)
    assert printed.code == 0 and f"ReadWritePaths={run_dir}\n" in printed.out
    assert "does not exist" in printed.err and not run_dir.exists()  # --print writes nothing, but says so
    root = tmp_path / "image"
    assert venetctl("install-service", "--root", str(root), *options).code == 0
    assert (root / run_dir.relative_to("/")).is_dir() and not run_dir.exists()
    result = venetctl("install-service", "--unit-dir", str(tmp_path / "units"), *options)
    assert result.code == 0 and f"made the run dir {run_dir}" in result.out, result
    assert run_dir.is_dir() and run_dir.stat().st_mode & 0o777 == 0o700
    assert f"ReadWritePaths={run_dir}\n" in (tmp_path / "units" / unit.UNIT_NAME).read_text()  # no "-": it must be there
    again = venetctl("install-service", "--unit-dir", str(tmp_path / "units"), *options)
    assert again.code == 0 and "made the run dir" not in again.out
    run_dir.rmdir()
    run_dir.write_text("")
    refused = venetctl("install-service", "--unit-dir", str(tmp_path / "units"), *options)
    assert refused.code == 21 and "not a directory" in refused.err, refused
