"""Who may do what: one table from actor role (seed §2) to the actions it may take across enclave.

Pure: it knows roles, not accounts. Whether an account holds a role is asked of
``enclave.accounts.authorize``."""

from __future__ import annotations

from enum import StrEnum

from enclave.spec.models import Role


class Permission(StrEnum):
    ACCOUNTS_MANAGE = "accounts.manage"
    """Onboard, depart, expire, promote, demote accounts; change quotas and namespace membership (§4)."""
    ROLES_GRANT = "roles.grant"
    """Grant and revoke actor roles."""
    CLUSTER_SYSTEM = "cluster.system"
    """System-level cluster changes: nodes, upgrades, overlay, backup/restore (§8: cluster admin only)."""
    SERVICES_DEPLOY = "services.deploy"
    """Deploy and maintain services in the Kubernetes commons (§4, §13.1)."""
    BATCH_RELABEL = "batch.relabel"
    """Change which processing a node serves by its ClassAd (BCS 1, 2, 4, 5)."""
    BATCH_PODS = "batch.pods"
    """Deploy and delete HTCondor worker pods, drain nodes (BCS 3–5)."""
    IMAGES_VET = "images.vet"
    """Vet container images in the local registry (§10)."""
    LOGS_READ = "logs.read"
    """Read container logs of the namespaces one belongs to (AA2/AA3)."""
    NOTEBOOKS_SPAWN = "notebooks.spawn"
    """Spawn a JupyterLab notebook (AA1)."""
    BATCH_SUBMIT = "batch.submit"
    """Submit batch jobs to HTCondor (§7)."""
    JOURNAL_READ = "journal.read"
    """Read the journal of changes."""


P = Permission

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.DEVELOPER: frozenset({P.LOGS_READ, P.NOTEBOOKS_SPAWN, P.BATCH_SUBMIT}),
    Role.SCIENCE_USER: frozenset({P.NOTEBOOKS_SPAWN, P.BATCH_SUBMIT}),
    Role.SECURITY: frozenset({P.IMAGES_VET, P.JOURNAL_READ}),
    Role.SYSADMIN: frozenset({P.ACCOUNTS_MANAGE, P.ROLES_GRANT, P.JOURNAL_READ}),
    Role.K8S_CLUSTER_ADMIN: frozenset({P.CLUSTER_SYSTEM, P.JOURNAL_READ}),
    Role.K8S_SERVICE_ADMIN: frozenset({P.SERVICES_DEPLOY, P.BATCH_PODS, P.LOGS_READ, P.JOURNAL_READ}),
    Role.HTCONDOR_ADMIN: frozenset({P.BATCH_RELABEL, P.JOURNAL_READ}),
}

STAFF_ROLES: frozenset[Role] = frozenset(set(Role) - {Role.SCIENCE_USER})
"""Roles only LSST-funded staff may hold (seed §2); a science account can hold only science-user."""


def roles_granting(permission: Permission) -> list[Role]:
    return [role for role in Role if permission in ROLE_PERMISSIONS[role]]


def permissions_for(roles: set[Role] | frozenset[Role] | list[Role]) -> frozenset[Permission]:
    granted: set[Permission] = set()
    for role in roles:
        granted |= ROLE_PERMISSIONS[role]
    return frozenset(granted)
