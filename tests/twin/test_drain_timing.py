"""Node drain and return take time, as Kubernetes and HTCondor take it, on hand-computed timelines.

Rules (sources in ``enclave.twin.scenario`` and ``enclave.batch.render``):
- ``kubectl drain`` cordons, then evicts every pod (here ``drain_s`` after DrainNode). An evicted pod gets SIGTERM
  and holds the node until it has exited, at most its ``terminationGracePeriodSeconds``: 30 s unless set
  (https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-termination); the twin takes the whole
  grace for a notebook pod, whose session ends at the eviction.
- An HTCondor worker pod's grace is the longest pool grace (the rendered pod); on SIGTERM its startd retires the
  running jobs for their MaxJobRetirementTime (the pool's grace if it vacates, a week if it lets jobs finish),
  counted from each job's start, and starts evicting a job once what remains is no more than MachineMaxVacateTime
  (600 s by default): Resource::evalRetirementRemaining and Resource::retirementExpired (condor_startd.V6/
  Resource.cpp, htcondor/htcondor 7491a14). So a pool of 600 s grace or less vacates every job at once. A broker
  drain's deadline holds every job until it instead (the rendered retirement while draining). The kubelet kills
  whatever still runs at the pod's grace. Deleting a pod (BCS 3) follows the same rule.
- HTCondor starts ``htcondor_start_s`` after the node is drained; a repaired batch-only node's startd is matched
  only ``htcondor_start_s`` after the repair (its first ad), not at once.
"""

from __future__ import annotations

import math

import pytest

from enclave.batch import render
from enclave.domain.capacity import NodeState
from enclave.spec.models import Drain, EnclaveSpec
from enclave.twin.scenario import parse
from enclave.twin.sim import Sim

from .conftest import make_sim

DRAIN = 7.0  # drain_s: DrainNode to the evictions
HTC = 50.0  # htcondor_start_s
NB_GRACE = 30.0  # Kubernetes' default terminationGracePeriodSeconds
POD_GRACE = 400.0  # the longest pool grace below: the HTCondor pod's terminationGracePeriodSeconds
DRP_GRACE = 200.0
JOB_S = 1000.0  # every DRP job runs this long: longer than any grace


def _spec(minimal: EnclaveSpec, drp_take_away: Drain) -> EnclaveSpec:
    graces = {"prompt": (Drain.DRAIN, 100.0), "drp": (drp_take_away, DRP_GRACE), "user": (Drain.VACATE, 300.0),
              "general": (Drain.VACATE, POD_GRACE)}
    pools = {name: p.model_copy(update={"take_away": graces[name][0], "grace_seconds": graces[name][1]})
             for name, p in minimal.pools.items()}
    return minimal.model_copy(update={"pools": pools})


def _sim(minimal: EnclaveSpec, *, drp_take_away: Drain = Drain.VACATE, notebooks: str = "null",
         failures: str = "{}") -> Sim:
    return make_sim(parse(_scenario(notebooks, failures), "drain.yaml", spec=_spec(minimal, drp_take_away)),
                    audit=True)


def _scenario(notebooks: str = "null", failures: str = "{}") -> str:
    return f"""
name: drain-timing
duration_hours: 3
prompt: null
user_batch: null
drp: {{backlog_jobs: 400, jobs_per_hour: 0, mix: [{{name: t, weight: 1, memory_gib: 1,
      runtime: {{dist: fixed, mean: {JOB_S}}}}}]}}
notebooks: {notebooks}
failures: {failures}
htcondor: {{matching: instant}}
layout: {{pod_startup_s: 0}}
kubernetes: {{schedule_s: 0}}
timing: {{drain_s: {DRAIN}, htcondor_start_s: {HTC}, return_s: 30}}
"""


def _htcondor_ready_at(sim: Sim, node: str, t: float) -> None:
    """HTCondor on the drained node reports just at ``t``, not before."""
    sim.run_until(t - 0.01)
    assert node not in sim.startds or not sim.startds[node].ready
    sim.run_until(t)
    assert sim.startds[node].ready and sim.nodes[node].state == NodeState.HTCONDOR


