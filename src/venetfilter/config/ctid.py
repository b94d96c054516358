"""Container ids: what a CTID may look like, and the host interface it names."""

from __future__ import annotations

import re

from ..errors import InvalidContainerError

__all__ = ["CTID_MAX_LENGTH", "CTID_PATTERN", "HOST_IFNAME_PREFIX", "host_ifname", "is_valid_ctid", "validate_ctid"]

CTID_MAX_LENGTH = 12
HOST_IFNAME_PREFIX = "ve-"  # the firewall rules match every container link as ve-+
"""At most 12 characters, so that the host interface ``ve-CTID`` fits Linux's 15-character limit."""

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


def host_ifname(ctid: str) -> str:
    """The host side interface of container `ctid`: ``ve-CTID`` (at most 15 characters)."""
    return HOST_IFNAME_PREFIX + validate_ctid(ctid)
