"""What the columns hold is what the rules accept, on both back ends (review of the database layer: lengths,
uid_overflow): a name, email or proposal id longer than its column, and a uid past the rules' own maximum, are
refused as input with the limit and the fix — before anything is written — where SQLite stored them whole and
PostgreSQL failed with a raw DataError."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from enclave.accounts import lifecycle
from enclave.accounts.models import Account, Person
from enclave.accounts.types import AccountKind
from enclave.db import Database
from enclave.errors import Conflict, InputError
from enclave.spec.models import EnclaveSpec
from tests.accounts.conftest import ADMIN, NOW, onboard

Refuse = Callable[[Callable[[Session], object], type[Exception]], Exception]


def test_the_limits_are_the_columns() -> None:
    assert lifecycle.NAME_MAX == Person.__table__.c.name.type.length == 200  # type: ignore[attr-defined]
    assert lifecycle.EMAIL_MAX == Person.__table__.c.email.type.length == 254  # type: ignore[attr-defined]
    assert lifecycle.PROPOSAL_MAX == Account.__table__.c.allocation_id.type.length == 64  # type: ignore[attr-defined]
    assert lifecycle.UID_MAX == 2**31 - 2


def _onboard(spec: EnclaveSpec, **kw: Any) -> Callable[[Session], object]:
    fields = {"name": "Ursula", "email": "u1@example.org", "kind": AccountKind.SCIENCE} | kw
    return lambda s: lifecycle.onboard(s, ADMIN, spec, "u1", reason="test", now=NOW, **fields)


@pytest.mark.parametrize(("field", "value", "words"), [
    ("name", "N" * 201, "is 201 characters long; at most 200 fit"),
    ("email", "u" * 248 + "@ex.org", "is 255 characters long; at most 254 fit"),
])
def test_a_name_or_email_longer_than_its_column_is_refused_before_anything_is_written(
        spec: EnclaveSpec, admin: str, unchanged: Refuse, field: str, value: str, words: str) -> None:
    error = unchanged(_onboard(spec, **{field: value}), InputError)
    assert isinstance(error, InputError)
    assert [(p.where, p.what) for p in error.problems] == [(field, words)]
    assert error.problems[0].fix


def test_the_longest_name_and_email_that_fit_are_stored(db: Database, spec: EnclaveSpec, admin: str) -> None:
    email = "u" * 247 + "@ex.org"
    with db.session() as s:
        account = _onboard(spec, name="N" * 200, email=email)(s)
        assert isinstance(account, Account)
    with db.session() as s:
        person = lifecycle.person_of(s, "u1")
        assert (len(person.name), person.email) == (200, email)


def test_a_proposal_id_longer_than_its_column_is_refused_wherever_it_is_given(
        db: Database, spec: EnclaveSpec, admin: str, unchanged: Refuse) -> None:
    long = "P" * 65
    error = unchanged(_onboard(spec, allocation=lifecycle.Allocation(long, None, NOW + timedelta(days=30))),
                      InputError)
    assert isinstance(error, InputError)
    assert [(p.where, p.what) for p in error.problems] == [
        ("allocation", "proposal id is 65 characters long; at most 64 fit")]
    onboard(db, spec, "sci", allocation=lifecycle.Allocation("P-1"))
    error = unchanged(lambda s: lifecycle.grow_quota(s, ADMIN, "sci", 10_000, reason="more", proposal_id=long),
                      InputError)
    assert isinstance(error, InputError) and error.problems[0].where == "proposal"
    cohort = [lifecycle.NewAccount("c1", "C1", "c1@example.org", AccountKind.SCIENCE,
                                   allocation=lifecycle.Allocation(long))]
    error = unchanged(lambda s: lifecycle.onboard_many(s, ADMIN, spec, cohort, reason="cohort", now=NOW), InputError)
    assert isinstance(error, InputError)
    assert [p.where for p in error.problems] == ["row 1 (c1) allocation"]


def test_uids_handed_out_stop_at_the_largest_the_rules_accept(db: Database, spec: EnclaveSpec, admin: str,
                                                              unchanged: Refuse) -> None:
    onboard(db, spec, "top", kind=AccountKind.STAFF, uid=lifecycle.UID_MAX)
    error = unchanged(_onboard(spec), Conflict)
    assert isinstance(error, Conflict) and error.problem.where == "uid" and str(lifecycle.UID_MAX) in str(error)
    cohort = [lifecycle.NewAccount("c1", "C1", "c1@example.org", AccountKind.SCIENCE)]
    unchanged(lambda s: lifecycle.onboard_many(s, ADMIN, spec, cohort, reason="cohort", now=NOW), Conflict)
    unchanged(lambda s: lifecycle.demote(s, ADMIN, spec, "top", new_username="top-sci", reason="back"), Conflict)
    # A free uid given explicitly is still taken.
    onboard(db, spec, "u2", uid=lifecycle.UID_BASE + 5)
    with db.session() as s:
        assert lifecycle.get(s, "u2").uid == lifecycle.UID_BASE + 5


def test_one_onboarding_may_take_the_largest_uid_itself(db: Database, spec: EnclaveSpec, admin: str,
                                                       unchanged: Refuse) -> None:
    # UID_MAX is handed out; only past it does onboarding refuse (lifecycle._next_uid, as the cohort's test below
    # for onboard_many).
    onboard(db, spec, "near", kind=AccountKind.STAFF, uid=lifecycle.UID_MAX - 1)
    onboard(db, spec, "last", kind=AccountKind.STAFF)
    with db.session() as s:
        assert lifecycle.get(s, "last").uid == lifecycle.UID_MAX
    unchanged(_onboard(spec), Conflict)


def test_a_cohort_fills_the_uids_up_to_the_largest_and_no_further(db: Database, spec: EnclaveSpec, admin: str,
                                                                  unchanged: Refuse) -> None:
    onboard(db, spec, "near", kind=AccountKind.STAFF, uid=lifecycle.UID_MAX - 2)
    rows = [lifecycle.NewAccount(f"c{i}", f"C{i}", f"c{i}@example.org", AccountKind.SCIENCE) for i in range(3)]
    unchanged(lambda s: lifecycle.onboard_many(s, ADMIN, spec, rows, reason="cohort", now=NOW), Conflict)
    with db.session() as s:
        made = lifecycle.onboard_many(s, ADMIN, spec, rows[:2], reason="cohort", now=NOW)
        assert [a.uid for a in made] == [lifecycle.UID_MAX - 1, lifecycle.UID_MAX]
