"""Kubernetes as it starts pods, on a hand-built timeline: bind, pull the image unless the node has it (or is
pulling it), start the container. Expected times follow from those rules and the settings below."""

from __future__ import annotations

import pytest

from enclave.spec.models import EnclaveSpec
from enclave.twin.scenario import parse
from enclave.twin.sim import Sim

from .conftest import make_sim

BIND = 2.0
START = 10.0
GBIT_S = 4.0

TEXT = f"""
name: pods-start
duration_hours: 1
prompt: null
drp: null
user_batch: null
notebooks: null
layout: {{pod_startup_s: {START}}}
kubernetes: {{schedule_s: {BIND}, pull_gbit_s: {GBIT_S}, images_cached_at_start: CACHED}}
"""


def _sim(minimal: EnclaveSpec, cached: bool) -> Sim:
    sim = make_sim(parse(TEXT.replace("CACHED", str(cached).lower()), "k.yaml", spec=minimal))
    assert sim.spec.storage.image_size_gib == 10  # the spec's image size: a cold pull takes 10 x 8 / 4 = 20 s
    return sim


def _deploy(sim: Sim, at: float, node: str, name: str) -> None:
    sim.run_until(at)
    assert sim.deploy_pods(node, "drp", (name,), 1, 1024) == 1


def _ready_at(sim: Sim, name: str, t: float) -> None:
    """The pod is not in the collector just before ``t`` and is at ``t``."""
    sim.run_until(t - 0.01)
    assert not sim.startds[name].ready
    sim.run_until(t)
    assert sim.startds[name].ready


PULL = 10 * 8 / GBIT_S


def test_a_pod_starts_after_its_image_pull_and_the_next_one_uses_the_cache(minimal: EnclaveSpec) -> None:
    sim = _sim(minimal, cached=False)
    _deploy(sim, 0.0, "worker-001", "a")
    _deploy(sim, 0.0, "worker-001", "b")  # the kubelet is already pulling that image: b waits for the same pull
    _ready_at(sim, "a", BIND + PULL + START)
    assert sim.startds["b"].ready
    _deploy(sim, 100.0, "worker-001", "c")  # cached on worker-001 now
    _deploy(sim, 100.0, "worker-002", "d")  # worker-002 never pulled it
    _ready_at(sim, "c", 100 + BIND + START)
    _ready_at(sim, "d", 100 + BIND + PULL + START)


def test_a_pod_deployed_during_a_pull_waits_for_that_pull(minimal: EnclaveSpec) -> None:
    sim = _sim(minimal, cached=False)
    _deploy(sim, 0.0, "worker-001", "a")
    _deploy(sim, 5.0, "worker-001", "b")  # bound at 7; the image lands at 22
    _ready_at(sim, "b", BIND + PULL + START)


@pytest.mark.parametrize("node", ["worker-001", "worker-002"])
def test_a_running_enclave_has_the_worker_image(minimal: EnclaveSpec, node: str) -> None:
    sim = _sim(minimal, cached=True)
    _deploy(sim, 50.0, node, "a")
    _ready_at(sim, "a", 50 + BIND + START)
