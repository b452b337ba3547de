"""The event queue hands events out in (time, number) order, whatever the order they were queued in: the rule
a heap of (time, number, kind, payload) tuples followed, which the calendar of one-second buckets must keep."""

from __future__ import annotations

import heapq
import math
import random

from enclave.twin.engine import EventQueue


def test_time_order_then_queueing_order_within_and_across_seconds() -> None:
    q = EventQueue()
    q.push(5.5, 1, "c")
    q.push(5.2, 1, "b")
    q.push(0.0, 1, "a")
    q.push(5.5, 1, "d")  # same time as "c", queued later: after it
    q.push(1e9, 1, "e")
    assert len(q) == 5
    assert q.next_time() == 0.0
    assert [q.pop()[3] for _ in range(5)] == ["a", "b", "c", "d", "e"]
    assert q.processed == 5 and len(q) == 0 and q.next_time() == math.inf


def test_an_event_queued_into_the_current_second_or_numbered_early_takes_its_place() -> None:
    q = EventQueue()
    early = next(q._seq)  # numbered now, queued later (as Sim numbers its inputs up front)
    q.push(3.4, 1, "late-numbered")
    q.push(3.9, 1, "x")
    assert q.pop()[3] == "late-numbered"  # the clock is now in second 3
    q.push(3.6, 1, "pushed-now")  # between the popped event and "x"
    q.put((3.9, early, 1, "numbered-first"))  # same time as "x" but a smaller number: before it
    q.push(math.inf, 1, "never")  # a repair that never comes still sorts last
    assert [q.pop()[3] for _ in range(4)] == ["pushed-now", "numbered-first", "x", "never"]


def test_the_order_matches_a_heap_of_tuples_through_random_pushes_and_pops() -> None:
    rng = random.Random(11)
    q = EventQueue()
    heap: list[tuple[float, int, int, int]] = []
    now = 0.0
    for i in range(4000):
        if heap and rng.random() < 0.45:
            t, _, _, payload = q.pop()
            assert (t, payload) == heapq.heappop(heap)[::3]
            now = t
        else:  # a time at or after now: often the same second, sometimes exactly the same time
            t = rng.choice([now, now + rng.random(), now + rng.expovariate(1 / 40), float(int(now) + 1)])
            q.push(t, 0, i)
            heapq.heappush(heap, (t, i, 0, i))
    while heap:
        assert q.pop()[::3] == heapq.heappop(heap)[::3]


def test_an_event_queued_before_the_second_the_queue_has_moved_to_still_comes_first() -> None:
    # Sim.run_until stops before an event past its bound, after the queue has moved to that event's second;
    # the backend may then queue an event at the (earlier) stop time.
    q = EventQueue()
    q.push(10.5, 1, "later")
    assert q.next_time() == 10.5
    q.push(3.0, 1, "earlier")
    q.push(10.5, 1, "later-still")
    assert q.next_time() == 3.0
    assert [q.pop()[3] for _ in range(3)] == ["earlier", "later", "later-still"]
