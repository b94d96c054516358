"""What venetfilter puts in the kernel: one nftables table (`layout`; the default mode's per-link
chains in `netdev`), installed and read back (`kernel`), kept equal to the address table
(`kernel.update`, `elements`), guarded (`guard`).

`install(layout, elements, netns)` is what ``venetctl rules install`` does; the worker installs its
own layout at start and keeps it in place with a `Guard`.
"""

from __future__ import annotations

from .elements import ElementChanges, desired_elements, read_elements, read_over_rate, sync
from .guard import Guard, GuardCounters
from .kernel import (
    Fingerprint,
    fingerprint,
    generation,
    install,
    installed_family,
    installed_layout,
    installed_queue,
    our_links,
    remove,
    replace,
    table_exists,
    update,
)
from .layout import (
    CHAINS,
    DEFAULT_JUDGE_RATE,
    FAMILY,
    MODES,
    PRIORITY,
    TABLE,
    Element,
    Layout,
    Mode,
    QueueSpec,
    RulesError,
    render_table,
)

__all__ = [
    "CHAINS",
    "DEFAULT_JUDGE_RATE",
    "FAMILY",
    "MODES",
    "PRIORITY",
    "TABLE",
    "Element",
    "ElementChanges",
    "Fingerprint",
    "Guard",
    "GuardCounters",
    "Layout",
    "Mode",
    "QueueSpec",
    "RulesError",
    "desired_elements",
    "fingerprint",
    "generation",
    "install",
    "installed_family",
    "installed_layout",
    "installed_queue",
    "our_links",
    "read_elements",
    "read_over_rate",
    "remove",
    "render_table",
    "replace",
    "sync",
    "table_exists",
    "update",
]
