"""Local mode for tests (docs/accounts.md, "Who is acting"): point the CLI at a test database the way local mode
accepts it, and map the test's OS user — whatever its name, root in CI — to the accounts a test acts as."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from enclave.accounts import local
from enclave.db import Database
from enclave.services.local import os_user


def database_env(url: str, where: Path) -> dict[str, str]:
    """Environment naming ``url`` for local mode: SQLite by $ENCLAVE_DB; PostgreSQL only from a 0600 file the OS
    user owns ($ENCLAVE_DB_FILE), as ``enclave.services.local.check_owner`` requires."""
    if url.startswith("sqlite"):
        return {"ENCLAVE_DB": url}
    path = where / "database-url"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(url + "\n")
    return {"ENCLAVE_DB_FILE": str(path)}


def use_database(monkeypatch: pytest.MonkeyPatch, url: str, where: Path) -> None:
    monkeypatch.delenv("ENCLAVE_DB", raising=False)
    monkeypatch.delenv("ENCLAVE_DB_FILE", raising=False)
    monkeypatch.delenv("ENCLAVE_AS", raising=False)
    monkeypatch.delenv("ENCLAVE_CONTEXT", raising=False)
    for key, value in database_env(url, where).items():
        monkeypatch.setenv(key, value)


def map_me(db: Database, *usernames: str, by: str = "root") -> str:
    """Map the test's OS user to ``usernames`` (``by``, a sysadmin, is mapped first); its name."""
    me = os_user().name
    with db.session() as session:
        for username in (by, *usernames):
            local.map_os_user(session, by, me, username, reason="test: the test's OS user acts as this account")
    return me
