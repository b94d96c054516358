"""The iptables/ip6tables rules that send container traffic to the worker's NFQUEUE."""

from __future__ import annotations

from .iptables import CHAIN, Backend, QueueSpec, RulesError, install, installed, remove, render_install, show

__all__ = ["CHAIN", "Backend", "QueueSpec", "RulesError", "install", "installed", "remove", "render_install", "show"]
