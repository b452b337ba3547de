"""The shared database layer: the one migration chain, default location, errors."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

import enclave.accounts.models
import enclave.journal.models  # noqa: F401  (register the tables on Base)
from enclave.db import Base, Database, default_url
from enclave.db.core import MIGRATIONS
from enclave.errors import ExternalError, InputError

MINE = {"people", "accounts", "role_grants", "namespace_members", "tokens", "journal_entries", "journal_head"}


def test_one_straight_chain_named_by_file() -> None:
    script = ScriptDirectory.from_config(Database("sqlite://").alembic_config())
    assert len(script.get_heads()) == 1, f"the migration chain forked: heads {script.get_heads()}"
    files = sorted(p.stem for p in (MIGRATIONS / "versions").glob("[0-9]*.py"))
    assert all(re.fullmatch(r"\d{4}_[a-z0-9_]+", f) for f in files), files
    revisions = list(reversed(list(script.walk_revisions())))
    assert [r.revision for r in revisions] == files
    assert [r.down_revision for r in revisions] == [None, *files[:-1]]


def test_migrate_is_idempotent_and_reversible(db: Database) -> None:
    head = ScriptDirectory.from_config(db.alembic_config()).get_current_head()
    db.migrate()
    assert db.current_revisions() == {head}
    from alembic import command
    config = db.alembic_config()
    with db.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    assert not MINE & set(sa.inspect(db.engine).get_table_names())
    db.migrate()
    assert set(sa.inspect(db.engine).get_table_names()) >= MINE


def test_migration_matches_the_models(db: Database) -> None:
    def only_mine(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
        return table in MINE

    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": only_mine, "compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], diff


def test_default_url_and_first_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENCLAVE_DB", raising=False)
    monkeypatch.setenv("ENCLAVE_HOME", str(tmp_path / "home"))
    assert default_url() == f"sqlite:///{tmp_path / 'home' / 'enclave.db'}"
    db = Database()
    db.migrate()
    assert (tmp_path / "home" / "enclave.db").exists()
    db.dispose()
    monkeypatch.setenv("ENCLAVE_DB", "sqlite:///" + str(tmp_path / "other.db"))
    assert Database().url.endswith("other.db")


def test_session_commits_or_rolls_back(db: Database) -> None:
    from datetime import UTC, datetime

    from enclave.accounts.models import Person
    with db.session() as s:
        s.add(Person(name="A", email="a@x.org", created_at=datetime.now(UTC)))
    with pytest.raises(RuntimeError), db.session() as s:
        s.add(Person(name="B", email="b@x.org", created_at=datetime.now(UTC)))
        s.flush()
        raise RuntimeError
    with db.session() as s:
        assert [p.email for p in s.execute(sa.select(Person)).scalars()] == ["a@x.org"]
        assert s.execute(sa.select(Person)).scalars().one().created_at.tzinfo is not None


def test_bad_urls() -> None:
    with pytest.raises(InputError, match="unsupported database"):
        Database("mysql://x@y/z")
    with pytest.raises(InputError, match="cannot parse"):
        Database("not a url")
    with pytest.raises(ExternalError, match="cannot migrate"):
        Database("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1").migrate()


def test_a_new_sqlite_database_is_private(tmp_path: Path) -> None:
    """Created 0600 (not the umask's 0644): it holds token hashes and the journal. SQLite gives the -wal and
    -shm files the database file's mode (``findCreateFileMode``, sqlite src/os_unix.c)."""
    import stat

    old = os.umask(0o022)
    try:
        db = Database(f"sqlite:///{tmp_path / 'private.db'}")
        db.migrate()
        with db.session() as s:
            s.execute(sa.text("SELECT 1"))
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
        db.dispose()
    finally:
        os.umask(old)
    assert modes["private.db"] == 0o600
    assert all(mode == 0o600 for mode in modes.values()), modes
