"""Container addresses as the host layer sees them: one IPv4 or IPv6 host address, no prefix.

venet gives a container single addresses (/32, /128) whatever prefix its configuration names, so
a prefix is accepted and dropped. Anything with an ``address`` attribute (the config layer's
``ConfigAddress``) is accepted too.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

from ..errors import InvalidAddressError

__all__ = ["Address", "AddressLike", "family_of", "host_prefixlen", "parse_address", "parse_addresses"]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
AddressLike = str | Address | object
"""A string ``ADDR`` or ``ADDR/PREFIX``, an `ipaddress` address, or an object with ``.address``."""


def parse_address(value: AddressLike) -> Address:
    """The host address `value` names; `InvalidAddressError` for anything else (or unspecified/multicast)."""
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        address: Address = value
    else:
        text = getattr(value, "address", value)
        if not isinstance(text, str):
            raise InvalidAddressError(value, "expected an address")
        try:
            address = ipaddress.ip_address(text.partition("/")[0])
        except ValueError:
            raise InvalidAddressError(value) from None
    if address.is_unspecified or address.is_multicast or address.is_loopback:
        raise InvalidAddressError(str(address), "not a usable container address")
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        raise InvalidAddressError(str(address), "zone ids are not allowed")
    return address


def parse_addresses(values: Iterable[AddressLike]) -> list[Address]:
    """Every address of `values`, parsed, duplicates dropped (first kept)."""
    seen: dict[Address, None] = {}
    for value in values:
        seen.setdefault(parse_address(value))
    return list(seen)


def family_of(address: Address) -> int:
    """``AF_INET`` or ``AF_INET6``."""
    return socket.AF_INET if address.version == 4 else socket.AF_INET6


def host_prefixlen(address: Address) -> int:
    """32 or 128: the prefix of a single address."""
    return address.max_prefixlen
