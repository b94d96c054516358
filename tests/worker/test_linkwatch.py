"""The link watcher keeps links named with our prefix in our interface group."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from venetfilter.config.ctid import LINK_GROUP
from venetfilter.netns import run_in_netns
from venetfilter.worker.linkwatch import LinkWatch

pytestmark = pytest.mark.netns


def group(ns: str, name: str) -> int:
    out = subprocess.run(["ip", "-n", ns, "-j", "link", "show", name], check=True, capture_output=True, text=True).stdout
    value = json.loads(out)[0]["group"]
    return 0 if value == "default" else int(value)


def add_link(ns: str, name: str) -> None:
    subprocess.run(["ip", "-n", ns, "link", "add", name, "type", "veth", "peer", "name", "p-" + name], check=True)
    # the kernel tells the changes of a link's group only while it is up (a link that is down carries nothing)
    subprocess.run(["ip", "-n", ns, "link", "set", name, "up"], check=True)


def test_links_are_put_back_in_the_group(make_netns) -> None:
    ns = make_netns("vfl")
    add_link(ns, "vnf7")  # before the watcher
    add_link(ns, "other7")
    watch = run_in_netns(ns, lambda: LinkWatch("vnf"))
    try:
        assert group(ns, "vnf7") == LINK_GROUP and watch.regrouped == 1
        add_link(ns, "vnf8")  # after it started
        subprocess.run(["ip", "-n", ns, "link", "set", "vnf7", "group", "3"], check=True)
        deadline = time.monotonic() + 2
        while watch.regrouped < 3:
            assert time.monotonic() < deadline, f"only {watch.regrouped} links put back"
            time.sleep(0.01)
        assert group(ns, "vnf7") == LINK_GROUP and group(ns, "vnf8") == LINK_GROUP
        assert group(ns, "other7") == 0  # not ours: left alone
        assert watch.errors == 0
    finally:
        watch.close()
