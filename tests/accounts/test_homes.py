"""Home provisioning (issue 18): onboarding creates the home and its File Workspace subdirectory (seed §6: the
workspace is a subdirectory of the home) with the account's uid and gid, readable by the account alone; a
refused onboarding creates nothing; departure and expiry leave the data in place."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from enclave.accounts.lifecycle import Allocation
from enclave.accounts.types import AccountKind
from enclave.db import Database
from enclave.errors import EnclaveError
from enclave.services.accounts import AccountService
from enclave.spec import EnclaveSpec


@pytest.fixture
def service(db: Database, spec: EnclaveSpec, admin: str, tmp_path: Path) -> AccountService:
    root = tmp_path / "jhome"
    root.mkdir()
    storage = spec.storage.model_copy(update={"home_root": str(root)})
    return AccountService(db, spec.model_copy(update={"storage": storage}))


def _owner_mode(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root (as on the storage host)")
def test_onboarding_creates_home_and_workspace_owned_by_the_account(service: AccountService, admin: str) -> None:
    made = service.onboard(admin, "alice", name="Alice", email="alice@example.org", kind=AccountKind.STAFF,
                           reason="test")
    root = Path(service.spec.storage.home_root)
    home, workspace = root / "alice", root / "alice" / service.spec.storage.workspace_subdir
    assert (made.home, made.workspace) == (str(home), str(workspace))
    for path in (home, workspace):
        assert path.is_dir() and _owner_mode(path) == (made.uid, made.gid, 0o700)
    # A file the user writes stays through departure and expiry: nothing there deletes data.
    (workspace / "result.fits").write_bytes(b"SIMPLE")
    service.depart(admin, "alice", reason="left the project")
    assert (workspace / "result.fits").read_bytes() == b"SIMPLE" and _owner_mode(home)[0] == made.uid


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root (as on the storage host)")
def test_expiry_leaves_the_home(service: AccountService, admin: str) -> None:
    made = service.onboard(admin, "bob", name="Bob", email="bob@example.org", kind=AccountKind.SCIENCE,
                           reason="test", allocation=Allocation("P-2"))
    service.expire(admin, "bob", reason="allocation over")
    assert Path(made.workspace).is_dir() and _owner_mode(Path(made.home))[0] == made.uid


def test_refused_onboarding_creates_no_directory(service: AccountService) -> None:
    with pytest.raises(EnclaveError):
        service.onboard("nobody", "mallory", name="M", email="m@example.org", kind=AccountKind.SCIENCE,
                        reason="test", allocation=Allocation("P-3"))
    assert not any(Path(service.spec.storage.home_root).iterdir())


def test_no_home_file_system_here_means_nothing_to_create(db: Database, spec: EnclaveSpec, admin: str,
                                                          tmp_path: Path) -> None:
    storage = spec.storage.model_copy(update={"home_root": str(tmp_path / "not-mounted")})
    service = AccountService(db, spec.model_copy(update={"storage": storage}))
    service.onboard(admin, "carol", name="Carol", email="c@example.org", kind=AccountKind.SCIENCE, reason="test",
                    allocation=Allocation("P-4"))
    assert not (tmp_path / "not-mounted").exists()
