"""The twin's side of issue 21: an account transition reaches the simulated schedds and notebook servers.

The twin's workload is anonymous (autoclusters and notebook sessions, no owners), so who owns what is told to it:
``Owners.own(username, jobs=..., notebooks=...)``. ``TwinJobs`` and ``TwinHub`` implement the protocols of
``enclave.domain.reach`` over that table, so ``enclave.services.reach`` drives the twin exactly as it drives the
live schedds and hub: the same plan, the same schedds (the spec's, plus a scenario's dedicated ones), the same
report; the simulation's counters (``metrics.compute``: ``account_transitions``) count what ended.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from enclave.batch.policy import schedds
from enclave.domain.reach import JobState, JobVerb
from enclave.twin.sim import Sim


@dataclass
class Owners:
    jobs: dict[str, set[int]] = field(default_factory=dict)
    notebooks: dict[str, set[int]] = field(default_factory=dict)

    def own(self, username: str, *, jobs: set[int] | frozenset[int] = frozenset(),
            notebooks: set[int] | frozenset[int] = frozenset()) -> None:
        self.jobs.setdefault(username, set()).update(jobs)
        self.notebooks.setdefault(username, set()).update(notebooks)


@dataclass
class TwinJobs:
    """``JobSystem`` on the simulated schedds: a job lives on its pool's schedd (``Sim.schedd_of``)."""

    sim: Sim
    owners: Owners

    def schedds(self) -> list[str]:
        return list(dict.fromkeys([*schedds(self.sim.spec), *self.sim.schedd_of.values()]))

    def act(self, schedd: str, verb: JobVerb, owner: str, state: JobState, reason: str) -> int:
        pools = {p for p, s in self.sim.schedd_of.items() if s == schedd}
        return self.sim.end_jobs(self.owners.jobs.get(owner, set()), pools, running=state == JobState.RUNNING,
                                 hold=verb == JobVerb.HOLD)


@dataclass
class TwinHub:
    """``HubSystem`` on the simulated notebook servers. The twin has no hub tokens: none to revoke."""

    sim: Sim
    owners: Owners

    def stop_servers(self, username: str) -> int:
        return self.sim.stop_notebooks(sorted(self.owners.notebooks.get(username, set())))

    def revoke_tokens(self, username: str) -> int:
        return 0
