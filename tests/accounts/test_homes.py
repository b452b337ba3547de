"""Home provisioning (issue 18): onboarding creates the home and its File Workspace subdirectory (seed §6: the
workspace is a subdirectory of the home) with the account's uid and gid, readable by the account alone; a
refused onboarding creates nothing; departure and expiry leave the data in place."""

from __future__ import annotations

import logging
import math
import os
import stat
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from enclave.accounts import homes
from enclave.accounts.lifecycle import Allocation
from enclave.accounts.types import AccountKind, AccountView
from enclave.db import Database
from enclave.errors import EnclaveError
from enclave.services.accounts import AccountService
from enclave.spec import EnclaveSpec
from enclave.spec.models import HomeQuota, QuotaTool


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


def test_a_home_outside_the_home_root_is_not_made(service: AccountService, admin: str) -> None:
    """A home recorded under another root (storage.home_root changed after the account was made), or a workspace
    recorded outside its home (seed §6: the workspace is a subdirectory of the home), is refused before anything
    is created: provisioning must not make directories where the spec no longer puts homes."""
    root = Path(service.spec.storage.home_root)
    view = service.show(admin, admin)  # bootstrapped under the default spec's root, not this test's
    assert not Path(view.home).is_relative_to(root)
    moved_workspace = view.model_copy(update={"home": str(root / admin), "workspace": "/elsewhere/workspace"})
    for account in (view, moved_workspace):
        with pytest.raises(EnclaveError, match=f"{admin}'s home .* is not under {root}"):
            homes.make_home(account, str(root))
    assert not any(root.iterdir())


def test_no_home_file_system_here_means_nothing_to_create(db: Database, spec: EnclaveSpec, admin: str,
                                                          tmp_path: Path) -> None:
    storage = spec.storage.model_copy(update={"home_root": str(tmp_path / "not-mounted")})
    service = AccountService(db, spec.model_copy(update={"storage": storage}))
    service.onboard(admin, "carol", name="Carol", email="c@example.org", kind=AccountKind.SCIENCE, reason="test",
                    allocation=Allocation("P-4"))
    assert not (tmp_path / "not-mounted").exists()


# --- quotas (issue 18 item 6) ----------------------------------------------------------------------------------

GIB_100_IN_KIB = 100 * 1024 * 1024


@pytest.mark.parametrize(("tool", "filesystem", "argv"), [
    # setquota(8): -u NAME block-soft block-hard inode-soft inode-hard FILESYSTEM; blocks of 1 KiB, 0 = no limit.
    (QuotaTool.SETQUOTA, "/jhome", ["setquota", "-u", "70001", str(GIB_100_IN_KIB), str(GIB_100_IN_KIB), "0", "0",
                                    "/jhome"]),
    # xfs_quota(8): expert mode (-x), administrator command `limit -u bsoft=N bhard=N ID`, k = KiB.
    (QuotaTool.XFS_QUOTA, "/jhome", ["xfs_quota", "-x", "-c",
                                     f"limit -u bsoft={GIB_100_IN_KIB}k bhard={GIB_100_IN_KIB}k 70001", "/jhome"]),
    # mmsetquota (IBM Storage Scale): Device:Fileset --user ID --block Soft:Hard, K = KiB.
    (QuotaTool.MMSETQUOTA, "lsstfs:jhome", ["mmsetquota", "lsstfs:jhome", "--user", "70001", "--block",
                                            f"{GIB_100_IN_KIB}K:{GIB_100_IN_KIB}K"]),
])
def test_quota_command_per_tool(tool: QuotaTool, filesystem: str, argv: list[str]) -> None:
    assert homes.quota_command(HomeQuota(tool=tool, filesystem=filesystem), 70001, 100) == argv


def test_no_quota_tool_means_the_quota_is_advisory() -> None:
    assert homes.quota_command(HomeQuota(), 70001, 100) is None
    with pytest.raises(ValueError, match="needs storage.quota.filesystem"):
        HomeQuota(tool=QuotaTool.SETQUOTA)


@pytest.mark.parametrize(("quota", "checked"), [
    (HomeQuota(tool=QuotaTool.SETQUOTA, filesystem="/jhome"), "/jhome"),
    (HomeQuota(tool=QuotaTool.XFS_QUOTA, filesystem="/jhome"), "/jhome"),
    (HomeQuota(tool=QuotaTool.MMSETQUOTA, filesystem="lsstfs:jhome"), "lsstfs:jhome"),
])
def test_a_quota_tool_that_fails_names_its_file_system_and_the_command(service: AccountService, admin: str,
                                                                      quota: HomeQuota, checked: str) -> None:
    # The file system is the last argument of setquota and xfs_quota, and the first of mmsetquota (the argv of
    # test_quota_command_per_tool): the fix names it whichever tool the spec uses.
    account = service.show(admin, admin)

    def refuse(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 1, "", "quotas are off")

    with pytest.raises(EnclaveError) as err:
        homes.set_quota(account, quota, run=refuse)
    command = homes.quota_command(quota, account.uid, account.quota_gib)
    assert command is not None
    assert err.value.problem.fix == f"check that quotas are enabled on {checked}, then run: {' '.join(command)}"


