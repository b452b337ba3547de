"""An action that needs two permissions checks each on its own, whatever the role table puts together.

The table gives accounts.manage, roles.grant and journal.read to sysadmin alike, so an account with one of them has
the others, and a check of either alone passed every test: a mutation round (stop 57) removed the roles.grant
check of onboarding, cohort onboarding and promotion with roles, and the journal.read check of a journal rekey,
and nothing failed. Here one role holds exactly one of the two, as a site that splits account management from role
grants would configure it: each action is refused for the permission it lacks, and changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy.orm import Session

from enclave.access import permissions
from enclave.access.permissions import Permission
from enclave.accounts import lifecycle
from enclave.accounts.cohort import NewAccount
from enclave.accounts.types import AccountKind
from enclave.db import Database
from enclave.errors import Conflict, PermissionDenied
from enclave.services.journal import JournalService
from enclave.spec.models import EnclaveSpec, Role
from tests.accounts.conftest import onboard

P = Permission
SPLIT = "split"
"""The staff account holding the test role (security, whose own permissions stay with it)."""

NEWCOMER = NewAccount("newbie", "New Person", "newbie@example.org", AccountKind.STAFF, roles=(Role.SYSADMIN,))


def _onboard(s: Session, spec: EnclaveSpec) -> Any:
    return lifecycle.onboard(s, SPLIT, spec, "newbie", name="New Person", email="newbie@example.org",
                             kind=AccountKind.STAFF, roles=[Role.SYSADMIN], reason="x")


CASES: dict[str, tuple[Permission, Permission, Callable[[Session, EnclaveSpec, Database], Any]]] = {
    # (what the role holds, what it lacks, the action)
    "onboard with roles": (P.ACCOUNTS_MANAGE, P.ROLES_GRANT, lambda s, spec, db: _onboard(s, spec)),
    "cohort with roles": (P.ACCOUNTS_MANAGE, P.ROLES_GRANT,
                          lambda s, spec, db: lifecycle.onboard_many(s, SPLIT, spec, [NEWCOMER], reason="x")),
    "promote with roles": (P.ACCOUNTS_MANAGE, P.ROLES_GRANT,
                           lambda s, spec, db: lifecycle.promote(s, SPLIT, "sci", roles=[Role.SECURITY],
                                                                 reason="x")),
    "rekey without journal.read": (P.ROLES_GRANT, P.JOURNAL_READ,
                                   lambda s, spec, db: JournalService(db).rekey(SPLIT, reason="x")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_permission_is_checked_on_its_own(db: Database, spec: EnclaveSpec, admin: str, unchanged: Any,
                                               monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    held, lacked, action = CASES[case]
    onboard(db, spec, "sci")
    onboard(db, spec, SPLIT, kind=AccountKind.STAFF, roles=[Role.SECURITY])
    table = {**permissions.ROLE_PERMISSIONS, Role.SECURITY: frozenset({held})}
    monkeypatch.setattr(permissions, "ROLE_PERMISSIONS", table)
    err = unchanged(lambda s: action(s, spec, db), PermissionDenied)
    assert f"may not {lacked.value}" in str(err)


def test_with_both_permissions_the_actions_go_through(db: Database, spec: EnclaveSpec, admin: str,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The same role holding both: each action is allowed, so the refusals above are for the one permission."""
    onboard(db, spec, "sci")
    onboard(db, spec, SPLIT, kind=AccountKind.STAFF, roles=[Role.SECURITY])
    both = frozenset({P.ACCOUNTS_MANAGE, P.ROLES_GRANT, P.JOURNAL_READ})
    monkeypatch.setattr(permissions, "ROLE_PERMISSIONS", {**permissions.ROLE_PERMISSIONS, Role.SECURITY: both})
    with db.session() as s:
        _onboard(s, spec)
        lifecycle.promote(s, SPLIT, "sci", roles=[Role.SECURITY], reason="x")
    with pytest.raises(Conflict, match="nothing to rekey"):  # past both checks: this journal is keyed already
        JournalService(db).rekey(SPLIT, reason="x")
