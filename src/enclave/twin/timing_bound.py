"""The clairvoyant prompt bound under the scenario's HTCondor timing (issue 15).

``metrics.bounds`` gives each visit its slowest detector job as a lower bound on its latency: every job starting
at readout. Under HTCondor's negotiator no job starts at readout: an idle job waits for a negotiation cycle that
began after it was submitted, the cycle takes time, the schedd may throttle its starts, and the shadow and starter
start up before the job's first instruction. This module replays those rules for prompt alone, with unlimited
slots and perfect foresight, and gives each visit the earliest finish they allow.

The rules, with the scenario's values (``scenario.HTCondor``, read from the rendered HTCondor config by
``twin.config``; the HTCondor manual, "Configuration Macros",
https://htcondor.readthedocs.io/en/latest/admin-manual/configuration-macros.html):

- NEGOTIATOR_INTERVAL (condor_negotiator entries): the timer; after a cycle of ``d`` seconds the next starts
  ``max(NEGOTIATOR_CYCLE_DELAY, interval - d)`` after it ended (matchmaker.cpp, "reduce negotiator delay drift").
  The negotiator arms its timer to fire at once when it starts (t = 0).
- A RESCHEDULE (condor_reschedule(1); the schedd sends one on submit by ``reschedule_on_submit``) starts a cycle
  as soon as NEGOTIATOR_CYCLE_DELAY has passed since the last cycle ended and NEGOTIATOR_MIN_INTERVAL since it
  started; one arriving during a cycle is served once the cycle ends. A cycle only matches jobs that were idle
  when it started.
- The negotiator negotiates one submitter at a time, and a submitter's schedd claims its matches when that
  submitter's turn ends (``Sim._negotiate``; matchmaker.cpp ``negotiateWithGroup``/``negotiate``, schedd.cpp
  ``Scheduler::enqueueStartdContact``). Prompt's matches are claimed at the earliest ``cycle_base_s +
  cycle_per_submitter_s + cycle_per_autocluster_s`` after the cycle starts: its group negotiating first, as the
  rendered GROUP_SORT_EXPR puts a latency pool's group (``render.group_sort_expr``), with one autocluster. The
  bound's cycle ends there; a cycle with no visit waiting lasts ``cycle_base_s``. Other pools' turns come after
  prompt's, so they only lengthen the cycle, which never brings the next one earlier (start to start is
  max(length + NEGOTIATOR_CYCLE_DELAY, NEGOTIATOR_INTERVAL), and a RESCHEDULE waits for the delay after the end):
  they are left out.
- CLAIM_WORKLIFE (condor_startd entries): a claim whose job ends while a job of the same autocluster is idle runs
  it at once, without a cycle, while the claim is younger than this. So a visit's jobs may start on claims of the
  previous visits' jobs that end after its readout and before its cycle ends.
- JOB_START_COUNT / JOB_START_DELAY (condor_schedd entries): the schedd starts at most COUNT jobs, then waits
  DELAY seconds before the next ones (the twin's ``Sim._throttled_start``).
- ``job_startup_s``: the twin's estimate of shadow and starter start-up after each start.

The replay is clairvoyant: each visit's longest jobs take its earliest starts (which minimises the visit's
finish), and whether prompt's schedd sends a RESCHEDULE is taken favourably: ``schedd-idle`` counts as sending
one, as it does on a schedd of prompt's own (on a shared schedd it depends on other pools' idle jobs, which no
bound can know). Pod start-up does not enter: with unlimited capacity every slot is already there. Choosing
longest-first per visit is greedy over the night (it fixes which claims the next visit can reuse), so the figure is
the best a policy can do under these rules with unlimited slots, the bound the issue asks to come within a point of.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass

from enclave.twin.scenario import HTCondor, Reschedule


@dataclass(frozen=True)
class Timing:
    """The negotiator's and the prompt schedd's pacing, in seconds (``scenario.HTCondor``'s fields)."""

    interval_s: float
    cycle_delay_s: float
    min_interval_s: float
    idle_cycle_s: float
    visit_cycle_s: float
    reschedule: bool
    worklife_s: float
    start_count: int
    start_delay_s: float
    startup_s: float

    @classmethod
    def of(cls, h: HTCondor) -> Timing:
        return cls(interval_s=h.negotiator_interval_s, cycle_delay_s=h.negotiator_cycle_delay_s,
                   min_interval_s=h.negotiator_min_interval_s, idle_cycle_s=h.cycle_base_s,
                   visit_cycle_s=h.cycle_base_s + h.cycle_per_submitter_s + h.cycle_per_autocluster_s,
                   reschedule=h.reschedule_on_submit != Reschedule.NEVER, worklife_s=h.claim_worklife_s,
                   start_count=h.job_start_count, start_delay_s=h.job_start_delay_s, startup_s=h.job_startup_s)


class _Negotiator:
    """The negotiator's cycles as ``Sim._reschedule``, ``_negotiate`` and ``_cycle_end`` pace them."""

    def __init__(self, tm: Timing) -> None:
        self.tm = tm
        self.timer = 0.0
        self.started = -math.inf
        self.done = -math.inf
        self.serving = math.nan
        """The start of the cycle that will match the visit waiting now (none: nan)."""

    def _run_until(self, t: float) -> None:
        """Run every cycle that starts before ``t``."""
        tm = self.tm
        while self.timer < t:
            d = tm.visit_cycle_s if self.timer == self.serving else tm.idle_cycle_s
            self.started, self.done = self.timer, self.timer + d
            self.timer = self.done + max(tm.cycle_delay_s, tm.interval_s - d)

    def cycle_for(self, t: float) -> tuple[float, float]:
        """Start and end of the first cycle that sees jobs submitted at ``t``."""
        tm = self.tm
        self._run_until(t)
        if tm.reschedule:  # during a cycle the request waits for its end, which the delay covers
            self.timer = min(self.timer, max(t, self.done + tm.cycle_delay_s, self.started + tm.min_interval_s))
        self.serving = self.timer
        return self.timer, self.timer + tm.visit_cycle_s


class _Throttle:
    """JOB_START_COUNT starts, then JOB_START_DELAY seconds (``Sim._throttled_start``), asked in time order."""

    def __init__(self, tm: Timing) -> None:
        self.tm = tm
        self.batch = -math.inf
        self.used = 0

    def start(self, t: float) -> float:
        tm = self.tm
        if tm.start_delay_s <= 0:
            return t
        if t >= self.batch + tm.start_delay_s:
            self.batch, self.used = t, 0
        elif self.used >= tm.start_count:
            self.batch, self.used = self.batch + tm.start_delay_s, 0
        self.used += 1
        return max(self.batch, t)


def visit_latency_bounds(visits: Sequence[tuple[float, Sequence[float]]], tm: Timing) -> list[float]:
    """For each visit (readout time, its jobs' runtimes), in readout order, the earliest its last job can end,
    less its readout, under ``tm`` with unlimited slots."""
    neg = _Negotiator(tm)
    throttle = _Throttle(tm)
    claims: list[tuple[float, float]] = []  # (when its job ends, when the claim was made)
    out: list[float] = []
    for t, runtimes in visits:
        _, end = neg.cycle_for(t)
        while claims and claims[0][0] < t:
            heapq.heappop(claims)  # ended with no idle prompt job: the schedd released it
        reused: list[tuple[float, float]] = []
        while claims and claims[0][0] < end and len(reused) < len(runtimes):
            free, made = heapq.heappop(claims)
            if free - made < tm.worklife_s:
                reused.append((free, made))
        starts = [(throttle.start(free) + tm.startup_s, made) for free, made in reused]
        starts += [(throttle.start(end) + tm.startup_s, end) for _ in range(len(runtimes) - len(reused))]
        starts.sort()
        finish = -math.inf
        for (begin, made), rt in zip(starts, sorted(runtimes, reverse=True), strict=True):
            finish = max(finish, begin + rt)
            heapq.heappush(claims, (begin + rt, made))
        out.append(finish - t)
    return out
