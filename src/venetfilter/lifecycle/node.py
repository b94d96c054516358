"""`Node`: the hardware node's containers, their start, stop, address changes and status.

Each of `start`, `stop` and `set` is one transaction under the global lock over the container's
single runtime record (`venetfilter.config.runtime`), done in an order that never lets the
filter, the record and the host disagree in a way that passes a forbidden packet:

- start: record ("starting", no link) -> namespace -> link, created down -> record with the
  link, the filter told (worker notified, or the kernel table updated) -> link up, addresses inside,
  host routes, proxy entries -> record "running" -> announcements (gratuitous ARP / unsolicited NA);
- stop: record "stopping" -> proxy entries and link deleted (its routes go with it), namespace
  -> record gone, the filter told;
- set on a running container: config file prepared (proves it can be written) -> added addresses
  on the host -> record with the new list, the filter told (revocations and grants at once) ->
  removed addresses off the host -> config file committed -> announcements.

A failure undoes what its transaction did and raises an error whose `exit_code` says what
happened. A crash between two steps leaves the record "starting" or "stopping" (or the host a step
ahead of it): `status` says so, `stop` finishes the job, `start` first undoes what is left.
`checkpoint(name)` is called between steps (fault-injection tests kill the process there).

`Node(dry=True)` changes files and the runtime state only, never the host: an explicit mode for
tests and for planning, not a default.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..config.addresses import ConfigAddress, check_usable, merge_addresses, parse_address_tokens, remove_addresses
from ..config.conffile import ConfigFile, read_config, render_config
from ..config.ctid import is_valid_ctid, validate_ctid
from ..config.nodeconf import NodeConfig, read_node_config
from ..config.notify import DEFAULT_TIMEOUT, notify_worker
from ..config.paths import config_path, default_conf_dir, default_run_dir
from ..config.runtime import RunningContainer, RuntimeState, load_state, save_state, table_entries
from ..config.store import PreparedWrite, ensure_dir, global_lock, prepare_write
from ..errors import (
    EXIT_ADDRESS_IN_USE,
    AddressInUseError,
    AlreadyRunningError,
    ApplyError,
    ConfigFileError,
    InterruptedOperationError,
    InvalidContainerError,
    InvalidOptionError,
    NotRunningError,
    UnknownContainerError,
    VenetfilterError,
)
from ..host import PartialChangeError
from .network import DryNetwork, HostNetwork, Network

__all__ = [
    "NOT_RUNNING_MESSAGE",
    "NOT_SAVED_WARNING",
    "AddressArg",
    "ContainerInfo",
    "Node",
    "SetResult",
    "StartResult",
    "StopResult",
]

NOT_SAVED_WARNING = "Settings were not saved to config and will be lost after CT restart"
NOT_RUNNING_MESSAGE = "Container is not running"
_CONF_NAME = re.compile(r"(?P<ctid>.+)\.conf")

AddressArg = str | ConfigAddress


@dataclass(frozen=True)
class ContainerInfo:
    """What is known of one container: saved addresses (None: no config file) and its runtime record."""

    ctid: str
    saved: tuple[ConfigAddress, ...] | None
    runtime: RunningContainer | None
    warnings: tuple[str, ...] = ()

    @property
    def running(self) -> bool:
        """True when the container has a runtime record (in any phase)."""
        return self.runtime is not None


@dataclass(frozen=True)
class SetResult:
    """The outcome of `Node.set`."""

    ctid: str
    running: bool
    added: tuple[ConfigAddress, ...] = ()
    """Addresses the running container gained."""
    removed: tuple[ConfigAddress, ...] = ()
    """Addresses the running container lost."""
    runtime: tuple[ConfigAddress, ...] | None = None
    """The running container's addresses now (None when it is stopped)."""
    saved: tuple[ConfigAddress, ...] | None = None
    """The config file's addresses now (None when not saved)."""
    generation: int | None = None
    """The runtime generation written (None when the runtime state did not change)."""
    notified: bool = False
    warnings: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class StartResult:
    ctid: str
    record: RunningContainer
    generation: int
    notified: bool
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class StopResult:
    ctid: str
    was_running: bool
    generation: int | None
    notified: bool
    message: str = ""
    warnings: tuple[str, ...] = ()


def _addresses(values: AddressArg | Iterable[AddressArg]) -> list[ConfigAddress]:
    if isinstance(values, (str, ConfigAddress)):
        values = [values]
    parsed: list[ConfigAddress] = []
    for value in values:
        parsed.extend([value] if isinstance(value, ConfigAddress) else parse_address_tokens(value))
    return [a for a in merge_addresses([], parsed) if not a.is_unspecified]


