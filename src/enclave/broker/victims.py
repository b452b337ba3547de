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

- ``c·e`` if it is evicted now (a deadline of 0: ``batch.live`` drains with ``MaxJobRetirementTime`` 0, what
  ``condor_drain -quick`` does — "MaxJobRetirementTime is not honored. Eviction of jobs is immediately
  initiated", condor_drain manual — where ``-graceful`` honours it), or
- ``q·c·(e + G)`` expected if it is left the grace period: it ends within it, losing nothing, or is evicted at
  its end with probability ``q = P(R > e + G | R > e)`` over the pool's finished runtimes ``R``; ``q = 0`` when
  its declared limit falls within ``e + G``; unknown while fewer than ``MIN_TAIL`` finished jobs ran longer
  than ``e`` (a job older than what the history shows).

Summed over the startd's jobs of the pool, evicting ``d`` seconds from now (``0 ≤ d ≤ G``) is expected to lose
``Σ q(d)·c·(e + d)``. The broker tries ``d`` = 0, G/4, G/2, 3G/4 and G and takes the one that loses least, the
longest on a tie: ``G`` drains (the jobs end within the grace), 0 evicts at once (they would not: waiting only
adds ``G`` seconds of lost work and holds cores the receiving pool waits for), a deadline between lets the
jobs that end soon finish first. The pool's policy is kept — its jobs are gone within ``G`` — and when the
history cannot tell for some job the deadline is ``G``, as before. A startd's cost is what its deadline is
expected to lose (the work done so far when the history cannot tell); the broker takes the cheapest startds
first, idle ones (cost 0) before any that runs.

Jobs of another pool on the startd — a latency pool's, which overflow onto every startd
(``enclave.batch.policy.overflow_pools``) — keep their own pool's policy, and the broker cannot tell when they end
(only the vacating pools' history is read): a move of such a startd waits the whole grace period (its pool's
own deadline, under which they were placed), never less, and their work so far counts in its cost, as for a job
the history cannot tell about. Evicting at once would kill a prompt job whose pool drains.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence

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


DEADLINES = 4
"""The deadlines tried within a grace period ``G``: 0, G/4, G/2, 3G/4 and G."""


def pool_of(s: Startd, job: RunningJob) -> str:
    """A job's pool: its own (the slot's ``RemoteGroup``), or the startd's when not reported."""
    return job.pool if job.pool is not None else s.pool


def guests(s: Startd, pool: str) -> list[RunningJob]:
    """``s``'s jobs of pools other than ``pool``: a latency pool's, overflowing onto it."""
    return [j for j in s.jobs if pool_of(s, j) != pool]


def expected_loss(s: Startd, pool: str, now: float, after: float, runtimes: Sequence[float]) -> float | None:
    """Core-seconds that evicting ``s``'s jobs of ``pool`` ``after`` seconds from now is expected to lose: each job
    still running then loses ``cores × (age + after)``, a job that ended first nothing. None when the history
    cannot tell for some job (``still_running``). A job of unknown pool counts as the startd's."""
    lost = 0.0
    for job in s.jobs:
        if pool_of(s, job) != pool:
            continue
        q = still_running(job, now, after, runtimes) if after > 0 else 1.0
        if q is None:
            return None
        lost += q * job.cores * (max(0.0, now - job.start) + after)
    return lost


def _work(jobs: Iterable[RunningJob], now: float) -> float:
    """The work ``jobs`` have done so far (core-seconds): what evicting them now loses."""
    return sum(j.cores * max(0.0, now - j.start) for j in jobs)


def at_stake(s: Startd, pool: str, now: float) -> float:
    """The work ``s``'s jobs of ``pool`` have done so far: what evicting them now loses (core-seconds)."""
    return _work((j for j in s.jobs if pool_of(s, j) == pool), now)


def deadline(s: Startd, pool: str, now: float, grace: float | None,
             runtimes: Sequence[float]) -> tuple[float | None, float]:
    """When to evict what ``s``'s jobs of ``pool`` still run, and the work that is expected to lose.

    ``grace`` None (the pool drains): never, nothing lost. Otherwise the deadline within the grace period that
    loses the least (``DEADLINES`` + 1 tried, the longest first, so a tie keeps the pool's own grace): 0 evicts
    at once (the jobs would not end within it), ``grace`` drains (they end within it), a deadline between lets
    the jobs that end soon finish before the rest go. When the history cannot tell: the grace, and the work
    done so far as the cost. A startd whose jobs are not reported (busy cores only) loses 0 at every deadline as
    far as anyone knows: the tie keeps the grace. With jobs of another pool on ``s`` (``guests``): the grace, and
    their work so far added to the cost."""
    if grace is None:
        return None, 0.0
    others = guests(s, pool)
    if others:
        lost = expected_loss(s, pool, now, grace, runtimes)
        return grace, (at_stake(s, pool, now) if lost is None else lost) + _work(others, now)
    best: tuple[float, float] | None = None
    for k in range(DEADLINES, -1, -1):
        after = grace * k / DEADLINES
        lost = expected_loss(s, pool, now, after, runtimes)
        if lost is None:
            return grace, at_stake(s, pool, now)
        if best is None or lost < best[1] - _EPS:
            best = (after, lost)
    assert best is not None
    return best


def action_loss(o: Observed, action: Action) -> dict[str, float] | None:
    """For the journal: the work of the jobs an action may evict (``at_stake_core_s``: cores × time run so far)
    and the part it is expected to lose (``lost_core_s``), from the state observed before it, by the rule
    above with the action's own deadline; for ``DeletePods`` and ``ReturnNode`` every running job's work (the
    broker removes a busy startd only when its pool vacates at once or its grace is over). None when the
    action evicts nothing, or the startd's jobs are not reported. A relabel evicts only the pool it leaves
    (the rendered PREEMPT, ``batch.policy.vacate_expr``, is never true for the pool the startd then serves, nor
    for another pool's job that this relabel did not take the startd from): the other pools' jobs on it are not
    at stake (review, stop 53: a relabel back to the jobs' own pool recorded them all as lost)."""
    by_name = {s.name: s for s in o.startds}
    match action:
        case Relabel(startd=name, from_pool=pool, vacate_after_seconds=after):
            targets = [(by_name.get(name), pool, after)]
        case DrainStartd(startd=name, vacate_after_seconds=after):
            s = by_name.get(name)
            targets = [(s, s.pool if s is not None else "", after)]
        # A startd already draining had its loss recorded by its DrainStartd: not counted again.
        case DeletePods(pods=pods):
            targets = [(s, s.pool, 0.0) for s in (by_name.get(p) for p in pods) if s is not None and not s.draining]
        case ReturnNode(node=node):
            targets = [(s, s.pool, 0.0) for s in o.startds if s.node == node and not s.draining]
        case _:
            return None
    guests_lost = not isinstance(action, Relabel)  # a relabel evicts only the pool it leaves
    stake = lost = 0.0
    for s, pool, after in targets:
        if s is None or after is None or s.busy_cores == 0:
            continue
        if not s.jobs:
            return None
        d = o.demand.get(pool)
        done = at_stake(s, pool, o.now)
        expected = expected_loss(s, pool, o.now, after, d.runtimes if d is not None else ())
        # Other pools' jobs (overflow): their end is not known, so their work so far counts as lost, as above.
        others = _work(guests(s, pool), o.now) if guests_lost else 0.0
        stake += done + others
        lost += (expected if expected is not None else done) + others
    return {"at_stake_core_s": round(stake, 1), "lost_core_s": round(lost, 1)} if stake > 0 else None
