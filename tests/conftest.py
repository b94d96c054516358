"""Fixtures shared by every test: both implementations of the verdict core."""

from __future__ import annotations

import pytest

from venetfilter.core import CAddressTable, PyAddressTable

IMPLEMENTATIONS = {"cython": CAddressTable, "python": PyAddressTable}


@pytest.fixture(params=sorted(IMPLEMENTATIONS), scope="session")
def table_class(request: pytest.FixtureRequest) -> type:
    """Each AddressTable implementation in turn; the Cython one must be built (never skipped)."""
    cls = IMPLEMENTATIONS[request.param]
    assert cls is not None, "the Cython extension is not built; run scripts/bootstrap"
    return cls


@pytest.fixture(autouse=True)
def _never_the_real_dirs(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the default config and runtime dirs at throwaway ones, so that a forgotten option can
    never touch /etc/venetfilter or /run/venetfilter."""
    monkeypatch.setenv("VENETFILTER_CONF_DIR", str(tmp_path / "default-conf"))
    monkeypatch.setenv("VENETFILTER_RUN_DIR", str(tmp_path / "default-run"))


@pytest.fixture
def make_netns():
    """Create network namespaces with unique names; every one is deleted afterwards, also on failure."""
    import subprocess
    import uuid

    created: list[str] = []

    def make(prefix: str = "vft") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        subprocess.run(["ip", "netns", "add", name], check=True)
        created.append(name)
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        return name

    yield make
    for name in reversed(created):
        subprocess.run(["ip", "netns", "pids", name], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
