"""A pool without a latency objective needs no capacity of its own for its jobs running elsewhere
(``broker.decide.on_own_slots``): left on another pool's startd by a relabel, they run where they are.

The spec is ``make_spec``'s: pools prompt (latency objective), drp (vacates after 600 s), user (guaranteed a
tenth of the standalone cores up) and general; the startds are built here, 24 cores / 24 GiB each, all out of
the cooldown, and report their running jobs (``Startd.jobs``) as the twin and live backends do. Expected
figures are worked out by hand from the rule in the comments.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enclave.broker.census import Census, Holding
from enclave.broker.decide import on_own_slots, plan, pool_figures
from enclave.broker.effects import project
from enclave.domain.capacity import (
    Node,
    NodeState,
    Observed,
    PoolDemand,
    Relabel,
    RunningJob,
    Startd,
    StartdKind,
)
from enclave.spec import EnclaveSpec
from enclave.spec.models import NodeRole
from tests.broker.conftest import NOW, make_spec, observed_states, specs
from tests.broker.test_decide_properties import unexplained_follow_ups

OLD = NOW - 100_000.0  # out of the cooldown


def _batch(name: str, pool: str, jobs: dict[str | None, int] | None = None, busy: int | None = None) -> Startd:
    """A startd running one-core jobs: ``jobs`` maps a job's pool (None: not reported) to how many."""
    running = tuple(RunningJob(1, NOW - 600, p) for p, n in (jobs or {}).items() for _ in range(n))
    return Startd(name, name, StartdKind.STANDALONE, pool, 24, 24 * 1024,
                  busy_cores=len(running) if busy is None else busy, since=OLD, jobs=running)


def _held(*startds: Startd) -> Holding:
    return Holding(standalone=24 * len(startds), standalone_startds=list(startds))


def test_running_jobs_count_where_they_run_on_the_pools_own_startds() -> None:
    d = PoolDemand(idle_jobs=4, idle_cores=4, running_jobs=10, running_cores=10, running_memory_mib=40_960)
    # u1 runs 2 of user's jobs and 3 of drp's (left by a relabel); user's other 8 run on drp's startds.
    got = on_own_slots(d, "user", _held(_batch("u1", "user", {"user": 2, "drp": 3})))
    # 2 of 10 running cores, and their memory in that proportion: 40,960 · 2 / 10.
    assert (got.running_cores, got.running_memory_mib) == (2, 8192)
    assert (got.idle_cores, got.running_jobs) == (4, 10)  # the queue and has_work stay
    # A job whose pool is not reported is the startd's (victims.pool_of): u1's 5 count.
    assert on_own_slots(d, "user", _held(_batch("u1", "user", {None: 5}))).running_cores == 5
    # No startd of its own: nothing it runs needs its capacity.
    assert on_own_slots(d, "user", _held()).running_cores == 0


def test_unknown_jobs_or_all_on_own_startds_change_nothing() -> None:
    d = PoolDemand(running_jobs=3, running_cores=3, running_memory_mib=3072)
    # All three run on its own startds.
    assert on_own_slots(d, "user", _held(_batch("u1", "user", {"user": 3}))) is d
    # u2 is busy but reports no jobs: whose they are is unknown, so the demand stays whole.
    assert on_own_slots(d, "user", _held(_batch("u1", "user"), _batch("u2", "user", busy=2))) is d
    # No census given (a caller without one): whole.
    assert on_own_slots(d, "user", None) is d


def _observed(*startds: Startd, demand: dict[str, PoolDemand]) -> Observed:
    return Observed(now=NOW, nodes=(), startds=startds, demand=demand)


