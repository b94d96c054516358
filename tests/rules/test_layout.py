"""The kernel layout as text and bytes: no kernel needed."""

from __future__ import annotations

import pytest

from venetfilter.config.ctid import LINK_GROUP
from venetfilter.rules import Layout, QueueSpec, RulesError, render_table


def test_default_mode_gives_each_link_its_own_chains() -> None:
    text = render_table(Layout("vnf"), [(0, 7, ""), (4, 7, "192.0.2.1"), (6, 7, "2001:db8::1")], names={7: "vnf101"})
    assert 'chain in_7 {\n        type filter hook ingress device "vnf101" priority -500; policy accept;' in text
    assert 'chain out_7 {\n        type filter hook egress device "vnf101" priority -500; policy accept;' in text
    assert "ip daddr != 224.0.0.0/4 ip saddr 192.0.2.1 counter packets 0 bytes 0 accept" in text
    assert "ip6 daddr != ff00::/8 ip6 saddr 2001:db8::1 counter packets 0 bytes 0 accept" in text
    assert "ip daddr 192.0.2.1 counter packets 0 bytes 0 accept" in text
    # what the chains do not accept: copied to the worker at most 1,000 a second per link, all dropped
    assert text.count("goto refused_in") == 1 and text.count("goto refused_out") == 1
    assert text.count("limit rate over 1000/second burst 1000 packets } update @over_rate") == 2
    assert text.count("log group 0 drop") == 2
    # one transaction replaces whatever table of ours there was, in either family
    assert text.startswith("add table netdev venetfilter\ndelete table netdev venetfilter\n"
                           "add table inet venetfilter\ndelete table inet venetfilter\n")


def test_default_mode_refuses_everything_on_a_link_it_does_not_know() -> None:
    text = render_table(Layout("vnf"), [(4, 7, "192.0.2.1")], names={9: "vnf999"})
    assert "192.0.2.1" not in text  # link 7 is gone: no chains
    chain = text.split("chain in_9 {")[1].split("}")[0]
    assert "accept;" in chain and chain.strip().endswith("goto refused_in")


def test_default_mode_log_group_is_the_queue_number() -> None:
    assert "log group 7 drop" in render_table(Layout("vnf", queue=QueueSpec(7)), [])


def test_queue_mode_judges_every_container_packet() -> None:
    text = render_table(Layout("ct", "queue"), [(4, 7, "192.0.2.1")])
    assert f"iifgroup != {LINK_GROUP} iif != @links accept" in text
    assert f"oifgroup != {LINK_GROUP} oif != @links accept" in text
    assert "priority -450" in text and text.count("jump judge") == 2
    assert text.index("counter drop") > text.index("chain judge")
    assert "@own4" not in text.split("chain leaving")[1]
    assert "limit rate" not in text  # every honest packet goes to the worker: never limit it


def test_no_judge_rate_means_no_limit() -> None:
    assert "limit rate" not in render_table(Layout("vnf", judge_rate=0), [])


def test_counters_are_carried_over() -> None:
    text = render_table(Layout("vnf"), [(4, 7, "192.0.2.1")], {(4, 7, "192.0.2.1"): (12, 3400)}, {7: 5},
                        names={7: "vnf1"})
    assert "ip saddr 192.0.2.1 counter packets 12 bytes 3400 accept" in text  # both directions' sum, on one rule
    assert "ip daddr 192.0.2.1 counter packets 0 bytes 0 accept" in text
    assert "elements = { 7 counter packets 5 bytes 0 }" in text


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
