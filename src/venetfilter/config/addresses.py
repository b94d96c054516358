"""vzctl-style address tokens: ``ADDR`` or ``ADDR/PREFIX``, IPv4 or IPv6, in canonical form.

Parsing follows vzctl: the family is IPv6 when the text has a ':', the address is read with
inet_pton and stored as inet_ntop writes it (IPv6 compressed, lower case), a prefix length is kept
(0-32 or 0-128) but never used for comparisons, ``0.0.0.0`` and ``::`` are ignored and zone ids
(``fe80::1%eth0``) are refused.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from ..errors import InvalidAddressError

__all__ = [
    "ConfigAddress",
    "check_usable",
    "unusable_reason",
    "merge_addresses",
    "parse_address_token",
    "parse_address_tokens",
    "remove_addresses",
    "split_tokens",
]

_SEPARATORS = re.compile(r"[, \t\n]+")
_PREFIX = re.compile(r"[0-9]{1,3}")
_UNSPECIFIED = {"0.0.0.0", "::"}


@dataclass(frozen=True)
class ConfigAddress:
    """One configured address: canonical text, optional prefix length (kept, not compared), family."""

    address: str
    prefixlen: int | None = None
    family: Literal[4, 6] = 4

    def __post_init__(self) -> None:
        if parse_address_token(self.address) != ConfigAddress._trusted(self.address, None, self.family):
            raise InvalidAddressError(self.address, f"not a canonical IPv{self.family} address")
        limit = 32 if self.family == 4 else 128
        if self.prefixlen is not None and not (type(self.prefixlen) is int and 0 <= self.prefixlen <= limit):
            raise InvalidAddressError(str(self), f"bad prefix length (0-{limit})")

    @classmethod
    def _trusted(cls, address: str, prefixlen: int | None, family: Literal[4, 6]) -> ConfigAddress:
        """Build without checks (the parser has done them)."""
        self = object.__new__(cls)
        object.__setattr__(self, "address", address)
        object.__setattr__(self, "prefixlen", prefixlen)
        object.__setattr__(self, "family", family)
        return self

    def __str__(self) -> str:
        return self.address if self.prefixlen is None else f"{self.address}/{self.prefixlen}"

    @property
    def is_unspecified(self) -> bool:
        """``0.0.0.0`` or ``::``: vzctl ignores these."""
        return self.address in _UNSPECIFIED


def parse_address_token(text: str) -> ConfigAddress:
    """Parse one token; raise `InvalidAddressError` naming it when it is not a valid address.

    ``0.0.0.0`` and ``::`` parse (see `ConfigAddress.is_unspecified`); callers that build address
    lists use `parse_address_tokens`, which drops them.
    """
    if not isinstance(text, str):
        raise InvalidAddressError(text, "expected text")
    address, slash, prefix = text.partition("/")
    if "%" in address:
        raise InvalidAddressError(text, "zone ids are not allowed")
    family: Literal[4, 6] = 6 if ":" in address else 4
    af = socket.AF_INET6 if family == 6 else socket.AF_INET
    try:
        if "\0" in address:
            raise ValueError("NUL character")
        packed = socket.inet_pton(af, address)
    except (OSError, ValueError):  # UnicodeError is a ValueError
        raise InvalidAddressError(text, f"not an IPv{family} address") from None
    prefixlen: int | None = None
    if slash:
        if _PREFIX.fullmatch(prefix) is None or int(prefix) > (32 if family == 4 else 128):
            raise InvalidAddressError(text, f"bad prefix length (0-{32 if family == 4 else 128})")
        prefixlen = int(prefix)
    return ConfigAddress._trusted(socket.inet_ntop(af, packed), prefixlen, family)


def unusable_reason(address: str | ConfigAddress) -> str | None:
    """Why `address` cannot be a container's address (None: it can).

    A container address is a unicast address some host could route to the container: not
    unspecified, loopback, multicast, the IPv4 limited broadcast, link-local (each link has its own)
    or an IPv4-mapped IPv6 address (the IPv4 address is the real one). vzctl's scripts would have
    failed on each of these one way or another; here they are refused before anything changes.
    """
    text = address.address if isinstance(address, ConfigAddress) else address
    ip = ipaddress.ip_address(text)
    if ip.is_unspecified:
        return "it is the unspecified address"
    if ip.is_loopback:
        return "it is a loopback address"
    if ip.is_multicast:
        return "it is a multicast address"
    if ip == ipaddress.IPv4Address("255.255.255.255"):
        return "it is the broadcast address"
    if ip.is_link_local:
        return "it is a link-local address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return f"it is an IPv4-mapped address (use {ip.ipv4_mapped})"
    return None


def check_usable(address: ConfigAddress) -> ConfigAddress:
    """`address` when a container may have it; `InvalidAddressError` (exit 21) saying why not."""
    reason = unusable_reason(address)
    if reason is not None:
        raise InvalidAddressError(str(address), f"not usable for a container: {reason}")
    return address


def split_tokens(values: str | Iterable[str]) -> list[str]:
    """Split option values on commas, spaces and tabs (``--ipadd a,b --ipadd "c d"``)."""
    if isinstance(values, str):
        values = [values]
    return [token for value in values for token in _SEPARATORS.split(value) if token]


def parse_address_tokens(values: str | Iterable[str]) -> list[ConfigAddress]:
    """Parse every token of `values`; unspecified addresses dropped, duplicates collapsed (first kept).

    Raises `InvalidAddressError` for the first bad token; nothing is returned partially.
    """
    result: dict[str, ConfigAddress] = {}
    for token in split_tokens(values):
        parsed = parse_address_token(token)
        if not parsed.is_unspecified:
            result.setdefault(parsed.address, parsed)
    return list(result.values())


def remove_addresses(current: Sequence[ConfigAddress], removed: Iterable[ConfigAddress]) -> list[ConfigAddress]:
    """`current` without the addresses of `removed` (compared without prefix); absent ones ignored."""
    gone = {a.address for a in removed}
    return [a for a in current if a.address not in gone]


def merge_addresses(current: Sequence[ConfigAddress], added: Iterable[ConfigAddress]) -> list[ConfigAddress]:
    """`current` followed by the addresses of `added` it does not have yet (compared without prefix)."""
    result = {a.address: a for a in current}
    for a in added:
        result.setdefault(a.address, a)
    return list(result.values())