def test_a_latency_pools_overflow_still_counts() -> None:
    """Prompt's jobs on drp's startd are the overflow its own capacity did not hold: its need counts them
    (issue 15, ``PoolState.urgent``); user's jobs there do not count in user's need."""
    spec = make_spec()
    startds = (_batch("d1", "drp", {"drp": 4, "prompt": 12, "user": 8}), _batch("u1", "user"))
    demand = {"prompt": PoolDemand(running_jobs=12, running_cores=12),
              "user": PoolDemand(running_jobs=8, running_cores=8),
              "drp": PoolDemand(idle_jobs=30, idle_cores=30, running_jobs=4, running_cores=4)}
    o = _observed(*startds, demand=demand)
    census = Census.take(o)
    pools = pool_figures(spec, o, None, census.base, None, census.holdings)
    assert pools["prompt"].need == 12  # all its running cores, though none is on a prompt startd
    assert pools["user"].need == 0     # its 8 run on d1; u1 is idle
    assert pools["user"].has_work      # its jobs still run: a pool with work
    assert pools["drp"].need == 34     # its 4 on d1, its own, and 30 queued
    # With jobs queued, a pool counts all it runs: user's 8 on d1 and 5 queued.
    queued = {**demand, "user": PoolDemand(idle_jobs=5, idle_cores=5, running_jobs=8, running_cores=8)}
    assert pool_figures(spec, _observed(*startds, demand=queued), None, census.base, None,
                        census.holdings)["user"].need == 13
    # Without the holdings (a caller that has no census), the need is running + idle as observed.
    assert pool_figures(spec, o, None, census.base, None)["user"].need == 8


def test_a_pool_whose_last_jobs_run_elsewhere_gives_its_idle_node_back() -> None:
    """User's last 8 jobs run on d1, relabelled to drp with them still running; user's own node u1 is idle.
    Need 0 → target 0, so u1 (24 cores above target, out of the cooldown) goes to drp, which has a backlog
    and may hold every node (max_share 1). Counting the 8 cores running on d1, user's target was
    min(guarantee 21, need 8) = 8 (guarantee floor(216 · 0.1)) and it kept u1 for them."""
    spec = make_spec(maximum=(6, 10, 5, 5))
    startds = (_batch("d1", "drp", {"drp": 16, "user": 8}),
               *(_batch(f"d{i}", "drp", {"drp": 24}) for i in range(2, 9)), _batch("u1", "user"))
    demand = {"user": PoolDemand(running_jobs=8, running_cores=8),
              "drp": PoolDemand(idle_jobs=500, idle_cores=500, running_jobs=184, running_cores=184)}
    actions = plan(spec, _observed(*startds, demand=demand)).actions
    assert [(a.startd, a.from_pool, a.to_pool) for a in actions if isinstance(a, Relabel)] == [("u1", "user", "drp")]


def test_a_give_back_that_leaves_the_pools_jobs_as_guests_may_be_followed_by_one_more() -> None:
    """User holds u1 (1 job), u2 and u3 (12 each) with nothing queued: need 25, so of its 72 cores it gives the
    startd that costs least (u1) to general, which has 500 jobs queued; 48 − 25 = 23 above its need is less
    than a startd. On the result u1's user job runs as general's guest: need 24, and 48 − 24 = 24 is a startd,
    so the next decision gives one more (u2: the first of the two that cost the same); the one after it nothing
    (24 − 12 < 24). The exception to "deciding again on the result changes nothing" (``on_own_slots``)."""
    spec = make_spec(maximum=(6, 10, 5, 10))
    startds = (_batch("u1", "user", {"user": 1}), _batch("u2", "user", {"user": 12}),
               _batch("u3", "user", {"user": 12}), *(_batch(f"g{i}", "general", {"general": 24}) for i in range(6)))
    demand = {"user": PoolDemand(running_jobs=25, running_cores=25),
              "general": PoolDemand(idle_jobs=500, idle_cores=500, running_jobs=144, running_cores=144)}
    o = _observed(*startds, demand=demand)
    first = plan(spec, o)
    assert [(a.startd, a.to_pool) for a in first.actions if isinstance(a, Relabel)] == [("u1", "general")]
    o2 = project(o, first.actions)
    second = plan(spec, o2)
    assert [(a.startd, a.from_pool) for a in second.actions if isinstance(a, Relabel)] == [("u2", "user")]
    assert plan(spec, project(o2, second.actions)).actions == []


