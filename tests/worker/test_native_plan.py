"""The native backend's verdict plan: which verdict messages it sends, also when sends fail.

`_plan_for_test` runs the plan's own C functions with a send that records each message and fails
those whose index is given. A model of the kernel queue then applies the messages that got through:
a batch verdict (N, v) answers every queued id up to N, a single verdict one id.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from venetfilter.core import CAddressTable

from venetfilter.worker import _native

plan = _native._plan_for_test

ACCEPT, DROP, TRUNCATED = 0, 1, 2


def kernel(rounds, sends):
    """Apply the sends that got through to a queue holding every id up to the highest one, also the
    ids never read (lost or truncated) and those of later rounds: {id: verdict} and what is left."""
    highest = max((packet_id for packets in rounds for packet_id, _ in packets), default=0)
    queued = set(range(1, highest + 1))
    answered = {}
    for kind, packet_id, verdict, ok in sends:
        assert kind in ("batch", "single") and verdict in (ACCEPT, DROP)
        if not ok:
            continue  # a failed send has no effect
        hit = {i for i in queued if i <= packet_id} if kind == "batch" else {packet_id} & queued
        queued -= hit
        answered.update(dict.fromkeys(hit, verdict))
    return answered, queued


def judged(rounds):
    return {packet_id: verdict for packets in rounds for packet_id, verdict in packets if verdict != TRUNCATED}


def assert_fail_closed(rounds, sends):
    """Only packets judged ACCEPT are ever accepted."""
    answered, _ = kernel(rounds, sends)
    verdicts = judged(rounds)
    wrongly = sorted(i for i, v in answered.items() if v == ACCEPT and verdicts.get(i) != ACCEPT)
    assert not wrongly, f"accepted but judged DROP or never judged: {wrongly}"


def test_first_packet_after_binding_drops_the_ids_below_it():
    """A new queue numbers from 1: when the first id read is 5, ids 1 to 4 are dropped first."""
    assert plan([[(5, ACCEPT)]], set()) == [("batch", 4, DROP, True), ("batch", 5, ACCEPT, True)]


def test_runs_become_batches():
    rounds = [[(1, ACCEPT), (2, ACCEPT), (3, DROP), (4, ACCEPT)], [(5, ACCEPT), (6, ACCEPT)]]
    assert plan(rounds, set()) == [
        ("batch", 2, ACCEPT, True), ("batch", 3, DROP, True), ("batch", 4, ACCEPT, True), ("batch", 6, ACCEPT, True),
    ]


def test_a_failed_drop_is_sent_again_before_the_next_accept_batch():
    rounds = [[(1, ACCEPT), (2, DROP)], [(3, ACCEPT)]]
    sends = plan(rounds, {1})
    assert sends == [
        ("batch", 1, ACCEPT, True), ("batch", 2, DROP, False), ("batch", 2, DROP, True), ("batch", 3, ACCEPT, True),
    ]
    assert kernel(rounds, sends) == ({1: ACCEPT, 2: DROP, 3: ACCEPT}, set())


def test_while_the_drop_keeps_failing_packets_are_accepted_one_by_one():
    """No batch may cover the DROP still owed; once it gets through, batches are back."""
    rounds = [[(1, DROP)], [(2, ACCEPT), (3, ACCEPT), (4, ACCEPT)], [(5, ACCEPT)]]
    sends = plan(rounds, {0, 1})
    assert sends == [
        ("batch", 1, DROP, False),
        ("batch", 1, DROP, False),
        ("single", 2, ACCEPT, True), ("single", 3, ACCEPT, True), ("single", 4, ACCEPT, True),
        ("batch", 1, DROP, True),
        ("batch", 5, ACCEPT, True),
    ]
    assert kernel(rounds, sends) == ({1: DROP, 2: ACCEPT, 3: ACCEPT, 4: ACCEPT, 5: ACCEPT}, set())


def test_a_failed_gap_drop_is_owed_like_a_judged_one():
    rounds = [[(3, ACCEPT)], [(4, ACCEPT)]]
    sends = plan(rounds, {0, 1})
    assert sends == [
        ("batch", 2, DROP, False), ("batch", 2, DROP, False), ("single", 3, ACCEPT, True),
        ("batch", 2, DROP, True), ("batch", 4, ACCEPT, True),
    ]
    assert_fail_closed(rounds, sends)


def test_a_later_drop_batch_settles_what_is_owed():
    rounds = [[(1, DROP)], [(2, DROP)], [(3, ACCEPT)]]
    sends = plan(rounds, {0})
    assert sends == [("batch", 1, DROP, False), ("batch", 2, DROP, True), ("batch", 3, ACCEPT, True)]


def test_no_single_failure_or_pair_of_failures_accepts_a_dropped_packet():
    """The injected failure may hit any send: a packet judged DROP is never accepted afterwards."""
    rounds = [[(1, ACCEPT), (2, DROP), (3, ACCEPT)], [(4, ACCEPT), (6, DROP), (7, ACCEPT)], [(8, TRUNCATED), (9, ACCEPT)],
              [(10, ACCEPT), (11, ACCEPT)]]
    calls = len(plan(rounds, set())) + 8  # failures add calls
    for count in (1, 2):
        for failures in combinations(range(calls), count):
            assert_fail_closed(rounds, plan(rounds, set(failures)))


def test_a_failed_accept_leaves_the_packets_to_a_later_verdict():
    rounds = [[(1, ACCEPT), (2, ACCEPT)], [(3, DROP)]]
    sends = plan(rounds, {0})
    assert sends == [("batch", 2, ACCEPT, False), ("batch", 3, DROP, True)]
    assert kernel(rounds, sends) == ({1: DROP, 2: DROP, 3: DROP}, set())  # fail closed


def test_a_truncated_message_is_dropped_as_a_gap():
    rounds = [[(1, ACCEPT), (2, TRUNCATED), (3, ACCEPT)]]
    assert plan(rounds, set()) == [("batch", 1, ACCEPT, True), ("batch", 2, DROP, True), ("batch", 3, ACCEPT, True)]


def test_a_misordered_id_drops_everything_seen():
    """The kernel numbers in order; if it did not, nothing seen so far may be accepted by the run."""
    rounds = [[(1, ACCEPT), (2, ACCEPT), (1, ACCEPT)]]
    sends = plan(rounds, set())
    assert sends == [("batch", 2, ACCEPT, True), ("batch", 2, DROP, True)]


def test_ids_wrap_around():
    """Ids are 32 bits and wrap; they are compared as the kernel does (nfq_id_after)."""
    rounds = [[(2**30, ACCEPT)], [(2**31, ACCEPT)], [(2**32 - 1, ACCEPT), (0, ACCEPT), (1, DROP)]]
    assert plan(rounds, set())[-3:] == [("batch", 2**32 - 2, DROP, True), ("batch", 0, ACCEPT, True), ("batch", 1, DROP, True)]


def test_more_ops_than_a_round_holds_are_sent_in_order():
    """A round longer than the op array holds (the real loop never makes one) sends the ops early."""
    verdicts = [i % 2 for i in range(1000)]
    rounds = [[(i + 1, v) for i, v in enumerate(verdicts)]]
    assert plan(rounds, set()) == [("batch", i + 1, v, True) for i, v in enumerate(verdicts)]
    sends = plan(rounds, set(range(0, 40, 3)))
    assert_fail_closed(rounds, sends)


def test_bad_test_input_is_refused():
    with pytest.raises(ValueError):
        plan([[(1, 3)]], set())


# -- the model ---------------------------------------------------------------------------------------

# a message: how many ids before it were never read (lost), and its verdict (or truncated)
messages = st.tuples(st.sampled_from([0, 0, 0, 1, 3]), st.sampled_from([ACCEPT, ACCEPT, DROP, TRUNCATED]))


@st.composite
def traffic(draw):
    rounds, packet_id = [], 0
    for shape in draw(st.lists(st.lists(messages, max_size=12), max_size=8)):
        packets = []
        for lost, verdict in shape:
            packet_id += lost + 1
            packets.append((packet_id, verdict))
        rounds.append(packets)
    return rounds


def runs_and_gaps(rounds):
    """The verdict runs of each round (a round ends with its verdicts sent), the ids never judged
    counting as DROP: they are dropped just before the next judged packet; and the jumps in the ids."""
    runs = gaps = last = 0
    for packets in rounds:
        previous = None
        for packet_id, verdict in packets:
            if verdict == TRUNCATED:
                continue
            if packet_id != last + 1:
                gaps += 1
                runs += previous != DROP
                previous = DROP
            runs += verdict != previous
            previous, last = verdict, packet_id
    return runs, gaps


@settings(max_examples=600, deadline=None)
@given(traffic(), st.sets(st.integers(0, 80), max_size=40))
def test_model_no_dropped_or_unjudged_packet_is_ever_accepted(rounds, failures):
    sends = plan(rounds, failures)
    assert_fail_closed(rounds, sends)
    answered, queued = kernel(rounds, sends)
    verdicts = judged(rounds)
    if any(not ok for *_, ok in sends):
        return
    # without failures every judged packet gets its own verdict, every id not judged below them DROP
    for packet_id, verdict in verdicts.items():
        assert answered[packet_id] == verdict
    last = max(verdicts, default=0)
    assert all(answered[i] == DROP for i in range(1, last + 1) if i not in verdicts)
    assert all(i > last for i in queued)  # only messages not read after the last judged one wait


@settings(max_examples=400, deadline=None)
@given(traffic())
def test_model_batching_needs_one_message_per_run_and_gap(rounds):
    sends = plan(rounds, set())
    runs, gaps = runs_and_gaps(rounds)
    # a gap in an ACCEPT run splits it: ACCEPT up to the gap, DROP the gap, ACCEPT the rest
    assert len(sends) == runs <= sum(map(len, rounds)) + gaps
    assert all(kind == "batch" for kind, *_ in sends)


@settings(max_examples=300, deadline=None)
@given(traffic(), st.sets(st.integers(0, 80), max_size=40))
def test_model_accept_judged_packets_get_accept_or_drop(rounds, failures):
    """Failures may drop them (fail closed) or leave them queued for a later verdict; nothing else."""
    sends = plan(rounds, failures)
    answered, queued = kernel(rounds, sends)
    for packet_id, verdict in judged(rounds).items():
        if verdict == ACCEPT and packet_id in queued:
            assert failures, f"{packet_id} left without a verdict although no send failed"
        assert answered.get(packet_id, DROP) in (ACCEPT, DROP)


# -- the loop on a real queue ------------------------------------------------------------------------


def test_copy_range_must_fit_the_receive_buffer():
    for copy_range in (0, 8192 - 511, 65535):
        with pytest.raises(ValueError, match="copy_range"):
            _native.NativeQueue(0, CAddressTable(), None, copy_range=copy_range)


CHILD = textwrap.dedent("""
    import json, os, socket
    from venetfilter.core import CAddressTable
    from venetfilter.worker._native import NativeQueue

    queue = NativeQueue(7, CAddressTable(), None)
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 9999))
    receiver.settimeout(2)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(5):
        sender.sendto(b"x%d" % i, ("127.0.0.1", 9999))
    wake, _ = os.pipe()
    queue.serve_once(0.5, wake)
    got = [receiver.recv(100) for _ in range(5)]
    print(json.dumps({"got": len(got), **{name: getattr(queue, name) for name in (
        "packets", "gaps", "truncated", "verdict_messages", "verdict_errors", "single_verdicts",
        "resent_drops", "errors", "setup_warnings")}}))
    queue.close()
