"""Least work lost: which startd a pool gives up, and whether its jobs run out the grace period or go at once.

Pure; ``enclave.broker.decide`` asks it for the order in which a pool's startds are taken (relabelled, drained,
deleted or returned) and for the vacate deadline of each move. It uses only what a live pool reports:

- each running job's cores and start — a dynamic slot's ``Cpus`` and ``JobStart`` ("the time stamp in integer
  seconds of when the job began executing", HTCondor manual, "Machine ClassAd Attributes"), carried in
  ``Startd.jobs``;
- a job's declared limit, when it has one — ``AllowedExecuteDuration`` ("the longest time for which a job may
  be executing. Jobs which exceed this duration will go on hold", "Job ClassAd Attributes"), so it is off the
  slot by ``JobStart + AllowedExecuteDuration`` either way;
- how long the pool's recently finished jobs ran (``PoolDemand.runtimes``, from the schedds' history:
  ``CompletionDate − JobCurrentStartDate``, "Job ClassAd Attributes") — never a running job's future end.

The rule. A pool that drains (``take_away: drain``) lets every job finish: no move of its loses work. A pool that
vacates after a grace period ``G`` (``take_away: vacate``; rendered as the startd's ``MAXJOBRETIREMENTTIME``:
"a job which has run for less than this number of seconds will not be hard-killed. The condor_startd will wait
for the job to finish or to exceed this amount of time, whichever comes sooner", "Machine ClassAd Attributes",
``MaxJobRetirementTime``) puts a job that has run ``e`` seconds on ``c`` cores at risk of

- ``c·e`` if it is evicted now (``condor_drain -fast`` rather than ``-graceful``, condor_drain manual), or
- ``q·c·(e + G)`` expected if it is left the grace period: it ends within it, losing nothing, or is evicted at
  its end with probability ``q = P(R > e + G | R > e)`` over the pool's finished runtimes ``R``; ``q = 0`` when
  its declared limit falls within ``e + G``; unknown while fewer than ``MIN_TAIL`` finished jobs ran longer
  than ``e`` (a job older than what the history shows).

Summed over the startd's jobs of the pool, the move drains (keeps ``G``) unless waiting is known to lose more
than evicting now; then its jobs are evicted at once (``vacate_after_seconds = 0``): a job that will not end
within ``G`` loses ``G`` more seconds of work by waiting, and holds cores the receiving pool is waiting for.
A startd's cost is the work the chosen way loses (evicting now's when the wait is unknown); the broker takes
the cheapest startds first, idle ones (cost 0) before any that runs.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from enclave.domain.capacity import Action, DeletePods, DrainStartd, Observed, Relabel, ReturnNode, RunningJob, Startd

MIN_TAIL = 10
"""Finished jobs that must have run longer than a job's age before the history says whether it ends within the
grace period: fewer, and the broker keeps the grace period (today's behaviour, the pool's own policy)."""

_EPS = 1e-9


def still_running(job: RunningJob, now: float, grace: float, runtimes: Sequence[float]) -> float | None:
    """The probability that ``job`` still runs ``grace`` seconds from ``now``: 0 when its declared limit ends
    it before, else the share of the finished jobs that ran longer than its age which also ran longer than its
    age plus ``grace``; None when fewer than ``MIN_TAIL`` ran longer than its age. ``runtimes`` ascending."""
    age = max(0.0, now - job.start)
    if job.limit_seconds is not None and age + grace >= job.limit_seconds - _EPS:
        return 0.0
    longer = len(runtimes) - bisect_right(runtimes, age)
    if longer < MIN_TAIL:
        return None
    return (len(runtimes) - bisect_right(runtimes, age + grace)) / longer


@dataclass(frozen=True)
class Cost:
    """Core-seconds of work a move loses: ``now`` if its jobs are evicted at once, ``wait`` (expected) if they
    are left the grace period; ``wait`` None when the history cannot tell."""

    now: float
    wait: float | None

    def evict_at_once(self) -> bool:
        """Waiting is known to lose more than evicting now."""
        return self.wait is not None and self.wait > self.now + _EPS

    def lost(self) -> float:
        """What the chosen way loses: evicting now's when that is chosen or the wait is unknown."""
        return self.wait if self.wait is not None and not self.evict_at_once() else self.now


FREE = Cost(0.0, 0.0)


def cost(s: Startd, pool: str, now: float, grace: float | None, runtimes: Sequence[float]) -> Cost:
    """What taking ``s`` from ``pool`` costs: its running jobs of ``pool`` (a job of unknown pool counts as the
    startd's). ``grace`` None: the pool drains, nothing is lost. A busy startd whose jobs are not reported costs
    nothing known (the broker then orders by busy cores)."""
    if grace is None or not s.jobs:
        return FREE
    at_stake = 0.0
    wait: float | None = 0.0
    for job in s.jobs:
        if (job.pool if job.pool is not None else s.pool) != pool:
            continue
        age = max(0.0, now - job.start)
        at_stake += job.cores * age
        q = still_running(job, now, grace, runtimes) if grace > 0 else 1.0
        wait = None if wait is None or q is None else wait + q * job.cores * (age + grace)
    return Cost(at_stake, wait)


def vacate_after(s: Startd, pool: str, now: float, grace: float | None, runtimes: Sequence[float]) -> float | None:
    """The vacate deadline for taking ``s`` from ``pool``: None for a pool that drains, 0 when evicting now is
    known to lose less than the grace period would (``Cost.evict_at_once``), else the pool's ``grace``."""
    if grace is None or grace <= 0:
        return grace
    return 0.0 if cost(s, pool, now, grace, runtimes).evict_at_once() else grace


def victim_cost(s: Startd, pool: str, now: float, grace: float | None, runtimes: Sequence[float]) -> float:
    """The order key for taking ``s`` from ``pool``: the work the chosen way loses (core-seconds)."""
    return cost(s, pool, now, grace, runtimes).lost() if s.jobs and grace is not None else 0.0


def action_loss(o: Observed, action: Action) -> dict[str, float] | None:
    """For the journal: the work of the jobs an action may evict (``at_stake_core_s``: cores × time run so far)
    and the part it is expected to lose (``lost_core_s``), from the state observed before it, by the rule
    above with the action's own deadline; for ``DeletePods`` and ``ReturnNode`` every running job's work (the
    broker removes a busy startd only when its pool vacates at once or its grace is over). None when the
    action evicts nothing, or the startd's jobs are not reported."""
    by_name = {s.name: s for s in o.startds}
    match action:
        case Relabel(startd=name, from_pool=pool, vacate_after_seconds=after):
            targets = [(by_name.get(name), pool, after)]
        case DrainStartd(startd=name, vacate_after_seconds=after):
            s = by_name.get(name)
            targets = [(s, s.pool if s is not None else "", after)]
        case DeletePods(pods=pods):
            targets = [(by_name.get(p), by_name[p].pool if p in by_name else "", 0.0) for p in pods]
        case ReturnNode(node=node):
            targets = [(s, s.pool, 0.0) for s in o.startds if s.node == node]
        case _:
            return None
    stake = lost = 0.0
    for s, pool, after in targets:
        if s is None or after is None or s.busy_cores == 0:
            continue
        if not s.jobs:
            return None
        d = o.demand.get(pool)
        c = cost(s, pool, o.now, after, d.runtimes if d is not None else ())
        stake += c.now
        lost += c.now if after == 0 else (c.wait if c.wait is not None else c.now)
    return {"at_stake_core_s": round(stake, 1), "lost_core_s": round(lost, 1)} if stake > 0 else None
