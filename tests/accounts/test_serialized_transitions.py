"""Every account transition takes the journal's head lock before its checks (``lifecycle.serialized``), on both
back ends (review of the database layer: race_grant_demote, race_grow_quota, race_bootstrap, race_token_parent).

On PostgreSQL (READ COMMITTED) each statement sees a new snapshot: a transition that checked before it locked could
see a state another transition was about to end, and write on top of it. Each test holds one transition right after
its check (``tests.races.race``) while another runs, then checks the outcome: the second must have waited for the
first and seen its result."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from enclave.accounts import lifecycle, storage, tokens
from enclave.accounts.models import Token
from enclave.accounts.types import AccountKind, AccountStatus
from enclave.db import Database
from enclave.errors import Conflict, NotFound, Unauthenticated
from enclave.journal import query
from enclave.spec.models import EnclaveSpec, Role
from tests.accounts.conftest import ADMIN, NOW, onboard
from tests.races import race


def _quota_history(db: Database, username: str) -> list[tuple[float, float]]:
    with db.session() as s:
        return [(e.before["quota_gib"], e.after["quota_gib"]) for e in query(s, target=f"account/{username}")
                if e.action in ("accounts.grow-quota", "accounts.correct-quota")]


def _quota(db: Database, username: str) -> float:
    with db.session() as s:
        return lifecycle.get(s, username).quota_gib


def test_a_grant_held_after_its_check_cannot_give_a_demoted_person_a_staff_role(
        db: Database, spec: EnclaveSpec, admin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    onboard(db, spec, "alice", kind=AccountKind.STAFF)

    def grant() -> Any:
        with db.session() as s:
            return lifecycle.grant_role(s, ADMIN, "alice", Role.SYSADMIN, reason="on call")

    def demote() -> Any:
        with db.session() as s:
            return lifecycle.demote(s, ADMIN, spec, "alice", new_username="alice-sci", reason="back to science")

    out = race(monkeypatch, lifecycle, "_check_roles", grant, demote)
    assert not isinstance(out["second"], BaseException), out
    with db.session() as s:
        science = lifecycle.get(s, "alice-sci")
        assert science.status == AccountStatus.ACTIVE and science.kind == AccountKind.SCIENCE
        # Roles belong to the person: a sysadmin grant landing after the demote would be the science account's.
        assert lifecycle.roles_of(s, "alice-sci") == [Role.SCIENCE_USER]


def test_two_quota_grows_at_once_never_shrink_the_quota_and_journal_true_befores(
        db: Database, spec: EnclaveSpec, admin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    onboard(db, spec, "bob", kind=AccountKind.STAFF)
    start = _quota(db, "bob")

    def grow(size: float) -> Any:
        def go() -> Any:
            with db.session() as s:
                return lifecycle.grow_quota(s, ADMIN, "bob", size, reason="bigger allocation").quota_gib
        return go

    out = race(monkeypatch, lifecycle, "quota_problems", grow(start + 100), grow(start + 200))
    assert out == {"first": start + 100, "second": start + 200}
    assert _quota(db, "bob") == start + 200
    assert _quota_history(db, "bob") == [(start, start + 100), (start + 100, start + 200)]


def test_a_quota_correction_and_a_grow_at_once_journal_what_each_replaced(
        db: Database, spec: EnclaveSpec, admin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    onboard(db, spec, "bob", kind=AccountKind.STAFF)
    start = _quota(db, "bob")

    def correct() -> Any:
        with db.session() as s:
            return lifecycle.correct_quota(s, ADMIN, "bob", start / 2, reason="grown by mistake").quota_gib

    def grow() -> Any:
        with db.session() as s:
            return lifecycle.grow_quota(s, ADMIN, "bob", start * 3, reason="bigger allocation").quota_gib

    out = race(monkeypatch, lifecycle, "quota_problems", correct, grow)
    assert out == {"first": start / 2, "second": start * 3}
    assert _quota(db, "bob") == start * 3
    assert _quota_history(db, "bob") == [(start, start / 2), (start / 2, start * 3)]


def test_a_namespace_join_held_after_loading_the_account_cannot_follow_its_departure(
        db: Database, spec: EnclaveSpec, admin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    namespace = sorted(lifecycle.app_namespaces(spec))[0]
    onboard(db, spec, "carol", kind=AccountKind.STAFF)

    def join() -> Any:
        with db.session() as s:
            return lifecycle.join_namespace(s, ADMIN, spec, "carol", namespace, reason="new project")

    def depart() -> Any:
        with db.session() as s:
            return lifecycle.depart(s, ADMIN, "carol", reason="left the project")

    out = race(monkeypatch, lifecycle, "_load", join, depart)
    assert not isinstance(out["first"], BaseException) and not isinstance(out["second"], BaseException), out
    with db.session() as s:
        carol = lifecycle.get(s, "carol")
        assert carol.status == AccountStatus.DEPARTED
        assert [m.namespace for m in carol.namespaces] == []


def test_two_leaves_of_one_namespace_at_once_journal_one_leave(
        db: Database, spec: EnclaveSpec, admin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    namespace = sorted(lifecycle.app_namespaces(spec))[0]
    onboard(db, spec, "dan", kind=AccountKind.STAFF, namespaces=[namespace])

    def leave() -> Any:
        with db.session() as s:
            return lifecycle.leave_namespace(s, ADMIN, "dan", namespace, reason="project over")

    out = race(monkeypatch, lifecycle, "_load", leave, leave)
    assert not isinstance(out["first"], BaseException), out
    assert isinstance(out["second"], NotFound), out
    with db.session() as s:
        assert len(query(s, action="accounts.leave-namespace")) == 1


def test_two_bootstraps_at_once_make_one_first_sysadmin(db: Database, spec: EnclaveSpec,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def bootstrap(name: str) -> Any:
        def go() -> Any:
            with db.session() as s:
                return lifecycle.bootstrap(s, spec, name, name=name.title(), email=f"{name}@example.org",
                                           now=NOW).username
        return go

    out = race(monkeypatch, storage, "count_accounts", bootstrap("alice"), bootstrap("mallory"))
    assert out["first"] == "alice" and isinstance(out["second"], Conflict), out
    with db.session() as s:
        assert [a.username for a in lifecycle.list_accounts(s)] == ["alice"]
        assert [e.target for e in query(s, action="accounts.bootstrap")] == ["account/alice"]


def test_a_token_issued_with_a_parent_being_revoked_is_revoked_with_it(
        db: Database, spec: EnclaveSpec, admin: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with db.session() as s:
        parent = tokens.issue(s, ADMIN, ADMIN, ["*"], 3600, reason="leaked later")
    parent_key = parent.split("_")[1]

    def issue() -> Any:
        with db.session() as s:
            return tokens.issue(s, ADMIN, ADMIN, ["*"], 3600, reason="child", parent=parent_key)

    def revoke() -> Any:
        with db.session() as s:
            return tokens.revoke(s, ADMIN, parent_key, reason="the parent leaked")

    out = race(monkeypatch, tokens, "_parent", issue, revoke)
    assert out["second"] is None, out
    with db.session() as s:
        live = s.execute(sa.select(Token.key).where(Token.revoked_at.is_(None))).scalars().all()
        assert live == []  # the parent and every token issued with it
        for token in (parent, out["first"]):
            if isinstance(token, str):
                with pytest.raises(Unauthenticated):
                    tokens.verify(s, token)
