"""The guard: whatever venetfilter needs in the kernel, looked at and put back.

Other tools rewrite firewalls: ``nft flush ruleset``, a foreign ``nft -f``, a rule slipped into our
chain, a set element deleted, the table made dormant. `Guard.check` compares the kernel's table
with what `Guard.install` put there (netlink dumps, counters aside: in the default mode that
includes every per-link chain and its rules) and, in the queue mode, the set elements with the
address table; whatever differs is restored -- a changed or missing table is reinstalled whole in
one transaction, wrong elements are synced -- and counted. The worker calls it every PERIOD.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from .elements import sync
from .kernel import Fingerprint, fingerprint, generation, replace
from .layout import Element, Layout, RulesError

__all__ = ["Guard", "GuardCounters"]

logger = logging.getLogger("venetfilter.guard")
NetnsArg = str | int | None


@dataclass
class GuardCounters:
    checks: int = 0
    full_checks: int = 0  # looks at the table itself: the ruleset had changed since the last one
    tables_restored: int = 0
    elements_restored: int = 0
    errors: int = 0


class Guard:
    """Keeps `layout` and the elements `wanted()` returns in the kernel of `netns`."""

    def __init__(self, layout: Layout, wanted: Callable[[], set[Element]], netns: NetnsArg = None) -> None:
        self.layout = layout
        self.wanted = wanted
        self.netns = netns
        self.counters = GuardCounters()
        self._expected: Fingerprint | None = None
        self._generation: int | None = None  # the ruleset generation last found right

    def install(self) -> None:
        """Put the table in place (replacing any of ours), its counters carried over: they never go
        backwards, reinstall or not."""
        self._expected = replace(self.layout, self.wanted(), self.netns)

    def expect(self, installed: Fingerprint) -> None:
        """What the worker itself installed since: the table to keep from now on."""
        self._expected = installed

    def check(self) -> list[str]:
        """Look once and restore what differs; returns what was found wrong (empty: nothing).

        When no nftables transaction at all happened since the last look that found everything
        right (the ruleset generation is the same), there is nothing to compare."""
        self.counters.checks += 1
        try:
            before = generation(self.netns)
            if before == self._generation:
                return []
            self.counters.full_checks += 1
            problems = self._compare()
            if not problems:
                self._generation = before  # a change during the comparison shows next time
            return problems
        except RulesError as exc:
            self.counters.errors += 1
            logger.error("guard: %s", exc)
            return [str(exc)]

    def _compare(self) -> list[str]:
        found = fingerprint(self.netns)
        if found != self._expected:
            problem = "missing" if found is None else "changed by someone else"
            self.install()
            self.counters.tables_restored += 1
            message = f"the nftables table was {problem}: reinstalled ({self.layout.describe()})"
            logger.warning(message)
            return [message]
        if self.layout.mode != "queue":
            return []  # the per-link chains, the default mode's elements, are part of the fingerprint
        changes = sync(self.wanted(), self.netns)
        if changes:
            self.counters.elements_restored += 1
            message = (
                f"the sets were changed by someone else: {len(changes.removed)} elements removed, "
                f"{len(changes.added)} restored"
            )
            logger.warning(message)
            return [message]
        return []
