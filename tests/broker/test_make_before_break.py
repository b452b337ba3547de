"""Make before break (issue 15): a latency pool's standalone nodes go only once what replaces them runs.

Spec: ``make_spec`` with 2 workers (48 cores each) and 10 batch nodes of 24 cores (240 cores): prompt is
guaranteed 3 nodes (72 cores) and has a latency objective; drp may hold up to 9 nodes (216 cores). Pods are
the spec's default 8 cores. At night prompt is pre-warmed: it needs its guarantee (72 cores), which the idle
commons cover (``prewarm_cover``), so its standalone target falls to 0 and drp's rises to its maximum.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from enclave.broker.decide import plan
from enclave.broker.effects import project
from enclave.domain.capacity import DeployPods, Node, Observed, PoolDemand, Relabel, Startd, StartdKind
from enclave.spec import EnclaveSpec
from enclave.spec.models import NodeRole
from tests.broker.conftest import NOW, make_spec

NIGHT = NOW + 10 * 3600  # 23:20 UTC = 20:20 local at Cerro Pachón: after evening twilight in April
OLD = NIGHT - 100_000.0


def _state() -> Observed:
    nodes = [Node(f"kub-{i:03d}", "kub", NodeRole.WORKER, 48, 256 * 1024, since=OLD) for i in (1, 2)]
    nodes += [Node(f"condor-{i:03d}", "condor", NodeRole.BATCH_ONLY, 24, 128 * 1024, since=OLD) for i in range(1, 11)]
    startds = [Startd(f"condor-{i:03d}", f"condor-{i:03d}", StartdKind.STANDALONE, "prompt" if i <= 3 else "drp",
                      24, 128 * 1024, busy_cores=0 if i <= 3 else 24, since=OLD) for i in range(1, 11)]
    return Observed(now=NIGHT, nodes=tuple(nodes), startds=tuple(startds),
                    demand={"drp": PoolDemand(idle_jobs=1000, idle_cores=1000, running_jobs=168, running_cores=168)})


def test_pods_deployed_first_nodes_kept_until_their_startds_join() -> None:
    spec = make_spec(workers=2, batch=10, broker={"cooldown_seconds": 900})
    first = plan(spec, _state())
    # Pre-warm: prompt's 72 cores come from the commons (9 pods of 8), and its 3 nodes stay for now.
    assert sum(len(a.pods) * a.cores_per_pod for a in first.actions if isinstance(a, DeployPods)) == 72
    assert not [a for a in first.actions if isinstance(a, Relabel)]
    # Pods Kubernetes runs but whose startds have not joined: still nothing to hand away.
    starting = project(_state(), first.actions)
    assert all(not s.ready for s in starting.startds if s.kind == StartdKind.POD)
    assert plan(spec, replace(starting, now=NIGHT + 60)).actions == []
    # Once they have joined, drp takes prompt's nodes up to its target: its maximum 216 − the 168 it holds = 48.
    joined = replace(starting, now=NIGHT + 120, startds=tuple(replace(s, ready=True) for s in starting.startds))
    moves = [a for a in plan(spec, joined).actions if isinstance(a, Relabel)]
    assert {(a.from_pool, a.to_pool) for a in moves} == {("prompt", "drp")}
    assert len(moves) * 24 == 48


def test_a_running_pod_is_not_given_back_before_the_standalone_that_replaces_it_runs() -> None:
    # Day time, no pre-warm: prompt runs 8 cores of jobs in one borrowed pod and holds no node. Its guarantee
    # (72) covers its need (8) from standalone, so it should borrow nothing (lend 0) and the pod is surplus on
    # paper; but it is all prompt runs on until the nodes relabelled to it this cycle (still running drp's
    # jobs) are its own: the pod stays.
    spec = make_spec(workers=2, batch=10, broker={"cooldown_seconds": 900})
    o = _state()
    day = NOW
    startds = [replace(s, pool="drp", since=day - 100_000) for s in o.startds]
    pod = Startd("htcondor-kub-001-1", "kub-001", StartdKind.POD, "prompt", 8, 32768, busy_cores=8,
                 since=day - 100_000)
    o = replace(o, now=day, startds=(*startds, pod),
                demand={**o.demand, "prompt": PoolDemand(running_jobs=8, running_cores=8)})
    p = plan(spec, o)
    assert any(isinstance(a, Relabel) and a.to_pool == "prompt" for a in p.actions)
    assert not any(getattr(a, "pods", None) == (pod.name,) or getattr(a, "startd", None) == pod.name
                   for a in p.actions)


def _relabelled_full_of_the_donors_jobs(donor: str) -> tuple[EnclaveSpec, Observed, Observed]:
    """The review's state (day, no pre-warm): prompt runs its 8 cores of jobs in one ready pod and holds no node;
    drp holds six busy nodes, ``donor`` the other four, each running 24 one-core jobs of its own. The first
    decision relabels nodes of ``donor`` to prompt (its guarantee, 72 cores); the second comes 60 s later, the
    relabelled nodes still full of the donor's jobs (a relabel lets them finish: user drains, drp vacates after
    its grace period). Returns the spec, the first decision's result and the state the second decides on."""
    from enclave.domain.capacity import RunningJob

    spec = make_spec(workers=2, batch=10, broker={"cooldown_seconds": 900})
    old = NOW - 100_000
    nodes = [Node(f"kub-{i:03d}", "kub", NodeRole.WORKER, 48, 256 * 1024, since=old) for i in (1, 2)]
    nodes += [Node(f"condor-{i:03d}", "condor", NodeRole.BATCH_ONLY, 24, 128 * 1024, since=old) for i in range(1, 11)]
    startds = [Startd(f"condor-{i:03d}", f"condor-{i:03d}", StartdKind.STANDALONE, pool, 24, 128 * 1024,
                      busy_cores=24, since=old, jobs=tuple(RunningJob(1, old, pool) for _ in range(24)))
               for i in range(1, 11) for pool in ["drp" if i <= 6 else donor]]
    pod = Startd("htcondor-kub-001-1", "kub-001", StartdKind.POD, "prompt", 8, 32768, busy_cores=8, since=old,
                 jobs=tuple(RunningJob(1, old, "prompt") for _ in range(8)))
    o = Observed(now=NOW, nodes=tuple(nodes), startds=(*startds, pod), demand={
        "drp": PoolDemand(idle_jobs=1000, idle_cores=1000, running_jobs=144, running_cores=144),
        donor: PoolDemand(running_jobs=96, running_cores=96),
        "prompt": PoolDemand(running_jobs=8, running_cores=8)})
    first = plan(spec, o)
    return spec, project(o, first.actions), replace(project(o, first.actions), now=NOW + 60)


