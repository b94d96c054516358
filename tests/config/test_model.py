"""Random add/delete/save/restart sequences against a small, independent model of vzctl's semantics.

The model keeps canonical address tokens per container (saved: the config file, runtime: the
running container) and uses the `ipaddress` module, not the code under test, to canonicalise.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import tempfile
from pathlib import Path

from collections.abc import Callable, Sequence

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from venetfilter.config import ConfigAddress, RunningContainer, read_config, table_entries
from venetfilter.core import AddressTable
from venetfilter.errors import (
    AddressInUseError,
    ApplyError,
    HostNetworkError,
    InvalidAddressError,
    NotRunningError,
    UnknownContainerError,
)
from venetfilter.lifecycle import DryNetwork, Node

CTIDS = ["101", "102", "web.1"]
POOL = [
    "192.0.2.1", "192.0.2.1/24", "192.0.2.2", "198.51.100.7/32", "2001:db8::1", "2001:DB8:0::1/64",
    "2001:db8::2", "2001:0db8::2/128", "0.0.0.0", "::",
]
UNSPECIFIED = {"0.0.0.0", "::"}
UNUSABLE = ["127.0.0.9", "224.0.0.1", "255.255.255.255", "169.254.1.1/16", "fe80::1/64", "ff02::1", "::1",
            "::ffff:192.0.2.1"]


def usable(token: str) -> bool:
    """Whether a container may have the address (the model's own rule, with `ipaddress`)."""
    ip = ipaddress.ip_address(token.partition("/")[0])
    mapped = isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None
    return not (ip.is_loopback or ip.is_multicast or ip.is_link_local or mapped
                or ip == ipaddress.IPv4Address("255.255.255.255"))


def key(token: str) -> str:
    """The address of a token, without prefix, in canonical form."""
    return str(ipaddress.ip_address(token.partition("/")[0]))


def canon(token: str) -> str:
    address, slash, prefix = token.partition("/")
    return key(address) + (f"/{int(prefix)}" if slash else "")


def normalise(tokens: list[str]) -> list[str]:
    """What vzctl makes of an option's values: canonical, unspecified dropped, first of each address kept."""
    result: dict[str, str] = {}
    for token in tokens:
        if key(token) not in UNSPECIFIED:
            result.setdefault(key(token), canon(token))
    return list(result.values())


def edit(current: list[str], adds: list[str], dels: list[str], delete_all: bool) -> list[str]:
    """vzctl's incremental edit: deletes first (by address), then adds of addresses not there yet."""
    gone = {key(d) for d in dels}
    result = [] if delete_all else [t for t in current if key(t) not in gone]
    for token in adds:
        if key(token) not in {key(t) for t in result}:
            result.append(token)
    return result


class ModelNetwork(DryNetwork):
    """The host of a dry node: records each change of a running container, fails on demand."""

    def __init__(self, node: Node) -> None:
        super().__init__(node.run_dir, node.node_config)
        self.fail = False
        self.calls: list[tuple[str, list[str], list[str]]] = []

    def change(
        self, record: RunningContainer, added: Sequence[ConfigAddress], removed: Sequence[ConfigAddress],
        commit: Callable[[], None], checkpoint: Callable[[str], None],
    ) -> None:
        self.calls.append((record.ctid, [str(a) for a in added], [str(a) for a in removed]))
        if self.fail:
            raise HostNetworkError("simulated host failure")
        commit()


class VzctlMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="venetfilter-model-"))
        self.node = Node(self.tmp / "conf", self.tmp / "run", dry=True)
        self.network = ModelNetwork(self.node)
        self.node.network = self.network
        self.saved: dict[str, list[str]] = {}  # absent: no config file
        self.runtime: dict[str, list[str]] = {}  # absent: stopped
        self.generation = 0

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def owner_elsewhere(self, ctid: str, address: str) -> str | None:
        for other in CTIDS:
            if other != ctid and address in {key(t) for t in self.saved.get(other, []) + self.runtime.get(other, [])}:
                return other
        return None

    def current_generation(self) -> int:
        return self.node.runtime_state().generation

    @rule(
        ctid=st.sampled_from(CTIDS),
        adds=st.lists(st.sampled_from(POOL), max_size=3),
        dels=st.lists(st.sampled_from(POOL + UNUSABLE), max_size=2),
        delete_all=st.booleans(),
        save=st.booleans(),
        fail=st.booleans(),
    )
    def set(self, ctid: str, adds: list[str], dels: list[str], delete_all: bool, save: bool, fail: bool) -> None:
        adds_n, dels_n = normalise(adds), normalise(dels)
        running = ctid in self.runtime
        expected: type[Exception] | None = None
        live_change: tuple[str, list[str], list[str]] | None = None
        new_runtime = new_saved = None
        if not running and not save:
            expected = NotRunningError
        elif any(self.owner_elsewhere(ctid, key(a)) for a in adds_n):
            expected = AddressInUseError
        else:
            if running:
                old = self.runtime[ctid]
                new_runtime = edit(old, adds_n, dels_n, delete_all)
                if new_runtime != old:  # the host is asked to change (maybe only a prefix)
                    live_change = (
                        ctid,
                        [t for t in new_runtime if key(t) not in {key(o) for o in old}],
                        [t for t in old if key(t) not in {key(n) for n in new_runtime}],
                    )
                    if fail:
                        expected = ApplyError
            if save:
                new_saved = edit(self.saved.get(ctid, []), adds_n, dels_n, delete_all)
        self.network.fail, self.network.calls = fail, []
        try:
            result = self.node.set(ctid, adds, dels, delete_all=delete_all, save=save)
        except (NotRunningError, AddressInUseError, ApplyError) as exc:
            assert type(exc) is expected, f"got {exc!r}, expected {expected}"
        else:
            assert expected is None, f"expected {expected.__name__}"
            assert (result.generation is not None) == (live_change is not None)
        finally:
            self.network.fail = False
        assert self.network.calls == ([live_change] if live_change else [])
        if expected is not None:
            assert self.current_generation() == self.generation
            return
        if new_runtime is not None:
            if new_runtime != self.runtime[ctid]:
                self.generation += 1  # one change, one generation
            self.runtime[ctid] = new_runtime
        if new_saved is not None:
            self.saved[ctid] = new_saved
        assert self.current_generation() == self.generation

    @rule(
        ctid=st.sampled_from(CTIDS),
        adds=st.lists(st.sampled_from(POOL), max_size=2),
        bad=st.sampled_from(UNUSABLE),
        where=st.integers(0, 2),
        save=st.booleans(),
    )
    def set_unusable(self, ctid: str, adds: list[str], bad: str, where: int, save: bool) -> None:
        """An address no container may have: refused first (exit 21), whatever else; nothing changes."""
        adds = [*adds]
        adds.insert(min(where, len(adds)), bad)
        try:
            self.node.set(ctid, adds, save=save)
        except InvalidAddressError as exc:
            assert exc.exit_code == 21 and "not usable" in str(exc)
        else:
            raise AssertionError(f"{bad} was accepted")
        assert self.current_generation() == self.generation

    @rule(ctid=st.sampled_from(CTIDS))
    def restart(self, ctid: str) -> None:
        """vzctl restart: the runtime state is rebuilt from the saved config (start needs one)."""
        if ctid in self.runtime:
            assert self.node.stop(ctid).was_running
            del self.runtime[ctid]
            assert self.current_generation() > self.generation
            self.generation = self.current_generation()
        if ctid not in self.saved:
            try:
                self.node.start(ctid)
            except UnknownContainerError:
                assert self.current_generation() == self.generation
                return
            raise AssertionError("started without a config file")
        result = self.node.start(ctid)
        assert result.generation == self.current_generation() > self.generation
        self.generation = result.generation
        self.runtime[ctid] = list(self.saved[ctid])

    @rule(ctid=st.sampled_from(CTIDS))
    def stop(self, ctid: str) -> None:
        if ctid not in self.runtime and ctid not in self.saved:
            try:
                self.node.stop(ctid)
            except UnknownContainerError:
                return
            raise AssertionError("stopped an unknown container")
        result = self.node.stop(ctid)
        assert result.was_running == (ctid in self.runtime)
        if not result.was_running:
            assert result.message == "Container is not running" and result.generation is None
            assert self.current_generation() == self.generation
            return
        assert result.generation == self.current_generation() > self.generation
        self.generation = result.generation
        del self.runtime[ctid]

    @invariant()
    def files_match_the_model(self) -> None:
        for ctid in CTIDS:
            config = read_config(self.tmp / "conf" / f"{ctid}.conf")
            if ctid not in self.saved:
                assert config is None
                continue
            assert config is not None and config.warnings == ()
            assert [str(a) for a in config.addresses] == self.saved[ctid]

    @invariant()
    def runtime_matches_the_model(self) -> None:
        state_file = self.tmp / "run" / "state.json"
        if not state_file.exists():
            assert self.generation == 0 and not self.runtime
            return
        document = json.loads(state_file.read_text())
        assert document["generation"] == self.generation
        assert {c: e["addresses"] for c, e in document["containers"].items()} == self.runtime
        assert {e["phase"] for e in document["containers"].values()} <= {"running"}
        links = [e["ifindex"] for e in document["containers"].values()]
        assert all(i > 1000 for i in links) and len(set(links)) == len(links)  # DryNetwork's made-up links
        table = AddressTable()
        table.load(table_entries(self.tmp / "run"))  # every address has one owner
        assert len(table) == sum(len(v) for v in self.runtime.values())

    @invariant()
    def one_owner_per_address(self) -> None:
        for ctid in CTIDS:
            for token in self.saved.get(ctid, []) + self.runtime.get(ctid, []):
                assert self.owner_elsewhere(ctid, key(token)) is None
                assert usable(token)


VzctlMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
TestVzctlModel = VzctlMachine.TestCase
