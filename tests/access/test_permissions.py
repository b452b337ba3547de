"""The full role × permission and role × action matrix."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.orm import Session

from enclave.access.permissions import ROLE_PERMISSIONS, Permission
from enclave.accounts import lifecycle, tokens
from enclave.accounts.authorize import require
from enclave.accounts.lifecycle import Allocation
from enclave.accounts.types import AccountKind
from enclave.db import Database
from enclave.errors import NotFound, PermissionDenied
from enclave.spec.models import EnclaveSpec, Role
from tests.accounts.conftest import ADMIN, LATER, NOW, onboard

P = Permission
# Written out independently of ROLE_PERMISSIONS, from the issue and the seed: if either changes, this fails.
EXPECTED: dict[Role, set[Permission]] = {
    Role.DEVELOPER: {P.LOGS_READ, P.NOTEBOOKS_SPAWN, P.BATCH_SUBMIT},
    Role.SCIENCE_USER: {P.NOTEBOOKS_SPAWN, P.BATCH_SUBMIT},
    Role.SECURITY: {P.IMAGES_VET, P.JOURNAL_READ},
    Role.SYSADMIN: {P.ACCOUNTS_MANAGE, P.ROLES_GRANT, P.JOURNAL_READ},
    Role.K8S_CLUSTER_ADMIN: {P.CLUSTER_SYSTEM, P.JOURNAL_READ},
    Role.K8S_SERVICE_ADMIN: {P.SERVICES_DEPLOY, P.BATCH_PODS, P.LOGS_READ, P.JOURNAL_READ},
    Role.HTCONDOR_ADMIN: {P.BATCH_RELABEL, P.JOURNAL_READ},
}


def holder(role: Role) -> str:
    return "r-" + role.value


@pytest.fixture
def holders(db: Database, spec: EnclaveSpec, admin: str) -> None:
    """One account per role holding only that role, plus targets for every action."""
    for role in Role:
        kind = AccountKind.SCIENCE if role == Role.SCIENCE_USER else AccountKind.STAFF
        onboard(db, spec, holder(role), kind=kind, roles=[role])
    onboard(db, spec, "t-sci", allocation=Allocation("P-1", expires=LATER))
    onboard(db, spec, "t-old")
    onboard(db, spec, "t-staff", kind=AccountKind.STAFF, namespaces=["firefly"])
    with db.session() as s:
        lifecycle.expire(s, ADMIN, "t-old", reason="ended", now=NOW)


def test_table_is_the_documented_one() -> None:
    assert {r: set(p) for r, p in ROLE_PERMISSIONS.items()} == EXPECTED
    assert set(ROLE_PERMISSIONS) == set(Role)
    # Seed §8: nobody but the cluster admin makes system-level changes.
    assert [r for r in Role if P.CLUSTER_SYSTEM in ROLE_PERMISSIONS[r]] == [Role.K8S_CLUSTER_ADMIN]
    assert [r for r in Role if P.IMAGES_VET in ROLE_PERMISSIONS[r]] == [Role.SECURITY]
    assert [r for r in Role if P.BATCH_RELABEL in ROLE_PERMISSIONS[r]] == [Role.HTCONDOR_ADMIN]
    assert [r for r in Role if P.BATCH_PODS in ROLE_PERMISSIONS[r]] == [Role.K8S_SERVICE_ADMIN]


def test_role_permission_matrix(db: Database, holders: None) -> None:
    with db.session() as s:
        for role, permission in itertools.product(Role, Permission):
            if permission in EXPECTED[role]:
                assert require(s, holder(role), permission).username == holder(role)
            else:
                with pytest.raises(PermissionDenied) as info:
                    require(s, holder(role), permission)
                assert permission.value in str(info.value) and "needs one of the roles" in str(info.value)


def test_several_roles_add_up(db: Database, spec: EnclaveSpec, admin: str) -> None:
    onboard(db, spec, "multi", kind=AccountKind.STAFF, roles=[Role.SECURITY, Role.HTCONDOR_ADMIN])
    with db.session() as s:
        for permission in Permission:
            allowed = permission in EXPECTED[Role.SECURITY] | EXPECTED[Role.HTCONDOR_ADMIN]
            if allowed:
                require(s, "multi", permission)
            else:
                with pytest.raises(PermissionDenied):
                    require(s, "multi", permission)


def test_inactive_and_unknown_actors_are_refused(db: Database, holders: None) -> None:
    with db.session() as s:
        with pytest.raises(PermissionDenied, match="'t-old' is expired"):
            require(s, "t-old", P.NOTEBOOKS_SPAWN)
        with pytest.raises(NotFound, match="no account named 'ghost'"):
            require(s, "ghost", P.NOTEBOOKS_SPAWN)


def actions(spec: EnclaveSpec) -> dict[str, tuple[Permission, Callable[[Session, str], Any]]]:
    """Every state-changing service function, with the permission it needs."""
    m, g = P.ACCOUNTS_MANAGE, P.ROLES_GRANT
    return {
        "onboard": (m, lambda s, a: lifecycle.onboard(s, a, spec, "newbie", name="N", email="n@x.org",
                                                    kind=AccountKind.SCIENCE, reason="r")),
        "depart": (m, lambda s, a: lifecycle.depart(s, a, "t-staff", reason="r")),
        "expire": (m, lambda s, a: lifecycle.expire(s, a, "t-sci", reason="r")),
        "expire-due": (m, lambda s, a: lifecycle.expire_due(s, a)),
        "renew": (m, lambda s, a: lifecycle.renew(s, a, "t-old", Allocation("P-2", expires=LATER), reason="r",
                                                spec=spec)),
        "promote": (m, lambda s, a: lifecycle.promote(s, a, "t-sci", reason="r")),
        "demote": (m, lambda s, a: lifecycle.demote(s, a, spec, "t-staff", new_username="t-new", reason="r")),
        "grow-quota": (m, lambda s, a: lifecycle.grow_quota(s, a, "t-sci", 900, reason="r")),
        "join-namespace": (m, lambda s, a: lifecycle.join_namespace(s, a, spec, "t-staff", "qserv", reason="r")),
        "leave-namespace": (m, lambda s, a: lifecycle.leave_namespace(s, a, "t-staff", "firefly", reason="r")),
        "issue token for another": (m, lambda s, a: tokens.issue(s, a, "t-sci", ["*"], 3600)),
        "grant role": (g, lambda s, a: lifecycle.grant_role(s, a, "t-staff", Role.SECURITY, reason="r")),
        "revoke role": (g, lambda s, a: lifecycle.revoke_role(s, a, "t-staff", Role.DEVELOPER, reason="r")),
    }


class Rollback(Exception):
    """Raised to roll back an allowed attempt so every attempt starts from the same state."""


def test_role_action_matrix(db: Database, spec: EnclaveSpec, holders: None, unchanged: Any) -> None:
    for action, (needed, call) in actions(spec).items():
        check_action(db, unchanged, action, needed, call)


def check_action(db: Database, unchanged: Any, action: str, needed: Permission,
                 call: Callable[[Session, str], Any]) -> None:
    for role in Role:
        actor = holder(role)
        if needed in EXPECTED[role]:
            with pytest.raises(Rollback), db.session() as s:
                call(s, actor)
                raise Rollback
        else:
            err = unchanged(lambda s, actor=actor: call(s, actor), PermissionDenied)  # type: ignore[misc]
            assert needed.value in str(err) and actor in str(err), f"{action}: {err}"
    # An account that is no longer active is refused whatever it once held.
    err = unchanged(lambda s: call(s, "t-old"), PermissionDenied)
    assert "expired" in str(err)