def _touches(actions: list[Any], name: str) -> bool:
    return any(name in (getattr(a, "pods", None) or ()) or getattr(a, "startd", None) == name for a in actions)


def test_a_running_pod_stays_while_the_nodes_relabelled_to_replace_it_still_run_the_donors_jobs() -> None:
    """Found in review: the second decision gave the pod back ("prompt needs 0 borrowed cores and holds 8") as soon
    as the relabels were done, though every core of the relabelled nodes still ran the donor's jobs — for hours,
    a user pool draining. Make before break counts a latency pool's standalone cores net of other pools' jobs
    still on them (``PoolState.occupied``, ``floor``): the pod stays until they have ended. As reported by the
    twin and the live backend (each running job with its pool), and without reported jobs (the relabel is within
    the cooldown: its busy cores count as the donor's)."""
    for donor in ("user", "drp"):
        spec, after, later = _relabelled_full_of_the_donors_jobs(donor)
        relabelled = [s for s in after.startds if s.pool == "prompt" and s.kind == StartdKind.STANDALONE]
        assert relabelled and all(s.busy_cores == s.cores for s in relabelled)
        second = plan(spec, later)
        assert not _touches(second.actions, "htcondor-kub-001-1"), (donor, second.actions)
        assert second.pools["prompt"].occupied == sum(s.cores for s in relabelled)
        unreported = replace(later, startds=tuple(replace(s, jobs=()) for s in later.startds))
        assert not _touches(plan(spec, unreported).actions, "htcondor-kub-001-1"), donor
        # Once the donor's jobs have ended (prompt's run on the pod still), the nodes replace the pod: it goes.
        ended = replace(later, startds=tuple(replace(s, busy_cores=0, jobs=()) if s in relabelled else s
                                             for s in later.startds))
        assert _touches(plan(spec, ended).actions, "htcondor-kub-001-1"), donor


