"""venetctl(8) and its bash completion, generated from the argparse definitions (`build_parser`).

The parser is the one source of truth: every command, option, metavar, choice and help text comes
from it; the exit codes from `venetfilter.errors`; the JSON keys from
`venetfilter.cli.containers.JSON_KEYS`. The shipped copies in contrib/ are regenerated with::

    python -m venetfilter.cli.gendocs --write contrib

(``--check contrib`` exits 1 when they are out of date; a test does the same). An installed
``venetctl`` prints them itself: ``venetctl man`` and ``venetctl completion bash``.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from ..config.paths import CONF_DIR_ENV, DEFAULT_CONF_DIR, DEFAULT_RUN_DIR, RUN_DIR_ENV
from ..errors import (
    EXIT_ADDRESS_IN_USE,
    EXIT_CANNOT_ADD_IP,
    EXIT_INVALID,
    EXIT_NO_CONFIG,
    EXIT_NOT_RUNNING,
    EXIT_RUNNING,
    EXIT_SYSTEM,
)
from ._common import EXIT_NOT_ISOLATED, EXIT_OK

__all__ = ["COMPLETION_NAME", "MAN_NAME", "REGENERATE", "bash_completion", "commands", "generated", "man_page", "register", "write"]

COMPLETION_NAME = "venetctl.bash-completion"
MAN_NAME = "venetctl.8"
REGENERATE = "python -m venetfilter.cli.gendocs --write contrib"

EXIT_CODES = [
    (EXIT_OK, "success (also stop of a stopped container, and list when nothing is found)"),
    (EXIT_NOT_ISOLATED, "status: a running container is not isolated"),
    (EXIT_SYSTEM, "system error: a file that cannot be written, a netlink or nftables failure, corrupt state"),
    (EXIT_NO_CONFIG, "no such container: no config file and not running"),
    (EXIT_INVALID, "invalid parameter: a usage error, a bad address or container id, an unknown field, CT 0"),
    (EXIT_NOT_RUNNING, "the container is not running (set without --save)"),
    (EXIT_RUNNING, "the container is already running"),
    (EXIT_CANNOT_ADD_IP, "the address change could not be applied; nothing was changed"),
    (EXIT_ADDRESS_IN_USE, "the address is in use: by another container, routed elsewhere, or answered on the uplink"),
]
"""vzctl's exit codes as venetctl uses them (include/vzerror.h)."""


# -- the parser as a tree of commands ---------------------------------------------------------------


@dataclass
class Command:
    """One ``venetctl ...`` command: its words, its parser, its help line, and its subcommands."""

    path: tuple[str, ...]
    parser: argparse.ArgumentParser
    help: str = ""
    subcommands: list[Command] = field(default_factory=list)

    @property
    def name(self) -> str:
        return " ".join(("venetctl", *self.path))


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction[Any] | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    return None


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = (), help: str = "") -> Command:
    """The command tree under `parser` (``venetctl`` itself at the root)."""
    command = Command(path, parser, help)
    sub = _subparsers(parser)
    if sub is not None:
        helps = {a.dest: a.help or "" for a in sub._choices_actions}
        seen: set[int] = set()
        for name, child in sub.choices.items():
            if id(child) not in seen:  # an alias is the same parser under another name
                seen.add(id(child))
                command.subcommands.append(commands(child, (*path, name), helps.get(name, "")))
    return command


def _walk(command: Command) -> Iterator[Command]:
    yield command
    for sub in command.subcommands:
        yield from _walk(sub)


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings and a.help is not argparse.SUPPRESS]


def _positionals(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        a for a in parser._actions
        if not a.option_strings and not isinstance(a, argparse._SubParsersAction) and a.help is not argparse.SUPPRESS
    ]


def _takes_value(action: argparse.Action) -> bool:
    return action.nargs != 0


def _consumes_next_word(action: argparse.Action) -> bool:
    """True when the word after the option is always its value (not for ``nargs='?'``)."""
    return action.nargs not in (0, "?", "*")


def _metavar(action: argparse.Action) -> str:
    if isinstance(action.metavar, tuple):
        return " ".join(action.metavar)
    if action.metavar is not None:
        return str(action.metavar)
    if action.choices is not None:
        return "{" + ",".join(str(c) for c in action.choices) + "}"
    return action.dest.upper() if action.option_strings else action.dest


def _help(action: argparse.Action, prog: str) -> str:
    text = action.help or ""
    if "%" in text:
        params = {**vars(action), "prog": prog, "default": action.default}
        params["choices"] = ", ".join(str(c) for c in action.choices) if action.choices else ""
        text = text % params
    return text


