"""What an account transition does to the systems already running for that account (issue 21). Pure.

Seed §4: "Development staff that are no longer part of the project lose all access to the K8s cluster and other
LSST resources. LSST Science Users who no longer have an allocation will still be able to access their data, but
lose access to other services". Revoking enclave's tokens and roles (``enclave.accounts.lifecycle``) stops new
work; this table says what happens to the access still in place and the work already running — Kubernetes
RoleBindings, notebook servers, JupyterHub tokens and HTCondor jobs — once the transition has committed. The live
systems and the twin carry it out behind the protocols below (the twin has no RBAC, so no ``ClusterAccess``);
``enclave.services.reach`` dispatches it and journals what each system answered.

| transition | RoleBindings | notebook servers | hub tokens | queued jobs (idle, held) | running jobs |
|---|---|---|---|---|---|
| depart  | revoke | stop | revoke | remove | remove |
| demote (the old staff account) | revoke | stop | revoke | remove | remove |
| expire  | revoke | stop | revoke | remove | hold |

Why:
- **RoleBindings**, on every transition: the account is no longer active, so ``enclave render access`` renders it
  none, but ``kubectl apply`` never deletes what it no longer renders; until someone applies with ``--prune`` the
  person could still run kubectl in the application namespaces with the bindings of their old roles. Revoked first,
  so no new kubectl session begins after the transition.
- **depart**: all access ends at once, so nothing of the person may go on computing; jobs are *removed*, not held:
  a held job waits for its owner (or a queue superuser) to release it, and a departed owner never will.
- **demote**: the staff account is deactivated and a new science account made, so that nothing the person reached
  as staff stays reachable (seed §4). Jobs and servers of the old account run with its uid and mount its home:
  they go exactly as on departure. The new account has nothing running yet.
- **expire**: the allocation ended, so every service goes (the notebook server and every job) while the data
  stays readable. Queued jobs never started under the allocation: removed. Running jobs are *held*, not removed:
  they stop computing now, and a hold keeps the job and its progress in the queue, so if the allocation is renewed
  (``enclave accounts renew``) an administrator can release them (``condor_release``) instead of the user
  resubmitting; a removed job could not come back.

A transition missing from the table (onboard, renew, promote, quota or role changes) reaches nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from pydantic import BaseModel, ConfigDict


class Transition(StrEnum):
    DEPART = "depart"
    DEMOTE = "demote"
    EXPIRE = "expire"


class JobVerb(StrEnum):
    """What a schedd does to a job (``condor_rm`` / ``condor_hold``)."""

    REMOVE = "remove"
    HOLD = "hold"


class JobState(StrEnum):
    """Which of an owner's jobs a step acts on."""

    QUEUED = "queued"
    """Not running: idle or already held (HTCondor JobStatus 1 or 5)."""
    RUNNING = "running"
    """Holding a claim: running or suspended (JobStatus 2 or 7)."""


@dataclass(frozen=True)
class Plan:
    revoke_bindings: bool
    stop_servers: bool
    revoke_hub_tokens: bool
    jobs: tuple[tuple[JobState, JobVerb], ...]


_LEAVES = Plan(revoke_bindings=True, stop_servers=True, revoke_hub_tokens=True,
               jobs=((JobState.QUEUED, JobVerb.REMOVE), (JobState.RUNNING, JobVerb.REMOVE)))

RULES: dict[Transition, Plan] = {
    Transition.DEPART: _LEAVES,
    Transition.DEMOTE: _LEAVES,
    Transition.EXPIRE: Plan(revoke_bindings=True, stop_servers=True, revoke_hub_tokens=True,
                            jobs=((JobState.QUEUED, JobVerb.REMOVE), (JobState.RUNNING, JobVerb.HOLD))),
}


class Status(StrEnum):
    DONE = "done"
    FAILED = "failed"
    """The system answered with an error or could not be reached: retry with `enclave accounts reach`."""
    NOT_CONFIGURED = "not-configured"
    """No such system is configured where this ran (e.g. a CLI without --live): nothing was attempted."""


class Outcome(BaseModel):
    """One step of a reach: which system, where, what was asked and what came back."""

    model_config = ConfigDict(frozen=True)

    system: str
    """"kubernetes", "htcondor" or "jupyterhub"."""
    where: str
    """The schedd, the hub, or the cluster."""
    action: str
    """e.g. "remove queued jobs", "hold running jobs", "stop servers", "revoke tokens", "revoke bindings"."""
    status: Status
    count: int = 0
    """Jobs acted on, servers stopped, tokens or RoleBindings revoked (0 unless done)."""
    error: str | None = None


class ReachReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    username: str
    transition: Transition
    outcomes: list[Outcome]

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == Status.FAILED]


class JobSystem(Protocol):
    """HTCondor, live (``enclave.batch.live.HTCondorJobs``) or simulated (``enclave.twin.reach``)."""

    def schedds(self) -> list[str]:
        """Every schedd that may hold the account's jobs (in any pool)."""
        ...

    def act(self, schedd: str, verb: JobVerb, owner: str, state: JobState, reason: str) -> int:
        """Remove or hold ``owner``'s jobs in ``state`` on ``schedd``; how many changed. Raises EnclaveError."""
        ...


class ClusterAccess(Protocol):
    """Kubernetes RBAC, live (``enclave.cluster.kube.KubeCluster``); the twin has none."""

    def revoke_bindings(self, username: str) -> int:
        """Delete every RoleBinding enclave rendered for ``username`` in the application namespaces; how many were
        there. Raises EnclaveError."""
        ...


class HubSystem(Protocol):
    """JupyterHub through its REST API (live), or the twin's notebooks."""

    def stop_servers(self, username: str) -> int:
        """Stop every server of ``username``; how many were running."""
        ...

    def revoke_tokens(self, username: str) -> int:
        """Revoke every hub API token of ``username``; how many there were."""
        ...


def job_action(state: JobState, verb: JobVerb) -> str:
    return f"{verb.value} {state.value} jobs"
