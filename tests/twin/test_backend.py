from __future__ import annotations

from typing import Any

import pytest

from enclave.domain.capacity import (
    Action,
    DeletePods,
    DeployPods,
    DrainNode,
    DrainStartd,
    NodeState,
    Observed,
    Relabel,
    ReturnNode,
    StartdKind,
    StartHTCondor,
)
from enclave.errors import Conflict, InputError, InvalidTransition, NotFound
from enclave.spec.models import Drain, EnclaveSpec
from enclave.twin.backend import TwinBackend
from enclave.twin.metrics import compute
from enclave.twin.policies import Broker
from enclave.twin.scenario import Loaded, parse
from enclave.twin.sim import Sim

from .conftest import make_sim

A = {"actor": "test", "reason": "test"}

QUIET = """
name: quiet
duration_hours: 4
prompt: null
drp: {backlog_jobs: 200, jobs_per_hour: 100, mix: [{name: t, weight: 1, memory_gib: 2,
      runtime: {dist: fixed, mean: 600}}]}
user_batch: null
notebooks: {peak_concurrent: 4, session_mean_s: 3600}
timing: {drain_s: 100, htcondor_start_s: 50, return_s: 30}
"""


@pytest.fixture()
def quiet(minimal: EnclaveSpec) -> Loaded:
    return parse(QUIET, "quiet.yaml", spec=minimal)


@pytest.fixture()
def twin(quiet: Loaded) -> TwinBackend:
    return TwinBackend(make_sim(quiet, audit=True))


def test_observe_reports_nodes_startds_and_demand(twin: TwinBackend) -> None:
    obs = twin.observe()
    assert isinstance(obs, Observed)
    assert obs.now == twin.sim.sc.start_epoch
    # Every node of the minimal spec, the control plane included (the live backend lists it from the API).
    assert {n.name for n in obs.nodes} == {"master-001", "worker-001", "worker-002", "batch-001", "batch-002"}
    assert {s.kind for s in obs.startds} == {StartdKind.STANDALONE}
    twin.advance(60)
    obs = twin.observe()
    assert obs.now == twin.sim.sc.start_epoch + 60
    assert obs.demand["drp"].running_cores == sum(s.busy_cores for s in obs.startds if s.pool == "drp")
    assert obs.demand["drp"].idle_jobs + obs.demand["drp"].running_jobs == 200
    # Claimed memory is what the simulator's slots gave out: each running job's request.
    for s in obs.startds:
        slot = twin.sim.startds[s.name]
        assert s.busy_memory_mib == slot.mem - slot.free_mem
    assert any(s.busy_memory_mib > 0 for s in obs.startds)


def test_relabel_is_idempotent_and_keeps_running_jobs(twin: TwinBackend) -> None:
    twin.advance(10)
    drp = next(s for s in twin.observe().startds if s.pool == "drp")
    busy = drp.busy_cores
    act = Relabel(**A, startd=drp.name, from_pool="drp", to_pool="user")
    assert twin.apply(act) is True
    assert twin.apply(act) is False  # in effect already: nothing changes
    after = next(s for s in twin.observe().startds if s.name == drp.name)
    assert after.pool == "user" and after.busy_cores == busy  # old pool's jobs keep running (drain)
    assert twin.sim.counters.moves == {"Relabel": 1} and twin.applied == [act]
    with pytest.raises(NotFound):
        twin.apply(Relabel(**A, startd="nope", from_pool="drp", to_pool="user"))
    with pytest.raises(NotFound, match="no pool 'nightly'"):
        twin.apply(Relabel(**A, startd=drp.name, from_pool="user", to_pool="nightly"))
    # Stale: decided when the startd was labelled prompt; it is labelled user now (transitions rule).
    with pytest.raises(Conflict, match="labelled 'user', not 'prompt'"):
        twin.apply(Relabel(**A, startd=drp.name, from_pool="prompt", to_pool="general"))


def test_a_rendered_label_reports_the_rendered_since_and_a_move_its_time(twin: TwinBackend) -> None:
    """The rendered startd config publishes ``EnclavePoolSince = $(ENCLAVE_POOL_SINCE:0)`` and only a relabel
    sets the knob (batch/render.py, batch/live.py): a startd never moved reports 0, long before the run, so
    the broker's cooldown does not hold the rendered layout for its first 15 minutes."""
    twin.advance(120)
    assert {s.since for s in twin.observe().startds} == {0.0}
    drp = next(s for s in twin.observe().startds if s.pool == "drp")
    twin.apply(Relabel(**A, startd=drp.name, from_pool="drp", to_pool="user"))
    moved = next(s for s in twin.observe().startds if s.name == drp.name)
    assert moved.since == twin.sim.sc.start_epoch + 120


