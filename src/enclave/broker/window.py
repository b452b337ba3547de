"""``NeedWindow``: each latency pool's recent need, learned by the broker loop between decisions.

``decide`` is pure and sees one observation; a latency pool's need must not fall the moment an overlap of two
visits is over, or the capacity it pulled in goes back after the cooldown and is pulled in again at the next
overlap (issue 15: 90–1,700 actions a night). The loop that observes (the twin's broker policy, the broker
service) feeds each observation through a window, which writes into each pool's demand
(``PoolDemand.peak_cores``) the ``broker.need_percentile`` of its needs over the last
``broker.need_window_seconds`` (``learned_need``: the peak at 1). It also remembers the memory per core
the pool's jobs last requested (``PoolDemand.job_mib_per_core``), so the pods lent before tonight's first visit
are shaped for last night's jobs (``decide.pod_shape``).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import replace

from enclave.broker.decide import instant_need, job_mib_per_core
from enclave.domain.capacity import Observed
from enclave.spec.models import EnclaveSpec


def learned_need(needs: list[int], percentile: float) -> int:
    """The ``percentile`` of the needs seen while the pool had work (nearest rank: the smallest of them that at
    least that share do not exceed); 0 if it had none. At 1 this is the peak.

    Why not the peak: a visit's detector jobs arrive at once, next to the tail of the previous visit's, and a
    broker cycle that lands just after a readout counts both; the tail's jobs end within seconds and their
    claims take the new visit's jobs at once (CLAIM_WORKLIFE: HTCondor manual, "Configuration Macros",
    condor_startd entries), so capacity held for that peak sits idle most of the night (one-week: prompt's
    borrowed pods 59 % busy). What a latency pool's own capacity does not hold at a peak overflows onto the slots
    the other pools free, its group first (``enclave.batch.policy.overflow_pools``), so the default holds the
    median (``broker.need_percentile`` 0.5; docs/broker.md, "Overflow"). Only samples with work count, so a pause
    (a weather gap) does not lower the figure while the window still holds the visits before it."""
    busy = sorted(n for n in needs if n > 0)
    if not busy:
        return 0
    return busy[max(0, math.ceil(percentile * len(busy) - 1e-9) - 1)]


class NeedWindow:
    def __init__(self, spec: EnclaveSpec) -> None:
        self.spec = spec
        self._seen: dict[str, deque[tuple[float, int]]] = {}
        """Per pool, (time, need) of each observation within the window, oldest first."""
        self._per_core: dict[str, float] = {}
        """Per pool, the memory per core (MiB) its jobs requested when it last had any."""

    def feed(self, observed: Observed) -> Observed:
        """``observed`` with each pool's learned need over the window; the window moves on to ``observed.now``."""
        span = self.spec.broker.need_window_seconds
        if span <= 0:
            return observed
        demand = {}
        for pool, d in observed.demand.items():
            if pool not in self.spec.pools:
                demand[pool] = d
                continue
            seen = self._seen.setdefault(pool, deque())
            seen.append((observed.now, instant_need(self.spec, pool, d)))
            while seen[0][0] < observed.now - span:
                seen.popleft()
            learned = learned_need([n for _, n in seen], self.spec.broker.need_percentile)
            per_core = job_mib_per_core(d)
            if per_core is not None:
                self._per_core[pool] = per_core
            demand[pool] = replace(d, peak_cores=learned, job_mib_per_core=self._per_core.get(pool))
        return replace(observed, demand=demand)
