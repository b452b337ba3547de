"""The placement index answers what a scan of every node would: the most free CPU among the nodes with room for
the request (kube-scheduler's LeastAllocated spread), ties to the first node in the spec's order."""

from __future__ import annotations

import random

from enclave.twin.room import Room


def _scan(free: list[tuple[float, int] | None], cpu: float, mem: int) -> int | None:
    """The rule as the twin applied it before the index: every node, strictly more free CPU wins."""
    best, best_cpu = None, -1.0
    for i, room in enumerate(free):
        if room is not None and room[0] >= cpu and room[1] >= mem and room[0] > best_cpu:
            best, best_cpu = i, room[0]
    return best


def test_most_free_cpu_wins_ties_go_to_the_first_node_and_memory_must_fit() -> None:
    room = Room(4)
    room.update(0, 4.0, 8192, True)
    room.update(1, 6.0, 2048, True)  # most CPU, too little memory for 4 GiB
    room.update(2, 4.0, 8192, True)
    room.update(3, 46.0, 100_000, False)  # cordoned: never chosen
    assert room.best(1.0, 4096) == 0  # 0 and 2 tie on CPU: the first
    assert room.best(1.0, 1024) == 1
    assert room.best(5.0, 4096) is None
    assert room.most() == (6.0, 8192)
    room.update(0, 2.0, 8192, True)  # a notebook landed on node 0
    assert room.best(1.0, 4096) == 2
    assert room.free(3) is None and room.free(0) == (2.0, 8192)


def test_the_index_agrees_with_a_scan_through_many_changes() -> None:
    rng = random.Random(7)
    n = 12
    room = Room(n)
    free: list[tuple[float, int] | None] = [None] * n
    for _ in range(3000):  # enough changes that stale entries are compacted several times
        i = rng.randrange(n)
        if rng.random() < 0.15:
            free[i] = None
            room.update(i, 0.0, 0, False)
        else:
            free[i] = (rng.choice([0.5, 1.0, 2.0, 4.0, 8.0, 46.0]), rng.choice([1024, 4096, 8192, 65536]))
            room.update(i, free[i][0], free[i][1], True)
        cpu, mem = rng.choice([0.5, 1.0, 2.0, 4.0]), rng.choice([1024, 2048, 8192])
        assert room.best(cpu, mem) == _scan(free, cpu, mem)
        live = [f for f in free if f is not None]
        assert room.most() == (max((f[0] for f in live), default=0.0), max((f[1] for f in live), default=0))
