"""``NeedWindow``: each latency pool's recent need, learned by the broker loop between decisions.

``decide`` is pure and sees one observation; a latency pool's need must not fall the moment an overlap of two
visits is over, or the capacity it pulled in goes back after the cooldown and is pulled in again at the next
overlap (issue 15: 90–1,700 actions a night). The loop that observes (the twin's broker policy, the broker
service) feeds each observation through a window, which writes into each pool's demand
(``PoolDemand.peak_cores``) the ``broker.need_percentile`` of its needs over the last
``broker.need_window_seconds`` (``learned_need``: the peak at 1). It also remembers the memory per core
the pool's jobs last requested (``PoolDemand.job_mib_per_core``), so the pods lent before tonight's first visit
are shaped for last night's jobs (``decide.pod_shape``), and what the pre-warmed pool's recent nights needed
(``PoolDemand.nights_cores``, ``Nights``), which its pre-warm holds until tonight's visits have filled a window.
"""

from __future__ import annotations

import copy
import math
from collections import deque
from dataclasses import dataclass, field, replace

from enclave.broker.decide import current_night, instant_need, job_mib_per_core, prewarm_pool
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
    the other pools free, its group first (``enclave.batch.policy.overflow_pools``), so the default holds a little
    above the median (``broker.need_percentile`` 0.6: the overflow is not there on every night; docs/broker.md,
    "Overflow" and "Across seeds"). Only samples with work count, so a pause
    (a weather gap) does not lower the figure while the window still holds the visits before it."""
    busy = sorted(n for n in needs if n > 0)
    if not busy:
        return 0
    return busy[max(0, math.ceil(percentile * len(busy) - 1e-9) - 1)]


@dataclass
class Nights:
    """What the pre-warmed pool needed on its recent nights (issue 15, item 3: "learned from recent nights'
    percentiles"). The window learns within a night, so a night's first overlap of two visits is met only once it
    has happened, and the pre-warm before the first visit holds the pool's guarantee, whatever the visits need.

    Each night, from evening twilight to morning twilight (``decide.current_night``), its needs with work are
    kept: not those of the pre-warm's lead before it, as a test job there is not the night's first visit. The first
    observation after morning twilight (``current_night`` then tells the next night) makes them that night's
    figure, their ``broker.need_percentile`` as the window takes it; a night the loop did not see from its evening
    twilight on (a broker started mid-night) adds none, as its tail is not its load, and a clock stepping back into
    a night already left is ignored. In the night, while tonight's visits have not filled a window (its first need
    with work is not ``need_window_seconds`` old) or the window holds no need with work (a weather gap longer than
    it), the pre-warm holds the median of the last ``broker.need_nights`` figures; otherwise the window's figure,
    which has seen tonight's load."""

    spec: EnclaveSpec
    figures: deque[int] = field(init=False)
    """The learned need of each recent night with work, oldest first: the last ``broker.need_nights``."""
    night: float | None = None
    """Tonight's evening twilight (what tells one night from the next), None before the first observation."""
    whole: bool = False
    """Whether the loop has seen tonight from its evening twilight on."""
    needs: list[int] = field(default_factory=list)
    """Tonight's needs with work so far."""
    first: float | None = None
    """When tonight's first need with work was seen."""

    def __post_init__(self) -> None:
        self.figures = deque(maxlen=self.spec.broker.need_nights)

    def feed(self, now: float, need: int, learned: int) -> int | None:
        """Take one observation's need (``learned``: the window's figure with it); return what the recent nights
        needed while it stands in for tonight's window, else None (no night learned, daytime, or the window has
        tonight's load)."""
        b = self.spec.broker
        night = current_night(self.spec, now)
        if night is None:
            return None
        if self.night is not None and night.start < self.night:
            return None  # the clock stepped back into a night already left: it is not a night of its own
        if night.start != self.night:
            if self.needs and self.whole:  # a night is over: its figure, as the window would have taken it
                self.figures.append(learned_need(self.needs, b.need_percentile))
            self.night, self.whole, self.needs, self.first = night.start, now <= night.start, [], None
        if not night.contains(now, b.prewarm_lead_seconds):
            return None
        if need > 0 and now >= night.start:  # as ``observing_done``: a test job in the lead is not a visit
            self.needs.append(need)
            if self.first is None:
                self.first = now
        filled = self.first is not None and now - self.first >= b.need_window_seconds and learned > 0
        if not self.figures or filled:
            return None
        return learned_need(list(self.figures), 0.5)  # the median night: one odd night does not set it


class NeedWindow:
    def __init__(self, spec: EnclaveSpec) -> None:
        self.spec = spec
        self._seen: dict[str, deque[tuple[float, int]]] = {}
        """Per pool, (time, need) of each observation within the window, oldest first."""
        self._per_core: dict[str, float] = {}
        """Per pool, the memory per core (MiB) its jobs requested when it last had any."""
        warm = prewarm_pool(spec)
        self._nights = Nights(spec) if warm is not None and spec.broker.need_nights else None
        """The pre-warmed pool's recent nights (``Nights``); None when no pool is pre-warmed or none are kept."""
        self._warm = warm

    def peek(self, observed: Observed) -> Observed:
        """``observed`` as ``feed`` would write it, the window left where it was: what a preview of the loop's next
        decision needs (``BrokerService.plan``). Fed to a copy, so that the two cannot differ; the spec is shared,
        not copied."""
        return copy.deepcopy(self, {id(self.spec): self.spec}).feed(observed)

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
            need = instant_need(self.spec, pool, d)
            seen = self._seen.setdefault(pool, deque())
            while seen and seen[-1][0] > observed.now:
                seen.pop()  # the clock stepped back: what was seen "later" would hold its peak past the window
            seen.append((observed.now, need))
            while seen[0][0] < observed.now - span:
                seen.popleft()
            learned = learned_need([n for _, n in seen], self.spec.broker.need_percentile)
            per_core = job_mib_per_core(d)
            if per_core is not None:
                self._per_core[pool] = per_core
            nights = (self._nights.feed(observed.now, need, learned)
                      if self._nights is not None and pool == self._warm else None)
            demand[pool] = replace(d, peak_cores=learned, job_mib_per_core=self._per_core.get(pool),
                                   nights_cores=nights)
        return replace(observed, demand=demand)
