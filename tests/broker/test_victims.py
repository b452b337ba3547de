"""Least work lost (``enclave.broker.victims``) and its use by ``broker.decide``: which startd a pool gives up,
and whether its jobs run out the grace period (drain) or go at once.

Every expected figure is worked out by hand from the rule in the module's docstring: a job of ``c`` cores that
has run ``e`` seconds loses ``c·e`` if evicted now and, left a grace period ``G``, ``q·c·(e + G)`` expected, with
``q = P(R > e + G | R > e)`` over the pool's finished runtimes ``R``.
"""

from __future__ import annotations

from dataclasses import replace

from enclave.broker.decide import Commons as CommonsT
from enclave.broker.decide import Cycle, PoolState, RelabelQueue, count_holdings, move_toward_targets, plan, release
from enclave.broker.victims import (
    MIN_TAIL,
    action_loss,
    at_stake,
    deadline,
    expected_loss,
    still_running,
)
from enclave.domain.capacity import (
    DeletePods,
    DeployPods,
    DrainStartd,
    Observed,
    PoolDemand,
    Relabel,
    RunningJob,
    Startd,
    StartdKind,
)
from tests.broker.conftest import NOW, make_spec

# Ten jobs ran 100 s and ten ran 1,000 s: the pool's history (ascending, as PoolDemand.runtimes).
HISTORY = (100.0,) * 10 + (1000.0,) * 10
G = 600.0


def _job(cores: int, age: float, pool: str | None = "drp", limit: float | None = None) -> RunningJob:
    return RunningJob(cores=cores, start=NOW - age, pool=pool, limit_seconds=limit)


def _startd(name: str, *jobs: RunningJob, pool: str = "drp", cores: int = 24) -> Startd:
    busy = sum(j.cores for j in jobs)
    return Startd(name, name, StartdKind.STANDALONE, pool, cores, cores * 1024, busy_cores=busy, since=0.0,
                  jobs=jobs)


# --- the rule ---------------------------------------------------------------------------------------------


def test_still_running_is_the_conditional_share_of_the_history() -> None:
    # Age 50: all 20 ran longer than 50 s, the ten 1,000 s jobs also longer than 650 s: q = 10/20.
    assert still_running(_job(1, 50), NOW, G, HISTORY) == 0.5
    # Age 200: only the ten 1,000 s jobs ran longer; all of them longer than 800 s: q = 1.
    assert still_running(_job(1, 200), NOW, G, HISTORY) == 1.0
    # Age 500: the ten ran longer than 500 s, none longer than 1,100 s: it ends within the grace, q = 0.
    assert still_running(_job(1, 500), NOW, G, HISTORY) == 0.0
    # Age 1,000: no finished job ran longer (fewer than MIN_TAIL): the history cannot tell.
    assert still_running(_job(1, 1000), NOW, G, HISTORY) is None
    assert still_running(_job(1, 50), NOW, G, ()) is None


def test_a_declared_limit_ends_the_job_within_the_grace() -> None:
    # AllowedExecuteDuration 700 s: at age 200 it is off the slot by 200 + 600 = 800 ≥ 700, whatever the history.
    assert still_running(_job(1, 200, limit=700), NOW, G, HISTORY) == 0.0
    assert still_running(_job(1, 200, limit=700), NOW, G, ()) == 0.0
    # A limit beyond the grace says nothing: the history decides (q = 1 at age 200).
    assert still_running(_job(1, 200, limit=5000), NOW, G, HISTORY) == 1.0


def test_min_tail_needs_that_many_longer_runs() -> None:
    # MIN_TAIL − 1 runs longer than the age: unknown; MIN_TAIL: known.
    short = (10.0,) * 5
    assert still_running(_job(1, 50), NOW, G, short + (900.0,) * (MIN_TAIL - 1)) is None
    assert still_running(_job(1, 50), NOW, G, short + (900.0,) * MIN_TAIL) == 1.0