def test_memory_aware_need_counts_the_jobs_memory() -> None:
    """32 prompt jobs of 1 core / 8 GiB wait (issue 15). Pods of the spec's 8 cores / 32 GiB would run 4 of them
    each; the broker fits its pods to the jobs instead (``pod_shape``: 8 cores / 64 GiB), so the thinnest shape
    prompt may run on is a batch-only node, 24 cores / 128 GiB, which runs 16 of them: prompt needs 48 cores,
    not 32. Prompt's guarantee is 0 here, drp holds all ten nodes (240 cores) and wants more."""
    spec = make_spec(workers=2, batch=10, guaranteed=(0, 4, 1, 0), maximum=(10, 9, 5, 5),
                     broker={"cooldown_seconds": 900, "latency_headroom": 0})  # memory alone, no margin
    nodes = [Node(f"kub-{i:03d}", "kub", NodeRole.WORKER, 48, 256 * 1024, since=OLD) for i in (1, 2)]
    nodes += [Node(f"condor-{i:03d}", "condor", NodeRole.BATCH_ONLY, 24, 128 * 1024, since=OLD) for i in range(1, 11)]
    startds = [Startd(f"condor-{i:03d}", f"condor-{i:03d}", StartdKind.STANDALONE, "drp", 24, 128 * 1024,
                      busy_cores=24, since=OLD) for i in range(1, 11)]
    o = Observed(now=NOW, nodes=tuple(nodes), startds=tuple(startds), demand={
        "drp": PoolDemand(idle_jobs=1000, idle_cores=1000, running_jobs=240, running_cores=240),
        "prompt": PoolDemand(idle_jobs=32, idle_cores=32, idle_memory_mib=32 * 8192)})
    p = plan(spec, o)
    # Memory: 256 GiB at 128/24 GiB per core of a batch node (the thinnest shape) = 48 cores; cores: 32.
    assert p.pools["prompt"].need == 48
    assert p.pools["prompt"].pod == (8, 64 * 1024)
    # Prompt (priority 100) is served first: its standalone target is all of its need, drp's the rest (192).
    assert (p.pools["prompt"].target, p.pools["drp"].target) == (48, 192)
    # Moves toward a target: 2 nodes (48 cores), prompt's whole target.
    moved = [a for a in p.actions if isinstance(a, Relabel) and a.to_pool == "prompt"]
    assert len(moved) == 2


def _draining_pods_room(k8s: dict[str, float], pods: int, prompt_nodes: int = 1, **prompt: Any) -> Observed:
    """Pre-warm: prompt holds ``prompt_nodes`` batch nodes and drp the rest (busy); the workers run ``k8s`` cores of
    notebooks, and prompt's own ``pods`` busy 8-core pods still drain on kub-001. ``prompt``: its demand."""
    o = _state()
    nodes = tuple(replace(n, k8s_cores_requested=k8s.get(n.name, 0.0)) for n in o.nodes)
    startds = tuple(replace(s, pool="prompt" if int(s.name[-3:]) <= prompt_nodes else "drp") for s in o.startds)
    draining = tuple(Startd(f"htcondor-kub-001-{k}", "kub-001", StartdKind.POD, "prompt", 8, 32768, busy_cores=8,
                            since=OLD, draining=True) for k in range(1, pods + 1))
    return replace(o, nodes=nodes, startds=(*startds, *draining),
                   demand={**o.demand, "prompt": PoolDemand(newest_submit=NIGHT - 60, **prompt)})


