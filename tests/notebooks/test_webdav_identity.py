"""The WebDAV server touches files as the account of each request (enclave.notebooks.workspace.act_as), so the
kernel applies that account's permissions: run as the rendered Deployment runs it (root, only CAP_SETUID and
CAP_SETGID) it serves a home made by onboarding (0700, the account's), and a directory swapped for a link to
another workspace mid-request reaches nothing the account could not reach itself.

Expected results follow from the kernel's rules: a file-system uid other than 0 clears the file-system
capabilities from the thread's effective set (man 7 capabilities, "Effect of user ID changes on capabilities"),
and a directory of mode 0700 is entered only by its owner (man 7 path_resolution, "Permission checking"). Needs
root (setfsuid with CAP_SETUID); skipped otherwise."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast
from unittest import mock

import pytest
from wsgidav import fs_dav_provider

from enclave.accounts.homes import make_home
from enclave.accounts.types import AccountView
from enclave.cluster import deploy
from enclave.notebooks import workspace
from enclave.spec import EnclaveSpec
from tests.notebooks.conftest import Dav, FakeAccount, made_by, raw

pytestmark = pytest.mark.skipif(not workspace.switches_identity(), reason="acting as an account needs root on Linux")

REPO = Path(__file__).resolve().parents[2]
CAPABILITY_BITS = {"SETGID": 6, "SETUID": 7}
"""Capability numbers, include/uapi/linux/capability.h (CAP_SETGID 6, CAP_SETUID 7)."""


def _fsuid_of_this_thread() -> int:
    """The file-system uid: the fourth id on the Uid line of /proc/thread-self/status (man 5 proc_pid_status)."""
    line = next(x for x in Path("/proc/thread-self/status").read_text().splitlines() if x.startswith("Uid:"))
    return int(line.split()[4])


def test_the_identity_is_the_calling_threads_alone() -> None:
    """setfsuid(2) changes the calling thread's credentials only (man 2 setfsuid); glibc's wrapper must not pass it
    on to the other threads as its setuid(2) wrapper does (man 7 nptl), or one request would act for another."""
    seen: list[int] = []
    acting, looked = threading.Event(), threading.Event()

    def other() -> None:
        acting.wait()
        seen.append(_fsuid_of_this_thread())
        looked.set()

    thread = threading.Thread(target=other)
    thread.start()
    with workspace.as_account(FakeAccount("alice", 4242, 4242, "/nonexistent", "/nonexistent/ws")):
        assert _fsuid_of_this_thread() == 4242
        acting.set()
        looked.wait(5)
    thread.join()
    assert seen == [0]
    assert _fsuid_of_this_thread() == 0


def _swap_race(dav: Dav, alice: FakeAccount, bob: FakeAccount) -> Any:
    """The race of the audit (a notebook loop can run it): after the server has checked /alice/d/victim/ and
    before it deletes it, alice's ``d`` becomes a link to bob's workspace."""
    real_rmtree = shutil.rmtree
    ws = Path(alice.workspace_path)

    def racing(path: str, *args: Any, **kw: Any) -> None:
        os.rename(ws / "d", ws / "d.orig")
        os.symlink(bob.workspace_path, ws / "d")
        real_rmtree(path, *args, **kw)

    return mock.patch.object(fs_dav_provider.shutil, "rmtree", racing)


def test_a_link_swapped_in_mid_delete_cannot_reach_another_workspace(dav: Dav) -> None:
    alice, bob = dav.add("alice", 1001), dav.add("bob", 1002)
    (Path(alice.workspace_path) / "d" / "victim").mkdir(parents=True)
    made_by(alice)
    (Path(bob.workspace_path) / "victim").mkdir()
    (Path(bob.workspace_path) / "victim" / "thesis.tex").write_text("bob's thesis")
    made_by(bob)
    with _swap_race(dav, alice, bob):
        status, _ = raw(dav.url, "DELETE", "/alice/d/victim/", "alice", "tok-alice")
    # Acting as alice, the server cannot enter bob's 0700 workspace: the delete fails, bob's files stay.
    assert status >= 400
    assert (Path(bob.workspace_path) / "victim" / "thesis.tex").read_text() == "bob's thesis"


def _provisioned(jhome: Path, name: str, uid: int) -> FakeAccount:
    view = SimpleNamespace(username=name, uid=uid, gid=uid, home=str(jhome / name),
                           workspace=str(jhome / name / "workspace"), quota_gib=1.0)
    make_home(cast(AccountView, view), str(jhome))
    return FakeAccount(name, uid, uid, view.home, view.workspace, quota_gib=1.0)


def _setpriv(security: dict[str, Any]) -> list[str]:
    """setpriv(1) arguments giving a process the container's identity: user and group, no supplementary group,
    a bounding set of the added capabilities alone (root's capabilities after exec are its bounding set), none
    inheritable, and no_new_privs for allowPrivilegeEscalation: false (Kubernetes API reference, SecurityContext)."""
    assert security["capabilities"]["drop"] == ["ALL"]
    added = ",".join(f"+{c.lower()}" for c in security["capabilities"].get("add", []))
    # Without runAsGroup (a Kubernetes before 1.14: deploy.RUN_AS_GROUP_SINCE) the runtime gives the user's primary
    # group in the image, root's 0 for uid 0.
    argv = ["setpriv", f"--reuid={security['runAsUser']}", f"--regid={security.get('runAsGroup', 0)}",
            "--clear-groups",
            f"--bounding-set=-all{',' + added if added else ''}", "--inh-caps=-all"]
    return argv + (["--no-new-privs"] if security["allowPrivilegeEscalation"] is False else [])


def test_the_deployed_server_serves_provisioned_homes_and_nothing_else(jhome: Path, ldf: EnclaveSpec) -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    deployment = next(o for o in deploy.render_deploy(ldf, "x")["webdav.yaml"] if o["kind"] == "Deployment")
    security = deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]
    alice, bob = _provisioned(jhome, "alice", 20001), _provisioned(jhome, "bob", 20002)
    for account, files in ((alice, {"result.csv": "ra,dec\n", "d/victim/keep": ""}),
                           (bob, {"victim/thesis.tex": "bob's thesis"})):
        for name, text in files.items():
            path = Path(account.workspace_path, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        made_by(account)
    server = subprocess.Popen([*_setpriv(security), sys.executable, "-m", "tests.notebooks.identity_server",
                               str(jhome), str(alice.uid), str(bob.uid)], cwd=REPO, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url, euid, cap_eff = server.stdout.readline().split()
        wanted = sum(1 << CAPABILITY_BITS[c] for c in security["capabilities"]["add"])
        assert (int(euid), int(cap_eff, 16)) == (security["runAsUser"], wanted)
        status, body = raw(url, "PROPFIND", "/alice/", "alice", "tok-alice", headers={"Depth": "1"})
        assert status == 207 and b"result.csv" in body
        assert raw(url, "GET", "/alice/result.csv", "alice", "tok-alice") == (200, b"ra,dec\n")
        assert raw(url, "PUT", "/alice/new.txt", "alice", "tok-alice", body=b"hello")[0] == 201
        new = Path(alice.workspace_path, "new.txt")
        assert new.read_bytes() == b"hello" and (new.stat().st_uid, new.stat().st_gid) == (alice.uid, alice.gid)
        status, _ = raw(url, "DELETE", "/alice/d/victim/", "alice", "tok-alice")  # the server swaps d mid-way
        assert status >= 400
        assert Path(bob.workspace_path, "victim", "thesis.tex").read_text() == "bob's thesis"
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=20)
