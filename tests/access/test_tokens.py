"""API tokens: shown once, stored hashed, refused when malformed, unknown, expired, revoked or inactive."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from enclave import journal
from enclave.access.permissions import Permission
from enclave.accounts import lifecycle, tokens
from enclave.accounts.types import AccountKind
from enclave.db import Database
from enclave.errors import InputError, NotFound, PermissionDenied, Unauthenticated
from enclave.spec.models import EnclaveSpec
from tests.accounts.conftest import ADMIN, NOW, onboard, snapshot


@pytest.fixture
def users(db: Database, spec: EnclaveSpec, admin: str) -> None:
    onboard(db, spec, "ann")
    onboard(db, spec, "ben", kind=AccountKind.STAFF)


def issue(db: Database, actor: str, user: str, scopes: list[str] | None = None, ttl: int = 3600) -> str:
    with db.session() as s:
        return tokens.issue(s, actor, user, scopes or ["*"], ttl, now=NOW)


def check(db: Database, token: str, **kw: Any) -> str:
    with db.session() as s:
        return tokens.verify(s, token, now=kw.pop("now", NOW), **kw).username


def test_plaintext_is_shown_once_and_never_stored(db: Database, users: None) -> None:
    token = issue(db, "ann", "ann")
    secret = token.split("_", 2)[2]
    assert check(db, token) == "ann"
    dump = repr(snapshot(db))
    assert secret not in dump and token not in dump
    with db.session() as s:
        entry = journal.query(s, action="tokens.issue")[0]
        assert entry.actor == "ann" and entry.target == "account/ann" and secret not in repr(entry)


@pytest.mark.parametrize("bad", ["", "garbage", "enc_short_secret", "Bearer enc_" + "a" * 16 + "_" + "b" * 43,
                                 "enc_" + "a" * 16 + "_" + "b" * 42, "enc_" + "!" * 16 + "_" + "b" * 43])
def test_malformed(db: Database, users: None, bad: str) -> None:
    with pytest.raises(Unauthenticated, match="malformed"):
        check(db, bad)


def test_unknown_and_wrong_secret(db: Database, users: None) -> None:
    token = issue(db, "ann", "ann")
    prefix, key, secret = token.split("_", 2)
    wrong = f"{prefix}_{key}_{'A' if secret[0] != 'A' else 'B'}{secret[1:]}"
    with pytest.raises(Unauthenticated, match="unknown token"):
        check(db, wrong)
    with pytest.raises(Unauthenticated, match="unknown token"):
        check(db, f"{prefix}_{'0' * 16}_{secret}")


def test_expiry(db: Database, users: None) -> None:
    token = issue(db, "ann", "ann", ttl=600)
    assert check(db, token, now=NOW + timedelta(seconds=599)) == "ann"
    with pytest.raises(Unauthenticated, match="expired"):
        check(db, token, now=NOW + timedelta(seconds=600))


def test_revocation_by_owner_and_by_admin(db: Database, users: None, unchanged: Any) -> None:
    t1, t2 = issue(db, "ann", "ann"), issue(db, ADMIN, "ann")
    unchanged(lambda s: tokens.revoke(s, "ben", t1), PermissionDenied)
    with db.session() as s:
        tokens.revoke(s, "ann", t1)
        tokens.revoke(s, ADMIN, t2.split("_")[1])
    for t in (t1, t2):
        with pytest.raises(Unauthenticated, match="revoked"):
            check(db, t)
    unchanged(lambda s: tokens.revoke(s, ADMIN, "nosuchkey"), NotFound)
    with db.session() as s:
        assert [e.actor for e in journal.query(s, action="tokens.revoke")] == ["ann", ADMIN]


def test_departure_takes_effect_on_the_next_request(db: Database, users: None) -> None:
    token = issue(db, "ben", "ben")
    assert check(db, token) == "ben"
    with db.session() as s:
        lifecycle.depart(s, ADMIN, "ben", reason="left")
    with pytest.raises(Unauthenticated, match="departed"):
        check(db, token)
    with pytest.raises(Unauthenticated, match="departed"):
        check(db, token, data_read=True)
    with db.session() as s:
        assert all(t.revoked_at is not None for t in tokens.list_tokens(s, "ben"))


def test_expired_science_account_keeps_data_read_only(db: Database, users: None, unchanged: Any) -> None:
    token = issue(db, "ann", "ann", ["data.read", "data.write", "notebooks.spawn"])
    with db.session() as s:
        lifecycle.expire(s, ADMIN, "ann", reason="allocation ended")
    with pytest.raises(Unauthenticated, match="expired"):
        check(db, token)
    assert check(db, token, data_read=True, scope="data.read") == "ann"
    # Seed §4: an expired account "will still be able to access their data", after its tokens lapse too: it may be
    # issued data.read (by itself or a sysadmin), and nothing broader.
    unchanged(lambda s: tokens.issue(s, "ann", "ann", ["data.write"], 3600), PermissionDenied)
    unchanged(lambda s: tokens.issue(s, ADMIN, "ann", ["data.read", "notebooks.spawn"], 3600), PermissionDenied)
    fresh = issue(db, "ann", "ann", ["data.read"])
    assert check(db, fresh, data_read=True, scope="data.read") == "ann"


def test_scopes_narrow_a_token(db: Database, users: None) -> None:
    token = issue(db, "ben", "ben", ["data.read", "logs.read"])
    assert check(db, token, scope="data.read") == "ben"
    with pytest.raises(Unauthenticated, match="lacks scope 'notebooks.spawn'"):
        check(db, token, scope="notebooks.spawn")
    with db.session() as s:
        assert tokens.token_permissions(s, token, now=NOW) == {Permission.LOGS_READ}
        star = tokens.issue(s, "ben", "ben", ["*"], 3600, now=NOW)
        assert Permission.BATCH_SUBMIT in tokens.token_permissions(s, star, now=NOW)


@pytest.mark.parametrize("scopes,ttl,message", [([], 3600, "no scope"), (["root"], 3600, "unknown scope"),
                                                (["*"], 10, "out of range"), (["*"], 10**9, "out of range")])
def test_bad_issue_input(db: Database, users: None, unchanged: Any, scopes: list[str], ttl: int,
                         message: str) -> None:
    err = unchanged(lambda s: tokens.issue(s, "ann", "ann", scopes, ttl), InputError)
    assert message in str(err)


def test_only_account_managers_issue_for_others(db: Database, users: None, unchanged: Any) -> None:
    unchanged(lambda s: tokens.issue(s, "ann", "ben", ["*"], 3600), PermissionDenied)
    assert check(db, issue(db, ADMIN, "ben")) == "ben"


def test_a_token_derives_only_from_the_issuers_own(db: Database, users: None, unchanged: Any) -> None:
    """``parent`` is the token the issuing request came with: a child of someone else's token would take that
    token's lineage and scopes (Gafaelfawr derives a child only from the session's own token). The API passes the
    caller's own key, so only the service's check stands between another caller and this (a mutant without it
    passed every test, stop 57)."""
    bens = issue(db, "ben", "ben").split("_")[1]
    err = unchanged(lambda s: tokens.issue(s, "ann", "ann", ["*"], 3600, parent=bens, now=NOW), PermissionDenied)
    assert f"token {bens} is not 'ann''s" in str(err)
    anns = issue(db, "ann", "ann").split("_")[1]
    with db.session() as s:
        child = tokens.issue(s, "ann", "ann", ["*"], 3600, parent=anns, now=NOW)
    assert check(db, child) == "ann"
