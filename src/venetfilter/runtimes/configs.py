"""What a runtime reads to run venetfilter's hook: the OCI hooks.d file and the LXC config snippet,
rendered with the absolute path of this environment's ``venetctl`` and the state directories.

`render_oci` and `render_lxc` are the one source of both (``venetctl install-hook oci|lxc`` writes
or prints them); ``contrib/oci-hooks.d/venetfilter.json`` and ``contrib/lxc/venetfilter.conf`` are
their renderings for ``/usr/local/bin/venetctl`` and the default directories, checked by a test.

Paths are written so that the runtime reads them back exactly:

- OCI: JSON strings (``json.dumps``: quotes, backslashes, control characters escaped). The hook gets
  the directories in its ``env``, its only environment.
- LXC: a config line is ``key = value`` on one line; LXC trims the white space around the value and,
  when the value starts and ends with the same quote character, strips that pair
  (``parse_line`` in LXC's confile.c; lxc.container.conf(5) says only "fitting in one line"). The
  value is then run as ``sh -c "exec VALUE NAME lxc HOOKTYPE"``. So each word is quoted for sh
  (`shlex.quote`), a path with a line break is refused, and the value always ends with a bare word
  (``lxc``, or a CTID: letters, digits, ``_-.``), so that LXC never strips a quote of the first
  word. The directories are options on the hook line (the hooks would otherwise inherit
  ``lxc-start``'s environment).

A path that is not absolute, or not UTF-8, is refused (`HookConfigError`, exit 21).
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

from ..config.ctid import validate_ctid
from ..config.paths import CONF_DIR_ENV, DEFAULT_CONF_DIR, DEFAULT_RUN_DIR, RUN_DIR_ENV
from ..system_files import SystemFileError, absolute, installed_script
from .oci import ANNOTATION

__all__ = [
    "CONFIG_NAME",
    "LXC_CONFIG_DIR",
    "LXC_TEMPLATE",
    "OCI_HOOKS_DIR",
    "OCI_STAGES",
    "HookConfigError",
    "installed_venetctl",
    "lxc_hook_command",
    "oci_document",
    "render_lxc",
    "render_oci",
]

CONFIG_NAME = {"oci": "venetfilter.json", "lxc": "venetfilter.conf"}
"""The file name of each runtime's config."""
OCI_HOOKS_DIR = Path("/etc/containers/oci/hooks.d")
"""Where podman (and CRI-O, with its default hooks_dir) reads hooks.d files of the administrator."""
LXC_CONFIG_DIR = Path("/etc/lxc")
"""LXC's system configuration directory (``default.conf``): the snippet goes next to it."""
OCI_STAGES = ("createRuntime", "poststop")
"""The stages the hooks.d file names (`venetfilter.runtimes.oci` explains why createRuntime)."""
OCI_TIMEOUT = 30

LXC_TEMPLATE = """\
# venetfilter for an LXC container, rendered by 'venetctl install-hook lxc' (venetfilter.runtimes.configs):
# an OpenVZ venet-style link (venet0 inside, vnfCTID on the node) instead of LXC's own network, with
# the addresses of the container's venetfilter config file (CTID.conf) and nothing else.
#
# Give it to lxc-create, which copies it into the new container's config instead of the network of
# /etc/lxc/default.conf:
#     lxc-create -n 101 -t debian -f /etc/lxc/venetfilter.conf
# or include it in an existing container's config, and remove the lxc.net.N lines there:
#     lxc.include = /etc/lxc/venetfilter.conf
#
# The CTID is the container's name. For a name that is not a CTID (at most 12 letters, digits, '_',
# '-', '.'), put the lines of 'venetctl install-hook lxc --print --ctid CTID' in that container's
# config instead. The hooks use the directories named on their lines, not lxc-start's environment.

# a network namespace of its own with nothing in it ('none' would share the node's: refused)
lxc.net.0.type = empty
# after LXC made the container's namespaces, before its init runs: venet0 and its addresses
lxc.hook.start-host = {command}
# once the container is gone (also after a refused start): the link, routes, proxy entries, record
lxc.hook.post-stop = {command}
"""


