"""Fixtures shared by the accounts, access and journal suites: every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from enclave.accounts import lifecycle
from enclave.accounts.types import AccountKind
from enclave.db import Database
from enclave.journal.models import JournalEntry
from enclave.spec.defaults import DEFAULT_SPEC
from enclave.spec.load import load
from enclave.spec.models import EnclaveSpec, Role
from tests.pg import database, postgres_server  # noqa: F401  (fixtures re-exported for this suite)

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=365)
ADMIN = "root"


@pytest.fixture(scope="session")
def spec() -> EnclaveSpec:
    return load(DEFAULT_SPEC)


@pytest.fixture
def db(database: Database) -> Database:  # noqa: F811
    return database


@pytest.fixture
def admin(db: Database, spec: EnclaveSpec) -> str:
    """A bootstrapped sysadmin named 'root'."""
    with db.session() as s:
        lifecycle.bootstrap(s, spec, ADMIN, name="Root Admin", email="root@lsst.org", now=NOW)
    return ADMIN


def onboard(db: Database, spec: EnclaveSpec, username: str, *, kind: AccountKind = AccountKind.SCIENCE,
            roles: list[Role] | None = None, actor: str = ADMIN, **kw: Any) -> None:
    with db.session() as s:
        lifecycle.onboard(s, actor, spec, username, name=kw.pop("name", username.title()),
                        email=kw.pop("email", f"{username}@example.org"), kind=kind, roles=roles,
                        reason=kw.pop("reason", "test"), now=kw.pop("now", NOW), **kw)


def snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table: proof that a refused call changed nothing."""
    with db.session() as s:
        tables = sa.inspect(s.connection()).get_table_names()
        return {t: sorted(tuple(map(str, r)) for r in s.execute(sa.text(f'SELECT * FROM "{t}"')))
                for t in tables if t != "alembic_version"}


def journal_len(s: Session) -> int:
    return int(s.execute(sa.select(sa.func.count()).select_from(JournalEntry)).scalar_one())


@pytest.fixture
def unchanged(db: Database) -> Iterator[Callable[[Callable[[Session], object], type[Exception]], Exception]]:
    """refuse(fn, ErrorType): run fn in a session, expect the error, COMMIT anyway, and check nothing changed."""

    def refuse(fn: Callable[[Session], object], error: type[Exception]) -> Exception:
        before = snapshot(db)
        with db.session() as s, pytest.raises(error) as info:
            fn(s)
        assert snapshot(db) == before, f"{error.__name__} was raised but the database changed"
        return info.value

    yield refuse