def _common_dests(root: argparse.ArgumentParser) -> set[str]:
    """The options every subcommand shares with ``venetctl`` itself (--conf-dir, ...)."""
    return {a.dest for a in _options(root) if not isinstance(a, (argparse._HelpAction, argparse._VersionAction))}


# -- the man page -----------------------------------------------------------------------------------


def _roff(text: str) -> str:
    """Text for a roff line: backslashes and dashes escaped, no control character at its start."""
    text = " ".join(text.split()).replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + text if text.startswith((".", "'")) else text


def _option_synopsis(action: argparse.Action) -> str:
    flags = ", ".join(f"\\fB{_roff(s)}\\fR" for s in action.option_strings)
    if not _takes_value(action):
        return flags
    value = f"\\fI{_roff(_metavar(action))}\\fR"
    return f"{flags} [{value}]" if action.nargs == "?" else f"{flags} {value}"


def _usage(command: Command, common: set[str]) -> str:
    words = [f"\\fB{_roff(command.name)}\\fR"]
    for action in command.parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction)) or action.dest in common:
            continue
        if action.help is argparse.SUPPRESS:
            continue
        if isinstance(action, argparse._SubParsersAction):
            words.append(f"\\fI{_roff(_metavar(action))}\\fR ...")
        elif not action.option_strings:
            metavar = f"\\fI{_roff(_metavar(action))}\\fR"
            words.append(f"[{metavar}]" if action.nargs == "?" else metavar)
        else:
            short = next((s for s in action.option_strings if not s.startswith("--")), action.option_strings[0])
            flag = f"\\fB{_roff(short)}\\fR"
            if _takes_value(action):
                flag += f" \\fI{_roff(_metavar(action))}\\fR"
            words.append(f"[{flag}]")
    return " ".join(words)


def _option_list(parser: argparse.ArgumentParser, actions: Sequence[argparse.Action], prog: str) -> list[str]:
    lines = []
    for action in actions:
        lines += [".TP", _option_synopsis(action) if action.option_strings else f"\\fI{_roff(_metavar(action))}\\fR"]
        lines.append(_roff(_help(action, prog)) or "\\&")
    return lines


def _command_section(command: Command, common: set[str]) -> list[str]:
    parser = command.parser
    lines = [f'.SS "{_roff(command.name)}"', ".PP", _usage(command, common), ".PP"]
    lines.append(_roff(parser.description or command.help))
    for group in parser._action_groups:
        actions = [
            a for a in group._group_actions
            if a.help is not argparse.SUPPRESS and a.dest not in common
            and not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))
        ]
        if not actions:
            continue
        if group.title not in ("positional arguments", "options", "optional arguments"):
            lines += [".PP", f"\\fI{_roff(group.title or '')}\\fR."]
            if group.description:
                lines.append(_roff(group.description))
        lines += [".RS", *_option_list(parser, actions, command.name), ".RE"]
    if command.subcommands:
        lines += [".PP", "Commands:", ".RS"]
        for sub in command.subcommands:
            lines += [".TP", f"\\fB{_roff(sub.path[-1])}\\fR", _roff(sub.help) or "\\&"]
        lines.append(".RE")
    return lines


