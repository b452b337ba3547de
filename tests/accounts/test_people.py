"""People, not usernames (issue 16), tried as attacks: one person never holds two active accounts, and the
two-person rule of image vetting (seed §10) compares people and refuses tokens issued on someone's behalf.

Roles belong to the person (seed §2: one person may hold several roles), so a second active account of the
same person would act with every role the person holds, and two accounts of one person are one pair of eyes.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from enclave.accounts import lifecycle, tokens
from enclave.accounts.authorize import permissions_of
from enclave.accounts.lifecycle import Allocation, NewAccount
from enclave.accounts.types import AccountKind, AccountStatus
from enclave.db import Database
from enclave.db.core import on_behalf
from enclave.errors import Conflict, InputError, PermissionDenied
from enclave.ops import images
from enclave.services.factory import Factory
from enclave.spec.models import EnclaveSpec, Role
from tests.accounts.conftest import ADMIN, LATER, NOW, onboard

PERSON = "pat@example.org"
IMAGE = "registry.lsst.local/lsstsqre/sciplat-lab@sha256:" + "c" * 64


@pytest.fixture
def pat(db: Database, spec: EnclaveSpec, admin: str) -> Database:
    """Pat had a science account ('patsci', now expired) and was since onboarded as security staff ('pat')."""
    onboard(db, spec, "patsci", email=PERSON, allocation=Allocation("P-1", expires=LATER))
    with db.session() as s:
        lifecycle.expire(s, ADMIN, "patsci", reason="allocation ended", now=NOW)
    onboard(db, spec, "pat", kind=AccountKind.STAFF, email=PERSON, roles=[Role.SECURITY, Role.DEVELOPER])
    return db


def _status(db: Database, username: str) -> str:
    with db.session() as s:
        return lifecycle.get(s, username).status


def test_renewing_the_old_account_of_someone_now_staff_is_refused(pat: Database, spec: EnclaveSpec,
                                                                   unchanged: Any) -> None:
    error = unchanged(lambda s: lifecycle.renew(s, ADMIN, "patsci", Allocation("P-2", expires=LATER),
                                                reason="new proposal", spec=spec, now=NOW),
                      Conflict)
    assert "already has the active account 'pat'" in str(error) and "two active accounts" in str(error)
    with pat.session() as s:  # and the expired account holds none of the person's staff roles
        assert permissions_of(s, "patsci") == frozenset()


def test_promoting_the_old_account_of_someone_now_staff_is_refused(pat: Database, unchanged: Any) -> None:
    error = unchanged(lambda s: lifecycle.promote(s, ADMIN, "patsci", reason="joins the project", now=NOW),
                      Conflict)
    assert "'pat'" in str(error)
    assert _status(pat, "patsci") == AccountStatus.EXPIRED


def test_importing_a_person_who_is_active_is_refused(pat: Database, spec: EnclaveSpec, unchanged: Any) -> None:
    row = NewAccount("pat2", "Pat", PERSON, AccountKind.SCIENCE, allocation=Allocation("P-3"))
    error = unchanged(lambda s: lifecycle.onboard_many(s, ADMIN, spec, [row], reason="cohort", now=NOW), InputError)
    assert "already has the active account 'pat'" in str(error)


def _two_active(db: Database) -> None:
    """A database written before the rule existed: reactivate 'patsci' behind the rules' back."""
    with db.session() as s:
        s.execute(sa.text("UPDATE accounts SET status = 'active' WHERE username = 'patsci'"))


def test_demoting_one_of_two_active_accounts_is_refused(pat: Database, spec: EnclaveSpec, unchanged: Any) -> None:
    _two_active(pat)
    error = unchanged(lambda s: lifecycle.demote(s, ADMIN, spec, "pat", new_username="patsci2",
                                                 reason="leaves staff", now=NOW), Conflict)
    assert "'patsci'" in str(error)


def test_one_person_cannot_submit_as_one_account_and_approve_as_another(pat: Database, spec: EnclaveSpec,
                                                                        unchanged: Any) -> None:
    _two_active(pat)  # both accounts act with the person's roles, security included
    with pat.session() as s:
        images.submit(s, spec, "patsci", IMAGE, reason="my image")
    error = unchanged(lambda s: images.approve(s, "pat", IMAGE, reason="looks fine"), PermissionDenied)
    assert "'patsci' and 'pat' are both pat@example.org" in str(error)