def _edit(
    current: Sequence[ConfigAddress], add: Sequence[ConfigAddress], delete: Sequence[ConfigAddress], delete_all: bool
) -> tuple[ConfigAddress, ...]:
    kept = [] if delete_all else remove_addresses(current, delete)
    return tuple(merge_addresses(kept, add))


def _ctid_order(ctid: str) -> tuple[bool, int, str]:
    return (not ctid.isdigit(), int(ctid) if ctid.isdigit() else 0, ctid)


def _container_id(ctid: object) -> str:
    """A valid CTID that names a container: CT 0 is the host itself (vzctl's ``0.conf``)."""
    ctid = validate_ctid(ctid)
    if ctid.lstrip("0") == "":
        raise InvalidContainerError(f"invalid container id {ctid!r}: CT 0 is the hardware node itself")
    return ctid


def _no_checkpoint(name: str) -> None:
    """The default checkpoint: nothing to do between steps."""


class Node:
    """The containers of one configuration directory and one runtime directory on this node."""

    def __init__(
        self,
        conf_dir: str | Path | None = None,
        run_dir: str | Path | None = None,
        *,
        host_netns: str | None = None,
        dry: bool = False,
        notify: bool = True,
        notify_timeout: float = DEFAULT_TIMEOUT,
        checkpoint: Callable[[str], None] = _no_checkpoint,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        if not 0 < notify_timeout <= 3600:
            raise InvalidOptionError(f"notify timeout {notify_timeout!r}: give a number of seconds, more than 0, at most 3600")
        self.conf_dir = Path(conf_dir) if conf_dir is not None else default_conf_dir()
        self.run_dir = Path(run_dir) if run_dir is not None else default_run_dir()
        self.host_netns = host_netns
        self.dry = dry
        self.notify = notify
        self.notify_timeout = notify_timeout
        self.checkpoint = checkpoint
        self.node_config: NodeConfig = read_node_config(self.conf_dir)
        self.network: Network = DryNetwork(self.run_dir, self.node_config) if dry else HostNetwork(self.node_config)
        self._warn = warn

    # -- reading -----------------------------------------------------------------------------------

    def config_path(self, ctid: str) -> Path:
        """``CONF_DIR/CTID.conf``."""
        return config_path(self.conf_dir, ctid)

    def read_config(self, ctid: str) -> ConfigFile | None:
        """The parsed config file of `ctid`, None when it has none."""
        return read_config(self.config_path(ctid))

    def runtime_state(self) -> RuntimeState:
        """The current runtime state."""
        return load_state(self.run_dir)

    def info(self, ctid: str) -> ContainerInfo:
        """Saved and runtime addresses of `ctid`; `UnknownContainerError` when it has neither."""
        ctid = _container_id(ctid)
        config = self.read_config(ctid)
        runtime = self.runtime_state().containers.get(ctid)
        if config is None and runtime is None:
            raise UnknownContainerError(ctid)
        return self._info(ctid, config, runtime)

    def containers(self) -> list[ContainerInfo]:
        """Every container with a config file or a runtime record, numeric ids first in numeric order
        (never CT 0: that is the node itself)."""
        state = self.runtime_state()
        configs = self._configs()
        ctids = sorted(set(configs) | set(state.containers), key=_ctid_order)
        return [self._info(c, configs.get(c), state.containers.get(c)) for c in ctids]

    @staticmethod
    def _info(ctid: str, config: ConfigFile | None, runtime: RunningContainer | None) -> ContainerInfo:
        saved = config.addresses if config is not None else None
        warnings = tuple(str(w) for w in config.warnings) if config is not None else ()
        return ContainerInfo(ctid, saved, runtime, warnings)

    def _configs(self) -> dict[str, ConfigFile]:
        """Every ``CTID.conf`` of the configuration directory, parsed (CT 0's left out)."""
        configs: dict[str, ConfigFile] = {}
        try:
            paths = sorted(self.conf_dir.iterdir())
        except FileNotFoundError:
            return configs
        for path in paths:
            match = _CONF_NAME.fullmatch(path.name)
            if not match or not is_valid_ctid(match["ctid"]) or match["ctid"].lstrip("0") == "" or not path.is_file():
                continue
            config = read_config(path)
            if config is not None:  # None: removed meanwhile
                configs[match["ctid"]] = config
        return configs

    def _check_owners(self, ctid: str, addresses: Iterable[ConfigAddress], state: RuntimeState) -> None:
        """Raise `AddressInUseError` when another container has one of `addresses`, saved or running."""
        wanted = {a.address for a in addresses}
        if not wanted:
            return
        owners: dict[str, str] = {}
        for other, running in sorted(state.containers.items()):
            owners.update({a.address: other for a in running.addresses if other != ctid})
        for other, config in self._configs().items():
            owners.update({a.address: other for a in config.addresses if other != ctid})
        for address in sorted(wanted & owners.keys()):
            raise AddressInUseError(address, owners[address])

    # -- the filter ----------------------------------------------------------------------------------

    def _publish(self, state: RuntimeState, warnings: list[str]) -> bool:
        """Write `state` and put it in force in the filter: the worker reloads and confirms, or
        (no worker) the kernel table is updated here. True when the worker confirmed."""
        save_state(self.run_dir, state)
        self.checkpoint("saved")
        if self.dry:
            return False
        confirmed = self.notify and notify_worker(self.run_dir, state.generation, self.notify_timeout, warn=warnings.append)
        if not confirmed:
            warnings.extend(self.network.sync_filter(table_entries(state), self.host_netns))
        return confirmed

    # -- start ---------------------------------------------------------------------------------------

    def start(self, ctid: str, *, netns: str | None = None, neighbour_devs: str | None = None) -> StartResult:
        """Start `ctid`'s network with its saved addresses (vzctl ``start``, network part).

        `netns` is the container's network namespace (NAME, PATH or PID); None creates
        ``venet-CTID``. Raises `UnknownContainerError` (no config file), `InvalidAddressError` (an
        address no container may have), `AlreadyRunningError`, `AddressInUseError` (another
        container's, or another host answers for it), `AddressRoutedError`, or `HostNetworkError`;
        after any of them nothing has changed (but a repaired leftover of an interrupted command).
        """
        ctid = _container_id(ctid)
        devs = neighbour_devs if neighbour_devs is not None else self.node_config.neighbour_devs
        self.network.check_neighbour_devs(devs)
        config = self.read_config(ctid)
        if config is None:
            raise UnknownContainerError(ctid)
        warnings = [str(w) for w in config.warnings]
        addresses = tuple(check_usable(a) for a in config.addresses)
        with global_lock(self.run_dir):
            state = load_state(self.run_dir)
            record = state.containers.get(ctid)
            if record is not None:
                if record.phase == "running":
                    raise AlreadyRunningError(ctid)
                warnings.append(f"container {ctid} was left {record.phase} by an interrupted command: cleaned up first")
                state = self._teardown(state, record, warnings)
            self._check_owners(ctid, addresses, state)
            self.network.check_start(ctid, addresses, netns, devs, self.host_netns, warnings)
            record = self.network.starting_record(ctid, addresses, netns, devs, self.host_netns)
            state = state.with_container(record)
            save_state(self.run_dir, state)
            self.checkpoint("recorded")
            published = [False]

            def register(ifindex: int) -> None:
                nonlocal state
                state = state.with_container(replace(record, ifindex=ifindex))
                published[0] = self._publish(state, warnings)

            try:
                started = self.network.start(record, register, self.checkpoint)
            except BaseException:
                try:  # the host is rolled back: so is the record (if this fails too, the next command repairs)
                    self._publish(load_state(self.run_dir).without_container(ctid), [])
                except (OSError, VenetfilterError):
                    pass
                raise
            state = state.with_container(started)
            notified = self._publish(state, warnings)
        self.network.announce(started, started.addresses, warnings)
        unique = tuple(dict.fromkeys(warnings))  # the filter was told twice: its warnings come once
        return StartResult(ctid, started, state.generation, notified or published[0], unique)

    # -- stop ----------------------------------------------------------------------------------------

    def stop(self, ctid: str) -> StopResult:
        """Stop `ctid`'s network: proxy entries, link, namespace (if start made it), record.

        A stopped container is not an error (vzctl: "Container is not running", exit 0);
        `UnknownContainerError` when it has neither a config file nor a record.
        """
        ctid = _container_id(ctid)
        warnings: list[str] = []
        with global_lock(self.run_dir):
            state = load_state(self.run_dir)
            record = state.containers.get(ctid)
            if record is None:
                if self.read_config(ctid) is None:
                    raise UnknownContainerError(ctid)
                return StopResult(ctid, False, None, False, NOT_RUNNING_MESSAGE)
            state = self._teardown(state, record, warnings)
            notified = self._publish(state, [])  # a missing table or worker is no news when stopping
        return StopResult(ctid, True, state.generation, notified, "", tuple(warnings))

    def _teardown(self, state: RuntimeState, record: RunningContainer, warnings: list[str]) -> RuntimeState:
        """Record "stopping", undo everything of the container's network; returns the state without
        the record (for the caller to write: until then it says "stopping", and a repeat finishes)."""
        if record.phase != "stopping":
            state = state.with_container(replace(record, phase="stopping"))
            save_state(self.run_dir, state)
            self.checkpoint("stopping")
        if not self.network.stop(record, self.checkpoint):
            warnings.append(f"container {record.ctid}: nothing of its network was left on the host")
        return state.without_container(record.ctid)

    def forget(self, ctid: str, ifindex: int) -> bool:
        """The link `ifindex` of `ctid` is gone (its namespace was deleted, or its ``venet0``): undo
        the rest of its network and drop its record. False when `ctid` has no such record. For the
        worker, which notices.

        Any phase: under the global lock no start or stop is under way, so a record still
        "starting" or "stopping" here lost the process that was changing it (a runtime's hook
        killed at its timeout), and its link is gone all the same."""
        with global_lock(self.run_dir):
            state = load_state(self.run_dir)
            record = state.containers.get(ctid)
            if record is None or record.ifindex != ifindex:
                return False
            state = self._teardown(state, record, [])
            save_state(self.run_dir, state)
        return True

    # -- set -----------------------------------------------------------------------------------------

    def set(
        self,
        ctid: str,
        add: AddressArg | Iterable[AddressArg] = (),
        delete: AddressArg | Iterable[AddressArg] = (),
        *,
        delete_all: bool = False,
        save: bool = False,
    ) -> SetResult:
        """vzctl ``set CTID --ipdel ... --ipadd ... [--save]``: deletes first, then adds.

        Raises `InvalidAddressError` (also for an address no container may have),
        `InvalidContainerError`, `NotRunningError` (stopped and not `save`), `AddressInUseError`,
        `AddressRoutedError`, `ConfigFileError` or `ApplyError`; after any of them nothing has
        changed.
        """
        ctid = _container_id(ctid)
        to_add = [check_usable(a) for a in _addresses(add)]
        to_delete = _addresses(delete)
        warnings: list[str] = []
        generation: int | None = None
        notified = False
        prepared: PreparedWrite | None = None
        added: list[ConfigAddress] = []
        removed: list[ConfigAddress] = []
        with global_lock(self.run_dir):
            state = load_state(self.run_dir)
            current = state.containers.get(ctid)
            if current is not None and current.phase != "running":
                raise InterruptedOperationError(ctid, current.phase)
            if current is None and not save:
                raise NotRunningError(ctid)
            config = self.read_config(ctid) if save else None
            if config is not None:
                warnings.extend(str(w) for w in config.warnings)
            self._check_owners(ctid, to_add, state)
            result_saved: tuple[ConfigAddress, ...] | None = None
            try:
                if save:
                    base = config.addresses if config is not None else ()
                    result_saved = _edit(base, to_add, to_delete, delete_all)
                    prepared = self._prepare_config(ctid, config, result_saved)
                result_runtime: tuple[ConfigAddress, ...] | None = None
                if current is not None:
                    result_runtime = _edit(current.addresses, to_add, to_delete, delete_all)
                    before = {a.address for a in current.addresses}
                    after = {a.address for a in result_runtime}
                    added = [a for a in result_runtime if a.address not in before]
                    removed = [a for a in current.addresses if a.address not in after]
                    if result_runtime != current.addresses:
                        new_state = state.with_container(replace(current, addresses=result_runtime))
                        if added:
                            self.network.check_addresses(current, added, warnings)

                        def commit() -> None:
                            nonlocal notified
                            notified = self._publish(new_state, warnings)

                        try:
                            self.network.change(current, added, removed, commit, self.checkpoint)
                        except PartialChangeError as exc:  # in force; the host keeps some leftovers
                            warnings.append(f"container {ctid}: {exc}; 'venetctl stop' and 'start' clean up")
                        except VenetfilterError as exc:
                            if exc.exit_code == EXIT_ADDRESS_IN_USE:  # routed elsewhere: 78, as at start
                                raise
                            raise ApplyError(ctid, exc) from exc
                        generation = new_state.generation
                if prepared is not None:
                    prepared.commit()
                    prepared = None
                    self.checkpoint("config")
            finally:
                if prepared is not None:
                    prepared.abort()
        if current is not None:
            self.network.announce(current, added, warnings)
            if not save:
                warnings.append(NOT_SAVED_WARNING)
        return SetResult(
            ctid, current is not None, tuple(added), tuple(removed), result_runtime, result_saved,
            generation, notified, tuple(warnings),
        )

    def _prepare_config(
        self, ctid: str, config: ConfigFile | None, addresses: Sequence[ConfigAddress]
    ) -> PreparedWrite | None:
        data = render_config(config, addresses)
        if config is not None and data == config.to_bytes():
            return None
        path = self.config_path(ctid)
        try:
            ensure_dir(self.conf_dir)
            return prepare_write(path, data)
        except OSError as exc:
            raise ConfigFileError(path, f"cannot be written ({exc.strerror or exc}); nothing was changed") from None
