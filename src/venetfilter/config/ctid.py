"""Container ids: what a CTID may look like, and the host interface it names."""

from __future__ import annotations

import re

from ..errors import InvalidContainerError

__all__ = [
    "CTID_MAX_LENGTH",
    "CTID_PATTERN",
    "DEFAULT_LINK_PREFIX",
    "FOREIGN_LINK_PREFIXES",
    "LINK_GROUP",
    "host_ifname",
    "is_valid_ctid",
    "validate_ctid",
    "validate_link_prefix",
]

CTID_MAX_LENGTH = 12
"""At most 12 characters, so that the host interface ``PREFIX + CTID`` fits Linux's 15-character limit."""

DEFAULT_LINK_PREFIX = "vnf"
"""The name prefix of every host-side container link: the kernel rules match our links by it, so
it must be ours alone (``LINK_PREFIX`` in the global config changes it)."""

LINK_GROUP = 0x766E66
"""The interface group of our host links ("vnf" in ASCII): the kernel's per-packet test of "is this
a container link" is one integer compare on it, cheaper than a name match. Links are created in it;
the worker puts back in it any link named with our prefix that someone moves out."""

FOREIGN_LINK_PREFIXES = ("ve-", "vb-", "vz-", "veth", "vnet")
"""Container links of other tools: systemd-nspawn (``ve-``, ``vb-``, zone bridges ``vz-``), Docker,
LXC and podman (``veth``), libvirt (``vnet``). Never ours, never proxied for our containers."""

_LINK_PREFIX_PATTERN = re.compile(r"[a-z][a-z0-9]{0,2}")

CTID_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,11}")
"""An OpenVZ numeric id or a name of letters, digits, ``-``, ``_`` and ``.`` (not first)."""


def is_valid_ctid(text: object) -> bool:
    """True when `text` is an acceptable container id."""
    return isinstance(text, str) and CTID_PATTERN.fullmatch(text) is not None


def validate_ctid(text: object) -> str:
    """Return `text` when it is an acceptable container id; raise `InvalidContainerError` otherwise.

    The first character is never ``.`` or ``-``, so ``..``, ``.hidden`` and option-like ids are
    refused; ``/`` is never allowed, so an id can always be used as a file name.
    """
    if not isinstance(text, str):
        raise InvalidContainerError(f"invalid container id {text!r}: must be a string")
    if CTID_PATTERN.fullmatch(text) is None:
        if not text:
            reason = "must not be empty"
        elif len(text) > CTID_MAX_LENGTH:
            reason = f"longer than {CTID_MAX_LENGTH} characters"
        else:
            reason = "use letters, digits, '_', '-' and '.' (not first)"
        raise InvalidContainerError(f"invalid container id {text!r}: {reason}")
    return text


def validate_link_prefix(prefix: object) -> str:
    """Return `prefix` when it can name our container links; `InvalidContainerError` otherwise.

    One to three lower-case letters and digits (so that any CTID fits), and no prefix of, nor
    prefixed by, another tool's container links.
    """
    if not isinstance(prefix, str) or _LINK_PREFIX_PATTERN.fullmatch(prefix) is None:
        raise InvalidContainerError(f"invalid link prefix {prefix!r}: 1 to 3 lower-case letters and digits, first a letter")
    for foreign in FOREIGN_LINK_PREFIXES:
        if foreign.startswith(prefix) or prefix.startswith(foreign):
            raise InvalidContainerError(f"invalid link prefix {prefix!r}: it would also match other tools' links {foreign}*")
    return prefix


def host_ifname(ctid: str, prefix: str = DEFAULT_LINK_PREFIX) -> str:
    """The host side interface of container `ctid`: ``PREFIX + CTID`` (at most 15 characters)."""
    return validate_link_prefix(prefix) + validate_ctid(ctid)