""")


@pytest.mark.netns
def test_the_first_packets_of_a_new_queue_have_no_gap(make_netns):
    """The kernel numbers a new queue's packets from 1: the loop sees no gap and accepts all."""
    ns = make_netns("vfq")
    # the xtables target: this kernel's nftables has no queue expression
    subprocess.run(["ip", "netns", "exec", ns, "iptables", "-A", "OUTPUT", "-p", "udp", "--dport", "9999",
                    "-j", "NFQUEUE", "--queue-num", "7"], check=True)
    result = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", CHILD],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    counters = json.loads(result.stdout)
    assert counters == {"got": 5, "packets": 5, "gaps": 0, "truncated": 0, "verdict_messages": 1,
                        "verdict_errors": 0, "single_verdicts": 0, "resent_drops": 0, "errors": 0,
                        "setup_warnings": 0}


CLOSE_UNSERVED = textwrap.dedent("""
    import socket, time
    from venetfilter.core import CAddressTable
    from venetfilter.worker._native import NativeQueue

    queue = NativeQueue(7, CAddressTable(), None)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(50):
        sender.sendto(b"x%d" % i, ("127.0.0.1", 9999))
    time.sleep(0.2)
    queue.close()  # never served: libnetfilter_queue reads what is queued while it unbinds
    queue.close()
    print("closed", queue.packets)
""")


@pytest.mark.netns
def test_closing_a_queue_that_holds_unread_packets(make_netns):
    """A worker stopped before it served anything (SIGTERM right after start): unbinding makes
    libnetfilter_queue read the queued messages and call back into the loop, which must leave
    them alone (they are dropped by the kernel) rather than classify them with no table."""
    ns = make_netns("vfq")
    subprocess.run(["ip", "netns", "exec", ns, "iptables", "-A", "OUTPUT", "-p", "udp", "--dport", "9999",
                    "-j", "NFQUEUE", "--queue-num", "7"], check=True)
    result = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-X", "faulthandler", "-c", CLOSE_UNSERVED],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "closed 0\n"
