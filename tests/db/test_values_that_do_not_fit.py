"""A value longer than its column: PostgreSQL refuses it (VARCHAR(n)), SQLite stores it whole. Either way the caller
gets an enclave error saying so — an InputError (exit 1, HTTP 422), never a raw sqlalchemy DataError, which the CLI
would print as a traceback (`enclave.cli.run`: "never a traceback")."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from enclave.db import Database
from enclave.errors import InputError
from enclave.services.factory import Factory
from enclave.spec.defaults import DEFAULT_SPEC
from enclave.spec.load import load
from enclave.spec.models import Role

SPEC = load(DEFAULT_SPEC)
DIGEST = "sha256:" + "0" * 64


def test_a_value_too_long_for_its_column_is_an_input_error(database: Database) -> None:
    if database.dialect != "postgresql":
        pytest.skip("SQLite does not enforce VARCHAR lengths")
    with pytest.raises(InputError) as refused, database.session() as session:
        session.execute(sa.text("CREATE TEMPORARY TABLE short_values (v VARCHAR(2))"))
        session.execute(sa.text("INSERT INTO short_values VALUES ('abc')"))
    assert "does not fit" in str(refused.value)


def journal_target_length() -> int:
    """The journal target column's length, from the schema the migrations made (not from the code under test)."""
    return 255  # journal_entries.target VARCHAR(255), migration 0001


def security_admin(database: Database) -> Factory:
    factory = Factory(SPEC, database)
    factory.accounts.bootstrap("root1", name="Root", email="root@example.org")
    factory.accounts.grant_role("root1", "root1", Role.SECURITY, reason="may submit images")
    return factory


def repository(length: int) -> str:
    host = SPEC.registry.host + "/"
    body = length - len(host)
    parts = [("a" * 60) for _ in range(body // 61)]
    rest = body - sum(len(p) + 1 for p in parts)
    return host + "/".join([*parts, "b" * rest]) if rest > 0 else host + "/".join(parts)[: body]


def test_an_image_whose_journal_target_would_not_fit_is_refused_saying_how_long_it_may_be(
        database: Database) -> None:
    """Every vetting step is journaled in the same transaction (docs/ops.md), with the pinned reference
    `<repository>@sha256:<hex>` as its target,
    so the longest repository that can be vetted is the target column's length less `@` and the digest — on SQLite
    and PostgreSQL alike."""
    factory = security_admin(database)
    most = journal_target_length() - len("@" + DIGEST)
    too_long = repository(most + 1)
    assert len(too_long) == most + 1
    with pytest.raises(InputError) as refused:
        factory.images.submit("root1", f"{too_long}@{DIGEST}", reason="test")
    assert f"at most {most} characters" in str(refused.value)
    assert factory.images.listing() == []
    longest = repository(most)  # the longest that fits is vetted and journaled, on both databases
    pinned = f"{longest}@{DIGEST}"
    assert factory.images.submit("root1", pinned, reason="test").status == "submitted"
    assert [e.target for e in factory.journal.entries("root1", action="images.submit")] == [pinned]
    assert factory.journal.verify("root1") > 0
