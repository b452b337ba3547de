"""Data reachability: own home only; expired read-only; departed nothing; no path tricks."""

from __future__ import annotations

import pytest

from enclave.accounts import data, lifecycle
from enclave.accounts.types import AccountKind
from enclave.db import Database
from enclave.errors import InputError, PermissionDenied
from enclave.spec.models import EnclaveSpec
from tests.accounts.conftest import ADMIN, onboard


@pytest.fixture
def users(db: Database, spec: EnclaveSpec, admin: str) -> None:
    onboard(db, spec, "al")
    onboard(db, spec, "alice")
    onboard(db, spec, "sam", kind=AccountKind.STAFF)


PATHS = [
    ("/jhome/al", True), ("/jhome/al/", True), ("/jhome/al/workspace/x", True), ("/jhome/alice/x", False),
    ("/jhome/al/../alice/x", False), ("/jhome/al/./workspace/../x", True), ("/jhome", False), ("/etc/passwd", False),
    ("//jhome/al/x", False),
]


def test_paths(db: Database, users: None) -> None:
    with db.session() as s:
        account = lifecycle.get(s, "al")
        for path, read in PATHS:
            assert data.can_read(account, path) is read, path
            assert data.can_write(account, path) is read, path


def test_require_data_explains(db: Database, users: None) -> None:
    with db.session() as s:
        assert data.require_data(s, "al", "/jhome/al/workspace/f", write=True).username == "al"
        with pytest.raises(PermissionDenied, match="only its own home /jhome/al"):
            data.require_data(s, "al", "/jhome/alice/f")
        with pytest.raises(InputError, match="not absolute"):
            data.require_data(s, "al", "jhome/al/f")
        lifecycle.expire(s, ADMIN, "al", reason="ended")
        lifecycle.depart(s, ADMIN, "sam", reason="left")
    with db.session() as s:
        assert data.require_data(s, "al", "/jhome/al/f").username == "al"
        with pytest.raises(PermissionDenied, match="read-only"):
            data.require_data(s, "al", "/jhome/al/f", write=True)
        with pytest.raises(PermissionDenied, match="departed"):
            data.require_data(s, "sam", "/jhome/sam/f")
