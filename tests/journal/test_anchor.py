"""The journal against someone who can write the database but cannot read its key (issue 16): tail
truncation, re-hashed rewrites and a wiped journal are detected; honest use, a crash and a restore of the
database with its key and anchor still verify."""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from enclave import journal
from enclave.db import Database
from enclave.errors import IntegrityError
from enclave.journal.chain import entry_body
from enclave.journal.models import JournalEntry
from tests.journal.test_journal import fill, sql, verify
from tests.local import map_me, use_database

RESTORE = "restore the database, its journal key and its anchor from one backup"


def anchor_lines(db: Database) -> list[str]:
    assert db.journal_anchor is not None
    return db.journal_anchor.read_text().splitlines() if db.journal_anchor.exists() else []


def refused(db: Database, match: str) -> IntegrityError:
    with pytest.raises(IntegrityError, match=match) as info:
        verify(db)
    assert RESTORE in info.value.problem.fix
    return info.value


def test_honest_use_verifies_and_anchors_each_commit(db: Database) -> None:
    fill(db, 3)
    with pytest.raises(RuntimeError), db.session() as s:  # a rolled-back transaction anchors nothing
        journal.record(s, actor="ops", action="x.z", target="t/0", reason="r", before=None, after=0)
        raise RuntimeError("failed")
    with db.session() as s:  # two entries in one transaction: one anchored head
        journal.record(s, actor="ops", action="x.a", target="t/1", reason="r", before=None, after=1)
        journal.record(s, actor="ops", action="x.b", target="t/2", reason="r", before=None, after=2)
    assert verify(db) == 5
    with db.session() as s:
        heads = {r.seq: r.hash for r in s.execute(sa.select(JournalEntry)).scalars()}
    assert anchor_lines(db) == [f"{n} {heads[n]}" for n in (3, 5)]  # fill() commits once


def test_key_and_anchor_are_private_files_outside_the_database(db: Database) -> None:
    fill(db, 1)
    assert db.journal_key is not None and db.journal_anchor is not None
    for path in (db.journal_key, db.journal_anchor):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    key = bytes.fromhex(db.journal_key.read_text().strip())
    assert len(key) == 32
    with db.session() as s:  # the key appears nowhere in the database
        dump = " ".join(str(v) for t in ("journal_entries", "journal_head")
                        for row in s.execute(sa.text(f"SELECT * FROM {t}")) for v in row)
    assert key.hex() not in dump


def test_tail_truncation_with_a_fixed_head_is_detected(db: Database) -> None:
    fill(db)
    with db.session() as s:
        fourth = s.get_one(JournalEntry, 4).hash
    sql(db, "DELETE FROM journal_entries WHERE seq > 4")
    sql(db, "UPDATE journal_head SET seq = 4, hash = :h", h=fourth)
    refused(db, "anchor .* records entry 6, but the journal ends at entry 4")


def test_wiping_the_journal_is_detected(db: Database) -> None:
    fill(db)
    sql(db, "DELETE FROM journal_entries")
    sql(db, "DELETE FROM journal_head")
    refused(db, "records entry 6, but the journal is empty")


def _forge(db: Database, mac: object) -> None:
    """Rewrite entry 3 and re-hash it and every later entry with ``mac``, fixing the head: the whole chain
    is consistent under ``mac``."""
    with db.session() as s:
        rows = s.execute(sa.select(JournalEntry).order_by(JournalEntry.seq)).scalars().all()
        prev = rows[1].hash
        for row in rows[2:]:
            if row.seq == 3:
                row.actor, row.reason = "mallory", "nothing to see"
            row.prev_hash = prev
            row.hash = mac(entry_body(prev, row.seq, row.at, row.actor, row.action,  # type: ignore[operator]
                                      row.target, row.reason, row.before, row.after))
            prev = row.hash
        s.execute(sa.text("UPDATE journal_head SET hash = :h"), {"h": prev})


def test_a_rewrite_rehashed_with_the_published_rule_is_detected(db: Database) -> None:
    """The unkeyed SHA-256 chain enclave used before: anyone can recompute it."""
    fill(db)
    _forge(db, lambda body: hashlib.sha256(body).hexdigest())
    refused(db, "journal entry 3 .* by mallory .* altered")


def test_a_rewrite_rehashed_with_a_guessed_key_is_detected(db: Database) -> None:
    fill(db)
    _forge(db, lambda body: hmac.new(b"\0" * 32, body, hashlib.sha256).hexdigest())
    refused(db, "journal entry 3 .* by mallory .* altered")