def test_the_cover_is_what_the_commons_lend_not_a_draining_pods_room() -> None:
    """Pre-warm, prompt's jobs wait (40 idle cores) and it holds one node (24 cores) of its 72 guaranteed. Its own
    pod on kub-001 still drains (busy): the cover (``prewarm_cover``) counts that pod's room as prompt's, as it
    must for deciding again to change nothing, so it counts 1 + 5 pods = 48 cores of the commons (kub-001 has
    40 cores of notebooks, kub-002 8) and prompt's standalone target is 72 − 48 = 24. But only kub-002's 5 pods
    (40 cores) can be deployed now: prompt would hold 24 + 40 = 64 < 72 with its jobs waiting and drp's nodes
    there to take. Lent 8 cores (a pod, more than hysteresis 0.5 of it) short of its cover, the decision is made
    again with the cover it was lent (40): target 72 − 40 = 32, so one drp node (24 cores) is relabelled, and
    prompt holds 48 + 40 = 88 ≥ 72."""
    spec = make_spec(workers=2, batch=10, broker={"cooldown_seconds": 900})
    p = plan(spec, _draining_pods_room({"kub-001": 40.0, "kub-002": 8.0}, pods=1, idle_jobs=40, idle_cores=40))
    prompt = p.pools["prompt"]
    assert (prompt.target, prompt.lend) == (32, 40)
    deployed = [a for a in p.actions if isinstance(a, DeployPods)]
    assert [(a.node, len(a.pods) * a.cores_per_pod) for a in deployed] == [("kub-002", 40)]
    taken = [a for a in p.actions if isinstance(a, Relabel) and a.to_pool == "prompt"]
    assert len(taken) == 1 and taken[0].from_pool == "drp"
    assert prompt.standalone + prompt.lent == 88


def test_a_cover_lent_nothing_still_promises_the_need_not_the_whole_guarantee() -> None:
    """As above, but prompt's need is what its window learned, 40 cores (``peak_cores``, no headroom), below its
    72 guaranteed, and kub-001 has room only for prompt's own 2 draining pods (32 cores of notebooks), kub-002 none:
    the cover counts 16 cores, none can be deployed. A covered pool is promised min(guarantee, need) = 40
    (``assign_targets``); lent 0, it still is, so its target is 40 − 0: one drp node more (24 + 24 ≥ 40), not the
    two its whole guarantee would take from drp's running coadds."""
    spec = make_spec(workers=2, batch=10, broker={"cooldown_seconds": 900, "latency_headroom": 0})
    p = plan(spec, _draining_pods_room({"kub-001": 32.0, "kub-002": 48.0}, pods=2, idle_jobs=40, idle_cores=40,
                                       peak_cores=40))
    prompt = p.pools["prompt"]
    assert (prompt.need, prompt.target, prompt.lent) == (40, 40, 0)
    assert not [a for a in p.actions if isinstance(a, DeployPods)]
    assert [(a.from_pool, a.to_pool) for a in p.actions if isinstance(a, Relabel)] == [("drp", "prompt")]


def test_a_cover_lent_short_is_kept_when_the_pool_holds_its_promise() -> None:
    """The first case with prompt holding its 3 nodes (72 cores, its whole promise) while kub-002's 5 pods deploy:
    lent 8 cores short of its cover, but short of nothing it was promised. The decision stands: target 72 − 48."""
    spec = make_spec(workers=2, batch=10, broker={"cooldown_seconds": 900})
    p = plan(spec, _draining_pods_room({"kub-001": 40.0, "kub-002": 8.0}, pods=1, prompt_nodes=3, idle_jobs=40,
                                       idle_cores=40))
    prompt = p.pools["prompt"]
    assert (prompt.target, prompt.lend, prompt.standalone + prompt.lent) == (24, 48, 72 + 40)
    assert not [a for a in p.actions if isinstance(a, Relabel) and a.to_pool == "prompt"]


def test_a_cover_lent_short_is_kept_when_no_node_fits_under_the_maximum() -> None:
    """The first case with prompt's maximum at 3 nodes (72 cores): it holds 24 + 40 = 64, and no 24-core node fits
    in the 8 left. Deciding again would lower drp's target by 8 cores for nothing prompt could take: drp keeps
    240 − 24 = 216."""
    spec = make_spec(workers=2, batch=10, maximum=(3, 9, 5, 5), broker={"cooldown_seconds": 900})
    p = plan(spec, _draining_pods_room({"kub-001": 40.0, "kub-002": 8.0}, pods=1, idle_jobs=40, idle_cores=40))
    assert (p.pools["prompt"].target, p.pools["prompt"].lend, p.pools["drp"].target) == (24, 48, 216)


