"""`enclave journal rekey`: the upgrade path for a journal written before the keyed hash (issue 16). It checks
the whole old chain under the old unkeyed rule first, refuses — changing nothing, making no key — when that
fails, and only then re-seals every entry under the journal key, journaling that it did."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from enclave.cli import app, report
from enclave.db import Database
from enclave.errors import EnclaveError
from enclave.services.factory import Factory
from enclave.spec.defaults import default_spec_path
from enclave.spec.load import load

GENESIS = "0" * 64


def old_rule(prev: str, seq: int, at: str, actor: str, action: str, target: str, reason: str, before: str,
             after: str) -> str:
    """The entry hash as enclave wrote it before commit 80fecdb (src/enclave/journal/chain.py, entry_hash):
    SHA-256 of the JSON list of the previous hash and the entry's fields, no key."""
    body = json.dumps([prev, seq, at, actor, action, target, reason, before, after], separators=(",", ":"),
                      ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()


def rows(url: str) -> list[dict[str, Any]]:
    engine = sa.create_engine(url)
    with engine.connect() as c:
        out = [dict(r._mapping) for r in c.execute(sa.text("SELECT * FROM journal_entries ORDER BY seq"))]
    engine.dispose()
    return out


def written_by_the_old_code(tmp_path: Path) -> str:
    """A database as the old code left it: accounts and their journal, each hash by the old rule, the head row
    on the last of them, and neither key file nor anchor (the old code made neither)."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    db = Database(url)
    db.migrate()
    factory = Factory(load(default_spec_path()), db)
    factory.ensure_accounts("admin")
    key, anchor = db.journal_key, db.journal_anchor
    db.dispose()
    engine = sa.create_engine(url)
    with engine.begin() as c:
        prev = GENESIS
        for r in [dict(x._mapping) for x in c.execute(sa.text("SELECT * FROM journal_entries ORDER BY seq"))]:
            digest = old_rule(prev, r["seq"], r["at"], r["actor"], r["action"], r["target"], r["reason"],
                              r["before"], r["after"])
            c.execute(sa.text("UPDATE journal_entries SET prev_hash = :p, hash = :h WHERE seq = :s"),
                      {"p": prev, "h": digest, "s": r["seq"]})
            prev = digest
        c.execute(sa.text("UPDATE journal_head SET hash = :h WHERE id = 1"), {"h": prev})
    engine.dispose()
    assert key is not None and anchor is not None
    key.unlink()
    anchor.unlink(missing_ok=True)
    return url


def enclave(url: str, *args: str) -> tuple[int, str]:
    try:
        result = CliRunner().invoke(app, list(args), env={"ENCLAVE_DB": url}, catch_exceptions=False)
    except EnclaveError as err:
        return report(err), str(err)
    return result.exit_code, result.output


def test_an_old_journal_is_checked_then_resealed(tmp_path: Path) -> None:
    url = written_by_the_old_code(tmp_path)
    old = rows(url)
    db = Database(url)
    with pytest.raises(EnclaveError, match="journal rekey"):  # the new rule cannot verify it: the way out is named
        Factory(load(default_spec_path()), db).journal.verify("admin")
    db.dispose()
    # The database predates local mode (nobody mapped): its owner names the sysadmin and is mapped to it after.
    code, out = enclave(url, "journal", "rekey", "--as", "admin", "--reason", "upgrade to the keyed hash")
    assert code == 0 and f"{len(old)} entries verified under the old unkeyed rule" in " ".join(out.split()), out
    code, out = enclave(url, "journal", "verify", "--as", "admin")
    assert code == 0 and f"journal intact: {len(old) + 2} entries" in out, out
    new = rows(url)
    # The same entries, each now with a keyed hash; then who re-sealed it, why, and the old head; then the mapping.
    assert [(r["seq"], r["actor"], r["action"], r["reason"], r["after"]) for r in new[:-2]] == \
        [(r["seq"], r["actor"], r["action"], r["reason"], r["after"]) for r in old]
    assert all(a["hash"] != b["hash"] for a, b in zip(old, new, strict=False))
    last = new[-2]
    assert (last["actor"], last["action"]) == ("admin", "journal.rekey")
    assert last["reason"].startswith("upgrade to the keyed hash")  # + the local-mode suffix naming the OS user
    assert json.loads(last["before"])["head"] == old[-1]["hash"]
    assert json.loads(last["after"])["head"] == new[-3]["hash"]
    assert new[-1]["action"] == "local.map"
    assert (tmp_path / "old.journal-key").exists() and (tmp_path / "old.journal-anchor").exists()
    # Once sealed there is nothing left to rekey.
    code, out = enclave(url, "journal", "rekey", "--as", "admin", "--reason", "again")
    assert code != 0 and "already sealed" in out, out
    assert rows(url) == new


@pytest.mark.parametrize("damage", [
    "UPDATE journal_entries SET reason = 'edited' WHERE seq = 2",
    "DELETE FROM journal_entries WHERE seq = (SELECT MAX(seq) FROM journal_entries)",
])
def test_a_damaged_old_journal_is_not_resealed(tmp_path: Path, damage: str) -> None:
    """Sealing a tampered journal would make the tampering verify: rekey refuses, changes nothing, makes no key."""
    url = written_by_the_old_code(tmp_path)
    engine = sa.create_engine(url)
    with engine.begin() as c:
        c.execute(sa.text(damage))
    engine.dispose()
    before = rows(url)
    code, out = enclave(url, "journal", "rekey", "--as", "admin", "--reason", "upgrade")
    assert code == 6 and "not re-sealed" in out, out
    assert rows(url) == before
    assert not (tmp_path / "old.journal-key").exists()


def test_only_a_sysadmin_rekeys(tmp_path: Path) -> None:
    url = written_by_the_old_code(tmp_path)
    before = rows(url)
    code, out = enclave(url, "journal", "rekey", "--as", "enclave-broker", "--reason", "upgrade")
    assert code == 4 and "roles.grant" in out and "sysadmin" in out, out
    assert rows(url) == before and not (tmp_path / "old.journal-key").exists()