def man_page(parser: argparse.ArgumentParser) -> str:
    """venetctl(8) in roff (man macros), from `parser`."""
    from .containers import JSON_KEYS

    root = commands(parser)
    common = _common_dests(parser)
    title = f'.TH VENETCTL 8 "" "venetfilter {__version__}" "System Administration"'
    lines = [
        f".\\\" venetctl(8), generated from venetctl's argparse definitions by `{REGENERATE}`.",
        ".\\\" Do not edit: change the parser and regenerate.",
        title,
        ".SH NAME",
        "venetctl \\- " + _roff((parser.description or "").rstrip(".")),
        ".SH SYNOPSIS",
        f"\\fBvenetctl\\fR [\\fB\\-\\-version\\fR] [\\fIcommon options\\fR] \\fICOMMAND\\fR [\\fIoptions\\fR]",
        ".SH DESCRIPTION",
        _roff(
            "venetctl gives containers and network namespaces OpenVZ's venet isolation on a stock Linux "
            "kernel: a container sends from and receives for its own addresses only, and only the node's "
            "administrator gives it addresses. Its commands and options follow vzctl(8) and vzlist(8), "
            "and so do its exit codes, so that scripts written for OpenVZ keep working."
        ),
        ".SH COMMON OPTIONS",
        _roff("Accepted before the command and after it, by every command."),
        ".RS",
        *_option_list(parser, [a for a in _options(parser) if a.dest in common or a.dest == "version"], "venetctl"),
        ".RE",
        ".SH COMMANDS",
    ]
    for command in list(_walk(root))[1:]:
        lines += _command_section(command, common)
    lines += [".SH JSON OUTPUT", _roff(
        "show --json prints one object, list --json a list of them (running containers unless -a). "
        "The keys are stable (docs/json.md in the source has the details):"
    ), ".RS"]
    for key, meaning in JSON_KEYS.items():
        lines += [".TP", f"\\fB{_roff(key)}\\fR", _roff(meaning)]
    lines += [".RE", ".SH EXIT STATUS", _roff("The codes of vzctl(8) where it has one:"), ".RS"]
    for code, meaning in EXIT_CODES:
        lines += [".TP", f"\\fB{code}\\fR", _roff(meaning)]
    lines += [
        ".RE",
        ".SH ENVIRONMENT",
        ".TP", f"\\fB{CONF_DIR_ENV}\\fR", _roff(f"the default of --conf-dir ({DEFAULT_CONF_DIR})"),
        ".TP", f"\\fB{RUN_DIR_ENV}\\fR", _roff(f"the default of --run-dir ({DEFAULT_RUN_DIR})"),
        ".SH FILES",
        ".TP", f"\\fI{_roff(f'{DEFAULT_CONF_DIR}/CTID.conf')}\\fR",
        _roff('a container\'s config file, OpenVZ\'s format: IP_ADDRESS="..." (other keys are kept as they are)'),
        ".TP", f"\\fI{_roff(f'{DEFAULT_CONF_DIR}/venetfilter-node.conf')}\\fR",
        _roff("the node's settings (LINK_PREFIX, NEIGHBOUR_DEVS, SKIP_ARPDETECT, ERROR_ON_ARPFAIL)"),
        ".TP", f"\\fI{_roff(f'{DEFAULT_RUN_DIR}/state.json')}\\fR",
        _roff("the runtime record of every running container, read by the worker"),
        ".SH SEE ALSO",
        "\\fBvzctl\\fR(8), \\fBvzlist\\fR(8), \\fBnft\\fR(8), \\fBip\\fR(8), \\fBsystemctl\\fR(1)",
    ]
    return "\n".join(lines) + "\n"


# -- bash completion --------------------------------------------------------------------------------


def _words(values: Sequence[str]) -> str:
    return shlex.quote(" ".join(values))


def _value_completion(action: argparse.Action) -> str | None:
    """The bash that completes `action`'s value, or None when nothing sensible can be offered."""
    if action.choices is not None:
        return f"COMPREPLY=($(compgen -W {_words([str(c) for c in action.choices])} -- \"$cur\"))"
    metavar = _metavar(action)
    if metavar.startswith("FIELD["):  # list -o: comma-separated field names
        from .containers import FIELD_ALIASES, FIELDS

        return f"_venetctl_list_of {_words([*FIELDS, *FIELD_ALIASES])}"
    if metavar == "CTID":
        return "_venetctl_ctids"
    if "DIR" in metavar:
        return "_venetctl_files -d"
    if "FILE" in metavar or metavar == "PATH":
        return "_venetctl_files -f"
    return None


