"""The journal: appended in the caller's transaction, hash-chained, tamper-evident, queryable."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from enclave import journal
from enclave.db import Database
from enclave.errors import InputError, IntegrityError
from enclave.journal.models import JournalEntry, JournalHead
from enclave.spec import EnclaveSpec
from tests.local import map_me, use_database

T0 = datetime(2027, 1, 1, tzinfo=UTC)


def fill(db: Database, n: int = 6) -> None:
    with db.session() as s:
        for i in range(1, n + 1):
            journal.record(s, actor="root" if i % 2 else "ops", action="accounts.onboard" if i < 4 else "roles.grant",
                           target=f"account/u{i}", reason=f"step {i}", before=None if i < 4 else {"roles": []},
                           after={"n": i, "when": T0}, at=T0 + timedelta(hours=i))


def sql(db: Database, statement: str, **params: object) -> None:
    with db.session() as s:
        s.execute(sa.text(statement), params)


def verify(db: Database) -> int:
    with db.session() as s:
        return journal.verify(s)


def test_chain_verifies_and_links(db: Database) -> None:
    assert verify(db) == 0
    fill(db)
    assert verify(db) == 6
    with db.session() as s:
        rows = s.execute(sa.select(JournalEntry).order_by(JournalEntry.seq)).scalars().all()
        assert [r.prev_hash for r in rows[1:]] == [r.hash for r in rows[:-1]]
        assert s.get_one(JournalHead, 1).hash == rows[-1].hash


def test_a_rolled_back_change_leaves_no_entry(db: Database) -> None:
    fill(db, 2)
    with pytest.raises(RuntimeError), db.session() as s:
        journal.record(s, actor="root", action="x.y", target="t", reason="r", before=None, after=None)
        raise RuntimeError("the change failed")
    assert verify(db) == 2


@pytest.mark.parametrize("column,value", [("actor", "mallory"), ("action", "roles.revoke"), ("target", "account/x"),
                                          ("reason", "nothing to see"), ("before", "null"),
                                          ("after", '{"n":99}'), ("at", "2020-01-01T00:00:00.000000Z")])
def test_any_edit_is_detected_and_named(db: Database, column: str, value: str) -> None:
    fill(db)
    sql(db, f'UPDATE journal_entries SET "{column}" = :v WHERE seq = 4', v=value)
    with pytest.raises(IntegrityError, match="journal entry 4 .* altered"):
        verify(db)


def test_rehashing_an_edit_breaks_the_next_link(db: Database) -> None:
    """Even someone holding the key who re-hashes only the edited entry breaks the link of the next one."""
    from enclave.journal.chain import entry_hash
    from enclave.journal.seal import seal_of
    fill(db)
    with db.session() as s:
        seal = seal_of(s, journal_empty=False)
        assert seal is not None
        row = s.get_one(JournalEntry, 3)
        row.actor = "mallory"
        row.hash = entry_hash(seal.mac, row.prev_hash, row.seq, row.at, row.actor, row.action, row.target,
                              row.reason, row.before, row.after)
    with pytest.raises(IntegrityError, match="journal entry 4 .* does not follow entry 3"):
        verify(db)


def test_deleting_a_middle_entry_is_detected(db: Database) -> None:
    fill(db)
    sql(db, "DELETE FROM journal_entries WHERE seq = 3")
    with pytest.raises(IntegrityError, match="journal entry 3 is missing"):
        verify(db)


def test_deleting_the_first_entry_is_detected(db: Database) -> None:
    fill(db)
    sql(db, "DELETE FROM journal_entries WHERE seq = 1")
    with pytest.raises(IntegrityError, match="journal entry 1 is missing"):
        verify(db)


def test_deleting_the_newest_entries_is_detected(db: Database) -> None:
    fill(db)
    sql(db, "DELETE FROM journal_entries WHERE seq >= 5")
    with pytest.raises(IntegrityError, match="journal entry 5 is missing"):
        verify(db)


def test_deleting_everything_is_detected(db: Database) -> None:
    fill(db)
    sql(db, "DELETE FROM journal_entries")
    with pytest.raises(IntegrityError, match="journal entry 1 is missing"):
        verify(db)


def test_reordering_is_detected(db: Database) -> None:
    fill(db)
    # Swap entries 2 and 5 (sequence numbers stay in place, contents move).
    sql(db, "UPDATE journal_entries SET seq = 1000 WHERE seq = 2")
    sql(db, "UPDATE journal_entries SET seq = 2 WHERE seq = 5")
    sql(db, "UPDATE journal_entries SET seq = 5 WHERE seq = 1000")
    with pytest.raises(IntegrityError, match="journal entry 2 "):
        verify(db)


def test_renumbering_after_a_delete_is_detected(db: Database) -> None:
    fill(db)
    sql(db, "DELETE FROM journal_entries WHERE seq = 2")
    sql(db, "UPDATE journal_entries SET seq = seq - 1 WHERE seq > 2")
    with pytest.raises(IntegrityError, match="journal entry 2 .* does not follow entry 1"):
        verify(db)


def test_a_forged_head_is_detected(db: Database) -> None:
    fill(db)
    sql(db, "UPDATE journal_head SET hash = :h", h="f" * 64)
    with pytest.raises(IntegrityError, match="head"):
        verify(db)


def test_cli_verify_names_the_first_bad_entry(db: Database, spec: EnclaveSpec, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from enclave.accounts import lifecycle
    from enclave.cli import app, report

    with db.session() as s:  # verifying reads the journal, which needs journal.read: a sysadmin (entry 1)
        lifecycle.bootstrap(s, spec, "root", name="Root", email="root@example.org")
    map_me(db)  # local mode: the test's OS user acts as root (entry 2)
    fill(db)
    use_database(monkeypatch, db.url, tmp_path)
    monkeypatch.setenv("ENCLAVE_JOURNAL_KEY", str(db.journal_key))
    monkeypatch.setenv("ENCLAVE_JOURNAL_ANCHOR", str(db.journal_anchor))
    ok = CliRunner().invoke(app, ["journal", "verify", "--as", "root"])
    assert ok.exit_code == 0 and "8 entries" in ok.output
    sql(db, "UPDATE journal_entries SET reason = 'edited' WHERE seq = 2")
    sql(db, "UPDATE journal_entries SET reason = 'edited' WHERE seq = 5")
    bad = CliRunner().invoke(app, ["journal", "verify", "--as", "root"])
    assert isinstance(bad.exception, IntegrityError) and "journal entry 2 " in str(bad.exception)
    assert report(bad.exception) == 6


def test_query_filters(db: Database) -> None:
    fill(db)
    with db.session() as s:
        def seqs(**kw: object) -> list[int]:
            return [e.seq for e in journal.query(s, **kw)]  # type: ignore[arg-type]
        assert seqs() == [1, 2, 3, 4, 5, 6]
        assert seqs(actor="ops") == [2, 4, 6]
        assert seqs(action="roles.grant") == [4, 5, 6]
        assert seqs(action="accounts.*") == [1, 2, 3]
        assert seqs(target="account/u3") == [3]
        assert seqs(since=T0 + timedelta(hours=2), until=T0 + timedelta(hours=4)) == [2, 3]
        assert seqs(after_seq=4) == [5, 6]
        assert seqs(limit=2, newest_first=True) == [6, 5]
        assert seqs(actor="ops", action="roles.*") == [4, 6]
        entry = journal.query(s, target="account/u4")[0]
        assert entry.before == {"roles": []} and entry.after == {"n": 4, "when": T0.isoformat()}
        with pytest.raises(InputError):
            journal.query(s, limit=0)


def test_bad_entries_are_refused(db: Database) -> None:
    with db.session() as s:
        with pytest.raises(InputError, match="actor"):
            journal.record(s, actor=" ", action="a", target="t", reason="r", before=None, after=None)
        with pytest.raises(InputError, match="JSON"):
            journal.record(s, actor="a", action="a", target="t", reason="r", before=None, after=object())
    assert verify(db) == 0


def test_concurrent_writers_keep_one_chain(db: Database) -> None:
    """Writers in parallel threads queue on the head row instead of forking the chain."""
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            for i in range(10):
                with db.session() as s:
                    journal.record(s, actor=name, action="test.write", target=f"t/{i}", reason="load",
                                   before=None, after={"i": i})
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"w{n}",)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert verify(db) == 40