def test_an_honest_path_to_two_accounts_still_counts_as_one_person(db: Database, spec: EnclaveSpec, admin: str,
                                                                   unchanged: Any) -> None:
    """Staff submits, is demoted to science (a new account), promoted back with security: still the submitter."""
    onboard(db, spec, "sam", kind=AccountKind.STAFF, email="sam@example.org", roles=[Role.K8S_SERVICE_ADMIN])
    with db.session() as s:
        images.submit(s, spec, "sam", IMAGE, reason="built it")
        lifecycle.demote(s, ADMIN, spec, "sam", new_username="samsci", reason="now a scientist", now=NOW)
        lifecycle.promote(s, ADMIN, "samsci", reason="back on staff", roles=[Role.SECURITY], now=NOW)
    unchanged(lambda s: images.approve(s, "samsci", IMAGE, reason="looks fine"), PermissionDenied)
    onboard(db, spec, "vera", kind=AccountKind.STAFF, roles=[Role.SECURITY])
    with db.session() as s:  # another person may
        assert images.approve(s, "vera", IMAGE, reason="scan clean").status == images.ImageStatus.APPROVED


def test_a_token_issued_on_someones_behalf_cannot_approve(db: Database, spec: EnclaveSpec, admin: str,
                                                          unchanged: Any) -> None:
    """A sysadmin issues '*' tokens for a deployer and a security person and pushes an image through both."""
    onboard(db, spec, "dep", kind=AccountKind.STAFF, roles=[Role.K8S_SERVICE_ADMIN])
    onboard(db, spec, "sec", kind=AccountKind.STAFF, roles=[Role.SECURITY])
    factory = Factory(spec, db)
    for_dep = factory.tokens.issue(ADMIN, "dep", ["*"], 3600)
    for_sec = factory.tokens.issue(ADMIN, "sec", ["*"], 3600)
    dep, sec = factory.tokens.authenticate(for_dep.token), factory.tokens.authenticate(for_sec.token)
    assert (dep.delegated_by, sec.delegated_by) == (ADMIN, ADMIN)
    assert [t.on_behalf for t in factory.tokens.listing(ADMIN, "sec")] == [True]
    factory.images.submit(dep.username, IMAGE, reason="pushed by root")
    with on_behalf(sec.delegated_by):  # what the API does for a request with sec's token (acting_for)
        error = unchanged(lambda s: images.approve(s, sec.username, IMAGE, reason="ok"), PermissionDenied)
    assert "issued for 'sec' by 'root'" in str(error)
    with db.session() as s:  # sec's own token is sec's own act
        own = tokens.issue(s, "sec", "sec", ["*"], 3600)
    caller = factory.tokens.authenticate(own)
    assert caller.delegated_by is None
    with on_behalf(caller.delegated_by):
        view = factory.images.approve(caller.username, IMAGE, reason="scan clean")
    assert view.status == images.ImageStatus.APPROVED and view.decided_by == "sec"


def test_who_issued_the_submitters_token_may_not_approve(db: Database, spec: EnclaveSpec, admin: str,
                                                         unchanged: Any) -> None:
    """A submission through a token issued on the submitter's behalf is its issuer's act too: a sysadmin who is
    also security staff issues a token for a deployer, submits through it, and may not then approve with a token
    of their own (seed §10's two people; a mutant that looked at the submitter alone passed every test, stop 57)."""
    onboard(db, spec, "dep", kind=AccountKind.STAFF, roles=[Role.K8S_SERVICE_ADMIN])
    with db.session() as s:
        lifecycle.grant_role(s, ADMIN, ADMIN, Role.SECURITY, reason="also vets images")
    factory = Factory(spec, db)
    dep = factory.tokens.authenticate(factory.tokens.issue(ADMIN, "dep", ["*"], 3600).token)
    with on_behalf(dep.delegated_by):
        factory.images.submit(dep.username, IMAGE, reason="pushed by root as dep")
    with on_behalf(None):  # root's own token
        error = unchanged(lambda s: images.approve(s, ADMIN, IMAGE, reason="ok"), PermissionDenied)
    assert "through a token issued for 'dep'" in str(error)