def test_a_cover_lent_short_is_kept_when_the_move_limit_cut_the_lending() -> None:
    """The first case with a move limit of 1, used by removing a drained drp pod (``finish_drains``): the lending
    phase never ran, so what it lent says nothing of the cover; the next decision goes on with target 72 − 48."""
    spec = make_spec(workers=2, batch=10, broker={"cooldown_seconds": 900, "max_moves_per_cycle": 1})
    o = _draining_pods_room({"kub-001": 40.0, "kub-002": 8.0}, pods=1, idle_jobs=40, idle_cores=40)
    drained = Startd("htcondor-kub-002-9", "kub-002", StartdKind.POD, "drp", 8, 32768, since=OLD, draining=True)
    p = plan(spec, replace(o, startds=(*o.startds, drained)))
    assert p.capped and len(p.actions) == 1
    assert p.pools["prompt"].target == 24


def test_a_cover_lent_short_is_kept_when_the_pool_holds_its_promise_exactly() -> None:
    """The first case with no hysteresis and prompt's need what its window learned, 64 cores (no headroom): its
    promise is min(72, 64) = 64, and it holds 24 + 40 = 64, short of nothing. With hysteresis 0 any shortfall
    counts, but none is no shortfall: the targets stand (prompt's 64 − 48 = 16)."""
    spec = make_spec(workers=2, batch=10, broker={"cooldown_seconds": 900, "hysteresis": 0, "latency_headroom": 0})
    p = plan(spec, _draining_pods_room({"kub-001": 40.0, "kub-002": 8.0}, pods=1, idle_jobs=40, idle_cores=40,
                                       peak_cores=64))
    prompt = p.pools["prompt"]
    assert (prompt.need, prompt.standalone + prompt.lent, prompt.target) == (64, 64, 16)


def _three_workers(k8s: dict[str, float], owners: dict[int, tuple[str, int, float]], **prompt: Any) -> Observed:
    """Pre-warm with 3 workers running ``k8s`` cores of notebooks, prompt's two busy pods still draining on kub-002,
    and batch node i held by ``owners[i]`` = (pool, busy cores, seconds since it moved)."""
    nodes = [Node(n, "kub", NodeRole.WORKER, 48, 256 * 1024, since=OLD, k8s_cores_requested=c) for n, c in k8s.items()]
    nodes += [Node(f"condor-{i:03d}", "condor", NodeRole.BATCH_ONLY, 24, 128 * 1024, since=OLD) for i in range(1, 11)]
    startds = [Startd(f"condor-{i:03d}", f"condor-{i:03d}", StartdKind.STANDALONE, pool, 24, 128 * 1024,
                      busy_cores=busy, since=NIGHT - age) for i, (pool, busy, age) in owners.items()]
    startds += [Startd(f"htcondor-kub-002-{k}", "kub-002", StartdKind.POD, "prompt", 8, 32768, busy_cores=8,
                       since=OLD, draining=True) for k in (1, 2)]
    return Observed(now=NIGHT, nodes=tuple(nodes), startds=tuple(startds), demand={
        "drp": PoolDemand(idle_jobs=1000, idle_cores=1000, running_jobs=168, running_cores=168),
        "prompt": PoolDemand(newest_submit=NIGHT - 60, **prompt),
        "user": PoolDemand(idle_jobs=12, idle_cores=12, running_jobs=24, running_cores=24)})


def _made_up(owners: dict[int, tuple[str, int, float]], hysteresis: float = 1.0, user_max: int = 9,
             **demand: PoolDemand) -> tuple[EnclaveSpec, Observed]:
    """The make-up's cases: prompt's need is its window's 40 cores plus 20 % (48), its jobs wait (80 idle cores);
    the workers as in ``_three_workers`` with kub-001 and kub-002 at 32 cores of notebooks and kub-003 full, 8 cores
    kept for notebooks; batch node i held by ``owners[i]``; ``demand`` replaces those pools' (user's maximum
    ``user_max`` nodes)."""
    spec = make_spec(workers=3, batch=10, maximum=(3, 9, user_max, 5), broker={
        "cooldown_seconds": 900, "hysteresis": hysteresis, "latency_headroom": 0.2, "notebook_headroom_cores": 8})
    o = _three_workers({"kub-001": 32.0, "kub-002": 32.0, "kub-003": 48.0}, owners, idle_jobs=80, idle_cores=80,
                       peak_cores=40)
    return spec, replace(o, demand={**o.demand, **demand})


