"""The venet verdict core: which container owns which address, and what happens to each packet.

It knows nothing of files or netlink. `AddressTable` is the C implementation when it is built and
importable and `VENETFILTER_NO_EXTENSIONS` is unset, the pure-Python twin otherwise.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ._core_py import AddressTable as PyAddressTable
from ._types import Container, Ours, Verdict

__all__ = ["IMPLEMENTATION", "AddressTable", "CAddressTable", "Container", "Ours", "PyAddressTable", "Verdict"]

CAddressTable: type[PyAddressTable] | None
try:
    from ._core import AddressTable as _CAddressTable
except ImportError:  # not built: the twin does the job
    CAddressTable = None
else:
    CAddressTable = _CAddressTable  # type: ignore[assignment]  # same interface, see _core.pyi

if TYPE_CHECKING:
    AddressTable = PyAddressTable
    IMPLEMENTATION: str
elif CAddressTable is not None and not os.environ.get("VENETFILTER_NO_EXTENSIONS"):
    AddressTable = CAddressTable
    IMPLEMENTATION = "cython"
else:
    AddressTable = PyAddressTable
    IMPLEMENTATION = "python"