class HookConfigError(SystemFileError):
    """A path the hook's config cannot name: exit code 21."""


def installed_venetctl() -> Path:
    """The absolute path of the ``venetctl`` script of the running Python environment (its scripts
    directory, then $PATH); `HookConfigError` when there is none."""
    return installed_script("venetctl", HookConfigError)


def _paths(venetctl: Path, conf_dir: Path, run_dir: Path, where: str) -> tuple[str, str, str]:
    """The three paths, absolute and normalised, each refused if not UTF-8 (`where` names the file)."""
    paths = []
    for path, what in ((venetctl, "venetctl"), (conf_dir, "conf dir"), (run_dir, "run dir")):
        text = str(absolute(path, what, HookConfigError))
        try:
            text.encode()
        except UnicodeEncodeError:
            raise HookConfigError(f"the {what} {text!r} is not UTF-8: it cannot be written in {where}") from None
        paths.append(text)
    return paths[0], paths[1], paths[2]


def oci_document(venetctl: Path, conf_dir: Path = DEFAULT_CONF_DIR, run_dir: Path = DEFAULT_RUN_DIR) -> dict[str, object]:
    """The hooks.d document (oci-hooks(5), version 1.0.0): ``venetctl hook oci`` at createRuntime
    and poststop of every container with the annotation, the directories in its environment."""
    path, conf, run = _paths(venetctl, conf_dir, run_dir, "an OCI hooks.d file")
    return {
        "version": "1.0.0",
        "hook": {
            "path": path,
            "args": ["venetctl", "hook", "oci"],
            "env": [f"{CONF_DIR_ENV}={conf}", f"{RUN_DIR_ENV}={run}"],
            "timeout": OCI_TIMEOUT,
        },
        "when": {"annotations": {f"^{re.escape(ANNOTATION)}$": ".+"}},
        "stages": list(OCI_STAGES),
    }


def render_oci(venetctl: Path, conf_dir: Path = DEFAULT_CONF_DIR, run_dir: Path = DEFAULT_RUN_DIR) -> str:
    """The hooks.d file's text (`oci_document` as JSON)."""
    return json.dumps(oci_document(venetctl, conf_dir, run_dir), indent=2) + "\n"


def lxc_hook_command(
    venetctl: Path, conf_dir: Path = DEFAULT_CONF_DIR, run_dir: Path = DEFAULT_RUN_DIR, ctid: str | None = None
) -> str:
    """The value of ``lxc.hook.start-host`` / ``lxc.hook.post-stop``: ``VENETCTL --conf-dir DIR
    --run-dir DIR hook lxc [--ctid CTID]``, each word quoted for sh, the last one bare."""
    path, conf, run = _paths(venetctl, conf_dir, run_dir, "an LXC config line")
    for text, what in ((path, "venetctl"), (conf, "conf dir"), (run, "run dir")):
        if "\n" in text or "\r" in text:
            raise HookConfigError(f"the {what} {text!r} has a line break: it cannot be written in an LXC config line")
    words = [path, "--conf-dir", conf, "--run-dir", run, "hook", "lxc"]
    if ctid is not None:
        words += ["--ctid", validate_ctid(ctid)]
    command = " ".join(shlex.quote(word) for word in words)
    assert command[-1] not in "'\"", command  # a CTID is never quoted: LXC strips no quote pair
    return command


def render_lxc(
    venetctl: Path, conf_dir: Path = DEFAULT_CONF_DIR, run_dir: Path = DEFAULT_RUN_DIR, ctid: str | None = None
) -> str:
    """The LXC config snippet: no network of LXC's own, and both hooks."""
    return LXC_TEMPLATE.format(command=lxc_hook_command(venetctl, conf_dir, run_dir, ctid))