def test_a_cover_made_up_leaves_the_other_pools_moves_and_deciding_again_changes_nothing() -> None:
    """Found in review. Prompt's need is its window's 40 cores plus 20 % (48), below its 72 guaranteed, so it is
    promised 48; its jobs wait (80 idle cores). kub-001 has room for 2 pods, kub-002's room is its own 2 draining
    pods', kub-003 none; with 8 cores kept for notebooks the commons lend 1 pod. The cover counts 24 (3 pods), so
    its target is 48 − 24 = 24, its node condor-010; lent 8, it holds 32: 16 short, at least hysteresis 1.0 of a pod.
    The other pools' moves come first, as without the make-up: user is owed its guarantee (one node; a promise
    ignores the cooldown) and takes general's first idle node by name, condor-002; drp lacks 36 ≥ 24 of its target
    and takes general's node out of its cooldown, condor-007. Then prompt's target rises to 48 − 8 = 40 and it takes
    general's last node, condor-005, by its promise (cooldown ignored); general's target falls by it. Deciding again
    on the result: prompt holds 56 ≥ 48, and what it holds beyond its target (24) is its floor (need 48 − 0 ready
    borrowed): nothing moves."""
    spec, o = _made_up({1: ("drp", 0, 30), 2: ("general", 0, 30), 3: ("drp", 24, 30), 4: ("drp", 0, 1e5),
                        5: ("general", 0, 30), 6: ("drp", 0, 1e5), 7: ("general", 24, 1e5), 8: ("drp", 0, 1e5),
                        9: ("drp", 24, 1e5), 10: ("prompt", 0, 1e5)}, user_max=5)
    first = plan(spec, o)
    moves = [(a.startd, a.from_pool, a.to_pool) for a in first.actions if isinstance(a, Relabel)]
    assert moves == [("condor-002", "general", "user"), ("condor-007", "general", "drp"),
                     ("condor-005", "general", "prompt")]
    assert first.pools["prompt"].target == 40
    assert plan(spec, project(o, first.actions)).actions == []


def test_the_make_up_takes_a_donor_above_its_target_down_to_it_before_one_at_its_target() -> None:
    """Prompt as in the case above: promised 48, covered 24 (3 pods), target 24, its node condor-010; lent 8, 16
    short. DRP has nothing queued and runs 20 cores on its two nodes: need and target 20 (guarantee 96 ≥ 20). User
    runs 168 on its seven nodes and queues 12: need 180; its target is 240 − 24 − 20 = 196 capped at its need, 180;
    it holds 168, short 12, less than hysteresis 1.0 of a node, so it takes nothing. The make-up raises prompt's
    target to 48 − 8 = 40. DRP is above its target (48 > 20): the make-up takes it down to its target, not its
    guarantee (96, which a promise leaves a donor): 48 − 20 = 28 ≥ 24, so one node, condor-001 (both run 10 cores:
    the first by name), vacated after DRP's 600 s grace. Prompt then holds 48 ≥ 40. Deciding again: user is short
    12 < 24, DRP holds 24 ≥ 20, prompt's 48 is its floor: nothing moves.

    Until stop 36 the make-up left DRP its guarantee and took user's condor-003 (user below its target, down to its
    guarantee), lowering user's target to 144; deciding again gave user its 180 back and it took condor-001 from
    DRP by the target rule: two moves for one, and the one exception the idempotence property had to allow."""
    spec, o = _made_up({i: ("drp", 10, 1e5) if i <= 2 else ("prompt", 0, 1e5) if i == 10 else ("user", 24, 1e5)
                        for i in range(1, 11)},
                       drp=PoolDemand(running_jobs=20, running_cores=20),
                       user=PoolDemand(idle_jobs=12, idle_cores=12, running_jobs=168, running_cores=168))
    first = plan(spec, o)
    assert {p: (first.pools[p].need, first.pools[p].target) for p in ("prompt", "drp", "user")} == {
        "prompt": (48, 40), "drp": (20, 20), "user": (180, 180)}
    assert [(a.startd, a.from_pool, a.to_pool, a.vacate_after_seconds) for a in first.actions
            if isinstance(a, Relabel)] == [("condor-001", "drp", "prompt", 600)]
    assert plan(spec, project(o, first.actions)).actions == []


