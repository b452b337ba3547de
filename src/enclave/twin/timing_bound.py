"""The clairvoyant prompt bound under the scenario's HTCondor timing (issue 15).

``metrics.bounds`` gives each visit its slowest detector job as a lower bound on its latency: every job starting
at readout. Under HTCondor's negotiator no job starts at readout: an idle job waits for a negotiation cycle that
began after it was submitted, the cycle takes time, the schedd may throttle its starts, and the shadow and starter
start up before the job's first instruction. This module replays those rules for prompt alone, with unlimited
slots (a clairvoyant capacity), and gives each visit the earliest finish they allow.

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
  prompt's and are left out. They lengthen the cycle, which never brings the next one earlier (start to start is
  max(length + NEGOTIATOR_CYCLE_DELAY, NEGOTIATOR_INTERVAL), and a RESCHEDULE waits for the delay after the end),
  but it moves the cycles that follow: one may then begin just after a readout where the bound's began just before
  it, and that visit beats its bound (review, stop 53; docs/twin.md has the cases). The bound is therefore not
  strict per visit.
- CLAIM_WORKLIFE (condor_startd entries): a claim whose job ends while a job of the same submitter that fits the
  claimed dynamic slot is idle runs it at once, without a cycle, while the claim is younger than this. So a
  visit's jobs may start on claims of the previous visits' jobs that end after its readout and before its cycle
  ends.
- JOB_START_COUNT / JOB_START_DELAY (condor_schedd entries): the schedd starts at most COUNT jobs, then waits
  DELAY seconds before the next ones (the twin's ``Sim._throttled_start``).
- ``job_startup_s``: the twin's estimate of shadow and starter start-up after each start.

Only the capacity is clairvoyant: every job has a slot the moment HTCondor would start it. Which job takes a
claim is the schedd's rule, which knows no runtimes. A claim whose job ended runs the schedd's next idle job that
matches it (schedd.cpp ``Scheduler::child_exit`` -> ``StartJob(match_rec*)`` -> ``FindRunnableJobForClaim``, and
``RecycleShadow`` -> ``FindRunnableJobForClaim``; qmgmt.cpp ``FindRunnableJob`` walks the ``PrioRec`` array, jobs
already matched skipped), an array sorted by submitter, then JobPrio (and the DAG pre/post priorities), then
cluster and proc id (qmgmt.cpp ``prio_compar``); a visit's detector jobs have one priority, so it is their
submission order, which is ``visits``' order of runtimes (the twin's queue: ``Sim._successor`` takes the oldest
idle job of the submitter, here the head of prompt's one autocluster, job ids in the visit's order). So the
claims that free between the readout and the end of prompt's turn, in the order they free, take the visit's first
jobs, and the others start when the turn ends. The figure is what the twin would measure with prompt never short
of a slot; an earlier version gave the claims to each visit's longest jobs (runtime foresight), 89.6 % on
one-night-prompt-slow, which no schedd does.

Why a capacity policy does no better, visit by visit, under these rules, and the one exception: a policy decides
how many of prompt's jobs have a slot when, not which job takes a slot (the schedd's order) nor when cycles run
(they only lengthen with other submitters' turns, above). With a slot for every job, each job starts at the first
of: the end of prompt's turn in the first cycle that sees it, or the first claim that frees for it in queue
order; fewer slots can only remove starts from that list or move them later, and a job that starts later ends
later, so the claims it frees come later too. The exception is a claim moved INTO a later visit's window: an
earlier job held back (no slot at its turn) may end after the next readout instead of just before it, and its
claim then serves a job of the next visit early. Claims go to the oldest idle job first (an earlier visit's jobs
precede), so this needs the earlier visit's jobs all started yet one of them late by the right few seconds. So
the bound is exact for unlimited slots and an upper bound up to that exception, which is not proven absent: on
one-night-prompt-slow no visit of any policy beat its bound (docs/broker.md, issue 15).

Whether prompt's schedd sends a RESCHEDULE is taken favourably: ``schedd-idle`` counts as sending one, as it does
on a schedd of prompt's own (on a shared schedd it depends on other pools' idle jobs, which no bound can know).
Pod start-up does not enter: with unlimited capacity every slot is already there.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass

from enclave.twin.scenario import FOREVER_S, HTCondor, Reschedule
from enclave.twin.worklife import clock_worklife


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
        """The timing of a latency pool's jobs. They may run on every startd (``batch.policy.overflow_pools``),
        whose claims last as long as the CLAIM_WORKLIFE of the pool each serves: the bound lets every claim
        last the longest of them, so no slot the twin gives a visit keeps a claim longer than the bound's."""
        return cls(interval_s=h.negotiator_interval_s, cycle_delay_s=h.negotiator_cycle_delay_s,
                   min_interval_s=h.negotiator_min_interval_s, idle_cycle_s=h.cycle_base_s,
                   visit_cycle_s=h.cycle_base_s + h.cycle_per_submitter_s + h.cycle_per_autocluster_s,
                   reschedule=h.reschedule_on_submit != Reschedule.NEVER,
                   worklife_s=max([h.claim_worklife_s, *h.pool_claim_worklife_s.values(),
                                   *(clock_worklife(e, FOREVER_S).most()
                                     for e in h.pool_claim_worklife_by_clock.values())]),
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
    """For each visit (readout time, its jobs' runtimes in the schedd's queue order), in readout order, the
    earliest its last job can end, less its readout, under ``tm`` with unlimited slots."""
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
        # The schedd's order, not the runtimes': the claims in the order they free take the visit's jobs in
        # queue order (FindRunnableJob), and the jobs left start when prompt's turn ends.
        starts = [(throttle.start(free) + tm.startup_s, made) for free, made in reused]
        starts += [(throttle.start(end) + tm.startup_s, end) for _ in range(len(runtimes) - len(reused))]
        finish = -math.inf
        for (begin, made), rt in zip(starts, runtimes, strict=True):
            finish = max(finish, begin + rt)
            heapq.heappush(claims, (begin + rt, made))
        out.append(finish - t)
    return out