def test_bcs5_drain_start_return_with_downtime(twin: TwinBackend) -> None:
    twin.advance(5)
    twin.apply(DrainNode(**A, node="worker-001"))
    twin.apply(StartHTCondor(**A, node="worker-001", pool="drp"))
    # Its node pod is made at once, so live lists the worker as HTCondor's, and the pod's startd as one that has
    # not joined (``LiveBackend.view``); so does the twin, until the drain (100 s) and HTCondor's start (50 s) are
    # over. (Until stop 56 the twin showed it draining with no startd: the conformance test found it.)
    node = next(n for n in twin.observe().nodes if n.name == "worker-001")
    assert node.state == NodeState.HTCONDOR
    twin.advance(149)
    assert [(s.kind, s.pool, s.ready) for s in twin.observe().startds if s.name == "worker-001"] == [
        (StartdKind.NODE, "drp", False)]
    twin.advance(2)
    obs = twin.observe()
    node = next(n for n in obs.nodes if n.name == "worker-001")
    startd = next(s for s in obs.startds if s.name == "worker-001")
    assert node.state == NodeState.HTCONDOR and startd.kind == StartdKind.NODE and startd.pool == "drp"
    assert startd.ready
    # The layout's services (2 cores, 8 GiB a worker by default) stay on a drained worker, as DaemonSet pods do.
    assert (node.k8s_cores_requested, node.k8s_memory_requested_mib, node.k8s_cores_daemons) == (2.0, 8 * 1024, 2.0)
    twin.apply(ReturnNode(**A, node="worker-001"))
    twin.advance(700)  # running DRP jobs (600 s) drain, then 30 s to uncordon
    node = next(n for n in twin.observe().nodes if n.name == "worker-001")
    assert node.state == NodeState.READY
    m = compute(twin.sim)
    assert m["moves"]["actions"] == {"DrainNode": 1, "ReturnNode": 1, "StartHTCondor": 1}
    # Neither Kubernetes nor HTCondor: 100 s drain + 50 s HTCondor start, then 30 s back to Kubernetes.
    assert m["moves"]["downtime_node_hours"] == pytest.approx((150 + 30) / 3600, abs=0.001)


def test_start_htcondor_needs_a_drained_node(twin: TwinBackend) -> None:
    with pytest.raises(Conflict, match="drain it before starting HTCondor"):
        twin.apply(StartHTCondor(**A, node="worker-002", pool="prompt"))
    with pytest.raises(InvalidTransition):
        twin.apply(DrainNode(**A, node="batch-001"))


def test_pods_deploy_with_delay_and_delete_after_draining(twin: TwinBackend) -> None:
    pods = ("htc-a", "htc-b")
    twin.apply(DeployPods(**A, node="worker-002", pool="drp", pods=pods, cores_per_pod=2, memory_mib_per_pod=4096))
    twin.apply(DeployPods(**A, node="worker-002", pool="drp", pods=pods, cores_per_pod=2, memory_mib_per_pod=4096))
    # Starting: not in the collector yet, but a Kubernetes pod the broker sees (as the live backend lists it),
    # so it is not deployed twice; nothing runs there and it is not on its way out.
    starting = [s for s in twin.observe().startds if s.name in pods]
    assert [(s.name, s.kind, s.busy_cores, s.draining) for s in starting] == [
        ("htc-a", StartdKind.POD, 0, False), ("htc-b", StartdKind.POD, 0, False)]
    assert twin.sim.startds["htc-a"].ready is False
    # Bound after schedule_s; the node holds the worker image (images_cached_at_start); the container starts.
    twin.advance(twin.sim.sc.kubernetes.schedule_s + twin.sim.sc.layout.pod_startup_s + 1)
    assert all(s.busy_cores == 0 for s in twin.observe().startds if s.name in pods)  # ready, not yet negotiated
    # A new slot is matched by the next negotiation cycle: one starts within NEGOTIATOR_INTERVAL, and lasts
    # cycle_base_s + cycle_per_submitter_s + cycle_per_autocluster_s here (one submitter, one autocluster).
    h = twin.sim.sc.htcondor
    twin.advance(h.negotiator_interval_s + h.cycle_base_s + h.cycle_per_submitter_s + h.cycle_per_autocluster_s)
    obs = twin.observe()
    live = [s for s in obs.startds if s.name in pods]
    assert len(live) == 2 and all(s.kind == StartdKind.POD for s in live)
    assert sum(s.busy_cores for s in live) > 0  # the DRP backlog flowed onto the new pods
    twin.apply(DeletePods(**A, pods=pods))
    assert all(s.draining for s in twin.observe().startds if s.name in pods)
    twin.advance(700)
    assert not {s.name for s in twin.observe().startds} & set(pods)
    assert twin.sim.counters.moves == {"DeployPods": 1, "DeletePods": 1}


def test_pods_that_do_not_fit_are_not_created(twin: TwinBackend) -> None:
    twin.apply(DeployPods(**A, node="worker-001", pool="drp", pods=("big",), cores_per_pod=64,
                          memory_mib_per_pod=1024))
    assert twin.sim.counters.pods_unschedulable == 1 and "big" not in twin.sim.startds
    with pytest.raises(InvalidTransition):
        twin.apply(DeployPods(**A, node="batch-001", pool="drp", pods=("x",), cores_per_pod=1,
                              memory_mib_per_pod=1024))


