"""The journal is read as one state, on both back ends (review of the database layer: race_verify,
journal_prefix_case).

``verify`` reads the head, then the entries. On PostgreSQL (READ COMMITTED) each statement sees a new snapshot: an
entry committed between the two was in the chain but not in the head, and an intact journal was reported tampered.
The head is now read FOR SHARE (writers append under its FOR UPDATE lock) and fresh from the database, so the
entries read next are exactly those it covers. The action prefix filter is case-sensitive on both back ends, as the
exact filter is (LIKE ignored ASCII case on SQLite only), and takes '%' and '_' literally."""

from __future__ import annotations

from typing import Any

import pytest

from enclave import journal
from enclave.db import Database
from enclave.journal import storage
from enclave.journal.models import JournalHead
from tests.races import race


def _write(db: Database, action: str, target: str = "t") -> None:
    with db.session() as s:
        journal.record(s, actor="root", action=action, target=target, reason="test", before=None, after=None)


def test_verify_while_an_entry_is_appended_sees_one_state(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(3):
        _write(db, "test.write", f"t/{i}")

    def verify() -> Any:
        with db.session() as s:
            return journal.verify(s)

    # seal_of runs between the head's read and the entries' (before and after the fix alike).
    out = race(monkeypatch, storage, "seal_of", verify, lambda: _write(db, "test.write", "t/3"))
    assert out == {"first": 3, "second": None}, out
    with db.session() as s:
        assert journal.verify(s) == 4


def test_verify_reads_the_head_fresh_not_from_the_session(db: Database) -> None:
    _write(db, "test.write")
    with db.session() as s:
        assert journal.verify(s) == 1
        held = s.get(JournalHead, 1)  # kept alive in the session's identity map (it holds objects weakly)
        s.commit()  # sessions keep their objects' values past a commit (expire_on_commit=False)
        _write(db, "test.write")  # another transaction appends
        assert journal.verify(s) == 2
        assert held is not None and held.seq == 2


def test_the_prefix_filter_is_case_sensitive_on_both_back_ends(db: Database) -> None:
    for action in ("accounts.onboard", "Accounts.depart", "roles.grant"):
        _write(db, action)
    with db.session() as s:
        def actions(pattern: str) -> list[str]:
            return [e.action for e in journal.query(s, action=pattern)]

        assert actions("accounts.*") == ["accounts.onboard"]
        assert actions("Accounts.*") == ["Accounts.depart"]
        assert actions("ACCOUNTS.*") == []
        assert actions("ACCOUNTS.ONBOARD") == []  # the exact filter: case-sensitive on both already
        assert actions("*") == ["accounts.onboard", "Accounts.depart", "roles.grant"]


def test_the_prefix_filter_takes_like_wildcards_literally(db: Database) -> None:
    for action in ("a_b.x", "axb.x", "a%.y", "az.y"):
        _write(db, action)
    with db.session() as s:
        assert [e.action for e in journal.query(s, action="a_b.*")] == ["a_b.x"]
        assert [e.action for e in journal.query(s, action="a%*")] == ["a%.y"]
