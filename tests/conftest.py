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
