"""OpenVZ container config files (``CTID.conf``): shell-style ``KEY="value"`` lines.

Only ``IP_ADDRESS`` is interpreted. A rewrite changes that one line (appended when absent,
``IP_ADDRESS=""`` when empty) and keeps every other byte, comments, unknown keys and unreadable
lines included. Text is handled as UTF-8 with surrogateescape, so any byte survives a round trip.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ConfigFileError, InvalidAddressError
from .addresses import ConfigAddress, parse_address_token

__all__ = [
    "IP_KEY",
    "ConfigFile",
    "ConfigWarning",
    "format_ip_line",
    "parse_config",
    "read_config",
    "render_config",
]

IP_KEY = "IP_ADDRESS"
_ENCODING = {"encoding": "utf-8", "errors": "surrogateescape"}
_BLANK = re.compile(r"[ \t]*(?:#.*)?")
_ASSIGNMENT = re.compile(
    r"""[ \t]*(?:export[ \t]+)?(?P<key>[A-Za-z_][A-Za-z0-9_]*)=
        (?:"(?P<dq>(?:[^"\\]|\\.)*)"|'(?P<sq>[^']*)'|(?P<bare>[^\s"'\\#;&|<>()`$]*))
        [ \t]*(?:\#.*)?""",
    re.VERBOSE,
)
_DQ_ESCAPE = re.compile(r"\\(.)")


@dataclass(frozen=True)
class ConfigWarning:
    """A problem found while reading a file, with its place: ``Warning at FILE:LINE: message``."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"Warning at {self.path}:{self.line}: {self.message}"


@dataclass(frozen=True)
class ConfigFile:
    """A parsed config file: its lines (without ``\\n``), its values and its addresses."""

    path: str
    lines: tuple[str, ...] = ("",)
    values: dict[str, str] = field(default_factory=dict)
    ip_line: int | None = None
    """Index in `lines` of the (last) IP_ADDRESS assignment, the one a rewrite replaces."""
    addresses: tuple[ConfigAddress, ...] = ()
    warnings: tuple[ConfigWarning, ...] = ()

    def to_bytes(self) -> bytes:
        """The file's bytes exactly as they were read."""
        return "\n".join(self.lines).encode(**_ENCODING)


def parse_config(data: bytes, path: str | Path) -> ConfigFile:
    """Parse the bytes of a config file; bad lines and bad address tokens become warnings."""
    path = str(path)
    lines = data.decode(**_ENCODING).split("\n")
    values: dict[str, str] = {}
    warnings: list[ConfigWarning] = []
    ip_line: int | None = None
    ip_lineno = 0
    for index, raw in enumerate(lines):
        line = raw[:-1] if raw.endswith("\r") else raw
        if _BLANK.fullmatch(line):
            continue
        match = _ASSIGNMENT.fullmatch(line)
        if match is None:
            warnings.append(ConfigWarning(path, index + 1, f"cannot parse line, ignored: {_shorten(line)}"))
            continue
        key = match["key"]
        if match["dq"] is not None:
            value = _DQ_ESCAPE.sub(r"\1", match["dq"])
        else:
            value = match["sq"] if match["sq"] is not None else match["bare"]
        values[key] = value
        if key == IP_KEY:
            ip_line, ip_lineno = index, index + 1
    addresses: dict[str, ConfigAddress] = {}
    if ip_line is not None:
        for token in values[IP_KEY].split():
            try:
                parsed = parse_address_token(token)
            except InvalidAddressError:
                warnings.append(
                    ConfigWarning(path, ip_lineno, f'invalid value for {IP_KEY} ("{_shorten(token)}"), skipped')
                )
                continue
            if not parsed.is_unspecified:
                addresses.setdefault(parsed.address, parsed)
    return ConfigFile(path, tuple(lines), values, ip_line, tuple(addresses.values()), tuple(warnings))


def read_config(path: str | Path) -> ConfigFile | None:
    """Read and parse `path`; None when it does not exist; `ConfigFileError` when it cannot be read."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigFileError(path, exc.strerror or str(exc)) from None
    return parse_config(data, path)


def format_ip_line(addresses: Iterable[ConfigAddress]) -> str:
    """The IP_ADDRESS line for `addresses`: ``IP_ADDRESS="a b/24 c"`` (``IP_ADDRESS=""`` when none)."""
    return f'{IP_KEY}="{" ".join(str(a) for a in addresses)}"'


def render_config(config: ConfigFile | None, addresses: Iterable[ConfigAddress]) -> bytes:
    """The bytes of `config` with its IP_ADDRESS line set to `addresses`; nothing else changes.

    A missing line is appended (after a newline if the file does not end with one); a new file
    (`config` None) is just that line.
    """
    new_line = format_ip_line(addresses)
    lines = list(config.lines) if config is not None else [""]
    if config is not None and config.ip_line is not None:
        old = lines[config.ip_line]
        lines[config.ip_line] = new_line + ("\r" if old.endswith("\r") else "")
    elif lines[-1] == "":
        lines[-1:] = [new_line, ""]
    else:
        lines.extend([new_line, ""])
    return "\n".join(lines).encode(**_ENCODING)


def _shorten(text: str, limit: int = 60) -> str:
    text = text.encode("unicode_escape", "backslashreplace").decode("ascii")
    return text if len(text) <= limit else text[: limit - 3] + "..."
