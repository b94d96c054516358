"""The exceptions venetfilter raises, one small hierarchy for every layer.

Each class carries the exit code ``venetctl`` gives it (`exit_code`), vzctl's where vzctl has one
(include/vzerror.h): 3 system error, 14 no such container, 21 invalid parameter, 31 not running,
32 already running, 34 cannot apply an address change, 78 address in use.
"""

from __future__ import annotations

__all__ = [
    "EXIT_ADDRESS_IN_USE",
    "EXIT_CANNOT_ADD_IP",
    "EXIT_INVALID",
    "EXIT_NOT_RUNNING",
    "EXIT_NO_CONFIG",
    "EXIT_RUNNING",
    "EXIT_SYSTEM",
    "AddressAnsweredError",
    "AddressInUseError",
    "AlreadyRunningError",
    "InterruptedOperationError",
    "InvalidOptionError",
    "InvalidAddressError",
    "InvalidContainerError",
    "LinkInUseError",
    "QueueBindError",
    "UnknownContainerError",
    "VenetfilterError",
]


EXIT_SYSTEM = 3  # VZ_SYSTEM_ERROR
EXIT_NO_CONFIG = 14  # VZ_NOVECONFIG
EXIT_INVALID = 21  # VZ_INVALID_PARAMETER_VALUE
EXIT_NOT_RUNNING = 31  # VZ_VE_NOT_RUNNING
EXIT_RUNNING = 32  # VZ_VE_RUNNING
EXIT_CANNOT_ADD_IP = 34  # VZ_CANT_ADDIP
EXIT_ADDRESS_IN_USE = 78  # VZ_IP_INUSE


class VenetfilterError(Exception):
    """Base class of every error venetfilter raises on purpose."""

    exit_code = EXIT_SYSTEM


class InvalidAddressError(VenetfilterError, ValueError):
    """A value is not a usable IPv4 or IPv6 address."""

    exit_code = EXIT_INVALID

    def __init__(self, value: object, reason: str = "not an IPv4 or IPv6 address") -> None:
        super().__init__(f"invalid address {value!r}: {reason}")
        self.value = value
        self.reason = reason


class InvalidOptionError(VenetfilterError, ValueError):
    """An option or setting has a value venetfilter cannot use (exit code 21); nothing was done."""

    exit_code = EXIT_INVALID


class InvalidContainerError(VenetfilterError, ValueError):
    """A container id (or its link index) is not acceptable."""

    exit_code = EXIT_INVALID


class UnknownContainerError(VenetfilterError, KeyError):
    """The container is not known."""

    exit_code = EXIT_NO_CONFIG

    def __init__(self, ctid: object) -> None:
        super().__init__(ctid)
        self.ctid = ctid

    def __str__(self) -> str:
        return f"unknown container {self.ctid!r}"


class AddressInUseError(VenetfilterError):
    """The address already belongs to another container (vzctl's EADDRINUSE, exit code 78)."""

    exit_code = EXIT_ADDRESS_IN_USE

    def __init__(self, address: str, owner: str) -> None:
        super().__init__(f"address {address} is already used by container {owner}")
        self.address = address
        self.owner = owner


class AddressAnsweredError(AddressInUseError):
    """Another host on the uplink answers for the address (duplicate address detection)."""

    def __init__(self, address: str, device: str, mac: str) -> None:
        VenetfilterError.__init__(self, f"address {address} is in use: {mac} answers for it on {device}")
        self.address = address
        self.owner = f"{mac} on {device}"


class AlreadyRunningError(VenetfilterError):
    """The container is running already (vzctl's exit code 32)."""

    exit_code = EXIT_RUNNING

    def __init__(self, ctid: str) -> None:
        super().__init__(f"container {ctid} is already running")
        self.ctid = ctid


class InterruptedOperationError(VenetfilterError):
    """A start or stop of the container was interrupted; `stop` finishes it."""

    def __init__(self, ctid: str, phase: str) -> None:
        super().__init__(f"container {ctid} was left {phase} by an interrupted command: run 'venetctl stop {ctid}'")
        self.ctid = ctid
        self.phase = phase


