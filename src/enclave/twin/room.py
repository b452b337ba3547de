"""Where Kubernetes may still place a pod: the free requests of every schedulable worker, indexed.

The default kube-scheduler scores nodes by ``NodeResourcesFit`` with the ``LeastAllocated`` strategy
(https://kubernetes.io/docs/concepts/scheduling-eviction/resource-bin-packing/): the twin places a notebook on
the schedulable worker with the most free CPU among those with room for its CPU and memory requests, ties to
the first node in the spec's order. Scanning every node for each spawn made a night's cost grow with nodes ×
spawns; this index answers the same question from two heaps with lazy deletion: a node's entry is replaced
(its version bumped) on every change to its free room, and stale entries are dropped when they surface.
"""

from __future__ import annotations

import heapq

Entry = tuple[float, int, int]
"""(−free amount, node index, version): the heap's least entry is the most free room, ties the lowest index."""


class Room:
    """Free CPU and memory requests per node (by index); ``update`` after every change, ``best`` to place."""

    __slots__ = ("_by_cpu", "_by_mem", "_cpu", "_mem", "_ver", "_live")

    def __init__(self, n: int) -> None:
        self._by_cpu: list[Entry] = []
        self._by_mem: list[Entry] = []
        self._cpu = [0.0] * n
        self._mem = [0] * n
        self._ver = [0] * n
        self._live = 0
        """Nodes with an entry (schedulable): the heaps are rebuilt when stale entries outnumber them."""

    def update(self, i: int, cpu: float, mem: int, schedulable: bool) -> None:
        """Node ``i`` now has ``cpu`` and ``mem`` free for new requests (ignored unless ``schedulable``)."""
        self._live += int(schedulable) - int(self._ver[i] > 0)
        v = abs(self._ver[i]) + 1
        self._ver[i] = v if schedulable else -v
        if not schedulable:
            return
        self._cpu[i] = cpu
        self._mem[i] = mem
        heapq.heappush(self._by_cpu, (-cpu, i, v))
        heapq.heappush(self._by_mem, (-float(mem), i, v))
        if len(self._by_cpu) + len(self._by_mem) > 8 * self._live + 128:  # mostly stale entries: rebuild
            self._compact()

    def _compact(self) -> None:
        ver = self._ver
        self._by_cpu = [e for e in self._by_cpu if e[2] == ver[e[1]]]
        self._by_mem = [e for e in self._by_mem if e[2] == ver[e[1]]]
        heapq.heapify(self._by_cpu)
        heapq.heapify(self._by_mem)

    def _top(self, heap: list[Entry]) -> Entry | None:
        ver = self._ver
        while heap:
            e = heap[0]
            if e[2] == ver[e[1]]:
                return e
            heapq.heappop(heap)
        return None

    def most(self) -> tuple[float, int]:
        """The most free CPU on any schedulable node and the most free memory on any (maybe another); 0 if none."""
        c = self._top(self._by_cpu)
        m = self._top(self._by_mem)
        return (-c[0] if c is not None else 0.0), (int(-m[0]) if m is not None else 0)

    def best(self, cpu: float, mem: int) -> int | None:
        """The node with the most free CPU (ties: lowest index) that has ``cpu`` and ``mem`` free, or None."""
        heap = self._by_cpu
        ver = self._ver
        free_mem = self._mem
        passed: list[Entry] = []
        found = None
        while heap:
            e = heap[0]
            if e[2] != ver[e[1]]:
                heapq.heappop(heap)
                continue
            if -e[0] < cpu:
                break
            if free_mem[e[1]] >= mem:
                found = e[1]
                break
            passed.append(heapq.heappop(heap))  # CPU fits, memory does not: look at the next one
        for e in passed:
            heapq.heappush(heap, e)
        return found

    def free(self, i: int) -> tuple[float, int] | None:
        """What the index holds for node ``i`` (None: not schedulable), for the invariant check."""
        return (self._cpu[i], self._mem[i]) if self._ver[i] > 0 else None
