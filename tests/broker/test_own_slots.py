"""A pool without a latency objective needs no capacity of its own for its jobs running elsewhere
(``broker.decide.on_own_slots``): left on another pool's startd by a relabel, they run where they are.

The spec is ``make_spec``'s: pools prompt (latency objective), drp (vacates after 600 s), user (guaranteed a
tenth of the standalone cores up) and general; the startds are built here, 24 cores / 24 GiB each, all out of
the cooldown. Expected figures are worked out by hand from the rule in the comments.
"""

from __future__ import annotations

from enclave.broker.census import Census, Holding
from enclave.broker.decide import on_own_slots, plan, pool_figures
from enclave.domain.capacity import Observed, PoolDemand, Relabel, Startd, StartdKind
from tests.broker.conftest import NOW, make_spec

OLD = NOW - 100_000.0  # out of the cooldown


def _batch(name: str, pool: str, busy: int = 0, busy_mib: int = 0) -> Startd:
    return Startd(name, name, StartdKind.STANDALONE, pool, 24, 24 * 1024, busy_cores=busy,
                  busy_memory_mib=busy_mib, since=OLD)


def test_running_jobs_count_as_far_as_the_pools_own_startds_are_busy() -> None:
    d = PoolDemand(idle_jobs=4, idle_cores=4, running_jobs=10, running_cores=10, running_memory_mib=40_960,
                   idle_memory_mib=16_384)
    held = Holding(standalone=24, standalone_startds=[_batch("u1", "user", busy=2, busy_mib=8192)])
    # 10 running, of which at most 2 cores / 8 GiB on its own startd: the other 8 run elsewhere.
    got = on_own_slots(d, held)
    assert (got.running_cores, got.running_memory_mib) == (2, 8192)
    assert (got.idle_cores, got.idle_memory_mib, got.running_jobs) == (4, 16_384, 10)  # queued work, has_work
    # No startd of its own: nothing it runs needs its capacity.
    assert on_own_slots(d, None).running_cores == 0


def test_own_startds_busier_than_the_pools_jobs_change_nothing() -> None:
    # Busy cores may be another pool's jobs (an upper bound on the pool's own): never count fewer than run.
    d = PoolDemand(running_jobs=3, running_cores=3, running_memory_mib=3072)
    held = Holding(standalone=48, standalone_startds=[_batch("u1", "user", busy=2, busy_mib=2048),
                                                      _batch("u2", "user", busy=5, busy_mib=5120)])
    assert on_own_slots(d, held) is d
    assert on_own_slots(PoolDemand(idle_jobs=1, idle_cores=1), None) == PoolDemand(idle_jobs=1, idle_cores=1)


def _observed(*startds: Startd, demand: dict[str, PoolDemand]) -> Observed:
    return Observed(now=NOW, nodes=(), startds=startds, demand=demand)


def test_a_latency_pools_overflow_still_counts() -> None:
    """Prompt's jobs on drp's startds are the overflow its own capacity did not hold: its need counts them
    (issue 15, ``PoolState.urgent``); user's jobs there do not count in user's need."""
    spec = make_spec()
    startds = (_batch("d1", "drp", busy=20, busy_mib=20 * 1024), _batch("u1", "user"))
    demand = {"prompt": PoolDemand(running_jobs=12, running_cores=12),
              "user": PoolDemand(running_jobs=8, running_cores=8),
              "drp": PoolDemand(idle_jobs=500, idle_cores=500)}
    o = _observed(*startds, demand=demand)
    census = Census.take(o)
    pools = pool_figures(spec, o, None, census.base, None, census.holdings)
    assert pools["prompt"].need == 12  # all its running cores, though none is on a prompt startd
    assert pools["user"].need == 0     # its 8 run on d1; u1 is idle
    assert pools["user"].has_work      # its jobs still run: a pool with work
    # Without the holdings (a caller that has no census), the need is running + idle as observed.
    assert pool_figures(spec, o, None, census.base, None)["user"].need == 8


def test_a_pool_whose_last_jobs_run_elsewhere_gives_its_idle_node_back() -> None:
    """User's last 8 jobs run on d1, relabelled to drp with them still running; user's own node u1 is idle.
    Need 0 → target 0, so u1 (24 cores above target, out of the cooldown) goes to drp, which has a backlog
    and may hold every node (max_share 1). Counting the 8 cores running on d1, user's target was
    min(guarantee 21, need 8) = 8 (guarantee floor(216 · 0.1)) and it kept u1 for them."""
    spec = make_spec(maximum=(6, 10, 5, 5))
    startds = (*(_batch(f"d{i}", "drp", busy=24, busy_mib=24 * 1024) for i in range(1, 9)),
               _batch("u1", "user"))
    demand = {"user": PoolDemand(running_jobs=8, running_cores=8),
              "drp": PoolDemand(idle_jobs=500, idle_cores=500, running_jobs=184, running_cores=184)}
    actions = plan(spec, _observed(*startds, demand=demand)).actions
    assert [(a.startd, a.from_pool, a.to_pool) for a in actions if isinstance(a, Relabel)] == [("u1", "user", "drp")]