class LinkInUseError(VenetfilterError, ValueError):
    """The interface index is already the link of another container."""

    exit_code = EXIT_INVALID

    def __init__(self, ifindex: int, owner: str) -> None:
        super().__init__(f"interface index {ifindex} is already the link of container {owner}")
        self.ifindex = ifindex
        self.owner = owner


# -- configuration and runtime state (venetfilter.config) ------------------------------------------

__all__ += [
    "ApplyError",
    "ConfigFileError",
    "CorruptStateError",
    "NotRunningError",
]


class NotRunningError(VenetfilterError):
    """A runtime-only change was asked of a stopped container (vzctl's exit code 31)."""

    exit_code = EXIT_NOT_RUNNING

    def __init__(self, ctid: str) -> None:
        super().__init__(f"container {ctid} is not running")
        self.ctid = ctid


class ApplyError(VenetfilterError):
    """Applying a change to a running container failed; nothing was saved (vzctl's exit code 34)."""

    exit_code = EXIT_CANNOT_ADD_IP

    def __init__(self, ctid: str, cause: BaseException) -> None:
        super().__init__(f"cannot apply the change to running container {ctid}: {cause}")
        self.ctid = ctid
        self.cause = cause


class ConfigFileError(VenetfilterError):
    """A configuration file cannot be read or written."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class CorruptStateError(VenetfilterError):
    """The runtime state file exists but is not valid; it is never silently treated as empty."""

    def __init__(self, path: object, reason: str) -> None:
        super().__init__(f"corrupt runtime state {path}: {reason}")
        self.path = path
        self.reason = reason


# -- host networking (venetfilter.host) ------------------------------------------------------------

__all__ += [
    "AddressRoutedError",
    "HostNetworkError",
    "InterfaceExistsError",
    "InterfaceNotFoundError",
    "NetnsExistsError",
    "NotStartedError",
    "SysctlError",
]


class HostNetworkError(VenetfilterError):
    """A host networking step (netlink, namespaces, sysctls) failed; nothing is left half done."""


class InterfaceExistsError(HostNetworkError):
    """An interface the container link needs already exists."""

    def __init__(self, ifname: str, where: str) -> None:
        super().__init__(f"interface {ifname} already exists in {where}")
        self.ifname = ifname
        self.where = where


class InterfaceNotFoundError(HostNetworkError):
    """A named interface does not exist."""

    def __init__(self, ifname: str, where: str) -> None:
        super().__init__(f"interface {ifname} does not exist in {where}")
        self.ifname = ifname
        self.where = where


class AddressRoutedError(HostNetworkError):
    """The address is already routed elsewhere on the host (another link, or a local address)."""

    exit_code = EXIT_ADDRESS_IN_USE

    def __init__(self, address: str, where: str) -> None:
        super().__init__(f"address {address} is already routed elsewhere: {where}")
        self.address = address
        self.where = where


class NetnsExistsError(HostNetworkError):
    """A network namespace that should be created already exists."""

    exit_code = EXIT_SYSTEM

    def __init__(self, name: str) -> None:
        super().__init__(f"network namespace {name} already exists (pass it with --netns to use it)")
        self.name = name


class NotStartedError(HostNetworkError):
    """The container has no network to stop or change (its host link does not exist)."""

    def __init__(self, ctid: str, where: str) -> None:
        super().__init__(f"container {ctid} has no network in {where}")
        self.ctid = ctid
        self.where = where


class SysctlError(HostNetworkError):
    """A sysctl cannot be read or written."""


class QueueBindError(VenetfilterError):
    """An NFQUEUE could not be bound (in use by another process, no kernel support, no permission)."""


# -- the kernel table, the worker and namespaces ----------------------------------------------------
__all__ += ["MetricsError", "NetnsNotFoundError", "NftError", "PartialChangeError", "RulesError"]


class MetricsError(VenetfilterError):
    """The metrics endpoint cannot be served (port in use, no such address): exit 3, nothing bound."""


class NetnsNotFoundError(VenetfilterError):
    """The network namespace does not exist."""

    exit_code = EXIT_INVALID


class RulesError(VenetfilterError):
    """The kernel layout could not be read, installed or restored; the message says why."""


class NftError(VenetfilterError):
    """nftables refused a command; the message is nft's own."""


class PartialChangeError(HostNetworkError):
    """`commit` ran (the filter's change is in force) but removing addresses from the host failed."""
