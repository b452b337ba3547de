"""After a transition commits, tell every running system what it means for the account (issue 21).

The rule table is ``enclave.domain.reach.RULES``; the systems are whatever this process was configured with
(``Systems``: the live cluster's RBAC, schedds and hub under ``--live``/``enclave serve --live``, the twin's
simulated schedds and hub on a served twin, none in a plain CLI). The account transition is committed first and a
reach never undoes it: a system that fails or cannot be reached is reported in the returned ``ReachReport`` and
journaled (``accounts.reach``), and ``enclave accounts reach USER`` (``retry``) runs the same plan again — every
step is idempotent (removing removed jobs, stopping a stopped server or deleting a deleted RoleBinding changes
nothing).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from enclave.access.permissions import Permission
from enclave.accounts.authorize import find_account, require
from enclave.accounts.models import Account
from enclave.accounts.types import AccountStatus
from enclave.db import Database
from enclave.domain.reach import (
    RULES,
    ClusterAccess,
    HubSystem,
    JobSystem,
    Outcome,
    Plan,
    ReachReport,
    Status,
    Transition,
    job_action,
)
from enclave.errors import Conflict, EnclaveError, InvalidTransition
from enclave.journal import record

HTCONDOR, JUPYTERHUB, KUBERNETES = "htcondor", "jupyterhub", "kubernetes"


@dataclass
class Systems:
    """The running systems a transition reaches from this process; None: not configured here."""

    jobs: JobSystem | None = None
    hub: HubSystem | None = None
    cluster: ClusterAccess | None = None

    def none(self) -> bool:
        return self.jobs is None and self.hub is None and self.cluster is None


def transition_of(account: Account) -> Transition:
    """The transition that ended ``account``, for a retry: it decides the plan."""
    if account.status == AccountStatus.EXPIRED:
        return Transition.EXPIRE
    if account.status == AccountStatus.DEPARTED:
        return Transition.DEMOTE if account.replaced_by is not None else Transition.DEPART
    raise InvalidTransition(f"{account.username!r} is active: no transition to carry to the running systems",
                            where=f"account/{account.username}",
                            fix="reach is for departed, demoted or expired accounts")


def _attempt(system: str, where: str, action: str, step: Callable[[], int]) -> Outcome:
    try:
        count = step()
    except Exception as exc:  # any failure of a remote system is reported, never raised: the transition is done
        detail = str(exc) if isinstance(exc, EnclaveError) else f"{type(exc).__name__}: {exc}"
        return Outcome(system=system, where=where, action=action, status=Status.FAILED, error=detail)
    return Outcome(system=system, where=where, action=action, status=Status.DONE, count=count)


@dataclass
class ReachService:
    db: Database
    systems: Systems = field(default_factory=Systems)

    def outcomes(self, plan: Plan, username: str, why: str) -> list[Outcome]:
        """Every step of ``plan`` on every configured system, in order: RoleBindings first (no new kubectl session
        after the transition), then hub tokens (no new server can be started with them), then servers, then each
        schedd's jobs."""
        hub, jobs = self.systems.hub, self.systems.jobs
        out = self._bindings(plan, username)
        hub_steps = [("revoke tokens", plan.revoke_hub_tokens, hub.revoke_tokens if hub else None),
                     ("stop servers", plan.stop_servers, hub.stop_servers if hub else None)]
        for action, wanted, call in hub_steps:
            if not wanted:
                continue
            if call is None:
                out.append(Outcome(system=JUPYTERHUB, where="-", action=action, status=Status.NOT_CONFIGURED))
            else:
                out.append(_attempt(JUPYTERHUB, "hub", action, partial(call, username)))
        if jobs is None:
            return out + [Outcome(system=HTCONDOR, where="-", action=job_action(state, verb),
                                  status=Status.NOT_CONFIGURED) for state, verb in plan.jobs]
        try:
            schedds = jobs.schedds()
        except Exception as exc:  # as in _attempt: reported, never raised
            return out + [Outcome(system=HTCONDOR, where="-", action="list schedds", status=Status.FAILED,
                                  error=str(exc))]
        for schedd in schedds:
            for state, verb in plan.jobs:
                out.append(_attempt(HTCONDOR, schedd, job_action(state, verb),
                                    partial(jobs.act, schedd, verb, username, state, why)))
        return out

    def _bindings(self, plan: Plan, username: str) -> list[Outcome]:
        if not plan.revoke_bindings:
            return []
        cluster, action = self.systems.cluster, "revoke bindings"
        if cluster is None:
            return [Outcome(system=KUBERNETES, where="-", action=action, status=Status.NOT_CONFIGURED)]
        return [_attempt(KUBERNETES, "cluster", action, partial(cluster.revoke_bindings, username))]

    def after(self, actor: str, transition: Transition, username: str, reason: str) -> ReachReport:
        """Carry ``transition`` (already committed) to the running systems; journal what each answered."""
        why = f"enclave: account {username} {transition.value}: {reason}"
        report = ReachReport(username=username, transition=transition,
                             outcomes=self.outcomes(RULES[transition], username, why))
        if any(o.status != Status.NOT_CONFIGURED for o in report.outcomes):
            with self.db.session() as session:
                record(session, actor=actor, action="accounts.reach", target=f"account/{username}",
                       reason=f"{transition.value}: {reason}", before=None,
                       after=[o.model_dump(mode="json", exclude_none=True) for o in report.outcomes])
        return report

    def retry(self, actor: str, username: str, *, reason: str) -> ReachReport:
        """Run the plan of the transition that ended ``username`` again (accounts.manage)."""
        with self.db.session() as session:
            require(session, actor, Permission.ACCOUNTS_MANAGE)
            transition = transition_of(find_account(session, username))
        if self.systems.none():
            raise Conflict("no running system (Kubernetes, HTCondor, JupyterHub) is configured here, so there is "
                           "nothing to reach",
                           where="accounts reach", fix="pass --live, or ask the control plane served with --live")
        return self.after(actor, transition, username, reason)