def test_a_retiring_job_is_evicted_as_htcondor_counts_retirement(minimal: EnclaveSpec) -> None:
    spec = _spec(minimal, Drain.VACATE)
    spec = spec.model_copy(update={"pools": {**spec.pools, "user": spec.pools["user"].model_copy(
        update={"grace_seconds": 1000.0})}})
    # 200 s of grace, 600 s of vacate time: nothing of the retirement is left for any job
    assert render.retirement_ends(spec, "drp", job_start=900.0, now=1000.0) == 1000.0
    # 1,000 s of grace: a job started 100 s ago is evicted 1,000 - 600 s after its start, one 500 s old at once
    assert render.retirement_ends(spec, "user", job_start=900.0, now=1000.0) == 1300.0
    assert render.retirement_ends(spec, "user", job_start=500.0, now=1000.0) == 1000.0
    # letting jobs finish: a week from the job's start, long after the pod's grace
    assert render.retirement_ends(spec, "prompt", job_start=900.0, now=1000.0) > 1000.0 + POD_GRACE


def test_a_node_without_pods_is_drained_when_the_evictions_are_sent(minimal: EnclaveSpec) -> None:
    sim = _sim(minimal)
    sim.run_until(100.0)
    sim.drain_node("worker-001")
    sim.start_htcondor("worker-001", "drp")
    _htcondor_ready_at(sim, "worker-001", 100 + DRAIN + HTC)


def test_evicted_notebooks_end_at_the_eviction_but_hold_the_node_for_their_grace(minimal: EnclaveSpec) -> None:
    sim = _sim(minimal, notebooks="{peak_concurrent: 20, peak_hour: 0, session_mean_s: 7200}")
    sim.run_until(1800.0)
    node = max(sim.nodes.values(), key=lambda n: len(n.notebooks))
    held = len(node.notebooks)
    assert held > 0, "the scenario should have placed a notebook by now"
    sim.drain_node(node.name)
    sim.start_htcondor(node.name, "drp")
    sim.run_until(1800 + DRAIN - 0.01)
    assert len(node.notebooks) == held  # sessions run on until the eviction
    evicted = sim.counters.nb_evicted
    sim.run_until(1800 + DRAIN)
    assert not node.notebooks and sim.counters.nb_evicted == evicted + held
    assert not node.drained  # the pods are still terminating
    _htcondor_ready_at(sim, node.name, 1800 + DRAIN + NB_GRACE + HTC)


def _pod_with_jobs(sim: Sim, at: float) -> None:
    sim.run_until(at)
    assert sim.deploy_pods("worker-001", "drp", ("htc-a",), 4, 4096) == 1
    sim.run_until(at)
    assert len(sim.startds["htc-a"].running) == 4  # instant matching fills it from the DRP backlog


# DRP vacating with 200 s of grace: evicted at the eviction (200 - 600 s of retirement left); letting jobs finish:
# a week, cut at the pod's grace
@pytest.mark.parametrize(("take_away", "retire"), [(Drain.VACATE, 0.0), (Drain.DRAIN, POD_GRACE)])
def test_a_drained_htcondor_pod_retires_its_jobs_within_its_grace(minimal: EnclaveSpec, take_away: Drain,
                                                                   retire: float) -> None:
    sim = _sim(minimal, drp_take_away=take_away)
    _pod_with_jobs(sim, 10.0)
    sim.drain_node("worker-001")
    sim.start_htcondor("worker-001", "drp")
    evicted = sim.counters.evicted_jobs
    sim.run_until(10 + DRAIN - 0.01)
    assert len(sim.startds["htc-a"].running) == 4  # until the drain's evictions
    if retire:
        sim.run_until(10 + DRAIN + retire - 0.01)
        assert len(sim.startds["htc-a"].running) == 4  # retiring: the 1,000 s jobs run on
        assert not sim.startds["htc-a"].accepting
    sim.run_until(10 + DRAIN + retire)
    assert "htc-a" not in sim.startds and sim.counters.evicted_jobs == evicted + 4
    assert sim.counters.wasted_core_s >= 4 * (DRAIN + retire)
    _htcondor_ready_at(sim, "worker-001", 10 + DRAIN + retire + HTC)