def test_a_promise_that_takes_the_pools_guests_in_may_be_followed_by_one_more() -> None:
    """The second exception (``on_own_slots``): four standalone startds, B = 96, shares in quarters of it.
    General (guaranteed 24) has nothing queued; its 4 jobs run on its worker pod, deployed this cycle (in the
    cooldown, so not given back), and 1 on user's u1: need 4, target min(24, 4) = 4. DRP runs 48 and queues 43:
    target 91 (priority 50 before user's 30). User runs 24 and queues 2: need 26, target 96 − 4 − 91 = 1.
    General holds 0 standalone cores < 4, so its promise takes a user startd: u1, the least work lost and least
    busy (11 busy, u2 14). User then holds 24 for a target of 1, so DRP (48 of 91) may not take u2
    (24 − 24 < 1). On the result general's job on u1 runs on its own startd: need 5, target 5, user's target 0
    — and DRP takes u2. Then nothing follows."""
    spec = make_spec(workers=1, batch=4, guaranteed=(0, 0, 0, 1), maximum=(1, 4, 2, 4))
    pod = Startd("htcondor-kub-001-1", "kub-001", StartdKind.POD, "general", 4, 8192, busy_cores=4, since=NOW,
                 jobs=tuple(RunningJob(1, NOW - 600, "general") for _ in range(4)))
    kub = Node("kub-001", "kub", NodeRole.WORKER, 48, 256 * 1024, NodeState.READY, since=OLD)
    startds = (pod, _batch("u1", "user", {"user": 10, "general": 1}), _batch("u2", "user", {"user": 14}),
               _batch("d1", "drp", {"drp": 24}), _batch("d2", "drp", {"drp": 24}))
    demand = {"general": PoolDemand(running_jobs=5, running_cores=5),
              "user": PoolDemand(idle_jobs=2, idle_cores=2, running_jobs=24, running_cores=24),
              "drp": PoolDemand(idle_jobs=43, idle_cores=43, running_jobs=48, running_cores=48)}
    o = Observed(now=NOW, nodes=(kub,), startds=startds, demand=demand)
    first = plan(spec, o)
    assert {p: (first.pools[p].need, first.pools[p].target) for p in ("general", "drp", "user")} == {
        "general": (4, 4), "drp": (91, 91), "user": (26, 1)}
    assert [(a.startd, a.from_pool, a.to_pool) for a in first.actions if isinstance(a, Relabel)] == [
        ("u1", "user", "general")] and not first.capped
    o2 = project(o, first.actions)
    second = plan(spec, o2)
    assert (second.pools["general"].need, second.pools["general"].target, second.pools["user"].target) == (5, 5, 0)
    assert [(a.startd, a.from_pool, a.to_pool) for a in second.actions if isinstance(a, Relabel)] == [
        ("u2", "user", "drp")]
    assert unexplained_follow_ups(spec, o, first, second) == []  # the property's rule allows it
    assert plan(spec, project(o2, second.actions)).actions == []


@st.composite
def _with_jobs(draw: st.DrawFn) -> tuple[EnclaveSpec, Observed]:
    spec = draw(specs())
    return spec, draw(observed_states(spec, jobs=True))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_with_jobs())
def test_with_jobs_reported_deciding_again_only_gives_what_became_guests(case: tuple[EnclaveSpec, Observed]) -> None:
    """A relabel moves a startd's jobs with it (``effects.project``). A pool with nothing queued that gave a
    startd where its own jobs run — relabelled, or a borrowed one given back to the commons — sees them as
    guests (or on a startd that is leaving) on the result, so its need falls by them and it may give more
    (``test_a_give_back_that_leaves_the_pools_jobs_as_guests_may_be_followed_by_one_more``); no other relabel
    follows (but the one make before break's second step makes room for): a pool with jobs queued counts all it
    runs, and one with nothing queued is never short of its need, so only its promise brings it a startd — and
    where its jobs run there as guests, they become its own again (``took_its_own_jobs``, the example above).
    The rule is ``test_decide_properties.unexplained_follow_ups``' (``gave_its_own_jobs``), here always with jobs
    reported."""
    spec, o = case
    first = plan(spec, o)
    if first.capped:
        return
    second = plan(spec, project(o, first.actions))
    rest = unexplained_follow_ups(spec, o, first, second)
    assert not [a for a in rest if isinstance(a, Relabel)], (first.actions, second.actions)
