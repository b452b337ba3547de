"""``NeedWindow``: the recent peak of each pool's need, kept by the broker loop between decisions.

``decide`` is pure and sees one observation; a latency pool's need must not fall the moment an overlap of two
visits is over, or the capacity it pulled in goes back after the cooldown and is pulled in again at the next
overlap (issue 15: 90–1,700 actions a night). The loop that observes (the twin's broker policy, the broker
service) feeds each observation through a window, which writes each pool's peak over the last
``broker.need_window_seconds`` into its demand (``PoolDemand.peak_cores``). It also remembers the memory per core
the pool's jobs last requested (``PoolDemand.job_mib_per_core``), so the pods lent before tonight's first visit
are shaped for last night's jobs (``decide.pod_shape``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import replace

from enclave.broker.decide import instant_need, job_mib_per_core
from enclave.domain.capacity import Observed
from enclave.spec.models import EnclaveSpec


class NeedWindow:
    def __init__(self, spec: EnclaveSpec) -> None:
        self.spec = spec
        self._seen: dict[str, deque[tuple[float, int]]] = {}
        """Per pool, (time, need) with needs decreasing from the front: the front is the window's peak."""
        self._per_core: dict[str, float] = {}
        """Per pool, the memory per core (MiB) its jobs requested when it last had any."""

    def feed(self, observed: Observed) -> Observed:
        """``observed`` with each pool's peak need over the window; the window moves on to ``observed.now``."""
        span = self.spec.broker.need_window_seconds
        if span <= 0:
            return observed
        demand = {}
        for pool, d in observed.demand.items():
            if pool not in self.spec.pools:
                demand[pool] = d
                continue
            seen = self._seen.setdefault(pool, deque())
            need = instant_need(self.spec, pool, d)
            # A monotonic queue: a smaller need seen earlier can never be the peak again.
            while seen and seen[-1][1] <= need:
                seen.pop()
            seen.append((observed.now, need))
            while seen[0][0] < observed.now - span:
                seen.popleft()
            per_core = job_mib_per_core(d)
            if per_core is not None:
                self._per_core[pool] = per_core
            demand[pool] = replace(d, peak_cores=seen[0][1], job_mib_per_core=self._per_core.get(pool))
        return replace(observed, demand=demand)