def test_the_make_ups_first_pass_leaves_a_donor_its_target_even_above_its_guarantee() -> None:
    """Found in review. Prompt as in the two cases above (target raised to 40 by the make-up, 16 short). General
    (guarantee 0) runs 30 cores on its two nodes: need and target 30. DRP runs 20 on its three (6, 7 and 7 busy
    cores): need and target 20. User runs 96 on four: need, target and holdings 96. Hysteresis 0.25 (6 cores of a
    node). The make-up's first pass takes donors above their target down to their target, lowest priority first:
    general keeps 30 of its 48, 18 < 24, so it gives nothing; DRP keeps 20 of its 72 and gives its least busy node,
    condor-005. Deciding again moves nothing. Taking general down to its guarantee instead (0) would have lowered
    its target to the 24 left, and deciding again general, 6 short, would take a DRP node by the target rule."""
    spec, o = _made_up({1: ("general", 15, 1e5), 2: ("general", 15, 1e5), 3: ("drp", 7, 1e5), 4: ("drp", 7, 1e5),
                        5: ("drp", 6, 1e5), 6: ("user", 24, 1e5), 7: ("user", 24, 1e5), 8: ("user", 24, 1e5),
                        9: ("user", 24, 1e5), 10: ("prompt", 0, 1e5)}, hysteresis=0.25,
                       drp=PoolDemand(running_jobs=20, running_cores=20),
                       general=PoolDemand(running_jobs=30, running_cores=30),
                       user=PoolDemand(running_jobs=96, running_cores=96))
    first = plan(spec, o)
    assert {p: (first.pools[p].need, first.pools[p].target) for p in ("prompt", "drp", "user", "general")} == {
        "prompt": (48, 40), "drp": (20, 20), "user": (96, 96), "general": (30, 30)}
    assert [(a.startd, a.from_pool, a.to_pool) for a in first.actions if isinstance(a, Relabel)] == [
        ("condor-005", "drp", "prompt")]
    assert plan(spec, project(o, first.actions)).actions == []


def test_a_cover_lent_short_by_less_than_hysteresis_of_a_pod_is_kept() -> None:
    """The first case with hysteresis 1.0 and prompt's need its window's 68 cores (no headroom): promised
    min(72, 68) = 68, covered 48, target 20. It holds its node and kub-002's 5 pods, 24 + 40 = 64: 4 short, less than
    hysteresis of a pod (8), which is what borrowing itself leaves (``_deploy_for`` stops there): no node is taken."""
    spec = make_spec(workers=2, batch=10, broker={"cooldown_seconds": 900, "hysteresis": 1.0, "latency_headroom": 0})
    p = plan(spec, _draining_pods_room({"kub-001": 40.0, "kub-002": 8.0}, pods=1, idle_jobs=40, idle_cores=40,
                                       peak_cores=68))
    prompt = p.pools["prompt"]
    assert (prompt.need, prompt.standalone + prompt.lent, prompt.target) == (68, 64, 20)
    assert not [a for a in p.actions if isinstance(a, Relabel) and a.to_pool == "prompt"]


def test_a_cover_lent_short_while_no_job_waits_changes_no_figure_and_no_move() -> None:
    """Found in review. Pre-warm, prompt has no job yet (not ``urgent``) and needs its 72-core guarantee from pods:
    the cover counts 9 (its own draining pod's room on kub-001 too), 8 deploy (kub-002 6, kub-003 2), 8 short. A
    promise to a latency pool whose jobs do not wait bypasses nothing, so nothing is made up and no figure
    changes: prompt's target stays 72 − 72 = 0, and user (guarantee one node, 36 cores needed, one node held)
    still takes general's first idle node by name toward its target past it (hysteresis: it lacks 12 ≥ 0.5 · 24),
    which a raised prompt target would have blocked (``may_give``: not while another pool is short of its
    promise)."""
    spec = make_spec(workers=3, batch=10, broker={"cooldown_seconds": 900})
    req = {"kub-001": 40.0, "kub-002": 0.0, "kub-003": 32.0}
    nodes = [Node(n, "kub", NodeRole.WORKER, 48, 256 * 1024, since=OLD, k8s_cores_requested=c) for n, c in req.items()]
    nodes += [Node(f"condor-{i:03d}", "condor", NodeRole.BATCH_ONLY, 24, 128 * 1024, since=OLD) for i in range(1, 11)]
    owner = {1: "user", 2: "general", 3: "general", 4: "general"}
    startds = [Startd(f"condor-{i:03d}", f"condor-{i:03d}", StartdKind.STANDALONE, owner.get(i, "drp"), 24,
                      128 * 1024, busy_cores=0 if owner.get(i) == "general" else 24, since=OLD) for i in range(1, 11)]
    startds.append(Startd("htcondor-kub-001-1", "kub-001", StartdKind.POD, "prompt", 8, 32768, busy_cores=8,
                          since=OLD, draining=True))
    o = Observed(now=NIGHT, nodes=tuple(nodes), startds=tuple(startds),
                 demand={"drp": PoolDemand(running_jobs=144, running_cores=144, idle_jobs=6, idle_cores=6),
                         "user": PoolDemand(running_jobs=24, running_cores=24, idle_jobs=12, idle_cores=12),
                         "prompt": PoolDemand(newest_submit=NIGHT - 60)})
    p = plan(spec, o)
    assert (p.pools["prompt"].target, p.pools["prompt"].lent) == (0, 64)
    assert [(a.startd, a.from_pool, a.to_pool) for a in p.actions if isinstance(a, Relabel)] == [
        ("condor-002", "general", "user")]