def test_expected_loss_sums_the_pools_jobs() -> None:
    # A: 4 cores, age 200, q = 1 at any deadline below 800 s. B: 1 core, age 500, ends by 1,000 s.
    # A user job on the same startd is not the donor's: left out.
    s = _startd("c1", _job(4, 200), _job(1, 500), _job(2, 300, pool="user"))
    assert at_stake(s, "drp", NOW) == 4 * 200 + 1 * 500
    assert expected_loss(s, "drp", NOW, 0.0, HISTORY) == 1300.0
    # At G: A still runs (4·800 = 3,200), B has ended (q = 0 at 500 + 600 > 1,000).
    assert expected_loss(s, "drp", NOW, G, HISTORY) == 3200.0
    # Deadlines 600, 450, 300, 150, 0: A loses 4·(200 + d), B 1·(500 + d) while d < 500: 3,200, 3,550, 2,800,
    # 2,050, 1,300 — evicting at once would lose least of the donor's work.
    mine = _startd("c0", _job(4, 200), _job(1, 500))
    assert deadline(mine, "drp", NOW, G, HISTORY) == (0.0, 1300.0)
    # But the user job keeps its own pool's policy, and its end is unknown: the whole grace, and its work so far
    # (2·300) added to what the donor's jobs lose then (3,200).
    assert deadline(s, "drp", NOW, G, HISTORY) == (G, 3200.0 + 600.0)
    # A job of unknown pool counts as the startd's.
    assert expected_loss(_startd("c2", _job(1, 500, pool=None)), "drp", NOW, G, HISTORY) == 0.0


def test_drain_when_the_jobs_end_within_the_grace() -> None:
    # 8 cores at age 500 (ends by 1,000 s): evicting now loses 4,000; at 150 s 8·650 = 5,200 (still running);
    # at 600 s nothing. The grace it is.
    s = _startd("c1", _job(8, 500))
    assert deadline(s, "drp", NOW, G, HISTORY) == (G, 0.0)
    assert deadline(s, "drp", NOW, G, HISTORY)[1] == 0.0


def test_a_deadline_between_lets_the_short_jobs_finish_first() -> None:
    # X: 8 cores, age 100, declared limit 200 s (gone by d = 100). Y: 1 core, age 200, q = 1 below 800 s.
    # d = 0: 8·100 + 200 = 1,000; d = 150: Y only, 350; 300: 500; 450: 650; 600: 800. Best: 150 s.
    s = _startd("c1", _job(8, 100, limit=200), _job(1, 200))
    assert deadline(s, "drp", NOW, G, HISTORY) == (150.0, 350.0)


def test_a_half_chance_evicts_when_waiting_loses_more() -> None:
    # 2 cores at age 50, q = 0.5 from 150 s on: d = 0 loses 100, 150: 2·200·0.5 = 200, ..., 600: 650.
    assert deadline(_startd("c1", _job(2, 50)), "drp", NOW, G, HISTORY)[0] == 0.0
    # Nothing of the pool runs there: every deadline loses 0, a tie, so the pool's own grace.
    assert deadline(_startd("c2", _job(1, 50, pool="user")), "drp", NOW, G, HISTORY)[0] == G


def test_a_latency_pools_overflowing_job_is_never_evicted_before_the_grace() -> None:
    """Prompt's jobs may run on a DRP startd (overflow) and prompt drains: a move of that startd waits DRP's grace
    whatever DRP's own jobs would lose, and prompt's job's work so far counts in the cost."""
    # DRP's job alone: 2 cores at age 50, evicting at once loses least (100, as in the test below).
    alone = _startd("c1", _job(2, 50))
    assert deadline(alone, "drp", NOW, G, HISTORY)[0] == 0.0
    # With a prompt job started 10 s ago beside it: the grace; DRP's job loses 2·650·0.5 = 650 then, prompt's
    # counts its 10 s.
    shared = _startd("c2", _job(2, 50), _job(1, 10, pool="prompt"))
    assert deadline(shared, "drp", NOW, G, HISTORY) == (G, 650.0 + 10.0)
    # The journal counts prompt's work as at stake and, its end unknown, as lost.
    o = Observed(now=NOW, nodes=(), startds=(shared,), demand={"drp": PoolDemand(runtimes=HISTORY)})
    loss = action_loss(o, DrainStartd(actor="broker", reason="r", startd="c2", vacate_after_seconds=G))
    assert loss == {"at_stake_core_s": 2 * 50 + 10, "lost_core_s": 650.0 + 10}


