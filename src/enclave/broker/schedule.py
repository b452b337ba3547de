"""Pre-warm from an observing schedule: when the pre-warmed pool needs its night capacity, visit by visit.

Pure: a schedule (``enclave.domain.schedule``), the spec and a time in; ``True`` (pre-warm), ``False`` (release)
or ``None`` (the schedule does not speak for this time: the twilight rule of ``enclave.domain.night`` decides).

The timing (``Timing.of``):

- **lead** ``L`` — how long before a visit the broker must start so the capacity is *ready* (startds joined, make
  before break) when the visit starts: one broker cycle (the decision may come that late) plus the slower of
  the two ways capacity arrives: a worker pod's start (``broker.pod_start_seconds``: scheduling, image pull,
  container start, the startd's first ad) and a node taken from a pool that vacates (its ``grace_seconds``:
  its jobs are evicted only then). On the LDF spec: 60 + max(120, 600) = 660 s.
- **hold** ``H`` — after a visit's readout its detector jobs run; the pool keeps its capacity for its latency
  objective (60 s on the LDF spec).
- **release** ``R`` — giving capacity back takes a cycle and the last visit's jobs (``cycle + H``).
- **margin** ``M`` — ``cooldown_seconds``: a node given away cannot be moved back within it (issue 15: only an
  urgent promise bypasses the cooldown), so a shorter release cannot be undone in time.

The pool is pre-warmed from ``start − L`` to ``readout + H`` of every visit. Between two visits it is released
only when the gap (from one visit's ``readout + H`` to the next one's start) is longer than ``L + R + M``
(1,680 s on the LDF spec): a shorter gap would give capacity away for less time than it takes to move it there
and back. After the schedule's last visit the same rule applies up to ``complete_until``; a gap whose end is
not yet known is released only once the known part already exceeds ``L + R + M`` and the schedule is known at
least ``L`` ahead (else a visit announced later could not be warmed in time: twilight decides).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from enclave.domain.schedule import MAX_DURATION_S, ObservingSchedule, Visit
from enclave.spec.models import Drain, EnclaveSpec, LendMode

LONGEST_VISIT_S = 2 * MAX_DURATION_S
"""A visit that started earlier than this before now has ended: twice ``Visit.duration``'s bound, as a visit
whose startTime is unknown is read out by start + 2 × duration (``Visit.readout``)."""


@dataclass(frozen=True)
class Timing:
    lead: float
    hold: float
    release: float
    margin: float

    @property
    def worth_releasing(self) -> float:
        """A gap must be longer than this for a release: warm-up + release + margin."""
        return self.lead + self.release + self.margin

    @classmethod
    def of(cls, spec: EnclaveSpec, pool: str, lender: bool) -> Timing:
        """The timing for ``pool`` (``lender``: it may borrow worker pods) under ``spec``."""
        b = spec.broker
        me = spec.pools[pool]
        donors = [p.grace_seconds for n, p in spec.pools.items()
                  if n != pool and p.priority < me.priority and p.take_away == Drain.VACATE]
        arrive = max(b.pod_start_seconds if lender and b.lend_mode == LendMode.PODS else 0.0, max(donors, default=0.0))
        hold = me.latency_objective.seconds if me.latency_objective is not None else 0.0
        return cls(lead=b.cycle_seconds + arrive, hold=hold, release=b.cycle_seconds + hold, margin=b.cooldown_seconds)


def prewarm_from_schedule(schedule: ObservingSchedule | None, now: float, timing: Timing) -> bool | None:
    """Whether the pre-warmed pool should hold its night capacity at ``now`` by the schedule; None when the
    schedule does not cover ``now`` (twilight decides). An empty schedule covers nothing: pushing ``visits: []``
    hands the pre-warm back to twilight (docs/broker.md), whatever span it claims."""
    if schedule is None or not schedule.visits:
        return None
    known_until, last_readout = schedule.known_until(), schedule.last_readout()
    assert known_until is not None and last_readout is not None  # it has visits
    # A listed visit's window is known to its readout + H even where the complete span ends at its readout (the
    # default): else the pool would lose the last visit's jobs' hold to twilight's verdict.
    if now > max(known_until, last_readout + timing.hold):
        return None
    if schedule.complete_from is not None and now < schedule.complete_from:
        return None
    visits = schedule.visits
    starts = [v.start for v in visits]
    begun = bisect.bisect_right(starts, now + timing.lead)  # visits whose window [start − L, …) has begun
    recent = bisect.bisect_left(starts, now - LONGEST_VISIT_S - timing.hold, hi=begun)
    prev_end = _last_end(visits[recent:begun] or visits[max(0, begun - 1):begun], timing.hold)
    if prev_end is not None and now < prev_end:
        return True  # inside a visit's window
    if prev_end is not None:
        gap_start = prev_end
    else:  # no visit before: the gap runs from where the schedule starts speaking
        gap_start = schedule.complete_from if schedule.complete_from is not None else -math.inf
    if begun < len(visits):
        return visits[begun].start - gap_start <= timing.worth_releasing
    # The next visit is not known yet: release only when the known part of the gap is already long enough and
    # the schedule sees far enough ahead to warm up for whatever it announces next.
    if known_until - gap_start > timing.worth_releasing and known_until >= now + timing.lead:
        return False
    return None


def _last_end(visits: tuple[Visit, ...], hold: float) -> float | None:
    return max((v.readout + hold for v in visits), default=None)
