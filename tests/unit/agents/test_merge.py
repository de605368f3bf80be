"""The timestamp-ordered merge of a partition's topics."""

from __future__ import annotations

from agents.merge import TimestampMerge


def test_releases_in_timestamp_order_and_waits_for_unread_topics() -> None:
    unread = {"scans": True}
    clock = [0.0]
    m: TimestampMerge[str] = TimestampMerge(("orders", "scans"), lambda t, p, last: unread.get(t, False),
                                            max_idle_s=2.0, clock=lambda: clock[0])
    m.offer("orders", 0, 0, 100, "o@100")
    m.offer("orders", 0, 1, 300, "o@300")
    assert m.release(0) == []  # the scans topic has records not received yet: wait
    m.offer("scans", 0, 0, 200, "s@200")
    unread["scans"] = False
    assert m.release(0) == ["o@100", "s@200", "o@300"]
    assert m.buffered() == 0


def test_ties_break_by_topic_rank_and_waiting_is_bounded() -> None:
    clock = [0.0]
    m: TimestampMerge[str] = TimestampMerge(("orders", "scans", "ratings"), lambda t, p, last: t == "ratings",
                                            max_idle_s=2.0, clock=lambda: clock[0])
    m.offer("scans", 1, 0, 100, "s")
    m.offer("orders", 1, 0, 100, "o")
    assert m.release(1) == []
    clock[0] = 2.5  # the ratings topic kept the others waiting too long: go on without it
    assert m.release(1) == ["o", "s"]


def test_forget_drops_buffered_records() -> None:
    m: TimestampMerge[str] = TimestampMerge(("orders",), lambda t, p, last: True, clock=lambda: 0.0)
    m.offer("orders", 0, 0, 1, "a")
    m.offer("orders", 1, 0, 1, "b")
    assert sorted(m.forget()) == ["a", "b"] and m.buffered() == 0


def test_it_names_the_topic_each_partition_waits_for_until_it_comes() -> None:
    unread = {"scans": True}
    m: TimestampMerge[str] = TimestampMerge(("orders", "scans"), lambda t, p, last: unread.get(t, False),
                                            clock=lambda: 0.0)
    m.offer("orders", 2, 0, 100, "o1")
    assert m.release(2) == [] and m.waiting_for() == (("scans", 2),)
    m.offer("scans", 2, 0, 50, "s1")
    unread["scans"] = False
    assert m.release(2) == ["s1", "o1"] and m.waiting_for() == ()


def test_with_an_arrival_grace_a_record_waits_for_an_answer_that_late_the_other_topics() -> None:
    """A producer sent a scan before an order, but the broker appended the order first: the
    order, read first, waits until the broker has answered for the scans topic `grace_s`
    after the order arrived, and the scan that came meanwhile goes first."""
    answered = {"scans": 0.0}
    m: TimestampMerge[str] = TimestampMerge(("orders", "scans"), lambda t, p, last: False, clock=lambda: 0.0,
                                            grace_s=0.1, answered_at=lambda t, p: answered.get(t))
    m.offer("orders", 0, 0, 200, "o@200", arrived=1.0)
    answered["scans"] = 1.05  # asked right after the order's fetch: too soon
    assert m.release(0) == [] and m.in_grace == {0}
    m.offer("scans", 0, 0, 100, "s@100", arrived=1.06)
    assert m.release(0) == ["s@100"]  # buffered: it goes first; the order waits for the scans again
    assert m.in_grace == {0}
    answered["scans"] = 1.12  # answered late enough for the order (arrived 1.0)
    assert m.release(0) == ["o@200"] and m.in_grace == set()


def test_without_a_grace_a_read_up_topic_is_passed_at_once() -> None:
    m: TimestampMerge[str] = TimestampMerge(("orders", "scans"), lambda t, p, last: False, clock=lambda: 0.0)
    m.offer("orders", 0, 0, 200, "o@200")
    assert m.release(0) == ["o@200"] and m.in_grace == set()
