"""The Notebooks page's "active accounts" figure (review: dash_count.py).

docs/api.md, "Dashboard": the Notebooks page shows active accounts, listed for callers with accounts.manage. The
figure is how many accounts are active — all of them, not the rows of a table cut short — and a caller who may
not list accounts is not told a number at all: "—", with the note that listing accounts needs accounts.manage
(a 0 would read as a fact: "this enclave has no active account")."""

from __future__ import annotations

import re

from enclave.accounts import lifecycle
from enclave.accounts.types import AccountKind, AccountStatus
from tests.api.conftest import ADMIN, SCIENCE, STAFF_ROLE_USERS, World

LISTED = 500
"""The most rows the page's accounts table lists (``enclave.api.dashboard.LISTED``)."""

ACTIVE_IN_FIXTURE = 1 + len(STAFF_ROLE_USERS) + 1 + 1 + 3 - 1
"""tests/api/conftest.populate: root, one account per staff role, sci, victim, three science targets, one of
which (sciexpired) expired."""


def _figure(world: World, user: str) -> tuple[str, str]:
    page = world.client.get("/notebooks", headers=world.as_(user))
    assert page.status_code == 200
    found = re.search(r'id="nb-accounts">([^<]*)<', page.text)
    assert found is not None
    return found.group(1).strip(), page.text


def test_a_caller_who_may_not_list_accounts_sees_a_dash_not_zero(world: World) -> None:
    for user in (SCIENCE, STAFF_ROLE_USERS[next(iter(STAFF_ROLE_USERS))]):
        figure, text = _figure(world, user)
        assert figure == "—", (user, figure)
        assert "Listing accounts needs accounts.manage." in text


def test_an_account_manager_sees_how_many_are_active(world: World) -> None:
    assert _figure(world, ADMIN)[0] == str(ACTIVE_IN_FIXTURE)


def test_the_figure_counts_every_active_account_beyond_the_listed_ones(world: World) -> None:
    more = LISTED + 20
    with world.db.session() as s:
        rows = [lifecycle.NewAccount(username=f"bulk{i}", name=f"Bulk {i}", email=f"bulk{i}@example.org",
                                     kind=AccountKind.STAFF) for i in range(more)]
        lifecycle.onboard_many(s, ADMIN, world.spec, rows, reason="a large cohort")
    active = len(world.service.factory.accounts.list_accounts(ADMIN, status=AccountStatus.ACTIVE))
    assert active == ACTIVE_IN_FIXTURE + more
    figure, text = _figure(world, ADMIN)
    assert figure == str(active)
    assert text.count("<tr><td>bulk") <= LISTED  # the table stays bounded; the figure does not
