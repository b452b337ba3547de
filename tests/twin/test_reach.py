"""The twin reports what the live schedds do (issue 21): a departure mid-run ends that user's notebooks and jobs.

The same service (``enclave.services.reach``) drives the twin's schedds and notebook servers
(``enclave.twin.reach``) as it drives the bindings in tests/batch/test_reach.py: the same plan on the same schedds,
and the simulation, audited after every event (conservation, no double booking), counts what ended.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from enclave.accounts.types import AccountKind
from enclave.batch import policy
from enclave.domain.reach import Status
from enclave.services.factory import BOOTSTRAP_ADMIN, Factory
from enclave.spec.models import EnclaveSpec
from enclave.twin.metrics import compute
from enclave.twin.reach import Owners, TwinHub, TwinJobs
from enclave.twin.scenario import Loaded
from enclave.twin.sim import ENDED, QUEUED, RUNNING, Sim

from .conftest import make_sim

MID_RUN_S = 1.5 * 3600  # the small scenario's notebook peak, its night well under way


@pytest.fixture
def sim(small: Loaded) -> Sim:
    s = make_sim(small, audit=True)
    s.run_until(MID_RUN_S)
    return s


@pytest.fixture
def enclave(ldf: EnclaveSpec, sim: Sim) -> Iterator[tuple[Factory, Owners]]:
    owners = Owners()
    with Factory.scratch(ldf) as f:
        f.systems.jobs, f.systems.hub = TwinJobs(sim, owners), TwinHub(sim, owners)
        for name, kind in (("alice", AccountKind.STAFF), ("carol", AccountKind.SCIENCE)):
            f.accounts.onboard(BOOTSTRAP_ADMIN, name, name=name.title(), email=f"{name}@example.org", kind=kind,
                               reason="test")
        yield f, owners


def jobs_of(sim: Sim, state: int, pool: str) -> list[int]:
    """Job ids of ``pool``'s jobs in ``state``."""
    user = {a.index for a in sim.acs if a.pool == pool}
    if state == RUNNING:
        return sorted(j for j, rec in sim.running.items() if rec[2] in user)
    return sorted(b.first + i for ac in user for b in sim.queues[ac] for i in range(b.pos, b.n))


def test_a_departure_mid_run_ends_the_users_notebooks_and_jobs(enclave: tuple[Factory, Owners], sim: Sim,
                                                              ldf: EnclaveSpec) -> None:
    factory, owners = enclave
    # alice's work: running jobs in the user pool, DRP jobs waiting in the backlog, notebook servers.
    running, queued = jobs_of(sim, RUNNING, "user")[:5], jobs_of(sim, QUEUED, "drp")[:7]
    notebooks = sorted(sim.nb_node)[:3]
    assert len(running) == 5 and len(queued) == 7 and len(notebooks) == 3, "the scenario should be busy mid-run"
    owners.own("alice", jobs=set(running + queued), notebooks=set(notebooks))
    others_running = set(sim.running) - set(running)

    done = factory.accounts.depart(BOOTSTRAP_ADMIN, "alice", reason="left mid-run")

    assert {sim.state[j] for j in running + queued} == {ENDED}
    assert not set(notebooks) & set(sim.nb_node)  # their servers are gone (a waiting spawn may take the room)
    assert others_running <= set(sim.running)  # nobody else's job stopped
    sim.check()
    m = compute(sim)
    assert m["account_transitions"] == {"jobs_removed": 12, "jobs_held": 0, "notebooks_stopped": 3}
    # The twin reports what the live schedds report: the same steps on the spec's schedds (tests/batch/test_reach).
    assert done.reach is not None
    steps = [(o.system, o.where, o.action) for o in done.reach.outcomes]
    assert steps == [("kubernetes", "-", "revoke bindings"), ("jupyterhub", "hub", "revoke tokens"),
                     ("jupyterhub", "hub", "stop servers")] + [
        ("htcondor", s, a) for s in policy.schedds(ldf) for a in ("remove queued jobs", "remove running jobs")]
    # The twin has no RBAC: its bindings step is not configured (tests/cluster/test_bindings.py runs the live one).
    assert [o.status for o in done.reach.outcomes] == [Status.NOT_CONFIGURED] + [Status.DONE] * (len(steps) - 1)
    assert sum(o.count for o in done.reach.outcomes if o.system == "htcondor") == 12
    assert [o.count for o in done.reach.outcomes if o.action == "stop servers"] == [3]
    # The rest of the night runs on: none of alice's jobs ever runs again, and the books still balance.
    sim.run_until(sim.horizon)
    assert {sim.state[j] for j in running + queued} == {ENDED}
    sim.check()


def test_an_expiry_holds_running_jobs_and_removes_queued_ones(enclave: tuple[Factory, Owners], sim: Sim) -> None:
    factory, owners = enclave
    running, queued = jobs_of(sim, RUNNING, "user")[:4], jobs_of(sim, QUEUED, "drp")[:2]
    owners.own("carol", jobs=set(running + queued))
    done = factory.accounts.expire(BOOTSTRAP_ADMIN, "carol", reason="allocation ended")
    assert done.reach is not None and not done.reach.failed
    assert compute(sim)["account_transitions"] == {"jobs_removed": 2, "jobs_held": 4, "notebooks_stopped": 0}
    sim.check()


def test_a_second_reach_changes_nothing(enclave: tuple[Factory, Owners], sim: Sim) -> None:
    factory, owners = enclave
    owners.own("alice", jobs=set(jobs_of(sim, RUNNING, "user")[:2]), notebooks=set(sorted(sim.nb_node)[:1]))
    factory.accounts.depart(BOOTSTRAP_ADMIN, "alice", reason="left")
    again = factory.accounts.reach(BOOTSTRAP_ADMIN, "alice", reason="retry")
    assert [o.count for o in again.outcomes] == [0] * len(again.outcomes)  # idempotent, as condor_rm is
    assert compute(sim)["account_transitions"] == {"jobs_removed": 2, "jobs_held": 0, "notebooks_stopped": 1}