def test_the_make_up_redirects_a_node_a_target_move_gave_earlier_in_the_decision() -> None:
    """Found by the idempotence property (1,500 examples, seed 2024). One batch node, general's; prompt is
    guaranteed it (24 cores, its maximum too), pre-warmed, and needs its window's 8 cores (no headroom); its 164
    waiting cores at 8 GiB each shape its pods 16 cores / 128 GiB. The commons: kub-001 and kub-002 with 41 and 40
    cores of notebooks, kub-003 with 5 and prompt's two busy draining pods (16 cores each). Its own pods count as
    lendable, so kub-003 has 43 cores and 251 GiB for them: 1 pod, and the commons cover prompt's 8; its target is
    8 − 8 = 0. DRP (priority 50, 200 cores queued) has the rest as its target, 24, and takes general's node toward
    it. No pod of prompt's deploys: 7 + 8 + 11 = 26 cores are free and 16 are kept for notebooks, 10 < 16. So the
    make-up raises prompt's target to 8 − 0 = 8 while its jobs wait, and the only node has moved already. Until stop
    37 it took the node from DRP a decision later (general → DRP, then DRP → prompt); now the same relabel goes to
    prompt, and deciding again on the result changes nothing."""
    spec = make_spec(workers=3, batch=1, guaranteed=(1, 0, 0, 0), maximum=(1, 1, 1, 1), broker={
        "cooldown_seconds": 0, "hysteresis": 0.25, "latency_headroom": 0, "notebook_headroom_cores": 16,
        "pod_cores": 16, "pod_memory_mib": 8192})
    requested = {"kub-001": 41, "kub-002": 40, "kub-003": 5}
    nodes = [Node(name, "kub", NodeRole.WORKER, 48, 256 * 1024, k8s_cores_requested=float(cores),
                  k8s_memory_requested_mib=cores * 1024, since=OLD) for name, cores in requested.items()]
    nodes.append(Node("condor-001", "condor", NodeRole.BATCH_ONLY, 24, 128 * 1024, since=OLD))
    pods = [Startd(f"htcondor-kub-003-{k}", "kub-003", StartdKind.POD, "prompt", 16, 8192, busy_cores=busy,
                   since=OLD, draining=True) for k, busy in ((1, 13), (2, 15))]
    general = Startd("condor-001", "condor-001", StartdKind.STANDALONE, "general", 24, 128 * 1024, busy_cores=2,
                     since=OLD)
    o = Observed(now=NIGHT, nodes=tuple(nodes), startds=(*pods, general), demand={
        "prompt": PoolDemand(idle_jobs=164, idle_cores=164, idle_memory_mib=164 * 8192, peak_cores=8),
        "drp": PoolDemand(idle_jobs=200, idle_cores=200),
        "general": PoolDemand(running_jobs=2, running_cores=2)})
    first = plan(spec, o)
    assert (first.pools["prompt"].target, first.pools["drp"].target) == (8, 0)
    assert [(a.startd, a.from_pool, a.to_pool) for a in first.actions if isinstance(a, Relabel)] == [
        ("condor-001", "general", "prompt")]
    assert "not to drp" in first.actions[0].reason
    assert not any(isinstance(a, DeployPods) for a in first.actions)
    assert plan(spec, project(o, first.actions)).actions == []