def test_drain_startd_with_vacate_requeues_jobs(twin: TwinBackend) -> None:
    # The schedd's start-up timeout precedes the t = 0 submits, so the negotiator's first cycle sees no submitter
    # ad; the submit's timeout (at 5 s, SCHEDD_MIN_INTERVAL) asks for a cycle, which runs 20 s after the first.
    twin.advance(40)
    s = next(s for s in twin.observe().startds if s.busy_cores)
    twin.apply(DrainStartd(**A, startd=s.name, vacate_after_seconds=60))
    twin.advance(61)
    assert next(x for x in twin.observe().startds if x.name == s.name).busy_cores == 0
    assert twin.sim.counters.evicted_jobs == s.busy_cores


def test_the_clock_and_the_end_of_the_scenario(twin: TwinBackend) -> None:
    assert twin.progress() == 0 and not twin.finished
    twin.advance(3 * 3600)
    assert not twin.finished
    twin.advance(2 * 3600)  # past the 4 h of the quiet scenario: the clock stops at the horizon
    assert twin.finished and twin.observe().now == twin.sim.sc.start_epoch + 4 * 3600


def test_unknown_action_is_an_input_error(twin: TwinBackend) -> None:
    with pytest.raises(InputError):
        twin.apply(Action(**A))
    with pytest.raises(InputError):
        twin.advance(-1)


def test_broker_policy_drives_the_twin_only_through_the_backend(quiet: Loaded) -> None:
    seen: list[Observed] = []

    def decide(spec: EnclaveSpec, obs: Observed) -> list[Action]:
        seen.append(obs)
        # Give every idle standalone startd to the pool with the most idle jobs (a toy broker).
        hungry = max(obs.demand, key=lambda p: obs.demand[p].idle_jobs)
        return [Relabel(**A, startd=s.name, from_pool=s.pool, to_pool=hungry)
                for s in obs.startds if s.busy_cores == 0 and s.pool != hungry]

    sim = Sim(quiet, Broker(decide), audit=True)
    sim.run()
    assert len(seen) >= 4 * 3600 / 60 - 1
    assert all(b.now > a.now for a, b in zip(seen, seen[1:], strict=False))
    m: dict[str, Any] = compute(sim)
    assert m["policy"] == "broker" and m["moves"]["rejected_actions"] == 0


def test_the_real_broker_drives_the_twin_without_breaking_invariants(minimal: EnclaveSpec) -> None:
    from enclave.broker.decide import decide

    text = ("name: b\nduration_hours: 3\nprompt: {nights: 1, visits_per_night: 100, night_start_h: 1, "
            "night_hours: 1.5, detectors: 8}\ndrp: {backlog_jobs: 300, jobs_per_hour: 200}\n"
            "user_batch: {bursts_per_day: 24, jobs_per_burst: 20}\nnotebooks: {peak_concurrent: 6}\n")
    sim = Sim(parse(text, "b.yaml", spec=minimal), Broker(decide), audit=True)
    sim.run()
    sim.check()
    m = compute(sim)
    assert m["policy"] == "broker" and m["moves"]["rejected_actions"] == 0
    assert m["prompt"]["visits_finished"] == 100
    # Churn: 3 simulated hours are one night, so actions per night are all of its actions; evicted core-hours
    # are every eviction's lost work, never negative.
    assert m["moves"]["per_night"] == m["moves"]["total"] > 0
    assert m["moves"]["wasted_core_hours"] >= 0
    again = Sim(parse(text, "b.yaml", spec=minimal), Broker(decide))
    again.run()
    assert compute(again) == m  # the broker loop is as deterministic as the rest


def test_observe_reports_running_jobs_and_finished_runtimes_not_ends(minimal: EnclaveSpec) -> None:
    """What a live pool would report (batch.live.running_jobs, finished_runtimes): each busy startd's jobs —
    cores, when each was matched to the slot, its pool — and, for a pool that vacates, how long its finished
    jobs held their slot; never a running job's end. QUIET's drp jobs run 600 s, plus the 1 s start-up the
    twin charges a job on its slot (scenario ``htcondor.job_startup_s``)."""
    pools = {**minimal.pools, "drp": minimal.pools["drp"].model_copy(update={"take_away": Drain.VACATE})}
    twin = TwinBackend(make_sim(parse(QUIET, "quiet.yaml", spec=minimal.model_copy(update={"pools": pools}))))
    twin.advance(60)
    obs = twin.observe()
    busy = [s for s in obs.startds if s.busy_cores]
    assert busy and all(sum(j.cores for j in s.jobs) == s.busy_cores for s in busy)
    assert all(j.pool == "drp" and obs.now - 60 <= j.start <= obs.now for s in busy for j in s.jobs)
    assert all(j.limit_seconds is None for s in busy for j in s.jobs)  # QUIET's jobs declare no limit
    assert all(s.jobs == () for s in obs.startds if not s.busy_cores)
    assert obs.demand["drp"].runtimes == ()  # nothing has finished yet
    twin.advance(1200)
    obs = twin.observe()
    done = obs.demand["drp"].runtimes
    assert done and all(r == pytest.approx(601.0) for r in done)
    assert obs.demand["prompt"].runtimes == ()  # prompt drains: its history is not read