def test_a_deleted_pod_of_a_pool_that_lets_jobs_finish_is_killed_at_its_grace(minimal: EnclaveSpec) -> None:
    sim = _sim(minimal, drp_take_away=Drain.DRAIN)
    _pod_with_jobs(sim, 10.0)
    sim.delete_pods(("htc-a",))
    sim.run_until(10 + POD_GRACE - 0.01)
    assert len(sim.startds["htc-a"].running) == 4
    sim.run_until(10 + POD_GRACE)  # not at 10 + 1,000 s, when the jobs would have ended
    assert "htc-a" not in sim.startds


def test_a_deleted_pod_of_a_long_grace_keeps_each_job_until_its_own_retirement_ends(minimal: EnclaveSpec) -> None:
    sim = make_sim(parse(_scenario(), "drain.yaml", spec=_long_grace(minimal, 900.0)), audit=True)
    _pod_with_jobs(sim, 10.0)  # the jobs start at 10 s
    sim.delete_pods(("htc-a",))
    sim.run_until(100.0)
    sim.run_until(10 + 900 - 600 - 0.01)  # 900 s of retirement from the start, less the 600 s vacate time
    assert len(sim.startds["htc-a"].running) == 4
    sim.run_until(10 + 900 - 600)
    assert "htc-a" not in sim.startds


def test_a_deleted_pod_the_broker_drains_keeps_its_jobs_until_the_drains_deadline(minimal: EnclaveSpec) -> None:
    sim = make_sim(parse(_scenario(), "drain.yaml", spec=_long_grace(minimal, 900.0)), audit=True)
    _pod_with_jobs(sim, 10.0)
    sim.drain_startd("htc-a", 500.0)  # deadline 510 s
    sim.run_until(50.0)
    sim.delete_pods(("htc-a",))
    sim.run_until(510 - 0.01)  # not at 300 s, where the pool's rule would have ended them
    assert len(sim.startds["htc-a"].running) == 4
    sim.run_until(510.0)
    assert "htc-a" not in sim.startds


def _long_grace(minimal: EnclaveSpec, grace: float) -> EnclaveSpec:
    spec = _spec(minimal, Drain.VACATE)
    return spec.model_copy(update={"pools": {**spec.pools, "drp": spec.pools["drp"].model_copy(
        update={"grace_seconds": grace})}})


def test_a_repaired_batch_node_serves_only_after_its_startd_comes_up(minimal: EnclaveSpec) -> None:
    sim = _sim(minimal, failures="{storms: [{at_h: 0.1, nodes: 1, group: batch, repair_h: 0.5}]}")
    sim.run_until(360.0)
    down = [n for n in sim.nodes.values() if n.state == NodeState.DOWN]
    assert len(down) == 1
    name = down[0].name
    repaired = 360 + 0.5 * 3600
    sim.run_until(repaired)
    assert sim.nodes[name].state == NodeState.READY
    assert not sim.startds[name].ready and not sim.startds[name].running
    sim.run_until(repaired + HTC - 0.01)
    assert not sim.startds[name].ready
    sim.run_until(repaired + HTC)
    assert sim.startds[name].ready and sim.startds[name].running  # the queued DRP jobs start (instant matching)


def test_a_repaired_batch_node_serves_its_rendered_pool_again(minimal: EnclaveSpec) -> None:
    """A relabel is runtime configuration, "lost on restarts" (DC_CONFIG_RUNTIME, htcondor/htcondor
    src/condor_daemon_core.V6/README.config): the startd of a batch-only node that failed and was repaired reads its
    config files again, so it serves the pool its rendered config names, with the rendered EnclavePoolSince
    (0: out of cooldown), whatever pool the broker had moved it to."""
    sim = _sim(minimal, failures="{storms: [{at_h: 0.1, nodes: 1, group: batch, repair_h: 0.5}]}")
    rendered = {s.name: s.pool for s in sim.startds.values()}
    moved_to = {name: next(p for p in minimal.pools if p != pool) for name, pool in rendered.items()}
    sim.run_until(1.0)
    for name, pool in moved_to.items():
        sim.relabel(name, pool)
    assert {s.name: s.pool for s in sim.startds.values()} == moved_to
    sim.run_until(360.0)
    name = next(n.name for n in sim.nodes.values() if n.state == NodeState.DOWN)
    sim.run_until(360 + 0.5 * 3600 + HTC)
    assert sim.startds[name].pool == rendered[name] and sim.startds[name].since == -math.inf
    assert all(sim.startds[other].pool == pool for other, pool in moved_to.items() if other != name)
