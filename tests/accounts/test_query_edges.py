"""The accounts' rules at their edges: an allocation's last moment, the queries' filters, local mode's OS-user names
and mappings, a quota following its allocation, joining a namespace, onboarding's problems said once. Each test here
failed a one-line bug that every other test passed (a mutation round over ``accounts/lifecycle.py``, ``storage.py``
and ``local.py``, stop 59; docs/accounts.md, "The lifecycle at its edges")."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from enclave.accounts import lifecycle, local, storage
from enclave.accounts.lifecycle import Allocation
from enclave.accounts.types import AccountKind, AccountStatus
from enclave.db import Database
from enclave.errors import Conflict, InputError, InvalidTransition
from enclave.journal import query
from enclave.spec.models import EnclaveSpec
from tests.accounts.conftest import ADMIN, NOW, onboard


def test_an_allocation_ending_at_this_very_moment_is_due(db: Database, spec: EnclaveSpec, admin: str) -> None:
    # An allocation's expiry is the moment it ends: at that moment it has ended (storage.science_due, "at or
    # before"), so ``expire-due`` run then expires it rather than leaving it a whole run longer.
    ends = NOW + timedelta(days=30)
    onboard(db, spec, "edge", allocation=Allocation("P-1", expires=ends))
    onboard(db, spec, "later", allocation=Allocation("P-2", expires=ends + timedelta(seconds=1)))
    with db.session() as s:
        assert [a.username for a in lifecycle.expire_due(s, ADMIN, now=ends)] == ["edge"]
        assert lifecycle.get(s, "later").status == AccountStatus.ACTIVE


def test_an_allocation_ending_now_is_not_given(db: Database, spec: EnclaveSpec, admin: str, unchanged: Any) -> None:
    # The same moment from the other side (Allocation.problems): an allocation ending at the onboarding's own
    # moment would be due at once, so it is refused as not in the future; a second later is accepted.
    def at_now(s: Any) -> object:
        return lifecycle.onboard(s, ADMIN, spec, "now", name="Now", email="now@example.org",
                                 kind=AccountKind.SCIENCE, allocation=Allocation("P-1", expires=NOW), reason="test",
                                 now=NOW)

    err = unchanged(at_now, InputError)
    assert f"{NOW.date()} is not in the future" in str(err)
    onboard(db, spec, "soon", allocation=Allocation("P-1", expires=NOW + timedelta(seconds=1)))


def test_accounts_are_listed_and_counted_by_kind_and_status(db: Database, spec: EnclaveSpec, admin: str) -> None:
    # ``enclave accounts list --kind``, ``GET /accounts?kind=`` and the dashboard's counts filter in SQL
    # (storage.list_accounts, count_accounts): each filter keeps exactly the accounts that match it.
    onboard(db, spec, "sci1")
    onboard(db, spec, "sci2")
    onboard(db, spec, "staff1", kind=AccountKind.STAFF)
    with db.session() as s:
        lifecycle.expire(s, ADMIN, "sci2", reason="allocation ended", now=NOW)
    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({}, ["root", "sci1", "sci2", "staff1"]),
        ({"kind": AccountKind.SCIENCE}, ["sci1", "sci2"]),
        ({"kind": AccountKind.STAFF}, ["root", "staff1"]),
        ({"status": AccountStatus.ACTIVE}, ["root", "sci1", "staff1"]),
        ({"status": AccountStatus.ACTIVE, "kind": AccountKind.SCIENCE}, ["sci1"]),
        ({"status": AccountStatus.EXPIRED}, ["sci2"]),
        ({"status": AccountStatus.EXPIRED, "kind": AccountKind.STAFF}, []),
    ]
    with db.session() as s:
        for filters, usernames in cases:
            assert [a.username for a in lifecycle.list_accounts(s, **filters)] == usernames, filters
            assert storage.count_accounts(s, **filters) == len(usernames), filters


# An OS user's name as it is stored: ``local_identities.os_user`` is VARCHAR(64) (accounts/models.py and migration
# 0003). A name is what ``id -un`` prints: nothing empty, longer than the column, unprintable, or padded.
NOT_OS_USERS = ["", "x" * 65, "al\nice", "al\tice", " alice", "alice "]


@pytest.mark.parametrize("name", NOT_OS_USERS, ids=["empty", "65-chars", "newline", "tab", "leading-space",
                                                   "trailing-space"])
def test_a_name_no_os_user_has_is_refused_by_map_unmap_and_acting(name: str, db: Database, spec: EnclaveSpec,
                                                                   admin: str, unchanged: Any) -> None:
    err = unchanged(lambda s: local.map_os_user(s, ADMIN, name, ADMIN, reason="test"), InputError)
    assert f"{name!r} is not an OS user name" in str(err) and "id -un" in str(err)
    unchanged(lambda s: local.unmap_os_user(s, ADMIN, name, ADMIN, reason="test"), InputError)
    unchanged(lambda s: local.acting_account(s, name, ADMIN), InputError)


def test_an_os_user_name_as_long_as_the_column_is_mapped(db: Database, spec: EnclaveSpec, admin: str) -> None:
    name = "x" * 64
    with db.session() as s:
        assert local.map_os_user(s, ADMIN, name, ADMIN, reason="test", now=NOW)
    with db.session() as s:
        assert local.acting_account(s, name, None) == ADMIN
        assert local.unmap_os_user(s, ADMIN, name, ADMIN, reason="test")


def test_only_an_active_account_is_mapped_and_mapping_twice_changes_nothing(db: Database, spec: EnclaveSpec,
                                                                            admin: str, unchanged: Any) -> None:
    # local.map_os_user: an expired account has no platform access, so no OS user may act as it; a mapping
    # that exists already is reported as no change (False) and journaled once.
    onboard(db, spec, "gone")
    with db.session() as s:
        lifecycle.expire(s, ADMIN, "gone", reason="allocation ended", now=NOW)
    err = unchanged(lambda s: local.map_os_user(s, ADMIN, "alice", "gone", reason="test"), InvalidTransition)
    assert "only an active account can be mapped" in str(err)
    with db.session() as s:
        assert local.map_os_user(s, ADMIN, "alice", ADMIN, reason="test", now=NOW)
    with db.session() as s:
        assert not local.map_os_user(s, ADMIN, "alice", ADMIN, reason="again", now=NOW)
        assert [e.reason for e in query(s, action=local.MAP_ACTION)] == ["test"]
        assert local.mapped(s, "alice") == [ADMIN]


def test_unmapping_withdraws_that_one_mapping_once(db: Database, spec: EnclaveSpec, admin: str) -> None:
    # local.unmap_os_user: the OS user keeps its other mappings; a mapping that is not there is no change (False)
    # and not journaled.
    onboard(db, spec, "staff1", kind=AccountKind.STAFF)
    with db.session() as s:
        for username in (ADMIN, "staff1"):
            local.map_os_user(s, ADMIN, "alice", username, reason="test", now=NOW)
        local.map_os_user(s, ADMIN, "bob", "staff1", reason="test", now=NOW)
    with db.session() as s:
        assert local.unmap_os_user(s, ADMIN, "alice", "staff1", reason="moved on")
    with db.session() as s:
        assert not local.unmap_os_user(s, ADMIN, "alice", "staff1", reason="again")
        assert (local.mapped(s, "alice"), local.mapped(s, "bob")) == ([ADMIN], ["staff1"])
        assert [e.reason for e in query(s, action=local.UNMAP_ACTION)] == ["moved on"]


@pytest.mark.parametrize(("username", "email", "expected"), [
    ("root", "nope", [("username", "'root' is taken (usernames are never reused)"),
                      ("email", "'nope' is not an email address")]),
    ("Bad Name", "x@example.org", [("username", "'Bad Name' is not a valid username")]),
])
def test_onboarding_reports_each_problem_once_and_all_at_once(username: str, email: str,
                                                              expected: list[tuple[str, str]], db: Database,
                                                              spec: EnclaveSpec, admin: str, unchanged: Any) -> None:
    # The username taken is found with the database, the email's form without it: both are said in one refusal.
    # A username of the wrong form is said once, not again by the database check.
    err = unchanged(lambda s: lifecycle.onboard(s, ADMIN, spec, username, name="X", email=email,
                                                kind=AccountKind.SCIENCE, reason="test", now=NOW), InputError)
    assert [(p.where, p.what) for p in err.problems] == expected


def test_a_quota_change_follows_the_allocation_only_where_there_is_one(db: Database, spec: EnclaveSpec,
                                                                       admin: str) -> None:
    # grow-quota is a larger allocation (seed §6.2): a science account's allocation quota, and its proposal when
    # one is given, follow; a staff account has no allocation to follow. correct-quota follows an allocation
    # only where the account has one.
    onboard(db, spec, "funded", allocation=Allocation("P-1", quota_gib=200, expires=NOW + timedelta(days=30)))
    onboard(db, spec, "unfunded")
    onboard(db, spec, "staffer", kind=AccountKind.STAFF)
    with db.session() as s:
        lifecycle.grow_quota(s, ADMIN, "funded", 500, reason="bigger", proposal_id="P-2", now=NOW)
        lifecycle.grow_quota(s, ADMIN, "staffer", 500, reason="bigger", proposal_id="P-3", now=NOW)
    with db.session() as s:
        funded, staffer = lifecycle.get(s, "funded"), lifecycle.get(s, "staffer")
        assert (funded.quota_gib, funded.allocation_quota_gib, funded.allocation_id) == (500, 500, "P-2")
        assert (staffer.quota_gib, staffer.allocation_quota_gib, staffer.allocation_id) == (500, None, None)
    with db.session() as s:
        for username in ("funded", "unfunded", "staffer"):
            lifecycle.correct_quota(s, ADMIN, username, 300, reason="mistaken", now=NOW)
    with db.session() as s:
        got = {u: (a.quota_gib, a.allocation_quota_gib)
               for u, a in ((u, lifecycle.get(s, u)) for u in ("funded", "unfunded", "staffer"))}
        assert got == {"funded": (300, 300), "unfunded": (300, None), "staffer": (300, None)}


def test_joining_a_namespace_is_refused_for_one_not_in_the_spec_a_departed_account_or_twice(
        db: Database, spec: EnclaveSpec, admin: str, unchanged: Any) -> None:
    onboard(db, spec, "dev", kind=AccountKind.STAFF, namespaces=["firefly"])
    onboard(db, spec, "left", kind=AccountKind.STAFF)
    with db.session() as s:
        lifecycle.depart(s, ADMIN, "left", reason="left the project", now=NOW)

    def join(username: str, namespace: str) -> Any:
        return lambda s: lifecycle.join_namespace(s, ADMIN, spec, username, namespace, reason="test", now=NOW)

    assert "not an application namespace" in str(unchanged(join("dev", "nope"), InputError))
    assert "only active accounts join namespaces" in str(unchanged(join("left", "qserv"), InvalidTransition))
    assert "'dev' already belongs to firefly" in str(unchanged(join("dev", "firefly"), Conflict))