def test_a_relabel_puts_only_the_pool_it_leaves_at_stake() -> None:
    """The rendered PREEMPT (``batch.policy.vacate_expr``) is never true for the pool the startd then serves, nor for
    a pool this relabel did not take the startd from: a relabel evicts only the old pool's jobs. Review, stop 53: a
    relabel user → drp of a startd running DRP's jobs (sent home, evicted by nobody) recorded them all as lost, so
    the dashboard's and /metrics' evicted core-hours counted work nobody lost."""
    home = _startd("c3", _job(2, 50), _job(1, 10, pool="prompt"), pool="user")  # DRP's and prompt's jobs
    o = Observed(now=NOW, nodes=(), startds=(home,), demand={"drp": PoolDemand(runtimes=HISTORY)})
    back = Relabel(actor="b", reason="r", startd="c3", from_pool="user", to_pool="drp", vacate_after_seconds=0)
    assert action_loss(o, back) is None  # no user job runs there: nothing is at stake
    # A drain evicts every job at its deadline, the guests too (their end unknown: their work so far).
    assert action_loss(o, DrainStartd(actor="b", reason="r", startd="c3", vacate_after_seconds=0)) == {
        "at_stake_core_s": 2 * 50 + 10, "lost_core_s": 2 * 50 + 10}


def test_jobs_not_reported_keep_the_grace() -> None:
    # A backend that tells busy cores only: no job to weigh, every deadline loses the 0 known of, a tie: the grace.
    s = replace(_startd("c1"), busy_cores=24)
    assert deadline(s, "drp", NOW, G, HISTORY) == (G, 0.0)


def test_unknown_history_keeps_the_grace_and_costs_the_work_done() -> None:
    s = _startd("c1", _job(3, 2000))  # older than anything in the history
    assert expected_loss(s, "drp", NOW, G, HISTORY) is None
    assert deadline(s, "drp", NOW, G, HISTORY) == (G, 6000.0)
    assert deadline(s, "drp", NOW, G, HISTORY)[1] == 6000.0


def test_a_pool_that_drains_loses_nothing() -> None:
    s = _startd("c1", _job(24, 5000))
    assert deadline(s, "drp", NOW, None, HISTORY)[1] == 0.0
    assert deadline(s, "drp", NOW, None, HISTORY)[0] is None
    # Vacating at once (grace 0): every job loses its work now.
    assert deadline(s, "drp", NOW, 0.0, HISTORY) == (0.0, 120000.0)


def test_action_loss_for_the_journal() -> None:
    s = _startd("c1", _job(4, 200), _job(1, 500))  # at stake 1,300; 3,200 expected at G (as above)
    o = Observed(now=NOW, nodes=(), startds=(s,), demand={"drp": PoolDemand(runtimes=HISTORY)})
    at_once = Relabel(actor="b", reason="r", startd="c1", from_pool="drp", to_pool="user", vacate_after_seconds=0)
    assert action_loss(o, at_once) == {"at_stake_core_s": 1300.0, "lost_core_s": 1300.0}
    after_grace = DrainStartd(actor="b", reason="r", startd="c1", vacate_after_seconds=G)
    assert action_loss(o, after_grace) == {"at_stake_core_s": 1300.0, "lost_core_s": 3200.0}
    drain = Relabel(actor="b", reason="r", startd="c1", from_pool="drp", to_pool="user")
    assert action_loss(o, drain) is None
    assert action_loss(o, DeletePods(actor="b", reason="r", pods=("c1",))) == {"at_stake_core_s": 1300.0,
                                                                             "lost_core_s": 1300.0}
    deploy = DeployPods(actor="b", reason="r", node="w1", pool="drp", pods=("p",), cores_per_pod=8,
                        memory_mib_per_pod=1024)
    assert action_loss(o, deploy) is None
    # Already draining: its DrainStartd recorded the loss; removing it later does not count it again.
    draining = Observed(now=NOW, nodes=(), startds=(replace(s, draining=True),), demand=o.demand)
    assert action_loss(draining, DeletePods(actor="b", reason="r", pods=("c1",))) is None
    # Busy, but its jobs are not reported: unknown, not zero.
    hidden = Observed(now=NOW, nodes=(), startds=(Startd("c1", "c1", StartdKind.STANDALONE, "drp", 24, 1024,
                                                         busy_cores=4),))
    assert action_loss(hidden, at_once) is None


# --- in the broker's decision ------------------------------------------------------------------------------


