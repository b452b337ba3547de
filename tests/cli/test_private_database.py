"""Local mode and the servers take only a private SQLite database (audit of identity and trust, finding 6).

docs/accounts.md: the file is created 0600 and must be the effective OS user's, with no group or other permission
bit. Forbidding only the write bits let a 0644 copy (restored with cp or tar under umask 022) through: every OS
user of the host could then read the journal and the accounts, which the API keeps behind journal.read and
accounts.manage. The PostgreSQL URL file was already held to 0600.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from enclave.db import Database
from enclave.errors import PermissionDenied
from enclave.services import local


@pytest.fixture
def private_db(tmp_path: Path) -> Path:
    old = os.umask(0o022)  # the usual umask: SQLite alone would make the file 0644
    try:
        db = Database(f"sqlite:///{tmp_path / 'enclave.db'}")
        db.migrate()
        db.dispose()
    finally:
        os.umask(old)
    path = tmp_path / "enclave.db"
    assert path.stat().st_mode & 0o777 == 0o600  # what enclave itself creates
    return path


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o602])
def test_a_database_others_may_read_or_write_is_refused(private_db: Path, mode: int) -> None:
    url, me = f"sqlite:///{private_db}", local.os_user()
    local.check_owner(url, me)
    local.check_server(url, me)
    os.chmod(private_db, mode)
    for check in (local.check_owner, local.check_server):
        with pytest.raises(PermissionDenied, match=f"chmod 600 {private_db}"):
            check(url, me)


def test_a_leftover_wal_file_others_may_read_is_refused(private_db: Path) -> None:
    """SQLite gives its -wal file the database's mode when it makes it (findCreateFileMode, sqlite src/os_unix.c):
    one made while the database was 0644 keeps that mode after the database is made private again."""
    wal = Path(f"{private_db}-wal")
    wal.write_bytes(b"")
    os.chmod(wal, 0o644)
    with pytest.raises(PermissionDenied, match=f"chmod 600 {wal}"):
        local.check_owner(f"sqlite:///{private_db}", local.os_user())
    os.chmod(wal, 0o600)
    local.check_owner(f"sqlite:///{private_db}", local.os_user())
