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

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from venetfilter.config import ConfigAddress, ContainerManager, read_config, table_entries
from venetfilter.core import AddressTable
from venetfilter.errors import AddressInUseError, ApplyError, NotRunningError

CTIDS = ["101", "102", "web.1"]
POOL = [
    "192.0.2.1", "192.0.2.1/24", "192.0.2.2", "198.51.100.7/32", "2001:db8::1", "2001:DB8:0::1/64",
    "2001:db8::2", "2001:0db8::2/128", "0.0.0.0", "::",
]
UNSPECIFIED = {"0.0.0.0", "::"}


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


class VzctlMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="venetfilter-model-"))
        self.manager = ContainerManager(self.tmp / "conf", self.tmp / "run", applier=self, notify=False)
        self.saved: dict[str, list[str]] = {}  # absent: no config file
        self.runtime: dict[str, list[str]] = {}  # absent: stopped
        self.generation = 0
        self.fail_apply = False
        self.applied: list[tuple[str, list[str], list[str]]] = []

    def apply(self, ctid: str, added: list[ConfigAddress], removed: list[ConfigAddress]) -> None:
        """The live applier: records the call, fails on demand."""
        self.applied.append((ctid, [str(a) for a in added], [str(a) for a in removed]))
        if self.fail_apply:
            raise RuntimeError("simulated host failure")

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def owner_elsewhere(self, ctid: str, address: str) -> str | None:
        for other in CTIDS:
            if other != ctid and address in {key(t) for t in self.saved.get(other, []) + self.runtime.get(other, [])}:
                return other
        return None

    @rule(
        ctid=st.sampled_from(CTIDS),
        adds=st.lists(st.sampled_from(POOL), max_size=3),
        dels=st.lists(st.sampled_from(POOL), max_size=2),
        delete_all=st.booleans(),
        save=st.booleans(),
        fail=st.booleans(),
    )
    def set(self, ctid: str, adds: list[str], dels: list[str], delete_all: bool, save: bool, fail: bool) -> None:
        adds_n, dels_n = normalise(adds), normalise(dels)
        running = ctid in self.runtime
        expected: type[Exception] | None = None
        live_added: list[str] = []
        live_removed: list[str] = []
        new_runtime = new_saved = None
        if not running and not save:
            expected = NotRunningError
        elif any(self.owner_elsewhere(ctid, key(a)) for a in adds_n):
            expected = AddressInUseError
        else:
            if running:
                old = self.runtime[ctid]
                new_runtime = edit(old, adds_n, dels_n, delete_all)
                live_added = [t for t in new_runtime if key(t) not in {key(o) for o in old}]
                live_removed = [t for t in old if key(t) not in {key(n) for n in new_runtime}]
                if fail and (live_added or live_removed):
                    expected = ApplyError
            if save:
                new_saved = edit(self.saved.get(ctid, []), adds_n, dels_n, delete_all)
        self.fail_apply, self.applied = fail, []
        try:
            self.manager.set(ctid, adds, dels, delete_all=delete_all, save=save)
        except (NotRunningError, AddressInUseError, ApplyError) as exc:
            assert type(exc) is expected, f"got {exc!r}, expected {expected}"
        else:
            assert expected is None, f"expected {expected.__name__}"
        finally:
            self.fail_apply = False
        live_change = bool(live_added or live_removed) and expected in (None, ApplyError)
        assert self.applied == ([(ctid, live_added, live_removed)] if live_change else [])
        if expected is not None:
            return
        if new_runtime is not None:
            if new_runtime != self.runtime[ctid]:
                self.generation += 1
            self.runtime[ctid] = new_runtime
        if new_saved is not None:
            self.saved[ctid] = new_saved

    @rule(ctid=st.sampled_from(CTIDS))
    def restart(self, ctid: str) -> None:
        """vzctl restart: the runtime state is rebuilt from the saved config."""
        if ctid in self.runtime:
            self.manager.stop(ctid)
            self.generation += 1
        self.manager.start(ctid, CTIDS.index(ctid) + 1)
        self.generation += 1
        self.runtime[ctid] = list(self.saved.get(ctid, []))

    @precondition(lambda self: bool(self.runtime))
    @rule(data=st.data())
    def stop(self, data: st.DataObject) -> None:
        ctid = data.draw(st.sampled_from(sorted(self.runtime)))
        self.manager.stop(ctid)
        self.generation += 1
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
        table = AddressTable()
        table.load(table_entries(self.tmp / "run"))  # every address has one owner
        assert len(table) == sum(len(v) for v in self.runtime.values())

    @invariant()
    def one_owner_per_address(self) -> None:
        for ctid in CTIDS:
            for token in self.saved.get(ctid, []) + self.runtime.get(ctid, []):
                assert self.owner_elsewhere(ctid, key(token)) is None


VzctlMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=25, deadline=None)
TestVzctlModel = VzctlMachine.TestCase
