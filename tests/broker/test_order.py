"""``enclave.broker.decide._in_order``: the order the broker takes startds in, whichever way it is computed.

The rule is a sort on the keys, ties in the list's order (Python's ``sorted`` is stable). A heap gives the same
order when only a few will be taken; with a costly key (a victim cost, never below 0.0, and 0.0 for a startd
without jobs) the heap computes it only for the items that reach its top (``_lazily``)."""

from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter

from hypothesis import given, settings
from hypothesis import strategies as st

from enclave.broker.decide import _in_order


@dataclass(frozen=True)
class Item:
    name: str
    busy: int
    cost: float  # 0.0 when it has no jobs, as a startd's victim cost
    jobs: bool


_BUSY, _NAME = attrgetter("busy"), attrgetter("name")


def _items(rows: list[tuple[int, float, bool]]) -> list[Item]:
    return [Item(f"s{i % 7}", busy, cost if jobs else 0.0, jobs) for i, (busy, cost, jobs) in enumerate(rows)]


rows = st.lists(st.tuples(st.integers(0, 3), st.sampled_from([0.0, 1.5, 2.0, 40.0]), st.booleans()), max_size=40)


@settings(max_examples=60, deadline=None)
@given(rows, st.integers(0, 6))
def test_heap_with_a_costly_key_gives_the_sorted_order(rows: list[tuple[int, float, bool]], wanted: int) -> None:
    items = _items(rows)
    cost = attrgetter("cost")
    expected = sorted(items, key=lambda x: (x.cost, x.busy, x.name))  # stable: ties in the list's order
    lazily = _in_order(list(items), (cost, _BUSY, _NAME), wanted, costly=(0, lambda x: not x.jobs))
    plain = _in_order(list(items), (cost, _BUSY, _NAME), wanted)
    assert list(lazily) == expected
    assert list(plain) == expected


@dataclass(frozen=True)
class Pod:
    name: str
    ready: bool
    busy: int
    cores: int


pods = st.lists(st.tuples(st.booleans(), st.integers(0, 3), st.sampled_from([4, 8, 16])), max_size=40)


@settings(max_examples=60, deadline=None)
@given(pods, st.integers(1, 4))
def test_runs_give_the_sorted_order_on_the_give_backs_keys(rows: list[tuple[bool, int, int]], wanted: int) -> None:
    """The give-back's keys (``decide.give_back_surplus``): those still starting first (``ready`` False sorts
    first), then least busy, then largest, then by name; ``_runs`` sorts on the first key and each run of ties on
    the rest when reached, which must be the sort on all the keys, ties in the list's order."""
    items = [Pod(f"p{i % 5}", ready, busy, cores) for i, (ready, busy, cores) in enumerate(rows)]
    keys = (attrgetter("ready"), attrgetter("busy"), lambda x: -x.cores, _NAME)
    expected = sorted(items, key=lambda x: (x.ready, x.busy, -x.cores, x.name))
    # wanted * 8 < len(items) takes the run-by-run path; otherwise the whole sort: both give the same order.
    assert list(_in_order(list(items), keys, wanted)) == expected


def test_costs_are_computed_only_for_items_that_reach_the_top() -> None:
    # 3 idle items (no jobs: cost 0.0, busy 0) and 60 running jobs (busy 1..4). The first 3 taken are the idle
    # ones, whatever the others cost: no cost of theirs is needed. The 4th needs the costs of those that reach
    # the top: each busy-1 item (0.0 stands in for its cost) is asked once and goes back with its cost.
    idle = [Item(f"idle-{i}", 0, 0.0, False) for i in range(3)]
    running = [Item(f"run-{i:02d}", 1 + i % 4, 10.0 + i, True) for i in range(60)]
    asked: list[str] = []

    def cost(x: Item) -> float:
        if x.jobs:
            asked.append(x.name)
        return x.cost

    order = _in_order(running + idle, (cost, _BUSY, _NAME), wanted=3, costly=(0, lambda x: not x.jobs))
    assert [next(order).name for _ in range(3)] == ["idle-0", "idle-1", "idle-2"]
    assert asked == []
    # Next: the cheapest running item. All 15 busy-1 items (i % 4 == 0) reach the top with 0.0 before any busy-2
    # one (0.0, 1, name) < (0.0, 2, name); once each has its cost, the busy-2 ones' stand-ins (0.0, 2, …) are
    # below them too, and so on: all 60 are asked, and run-00 (cost 10.0, the least) comes out.
    assert next(order).name == "run-00"
    assert sorted(asked) == sorted(x.name for x in running)