def test_a_rewrite_rehashed_with_the_key_itself_is_caught_by_the_anchor(db: Database) -> None:
    """Someone who read the key rehashes a consistent chain; the anchor, a file they could not write, still holds
    the head each commit left, and entry 6's is not the one there now (a mutant that skipped that comparison passed
    every test, stop 57: the rewrites above were caught by the key first)."""
    fill(db)
    assert db.journal_key is not None
    key = bytes.fromhex(db.journal_key.read_text().strip())
    _forge(db, lambda body: hmac.new(key, body, hashlib.sha256).hexdigest())
    refused(db, "journal entry 6 is not the entry the anchor .* recorded: it was rewritten")


def test_a_missing_key_is_reported_not_replaced(db: Database) -> None:
    fill(db, 2)
    assert db.journal_key is not None
    db.journal_key.unlink()
    db.cache.clear()  # a new process: nothing remembered
    refused(db, "journal key .* is missing")
    with pytest.raises(IntegrityError, match="missing"), db.session() as s:
        journal.record(s, actor="ops", action="x.y", target="t", reason="r", before=None, after=None)
    assert not db.journal_key.exists()


def test_a_crash_mid_transaction_leaves_a_verifiable_journal(db: Database) -> None:
    """A process killed after appending (uncommitted) entries: nothing of it stays, the journal verifies."""
    fill(db, 2)
    script = ("import os, sys\nfrom pathlib import Path\nfrom enclave import journal\nfrom enclave.db import Database\n"
              "db = Database(sys.argv[1], journal_key=Path(sys.argv[2]), journal_anchor=Path(sys.argv[3]))\n"
              "s = db.session().__enter__()\n"
              "journal.record(s, actor='ops', action='x.y', target='t', reason='r', before=None, after=None)\n"
              "os._exit(9)\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", script, db.url, str(db.journal_key), str(db.journal_anchor)],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 9, done.stderr
    assert verify(db) == 2 and len(anchor_lines(db)) == 1
    fill(db, 1)  # and the chain goes on from where it was
    assert verify(db) == 3


def test_a_crash_between_commit_and_anchor_still_verifies(db: Database) -> None:
    """The anchor is written after the commit; a crash in between leaves it one head behind — not an attack."""
    for n in range(3):
        with db.session() as s:
            journal.record(s, actor="ops", action="x.y", target=f"t/{n}", reason="r", before=None, after=n)
    assert db.journal_anchor is not None
    lines = anchor_lines(db)
    assert len(lines) == 3
    db.journal_anchor.write_text("".join(line + "\n" for line in lines[:-1]))
    assert verify(db) == 3


def test_restore_with_key_and_anchor_verifies_and_without_anchor_is_explained(db: Database,
                                                                             tmp_path: Path) -> None:
    if db.dialect != "sqlite":
        pytest.skip("a file copy is the SQLite backup; PostgreSQL's is pg_dump, not under test here")
    fill(db, 2)
    db.dispose()
    path = Path(sa.engine.make_url(db.url).database or "")
    assert db.journal_key is not None and db.journal_anchor is not None
    backup = tmp_path / "backup"
    backup.mkdir()
    for f in (path, db.journal_key, db.journal_anchor):
        shutil.copy2(f, backup / f.name)
    fill(db, 3)  # life goes on after the backup
    db.dispose()
    shutil.copy2(backup / path.name, path)  # the database alone restored: the anchor knows better
    db.cache.clear()
    refused(db, "records entry 5, but the journal ends at entry 2: .*restored without the anchor")
    db.dispose()
    for f in (path, db.journal_key, db.journal_anchor):  # all three from one backup
        shutil.copy2(backup / f.name, f)
    db.cache.clear()
    assert verify(db) == 2


def test_cli_verify_fails_on_truncation(db: Database, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from enclave.accounts import lifecycle
    from enclave.cli import app, report
    from enclave.spec.defaults import DEFAULT_SPEC
    from enclave.spec.load import load

    with db.session() as s:
        lifecycle.bootstrap(s, load(DEFAULT_SPEC), "root", name="Root", email="root@example.org")
    map_me(db)  # local mode: the test's OS user acts as root (entry 2)
    fill(db)
    with db.session() as s:
        last = s.get_one(JournalEntry, 7).hash
    sql(db, "DELETE FROM journal_entries WHERE seq = 8")
    sql(db, "UPDATE journal_head SET seq = 7, hash = :h", h=last)
    use_database(monkeypatch, db.url, tmp_path)
    monkeypatch.setenv("ENCLAVE_JOURNAL_KEY", str(db.journal_key))
    monkeypatch.setenv("ENCLAVE_JOURNAL_ANCHOR", str(db.journal_anchor))
    bad = CliRunner().invoke(app, ["journal", "verify", "--as", "root"])
    assert isinstance(bad.exception, IntegrityError) and "records entry 8" in str(bad.exception)
    assert report(bad.exception) == 6
