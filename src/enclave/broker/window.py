"""``NeedWindow``: each latency pool's recent need, learned by the broker loop between decisions.

``decide`` is pure and sees one observation; a latency pool's need must not fall the moment an overlap of two
visits is over, or the capacity it pulled in goes back after the cooldown and is pulled in again at the next
overlap (issue 15: 90–1,700 actions a night). The loop that observes (the twin's broker policy, the broker
service) feeds each observation through a window, which writes into each pool's demand
(``PoolDemand.peak_cores``) the ``broker.need_percentile`` of its needs over the last
``broker.need_window_seconds`` (``learned_need``: the peak at 1), or the largest need of its turns there if
that is more (``turn_need``: a turn whose submission must share the pool with older jobs that outlast it, which
samples at any phase of the visit cycle rarely catch). It also remembers the memory per core
the pool's jobs last requested (``PoolDemand.job_mib_per_core``), so the pods lent before tonight's first visit
are shaped for last night's jobs (``decide.pod_shape``).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import replace

from enclave.broker.decide import instant_need, job_mib_per_core
from enclave.domain.capacity import Observed, PoolDemand, Turn
from enclave.spec.models import EnclaveSpec


def learned_need(needs: list[int], percentile: float) -> int:
    """The ``percentile`` of the needs seen while the pool had work (nearest rank: the smallest of them that at
    least that share do not exceed); 0 if it had none. At 1 this is the peak.

    Why not the peak: a visit's detector jobs arrive at once, next to the tail of the previous visit's, and a
    broker cycle that lands just after a readout counts both; the tail's jobs end within seconds and their
    claims take the new visit's jobs at once (CLAIM_WORKLIFE: HTCondor manual, "Configuration Macros",
    condor_startd entries), so capacity held for that peak sits idle most of the night (one-week: prompt's
    borrowed pods 59 % busy). Only samples with work count, so a pause (a weather gap) does not lower the figure
    while the window still holds the visits before it."""
    busy = sorted(n for n in needs if n > 0)
    if not busy:
        return 0
    return busy[max(0, math.ceil(percentile * len(busy) - 1e-9) - 1)]


def turn_need(spec: EnclaveSpec, pool: str, d: PoolDemand, turn: Turn) -> int:
    """What one of the pool's turns needed (``PoolDemand.turns``), in cores as ``instant_need`` counts them: the
    submission's jobs, and each older job still running when they started, if it ran on longer than the
    submission could wait for its slot; 0 when no older job counts (what is left is the submission alone, which
    the sampled needs already cover) or the pool has no latency objective.

    A job of the submission that finds no slot waits for an older job's claim (CLAIM_WORKLIFE: the schedd gives a
    freed claim to its next idle job, schedd.cpp ``FindRunnableJobForClaim``). It can wait as long as the
    objective leaves after its turn and its run: ``slack`` = objective − turn wait − the longest runtime in the
    history. Jobs of 20–45 s every 33–39 s leave ~12 s, longer than any older job runs on past a turn: the turn
    needs one visit, which the sampled percentile already covers. Jobs of 35–58 s leave none, and every job of
    the previous visit still runs at the turn: it needs both visits, which samples at any phase of the visit
    cycle rarely see (docs/broker.md, issue 15, "prompt runtimes 35–58 s").

    Not a percentile, the largest: a turn's need holds no transient (the older jobs that end within the slack,
    whose claims take the submission's jobs in time, are left out), so each turn short of it makes jobs miss the
    objective."""
    objective = spec.pools[pool].latency_objective
    if objective is None:
        return 0
    slack = objective.seconds - turn.wait_s - turn.longest_s
    late = [(cores, mib) for ran_on, cores, mib in turn.older if ran_on > slack]
    if not late:
        return 0  # the submission alone, as a sample at its turn would count it: the samples speak for it
    return instant_need(spec, pool, replace(d, running_cores=turn.cores + sum(c for c, _ in late), idle_cores=0,
                                            running_memory_mib=turn.memory_mib + sum(m for _, m in late),
                                            idle_memory_mib=0))


class NeedWindow:
    def __init__(self, spec: EnclaveSpec) -> None:
        self.spec = spec
        self._seen: dict[str, deque[tuple[float, int, int]]] = {}
        """Per pool, (time, need, turn need) of each observation within the window, oldest first."""
        self._last: dict[str, float] = {}
        """Per pool, when the window last saw it: a turn is recorded once, at the first observation after it."""
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
            last = self._last.get(pool, observed.now)
            self._last[pool] = observed.now
            turns = max((turn_need(self.spec, pool, d, t) for t in d.turns if t.at > last), default=0)
            seen.append((observed.now, instant_need(self.spec, pool, d), turns))
            while seen[0][0] < observed.now - span:
                seen.popleft()
            # The percentile of the needs sampled, or the largest turn's need if higher (``turn_need``).
            q = self.spec.broker.need_percentile
            learned = max(learned_need([n for _, n, _ in seen], q), learned_need([n for _, _, n in seen], 1.0))
            per_core = job_mib_per_core(d)
            if per_core is not None:
                self._per_core[pool] = per_core
            demand[pool] = replace(d, peak_cores=learned, job_mib_per_core=self._per_core.get(pool))
        return replace(observed, demand=demand)
