"""The discrete-event core: a heap of timestamped events, processed in (time, sequence) order.

Ties are broken by insertion order, never by payload or object identity, so a run is a pure function
of the scenario and its seed. Payloads are plain ints or objects; the simulator dispatches on ``kind``.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Any

Event = tuple[float, int, int, Any]


class EventQueue:
    __slots__ = ("heap", "_seq", "processed")

    def __init__(self) -> None:
        self.heap: list[Event] = []
        self._seq = itertools.count()
        self.processed = 0

    def push(self, t: float, kind: int, payload: Any = None) -> None:
        heapq.heappush(self.heap, (t, next(self._seq), kind, payload))

    def pop(self) -> Event:
        self.processed += 1
        return heapq.heappop(self.heap)

    def next_time(self) -> float:
        return self.heap[0][0] if self.heap else float("inf")

    def __len__(self) -> int:
        return len(self.heap)
