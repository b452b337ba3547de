"""Dominant-resource utilization: a partitionable slot is used up once ANY of its resources is claimed."""

from __future__ import annotations

import pytest

from enclave.spec.models import NodeRole
from enclave.twin.metrics import compute
from enclave.twin.scenario import Loaded
from enclave.twin.sim import Block, Sim, SimStartd

from .conftest import make_sim


def _empty_startd(sim: Sim) -> SimStartd:
    """A standalone 24-core / 128 GiB slot of the LDF spec, nothing running on it yet."""
    s = next(s for s in sim.startds.values() if s.node.role == NodeRole.BATCH_ONLY)
    assert (s.cores, s.mem, s.free_cores, s.free_mem, s.running) == (24, 128 * 1024, 24, 128 * 1024, set())
    return s


def test_dominant_core_seconds_integrate_over_time_by_hand(small: Loaded) -> None:
    sim = make_sim(small)
    s = _empty_startd(sim)
    # The heaviest DRP shape of the scenario: 1 core and well over the slot's 5.3 GiB per core.
    a = max((a for a in sim.acs if a.pool == "drp" and a.cpus == 1), key=lambda a: a.memory_mib)
    assert a.memory_mib > 8 * 1024
    per_job = max(1 / 24, a.memory_mib / (128 * 1024)) * 24
    # t=10: two jobs start on the slot (through the simulator's own start path).
    sim.now = 10.0
    first = len(sim.state)
    sim.state.extend(bytes(2))
    sim.idle[a.pool] += 2
    sim.idle_cores[a.pool] += 2
    sim.n_idle += 2
    sim.queues[a.index].append(Block(first, [500.0, 500.0], 10.0, -1))
    assert sim._start(a.index, s, 2) == 2
    assert s.dominant_cores() == pytest.approx(2 * per_job)
    sim.now = 60.0
    assert sim.dominant_core_s() == pytest.approx(2 * per_job * 50)  # still running: counted up to now
    # t=110: both are evicted; the slot's 100 s at 2 jobs is booked, whatever runs next starts from 110.
    sim.now = 110.0
    sim._evict(s)
    # Nothing runs any more, so the per-pool figure is what is booked: all of it under the slot's pool.
    assert not any(t.running for t in sim.startds.values())
    booked = sim.dominant_pool_core_s()
    assert booked == pytest.approx({p: 2 * per_job * 100 if p == s.pool else 0.0 for p in booked})
    assert sim.dominant_core_s() == pytest.approx(2 * per_job * 100)


@pytest.mark.parametrize("policy", ["static", "quotas", "broker"])
def test_dominant_lies_between_core_and_memory_figures_and_its_bound(small: Loaded, policy: str) -> None:
    sim = make_sim(small, policy)
    sim.run()
    u = compute(sim)["utilization"]
    # Every slot here has the same 5.3 GiB per core (or the broker's pods at 4), so summing per-slot maxima
    # is at least the larger of the two aggregate figures, and never more than the clairvoyant bound.
    assert u["batch_dominant"] >= u["batch"] - 1e-3
    assert u["batch_dominant"] <= u["batch_dominant_upper"] + 1e-3
    assert 0 < u["batch_dominant"] <= 1
    assert u["enclave_dominant"] >= u["enclave"] - 1e-3


@pytest.mark.parametrize("policy", ["quotas", "broker"])
def test_busy_dominant_cores_are_the_share_times_the_capacity(small: Loaded, policy: str) -> None:
    # docs/twin.md: batch_dominant = ∫Σd_s dt / ∫ΣC_s dt and busy = ∫Σd_s dt / horizon, so busy is the share of the
    # mean capacity, whatever that capacity (the broker's includes borrowed pods), and never above it.
    sim = make_sim(small, policy)
    sim.run()
    u = compute(sim)["utilization"]
    assert u["batch_dominant_busy_mean_cores"] == pytest.approx(
        u["batch_dominant"] * u["batch_capacity_mean_cores"], rel=1e-3)
    assert 0 < u["batch_dominant_busy_mean_cores"] <= u["batch_capacity_mean_cores"]
    assert u["batch_dominant_busy_mean_cores"] == pytest.approx(sim.dominant_core_s() / sim.horizon, abs=0.01)


def test_a_slot_counts_under_the_pool_it_is_labelled_for_before_and_after_a_relabel(small: Loaded) -> None:
    # A slot's claimed share counts under the pool its capacity counts under (Sim.cap_core_s, by label): jobs
    # left running through a relabel (BCS 4 lets them finish) count under the old pool until the relabel, the
    # new one after it.
    sim = make_sim(small, "broker")
    s = _empty_startd(sim)
    old = s.pool
    new = next(p for p in sim.pools if p != old)
    a = max((a for a in sim.acs if a.pool == old and a.cpus == 1), key=lambda a: a.memory_mib)
    per_job = max(1 / 24, a.memory_mib / (128 * 1024)) * 24
    before = sim.dominant_pool_core_s()
    sim.now = 10.0
    first = len(sim.state)
    sim.state.extend(bytes(1))
    sim.idle[a.pool] += 1
    sim.idle_cores[a.pool] += 1
    sim.n_idle += 1
    sim.queues[a.index].append(Block(first, [500.0], 10.0, -1))
    assert sim._start(a.index, s, 1) == 1
    sim.now = 40.0
    sim.relabel(s.name, new)
    sim.now = 100.0
    after = sim.dominant_pool_core_s()
    assert after[old] - before.get(old, 0.0) == pytest.approx(per_job * 30)
    assert after[new] - before.get(new, 0.0) == pytest.approx(per_job * 60)
    assert sim.dominant_core_s() == pytest.approx(sum(after.values()))


@pytest.mark.parametrize("policy", ["static", "broker"])
def test_idle_by_pool_adds_up_to_the_batch_idle(small: Loaded, policy: str) -> None:
    # Labelled pools: every labelled slot counts under one pool, so the pools' idle dominant cores are the
    # batch's (capacity − busy), within rounding.
    sim = make_sim(small, policy)
    sim.run()
    m = compute(sim)
    u = m["utilization"]
    pools = [p for p in m["pools"].values() if p["dominant_idle_mean_cores"] is not None]
    assert sum(p["dominant_idle_mean_cores"] for p in pools) == pytest.approx(
        u["batch_dominant_idle_mean_cores"], abs=0.05)
    assert u["batch_dominant_idle_mean_cores"] == pytest.approx(
        u["batch_capacity_mean_cores"] - u["batch_dominant_busy_mean_cores"], abs=0.02)
    assert all(0 <= p["dominant"] <= 1 for p in pools)
