"""The twin starts where the rendered configs put each node (issue 13: one copy of the share-splitting rule).

Standalone batch-only nodes: the rendered execute configs (``enclave render condor``) and the broker start
each in the pool ``enclave.batch.policy.static_labels`` names. Worker pods: the rendered worker-pod config
takes its pool from the pod's environment (DeployPods) and publishes the kind the broker's model calls a pod.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from enclave.batch import render
from enclave.batch.policy import KIND_ATTR, apportion, static_labels
from enclave.broker.layout import initial_state
from enclave.broker.naming import pod_names
from enclave.domain.capacity import StartdKind
from enclave.errors import InputError
from enclave.spec.defaults import DEFAULT_SPEC, EXAMPLES
from enclave.spec.load import load
from enclave.spec.models import EnclaveSpec, NodeRole
from enclave.twin.layout import LayoutPolicy
from enclave.twin.metrics import compute
from enclave.twin.scenario import SHARED, BatchLayout, Loaded, load_scenario, parse
from enclave.twin.sim import Sim
from tests.batch.conftest import negotiator_order

from .conftest import SCENARIO_DIR, make_sim, small_text

SPECS = sorted(Path(EXAMPLES).glob("*.yaml"))
SCENARIOS = sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


def _uses(spec: Path, scenario: str) -> bool:
    """Whether ``scenario`` runs on ``spec``: the one it names (the embedded default if none), or any other
    spec it validates against (``--spec``)."""
    named = load_scenario(scenario).scenario.spec
    own = SCENARIO_DIR / named if named else DEFAULT_SPEC
    if own.resolve() == spec.resolve():
        return True
    try:
        load_scenario(scenario, spec=load(spec))
    except InputError:
        return False
    return True


PAIRS = [(spec, sc) for spec in SPECS for sc in SCENARIOS if _uses(spec, sc)]


def _loaded(spec: Path, scenario: str) -> Loaded:
    return load_scenario(scenario, spec=load(spec))


def _standalone(sim: Sim) -> dict[str, str]:
    return {s.name: s.pool for s in sim.startds.values() if s.kind == StartdKind.STANDALONE}


def test_every_spec_and_every_scenario_is_covered() -> None:
    assert {spec for spec, _ in PAIRS} == set(SPECS)
    assert {sc for _, sc in PAIRS} == set(SCENARIOS)


@pytest.mark.parametrize(("spec", "scenario"), PAIRS, ids=[f"{p.stem}-{s}" for p, s in PAIRS])
def test_standalone_nodes_start_in_the_pool_of_their_rendered_execute_config(spec: Path, scenario: str) -> None:
    loaded = _loaded(spec, scenario)
    labels = static_labels(loaded.spec)
    assert set(labels) == set(loaded.spec.node_names(NodeRole.BATCH_ONLY))
    # The static policy is that layout; the broker starts from it (and its own initial_state agrees).
    assert _standalone(make_sim(loaded, "static")) == labels
    if loaded.spec.node_names(NodeRole.BATCH_ONLY):
        assert _standalone(make_sim(loaded, "broker")) == labels
        assert {s.name: s.pool for s in initial_state(loaded.spec).startds} == labels
    # Group quotas: the same startds, in one shared pool (no label for START to read).
    assert _standalone(make_sim(loaded, "quotas")) == dict.fromkeys(labels, SHARED)


def test_the_ldf_nodes_start_as_the_spec_s_shares_say() -> None:
    # 40 batch nodes; guaranteed shares prompt .25, drp .40, user .10, general .05 give 10, 16, 4, 2 whole
    # nodes; the 8 left over go to the default pool, general. Blocks by priority, in node order.
    sim = make_sim(load_scenario("one-night", spec=load(EXAMPLES / "lsst-ldf.yaml")))
    labels = _standalone(sim)
    assert Counter(labels.values()) == {"prompt": 10, "drp": 16, "user": 4, "general": 10}
    assert labels["condor-001"] == labels["condor-010"] == "prompt"
    assert labels["condor-011"] == labels["condor-026"] == "drp"
    assert labels["condor-040"] == "general"


POD_SCENARIOS = [sc for sc in SCENARIOS if load_scenario(sc).scenario.layout.batch == BatchLayout.PODS]


@pytest.mark.parametrize("scenario", POD_SCENARIOS)
def test_worker_pods_start_as_the_rendered_worker_pod_config_runs_them(scenario: str) -> None:
    sim = make_sim(load_scenario(scenario))
    pods = [s for s in sim.startds.values() if s.kind != StartdKind.STANDALONE]
    assert pods
    # Pods of the layout hold a share of a node: the partitioned config, which takes its pool from the pod's
    # environment (set by DeployPods) and publishes this kind.
    rendered = render.worker_pod(sim.spec, whole_node=False).text
    assert f"{render.POOL_KNOB} = $ENV({render.POD_POOL_ENV})" in rendered
    assert all(f'{KIND_ATTR} = "{p.kind.value}"' in rendered for p in pods)
    # Named as the broker names pods, and given pools by the rule that labels the standalone nodes.
    by_node: dict[str, list[str]] = {}
    for p in pods:
        by_node.setdefault(p.node.name, []).append(p.name)
    assert all(names == list(pod_names(node, len(names), ())) for node, names in by_node.items())
    assert {p.name: p.pool for p in pods} == apportion([p.name for p in pods], sim.spec)


def test_pods_8_splits_its_pods_by_guaranteed_share() -> None:
    # 60 workers of 32 cores, 2 reserved for services: 30 allocatable, three 8-core pods each. 60 % of the
    # 1,800 allocatable cores is 1,080: 135 pods on the first 45 workers. Shares of 135: prompt 33.75,
    # drp 54, user 13.5, general 6.75 -> 33 + 54 + 13 + 6 = 106 whole; the 29 left go to the largest
    # remainders first (prompt .75 before general .75 by priority, then user .5), the rest to general.
    sim = make_sim(load_scenario("pods-8"))
    pods = [s for s in sim.startds.values() if s.kind == StartdKind.POD]
    assert Counter(p.pool for p in pods) == {"prompt": 34, "drp": 54, "user": 14, "general": 33}
    assert {p.node.name for p in pods} == {f"kub-{i:03d}" for i in range(1, 46)}
    assert sorted(p.name for p in pods if p.node.name == "kub-001") == [
        "htcondor-kub-001-1", "htcondor-kub-001-2", "htcondor-kub-001-3"]


def test_batch_nodes_keep_their_rendered_pools_beside_worker_pods(ldf: EnclaveSpec) -> None:
    # The pods layout on an enclave that also has batch-only nodes: those still start as rendered.
    sim = make_sim(parse(small_text(layout="{batch: pods, pod_cores: 8, pod_batch_share: 0.5}"), "p.yaml", spec=ldf))
    assert _standalone(sim) == static_labels(ldf)
    assert any(s.kind == StartdKind.POD for s in sim.startds.values())


# Running cores per pool with jobs (prompt, drp, user), chosen so that no two groups tie: prompt more starved
# than the others, less, on surplus; DRP idle; user beyond its quota.
RUNNING = [(10, 300, 40), (230, 30, 60), (500, 100, 0), (120, 0, 200)]


@pytest.mark.parametrize("policy", ["static", "quotas", "quotas-mem", "quotas-preempt", "quotas-preempt-mem",
                                    "quotas-reserved", "broker"])
def test_the_twin_negotiates_in_the_rendered_group_order(small: Loaded, policy: str) -> None:
    """Every policy that stands for the rendered central manager orders its submitters as the rendered
    GROUP_SORT_EXPR, evaluated with classad2 on group ads carrying the policy's own usage and quota, orders
    their groups."""
    sim = make_sim(small, policy)
    expr = render.group_sort_expr(sim.spec)
    pools = [p for p in sim.by_priority if sim.pool_acs[p]]
    assert pools == ["prompt", "drp", "user"]
    pol = sim.policy
    assert isinstance(pol, LayoutPolicy)
    for running in RUNNING:
        for pool, n in zip(pools, running, strict=True):
            ac = sim.pool_acs[pool][0]
            sim.run_ac[ac] = n // sim.acs[ac].cpus
            sim.busy[pool] = sim.run_ac[ac] * sim.acs[ac].cpus
        groups = {render.policy.accounting_group(sim.spec, p): (pol.used(sim, p), pol.quota(sim, p)) for p in pools}
        by_group = {render.policy.accounting_group(sim.spec, p): p for p in pools}
        assert pol.order(sim, pools) == [by_group[g] for g in negotiator_order(expr, groups)], running
        assert pol.order(sim, pools)[0] == "prompt"  # the latency pool, however starved the others


def test_a_static_layout_s_pods_put_back_after_a_repair_are_no_moves(minimal: EnclaveSpec) -> None:
    """Static's pods are a Deployment's replicas: after its worker is repaired the controller deploys the pod again,
    and that is Kubernetes keeping the layout, not a move of the policy's, which makes none (review, stop 53: it was
    counted as a DeployPods move, one per night in ``moves.per_night``)."""
    loaded = parse("name: h8\nduration_hours: 1\nprompt: null\nuser_batch: null\nnotebooks: null\ndrp: null\n"
                   "layout: {batch: pods, pod_cores: 4}\n"
                   "failures: {storms: [{at_h: 0.1, names: [worker-001], repair_h: 0.1}]}\n", "h8.yaml", spec=minimal)
    sim = make_sim(loaded, policy="static")
    assert "htcondor-worker-001-1" in sim.startds
    sim.run()
    m = compute(sim)
    assert m["moves"]["failures"] == 1 and "htcondor-worker-001-1" in sim.startds  # lost, then put back
    assert m["moves"]["actions"] == {} and m["moves"]["per_night"] == 0.0
