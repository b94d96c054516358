"""vzctl's ``set --ipadd/--ipdel [--save]``, ``start`` and ``stop`` as a typed API.

Every change runs under the global lock: read the runtime state and the config file, compute the
new address lists (deletes before adds, compared without prefix), check that no other container
owns an added address, apply the change to the running container (`LiveApplier`; if it fails
nothing is saved), write the runtime state, write the config file, release the lock and notify
the worker.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from ..errors import AddressInUseError, ApplyError, NotRunningError, UnknownContainerError
from .addresses import ConfigAddress, merge_addresses, parse_address_tokens, remove_addresses
from .conffile import ConfigFile, read_config, render_config
from .ctid import host_ifname, is_valid_ctid, validate_ctid
from .notify import DEFAULT_TIMEOUT, notify_worker
from .paths import config_path, default_conf_dir, default_run_dir
from .runtime import RunningContainer, RuntimeState, check_link, load_state, save_state
from .store import atomic_write, ensure_dir, global_lock

__all__ = [
    "NOT_SAVED_WARNING",
    "AddressArg",
    "ContainerInfo",
    "ContainerManager",
    "LiveApplier",
    "NoopApplier",
    "SetResult",
]

NOT_SAVED_WARNING = "Settings were not saved to config and will be lost after CT restart"
_CONF_NAME = re.compile(r"(?P<ctid>.+)\.conf")

AddressArg = str | ConfigAddress


class LiveApplier(Protocol):
    """Applies an address change to a running container (host routes, neighbour proxies...).

    It may raise; the manager then saves nothing and reports `ApplyError` (vzctl's exit 34).
    """

    def apply(self, ctid: str, added: list[ConfigAddress], removed: list[ConfigAddress]) -> None:
        """Make `added` reach container `ctid` and stop `removed` from reaching it."""


class NoopApplier:
    """The default applier: nothing to do on the host (the filter only needs the runtime state)."""

    def apply(self, ctid: str, added: list[ConfigAddress], removed: list[ConfigAddress]) -> None:
        """Do nothing."""


@dataclass(frozen=True)
class ContainerInfo:
    """What is known of one container: saved addresses (None: no config file) and its runtime entry."""

    ctid: str
    saved: tuple[ConfigAddress, ...] | None
    runtime: RunningContainer | None
    warnings: tuple[str, ...] = ()

    @property
    def running(self) -> bool:
        """True when the container is in the runtime state."""
        return self.runtime is not None


@dataclass(frozen=True)
class SetResult:
    """The outcome of `ContainerManager.set`."""

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


class ContainerManager:
    """The containers of one configuration directory and one runtime directory."""

    def __init__(
        self,
        conf_dir: str | Path | None = None,
        run_dir: str | Path | None = None,
        *,
        applier: LiveApplier | None = None,
        notify: bool = True,
        notify_timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.conf_dir = Path(conf_dir) if conf_dir is not None else default_conf_dir()
        self.run_dir = Path(run_dir) if run_dir is not None else default_run_dir()
        self.applier: LiveApplier = applier if applier is not None else NoopApplier()
        self.notify = notify
        self.notify_timeout = notify_timeout

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
        ctid = validate_ctid(ctid)
        config = self.read_config(ctid)
        runtime = self.runtime_state().containers.get(ctid)
        if config is None and runtime is None:
            raise UnknownContainerError(ctid)
        return self._info(ctid, config, runtime)

    def containers(self) -> list[ContainerInfo]:
        """Every container with a config file or a runtime entry, numeric ids first in numeric order."""
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
        """Every ``CTID.conf`` of the configuration directory, parsed."""
        configs: dict[str, ConfigFile] = {}
        try:
            paths = sorted(self.conf_dir.iterdir())
        except FileNotFoundError:
            return configs
        for path in paths:
            match = _CONF_NAME.fullmatch(path.name)
            if match and is_valid_ctid(match["ctid"]) and path.is_file():
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

    # -- changing ----------------------------------------------------------------------------------

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

        Raises `InvalidAddressError`, `InvalidContainerError`, `NotRunningError` (stopped and not
        `save`), `AddressInUseError` or `ApplyError`; after any of them nothing has changed.
        """
        ctid = validate_ctid(ctid)
        to_add, to_delete = _addresses(add), _addresses(delete)
        warnings: list[str] = []
        generation: int | None = None
        try:
            with global_lock(self.run_dir):
                state = load_state(self.run_dir)
                current = state.containers.get(ctid)
                if current is None and not save:
                    raise NotRunningError(ctid)
                config = self.read_config(ctid) if save else None
                if config is not None:
                    warnings.extend(str(w) for w in config.warnings)
                self._check_owners(ctid, to_add, state)
                result_runtime: tuple[ConfigAddress, ...] | None = None
                added: list[ConfigAddress] = []
                removed: list[ConfigAddress] = []
                if current is not None:
                    result_runtime = _edit(current.addresses, to_add, to_delete, delete_all)
                    before = {a.address for a in current.addresses}
                    after = {a.address for a in result_runtime}
                    added = [a for a in result_runtime if a.address not in before]
                    removed = [a for a in current.addresses if a.address not in after]
                    if added or removed:
                        try:
                            self.applier.apply(ctid, added, removed)
                        except Exception as exc:
                            raise ApplyError(ctid, exc) from exc
                    if result_runtime != current.addresses:
                        state = state.with_container(
                            RunningContainer(ctid, current.ifindex, result_runtime, current.netns, current.link)
                        )
                        save_state(self.run_dir, state)
                        generation = state.generation
                result_saved: tuple[ConfigAddress, ...] | None = None
                if save:
                    base = config.addresses if config is not None else ()
                    result_saved = _edit(base, to_add, to_delete, delete_all)
                    self._write_config(ctid, config, result_saved)
        except BaseException:
            self._notify(generation, [])  # the runtime changed even if saving the file failed
            raise
        notified = self._notify(generation, warnings)
        if current is not None and not save:
            warnings.append(NOT_SAVED_WARNING)
        return SetResult(
            ctid, current is not None, tuple(added), tuple(removed), result_runtime, result_saved,
            generation, notified, tuple(warnings),
        )

    def _write_config(self, ctid: str, config: ConfigFile | None, addresses: Sequence[ConfigAddress]) -> None:
        data = render_config(config, addresses)
        if config is None or data != config.to_bytes():
            ensure_dir(self.conf_dir)
            atomic_write(self.config_path(ctid), data)

    def _notify(self, generation: int | None, warnings: list[str]) -> bool:
        if generation is None or not self.notify:
            return False
        return notify_worker(self.run_dir, generation, self.notify_timeout, warn=warnings.append)

    def start(self, ctid: str, ifindex: int, *, netns: str | None = None, link: str | None = None) -> SetResult:
        """Record that `ctid` runs on link `ifindex` with its saved addresses (its runtime rebuilt).

        Raises `AddressInUseError` when another container has one of them.
        """
        ctid = validate_ctid(ctid)
        warnings: list[str] = []
        with global_lock(self.run_dir):
            state = load_state(self.run_dir)
            config = self.read_config(ctid)
            addresses = config.addresses if config is not None else ()
            if config is not None:
                warnings.extend(str(w) for w in config.warnings)
            self._check_owners(ctid, addresses, state)
            check_link(state, ctid, ifindex)
            entry = RunningContainer(ctid, ifindex, addresses, netns, host_ifname(ctid) if link is None else link)
            state = state.with_container(entry)
            save_state(self.run_dir, state)
        notified = self._notify(state.generation, warnings)
        return SetResult(ctid, True, addresses, (), addresses, None, state.generation, notified, tuple(warnings))

    def stop(self, ctid: str) -> SetResult:
        """Record that `ctid` no longer runs; `NotRunningError` when it was not running."""
        ctid = validate_ctid(ctid)
        warnings: list[str] = []
        with global_lock(self.run_dir):
            state = load_state(self.run_dir)
            current = state.containers.get(ctid)
            if current is None:
                raise NotRunningError(ctid)
            state = state.without_container(ctid)
            save_state(self.run_dir, state)
        notified = self._notify(state.generation, warnings)
        return SetResult(ctid, False, (), current.addresses, None, None, state.generation, notified, tuple(warnings))