def _pool(name: str, priority: int, **figures: int | bool) -> PoolState:
    base: dict[str, int | bool] = {"guaranteed": 0, "maximum": 1000, "has_work": True, "need": 0, "target": 0,
                                   "lend": 0}
    return PoolState(name=name, priority=priority, **{**base, **figures})  # type: ignore[arg-type]


def test_relabel_takes_the_startd_that_loses_least_and_evicts_only_when_waiting_loses_more() -> None:
    spec = make_spec(workers=2, batch=10, broker={"cooldown_seconds": 900})
    drp = _pool("drp", 50, target=48)
    user = _pool("user", 30, target=48)
    c = Cycle.start(spec, NOW, "broker", {"drp": drp, "user": user})
    c.runtimes = {"drp": HISTORY}
    # Costs: young (8 cores, age 200, q = 1 below 800 s): 8·(200 + d), least at d = 0: evict, 1,600.
    # old (8 cores, age 2,000, history cannot tell): 16,000. ending (20 cores, age 500, gone by 1,000 s;
    # 20·(500 + d) for d < 500): drain, 0.
    # busy-but-ending has more busy cores than young, yet loses nothing: it goes first (idleness would
    # have picked young, the least busy). Then young, evicted at once; old stays (drp keeps its target).
    startds = [_startd("young", _job(8, 200)), _startd("old", _job(8, 2000)),
               _startd("ending", *[_job(1, 500)] * 20), _startd("spare", _job(8, 2000))]
    count_holdings(c.pools, startds)
    move_toward_targets(c, RelabelQueue.of(c, startds))
    moves = [(a.startd, a.vacate_after_seconds) for a in c.actions if isinstance(a, Relabel)]
    assert moves == [("ending", G), ("young", 0.0)]


def test_release_evicts_at_once_only_when_the_jobs_will_not_end() -> None:
    spec = make_spec(workers=2, batch=10, broker={"cooldown_seconds": 900, "lend_to": ["drp"]})
    drp = _pool("drp", 50)
    c = Cycle.start(spec, NOW, "broker", {"drp": drp})
    c.runtimes = {"drp": HISTORY}
    ending = Startd("p1", "w1", StartdKind.POD, "drp", 8, 8192, busy_cores=8, jobs=(_job(8, 500),))
    young = Startd("p2", "w1", StartdKind.POD, "drp", 8, 8192, busy_cores=8, jobs=(_job(8, 200),))
    o = Observed(now=NOW, nodes=(), startds=(ending, young))
    commons = CommonsT.observe(spec, o, [ending, young])
    count_holdings(c.pools, [ending, young])
    assert release(c, commons, ending, "test") and release(c, commons, young, "test")
    drains = {a.startd: a.vacate_after_seconds for a in c.actions if isinstance(a, DrainStartd)}
    assert drains == {"p1": G, "p2": 0.0}


def test_plan_passes_the_observed_history() -> None:
    # Whole decision: user needs a node, drp holds ten (target keeps nine); of drp's startds the one whose jobs
    # end within the grace goes, drained; without the history (runtimes ()) the rule cannot tell, so the
    # order is by work done so far (age × cores) and the grace is kept.
    spec = make_spec(workers=0, batch=10, guaranteed=(0, 4, 1, 0), maximum=(1, 10, 5, 5))
    startds = tuple(_startd(f"c{i}", _job(24, 200 if i else 500)) for i in range(10))
    demand = {"drp": PoolDemand(running_jobs=10, running_cores=240, idle_jobs=100, idle_cores=100, runtimes=HISTORY),
              "user": PoolDemand(idle_jobs=24, idle_cores=24)}
    o = Observed(now=NOW, nodes=(), startds=startds, demand=demand)
    relabels = [a for a in plan(spec, o).actions if isinstance(a, Relabel)]
    assert [(a.startd, a.vacate_after_seconds) for a in relabels] == [("c0", G)]
    blind = Observed(now=NOW, nodes=(), startds=startds, demand={**demand, "drp": PoolDemand(
        running_jobs=10, running_cores=240, idle_jobs=100, idle_cores=100)})
    relabels = [a for a in plan(spec, blind).actions if isinstance(a, Relabel)]
    # c1..c9 have done 24·200 each, c0 24·500: c1 (by name among the cheapest) goes, after the grace.
    assert [(a.startd, a.vacate_after_seconds) for a in relabels] == [("c1", G)]
