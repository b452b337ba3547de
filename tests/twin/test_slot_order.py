"""Which slot a match takes: the twin's order of candidate slots against the rendered NEGOTIATOR_PRE_JOB_RANK,
evaluated with classad2 on each slot's ad as the negotiator evaluates it (the slot as MY, the job as TARGET; the
value kept as a float, matchmaker.cpp ``EvalNegotiatorMatchRank``), never read off a run."""

from __future__ import annotations

import random
import struct

import pytest
from classad2 import ExprTree

from enclave.batch import policy, render
from enclave.domain.capacity import Startd
from enclave.spec.models import EnclaveSpec
from enclave.twin.scenario import Loaded, parse
from enclave.twin.sim import EV_BLOCK, Sim, SimStartd
from enclave.twin.workloads import Arrival

from .conftest import make_sim

SUBMIT_HOST = "lsst-dev01.ncsa.illinois.edu"


def _rank(spec: EnclaveSpec, rule: str, s: SimStartd, pool: str) -> float:
    slot = policy.machine_ad(spec, Startd(name=s.name, node=s.node.name, kind=s.kind, pool=s.pool, cores=s.cores,
                                          memory_mib=s.mem, busy_cores=0),
                             cpus=s.free_cores, memory_mib=s.free_mem)
    job = policy.job_ad(spec, owner="someone", pool=pool, schedd=SUBMIT_HOST)
    value = float(ExprTree(rule).eval(scope=slot, target=job))
    return float(struct.unpack("f", struct.pack("f", value))[0])


def _negotiator_order(spec: EnclaveSpec, sim: Sim, pool: str) -> list[str]:
    """The startds with room in the order the negotiator sorts a ``pool`` job's candidates: the rendered
    NEGOTIATOR_PRE_JOB_RANK, highest first (HTCondor manual, "The Negotiator's algorithm"); Python's stable sort
    keeps the collector's order among equal ranks."""
    rule = render.pre_job_rank(spec)
    room = [s for s in sim.startds.values() if s.accepting and s.free_cores > 0]
    return [s.name for s in sorted(room, key=lambda s: -_rank(spec, rule, s, pool))]


@pytest.mark.parametrize("pool", ["prompt", "drp", "user"])
def test_candidates_follow_the_rendered_pre_job_rank(small: Loaded, ldf: EnclaveSpec, pool: str) -> None:
    sim = make_sim(small, policy="broker")
    # Into the night, until the broker has laid out prompt, DRP and user (when the users' first burst comes varies).
    t = 3000.0
    while {s.pool for s in sim.startds.values()} < {"prompt", "drp", "user"} and t < 7200:
        t += 300
        sim.run_until(t)
    # Give the slots varied room, in whole GiB (the float the negotiator keeps tells 8 MiB apart at the
    # own-pool term's 1e8, render.OWN_POOL_RANK), some with equal room so that ties meet the collector's order.
    rng = random.Random(15)
    for s in sim.startds.values():
        if s.accepting:
            s.free_cores = rng.choice([1, 2, 2, 5, s.cores])
            s.free_mem = 1024 * rng.choice([2, 4, 4, 16, s.mem // 1024])
    assert {s.pool for s in sim.startds.values()} >= {"prompt", "drp", "user"}
    assert [s.name for s in sim._candidates(pool)] == _negotiator_order(ldf, sim, pool)


def test_a_job_packs_onto_the_partly_used_slot(minimal: EnclaveSpec) -> None:
    """Eight short jobs fill the first 8-core slot and three long ones take 3 cores of the second; once the short
    ones end, the first is whole (8 cores free) and the second has 5. HTCondor's default rank (-100000 per
    unclaimed core, -1 per MiB) puts the second first, so a new job lands there and the first stays whole for a
    large request; the collector's order would have taken the first."""
    loaded = parse("name: pack\nduration_hours: 1\nprompt: null\nuser_batch: null\nnotebooks: null\n"
                   "drp: {backlog_jobs: 0, jobs_per_hour: 0, "
                   "mix: [{name: t, weight: 1, memory_gib: 1, runtime: {dist: fixed, mean: 100}}]}\n"
                   "htcondor: {reschedule_on_submit: never}\n", "pack.yaml", spec=minimal)
    sim = make_sim(loaded, policy="quotas")
    first, second = list(sim.startds.values())[:2]
    assert (first.cores, second.cores) == (8, 8)
    sim.q.push(0.0, EV_BLOCK, Arrival(0.0, 0, [100.0] * 8 + [3000.0] * 3))
    sim.run_until(600.0)
    assert not first.running and len(second.running) == 3
    sim.q.push(600.0, EV_BLOCK, Arrival(600.0, 0, [3000.0]))
    sim.run_until(1200.0)
    assert not first.running and len(second.running) == 4
