"""The services check every role themselves, also for the reads only one front end calls and guards.

The dashboard shows the broker's churn and failures only with journal.read, and the count of active accounts only
with accounts.manage (``api.dashboard``); the CLI lists everyone's roles. Each service still checks the caller's
roles, as gafaelfawr's services do whatever the route in front of them checked: the next front end that calls one
must not inherit a read nobody refuses. A mutation round (stop 57) removed each of these checks and no test
failed."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from enclave.access.permissions import ROLE_PERMISSIONS, Permission
from enclave.broker.decide import BROKER_ACTOR
from enclave.clock import utcnow
from enclave.errors import PermissionDenied
from enclave.services.factory import Factory
from enclave.spec import Role
from tests.api.conftest import ADMIN, ProjectedBackend, World, role_user

P = Permission

READS: dict[str, tuple[Callable[[Factory, ProjectedBackend, str], Any], Permission]] = {
    "count of active accounts": (lambda f, b, actor: f.accounts.count_accounts(actor), P.ACCOUNTS_MANAGE),
    "every account's roles": (lambda f, b, actor: f.accounts.roles(actor), P.ROLES_GRANT),
    "every account": (lambda f, b, actor: f.accounts.list_accounts(actor), P.ACCOUNTS_MANAGE),
    "broker churn": (lambda f, b, actor: f.broker(b, "projected").churn(actor), P.JOURNAL_READ),
    "broker failures": (lambda f, b, actor: f.broker(b, "projected").failures(
        actor, since=utcnow() - timedelta(days=8), limit=10), P.JOURNAL_READ),
}


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
@pytest.mark.parametrize("read", list(READS))
def test_a_service_read_checks_the_callers_roles(world: World, role: Role, read: str) -> None:
    call, needs = READS[read]
    factory, backend = world.service.factory, ProjectedBackend(world.spec)
    actor = role_user(role)
    if needs in ROLE_PERMISSIONS[role]:
        call(factory, backend, actor)
        return
    with pytest.raises(PermissionDenied, match=f"may not {needs.value}"):
        call(factory, backend, actor)


def test_a_user_sees_their_own_roles_and_nobody_elses(world: World) -> None:
    """``roles`` for one account: your own without roles.grant, another's only with it (or accounts.manage)."""
    accounts, user = world.service.factory.accounts, role_user(Role.SCIENCE_USER)
    assert accounts.roles(user, user) == {user: [Role.SCIENCE_USER.value]}
    with pytest.raises(PermissionDenied):
        accounts.roles(user, "victim")


@pytest.mark.parametrize("role", [r for r in Role if P.ACCOUNTS_MANAGE not in ROLE_PERMISSIONS[r]],
                         ids=lambda r: r.value)
def test_a_start_with_an_admin_who_may_not_manage_accounts_makes_nothing(world: World, role: Role) -> None:
    """``serve`` names the account it starts as (``ensure_accounts``); on a database that has accounts, one that may
    not manage them is no administrator: nothing is made for it — not the broker's service account, not a token."""
    factory, user = world.service.factory, role_user(role)
    assert factory.accounts.ensure_admin(user) is None
    assert factory.ensure_accounts(user) is None
    assert BROKER_ACTOR not in factory.accounts.roles(ADMIN)
    assert factory.accounts.ensure_admin(ADMIN) is False  # a manager, made before: nothing made now either


def test_notebook_options_say_why_an_account_gets_none(world: World) -> None:
    """One rule refuses a notebook (``notebooks.account.require_notebook_access``), on the service's path as on the
    hub's, and it says why: an expired allocation keeps its data readable (seed §4), a role without notebooks.spawn
    gets none."""
    notebooks = world.service.factory.notebooks
    with pytest.raises(PermissionDenied, match="allocation of account 'sciexpired' has expired: its data stay"):
        notebooks.options("sciexpired")
    with pytest.raises(PermissionDenied, match="holds no role that may spawn notebooks"):
        notebooks.options(role_user(Role.SECURITY))
    assert notebooks.options(role_user(Role.SCIENCE_USER)).images