def bash_completion(parser: argparse.ArgumentParser) -> str:
    """A bash completion script for ``venetctl``: commands, options, choices, directories, CTIDs."""
    specs, values = [], []
    for command in _walk(commands(parser)):
        key = shlex.quote(" ".join(command.path))
        options = [s for a in _options(command.parser) for s in a.option_strings]
        valued = [s for a in _options(command.parser) if _consumes_next_word(a) for s in a.option_strings]
        subs = [sub.path[-1] for sub in command.subcommands]
        specs.append(
            f"        {key}) commands={_words(subs)}; options={_words(options)}; valued={_words(valued)} ;;"
        )
        for action in _options(command.parser):
            completion = _value_completion(action) if _takes_value(action) else None
            if completion:
                for option in action.option_strings:
                    values.append(f"        {shlex.quote(' '.join(command.path) + '|' + option)}) {completion} ;;")
        for index, action in enumerate(_positionals(command.parser)):
            completion = _value_completion(action)
            if completion:
                values.append(f"        {shlex.quote(' '.join(command.path) + f'|#{index}')}) {completion} ;;")
    return "\n".join([
        f"# bash completion for venetctl(8) (venetfilter {__version__}), generated from venetctl's argparse",
        f"# definitions by `{REGENERATE}`. Do not edit: change the parser and regenerate.",
        "# Install: /usr/share/bash-completion/completions/venetctl, or `source <(venetctl completion bash)`.",
        "",
        "# _venetctl_spec PATH: the subcommands, options and options taking a value of `venetctl PATH`",
        "_venetctl_spec() {",
        "    case $1 in",
        *specs,
        "        *) commands=''; options=''; valued='' ;;",
        "    esac",
        "}",
        "",
        "_venetctl_files() {",
        "    compopt -o filenames 2>/dev/null",
        "    COMPREPLY=($(compgen \"$1\" -- \"$cur\"))",
        "}",
        "",
        "# _venetctl_list_of WORDS: a comma-separated list of WORDS",
        "_venetctl_list_of() {",
        "    local done=${cur%\"${cur##*,}\"}",
        "    compopt -o nospace 2>/dev/null",
        "    COMPREPLY=($(compgen -P \"$done\" -W \"$1\" -- \"${cur##*,}\"))",
        "}",
        "",
        "# the container ids venetctl knows, running or not (from the same venetctl)",
        "_venetctl_ctids() {",
        "    COMPREPLY=($(compgen -W \"$(\"${COMP_WORDS[0]}\" list -a -1 2>/dev/null)\" -- \"$cur\"))",
        "}",
        "",
        "# _venetctl_values PATH OPTION|#N: complete the value of OPTION, or the Nth positional argument",
        "_venetctl_values() {",
        "    case \"$1|$2\" in",
        *values,
        "        *) COMPREPLY=() ;;",
        "    esac",
        "}",
        "",
        "_venetctl() {",
        "    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}",
        "    local path='' commands options valued word i npos=0 skip=0",
        "    _venetctl_spec ''",
        "    for ((i = 1; i < COMP_CWORD; i++)); do",
        "        word=${COMP_WORDS[i]}",
        "        if ((skip)); then",
        "            [[ $word == = ]] || skip=0  # --option=value arrives as three words",
        "            continue",
        "        fi",
        "        case $word in",
        "            -*=*) ;;",
        "            -*) [[ \" $valued \" == *\" $word \"* ]] && skip=1 ;;",
        "            *)",
        "                if [[ \" $commands \" == *\" $word \"* ]]; then",
        "                    path=${path:+$path }$word",
        "                    npos=0",
        "                    _venetctl_spec \"$path\"",
        "                else",
        "                    ((npos++))",
        "                fi",
        "                ;;",
        "        esac",
        "    done",
        "    if [[ $cur == = ]]; then",
        "        cur=''",
        "        prev=${COMP_WORDS[COMP_CWORD-1]}",
        "    fi",
        "    [[ $prev == = ]] && prev=${COMP_WORDS[COMP_CWORD-2]}",
        "    if ((skip)); then",
        "        _venetctl_values \"$path\" \"$prev\"",
        "        return",
        "    fi",
        "    if [[ $prev == -* && $cur != -* ]]; then  # an option whose value is optional (nargs='?')",
        "        _venetctl_values \"$path\" \"$prev\"",
        "        ((${#COMPREPLY[@]})) && return",
        "    fi",
        "    if [[ $cur == -* ]]; then",
        "        COMPREPLY=($(compgen -W \"$options\" -- \"$cur\"))",
        "    elif [[ -n $commands ]]; then",
        "        COMPREPLY=($(compgen -W \"$commands\" -- \"$cur\"))",
        "    else",
        "        _venetctl_values \"$path\" \"#$npos\"",
        "    fi",
        "}",
        "complete -F _venetctl venetctl",
    ]) + "\n"


# -- venetctl man, venetctl completion, python -m venetfilter.cli.docs -----------------------------


def _root_parser() -> argparse.ArgumentParser:
    from . import build_parser

    return build_parser()


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``man`` and ``completion``: the man page and the bash completion, printed."""
    p = subparsers.add_parser(
        "man", help="print the venetctl(8) man page (roff)",
        description="Print venetctl(8) in roff, e.g. venetctl man | man -l -",
    )
    p.set_defaults(func=lambda args: _print(man_page(_root_parser())))
    p = subparsers.add_parser(
        "completion", help="print the bash completion script",
        description="Print the bash completion script, e.g. source <(venetctl completion bash)",
    )
    p.add_argument("shell", nargs="?", choices=["bash"], default="bash", help="the shell (bash only)")
    p.set_defaults(func=lambda args: _print(bash_completion(_root_parser())))


def _print(text: str) -> int:
    sys.stdout.write(text)
    return EXIT_OK


def generated() -> dict[str, str]:
    """The file name and content of every generated file."""
    parser = _root_parser()
    return {MAN_NAME: man_page(parser), COMPLETION_NAME: bash_completion(parser)}


def write(directory: Path) -> list[Path]:
    """Write the generated files into `directory`; returns those whose content changed."""
    changed = []
    for name, text in generated().items():
        path = directory / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            changed.append(path)
    return changed
