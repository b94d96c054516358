"""The kernel layout as text and bytes: no kernel needed."""

from __future__ import annotations

import pytest

from venetfilter.config.ctid import LINK_GROUP
from venetfilter.rules import Layout, QueueSpec, RulesError, render_table


def test_default_mode_passes_owned_pairs_and_judges_the_rest() -> None:
    text = render_table(Layout("vnf"), [(4, 7, "192.0.2.1"), (6, 7, "2001:db8::1")])
    assert f"iifgroup != {LINK_GROUP} iif != @links accept" in text
    assert f"oifgroup != {LINK_GROUP} oif != @links accept" in text
    assert "ip daddr != 224.0.0.0/4 iif . ip saddr @own4 accept" in text
    assert "ip6 daddr != ff00::/8 oif . ip6 daddr @own6 accept" in text
    assert "priority -450" in text and text.count("jump judge") == 2
    # what the sets refuse: at most 1,000 a second per link to the worker, the rest dropped and counted
    assert text.count("limit rate over 1000/second burst 1000 packets } update @over_rate") == 2
    assert "7 . 192.0.2.1 counter packets 0 bytes 0" in text and "7 . 2001:db8::1 counter" in text
    assert text.index("counter drop") > text.index("chain judge")
    # one transaction replaces whatever table of ours there was
    assert text.startswith("add table inet venetfilter\ndelete table inet venetfilter\n")


def test_queue_mode_judges_every_container_packet() -> None:
    text = render_table(Layout("ct", "queue"), [(4, 7, "192.0.2.1")])
    assert "@own4" not in text.split("chain leaving")[1]
    assert "limit rate" not in text  # every honest packet goes to the worker: never limit it


def test_no_judge_rate_means_no_limit() -> None:
    assert "limit rate" not in render_table(Layout("vnf", judge_rate=0), [])


def test_counters_are_carried_over() -> None:
    text = render_table(Layout("vnf"), [(4, 7, "192.0.2.1")], {(4, 7, "192.0.2.1"): (12, 3400)})
    assert "7 . 192.0.2.1 counter packets 12 bytes 3400" in text


@pytest.mark.parametrize(
    "spec, info",
    [
        (QueueSpec(), bytes([0, 0, 1, 0, 0, 0, 0, 0])),
        (QueueSpec(513, fail_open=True), bytes([1, 2, 1, 0, 1, 0, 0, 0])),
        (QueueSpec(2, (2, 5), cpu_fanout=True), bytes([2, 0, 4, 0, 2, 0, 0, 0])),
    ],
)
def test_nfqueue_target_info(spec: QueueSpec, info: bytes) -> None:
    assert spec.target_info() == info


@pytest.mark.parametrize(
    "make",
    [
        lambda: QueueSpec(-1),
        lambda: QueueSpec(65536),
        lambda: QueueSpec(0, (5, 2)),
        lambda: QueueSpec(0, cpu_fanout=True),
        lambda: Layout("ve"),
        lambda: Layout("vnf", "fast"),  # type: ignore[arg-type]
        lambda: Layout("vnf", judge_rate=-1),
    ],
)
def test_bad_layouts_are_refused(make) -> None:
    with pytest.raises(RulesError):
        make()