def test_the_commands_by_hand_set_the_quota_with_the_spec_tool(service: AccountService, admin: str) -> None:
    # What the operator is told to run where homes are not mounted (services.accounts): the same directories
    # and, when the spec names a quota tool, that tool's command last; without one, no quota step.
    account = service.show(admin, admin)
    quota = HomeQuota(tool=QuotaTool.SETQUOTA, filesystem="/jhome")
    command = homes.quota_command(quota, account.uid, account.quota_gib)
    assert command is not None
    with_tool, without = homes.by_hand(account, quota), homes.by_hand(account)
    assert with_tool == f"{without} && {' '.join(command)}"
    assert without.startswith(f"mkdir -p -m 700 {account.home} {account.workspace} && ")
    assert "setquota" not in without


def _quota_service(db: Database, spec: EnclaveSpec, tmp_path: Path, quota: HomeQuota) -> AccountService:
    root = tmp_path / "jhome"
    root.mkdir(exist_ok=True)
    storage = spec.storage.model_copy(update={"home_root": str(root), "quota": quota})
    return AccountService(db, spec.model_copy(update={"storage": storage}))


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root (as on the storage host)")
def test_local_provisioning_sets_the_quota_with_the_spec_tool(db: Database, spec: EnclaveSpec, admin: str,
                                                             tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    service = _quota_service(db, spec, tmp_path, HomeQuota(tool=QuotaTool.SETQUOTA, filesystem="/jhome"))
    # On a host without the tool (an empty PATH here) the onboarding stands, its directories are made, and the
    # missing quota is a notice naming the command to run on the storage host — never silently skipped. Not an
    # error: the account is committed, and a retry would be refused, its username taken.
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    onboarded = service.onboard(admin, "dora", name="Dora", email="d@example.org", kind=AccountKind.STAFF,
                                reason="t")
    monkeypatch.undo()
    assert onboarded.notice is not None and "quota is not set: setquota is not installed here" in onboarded.notice
    assert "setquota -u" in onboarded.notice and "committed" in onboarded.notice
    made = service.show(admin, "dora")
    assert Path(made.workspace).is_dir()
    ran: list[list[str]] = []

    def run(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        ran.append(list(argv))
        return subprocess.CompletedProcess(argv, 0, "", "")

    # What the service runs where homes are mounted: make_home (the onboarding made them), then set_quota.
    assert homes.make_home(made, service.spec.storage.home_root) == (made.home, made.workspace)
    quota = homes.set_quota(made, service.spec.storage.quota, run=run)
    kib = math.ceil(made.quota_gib * 1024 * 1024)
    assert ran == [["setquota", "-u", str(made.uid), str(kib), str(kib), "0", "0", "/jhome"]]
    assert quota == "set"

    def refuse(argv: Sequence[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(argv, 1, "", "setquota: Cannot find filesystem to set quota.")

    with pytest.raises(EnclaveError, match="quota is not set: setquota exited 1: setquota: Cannot find") as err:
        homes.set_quota(made, service.spec.storage.quota, run=refuse)
    assert "setquota -u" in err.value.problem.fix  # the command to run by hand


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root (as on the storage host)")
def test_without_a_quota_tool_the_log_says_the_quota_is_recorded_only(db: Database, spec: EnclaveSpec, admin: str,
                                                                      tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    service = _quota_service(db, spec, tmp_path, HomeQuota())
    with caplog.at_level(logging.INFO, logger="enclave.accounts"):
        service.onboard(admin, "finn", name="Finn", email="f@example.org", kind=AccountKind.STAFF, reason="t")
    events = {r.getMessage(): getattr(r, "fields", {}) for r in caplog.records}
    assert events["home provisioned"]["quota"] == "advisory" and events["home provisioned"]["how"] == "local"
    assert "nothing on the file system enforces" in events["home quota recorded only"]["cause"]


def test_homes_not_mounted_go_through_the_live_cluster(db: Database, spec: EnclaveSpec, admin: str,
                                                       tmp_path: Path) -> None:
    """Where the homes are not mounted (the API pods in the commons) the service hands the account to the live
    cluster's Job (``KubeCluster.provision_home``, tests/cluster/test_homes.py); expiry submits nothing."""
    storage = spec.storage.model_copy(update={"home_root": str(tmp_path / "not-mounted")})
    handed: list[str] = []

    def job(account: AccountView) -> homes.Provisioned:
        handed.append(account.username)
        return homes.Provisioned((account.home, account.workspace), "advisory", "job enclave/enclave-home-x")

    service = AccountService(db, spec.model_copy(update={"storage": storage}), remote_homes=job)
    service.onboard(admin, "gail", name="Gail", email="g@example.org", kind=AccountKind.SCIENCE, reason="test",
                    allocation=Allocation("P-5"))
    service.expire(admin, "gail", reason="allocation over")
    assert handed == ["gail"] and not (tmp_path / "not-mounted").exists()
