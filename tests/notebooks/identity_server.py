"""The WebDAV server as the rendered Deployment runs it, for tests/notebooks/test_webdav_identity.py: started by that
test under the Deployment's uid, gid and capabilities (setpriv), it serves alice and bob's provisioned homes on a
free port, prints its URL and its effective capabilities, and serves until its stdin closes.

A DELETE of a path ending in ``/victim`` runs the race a notebook can run (tests/notebooks/test_webdav_identity.py):
right before the files go, alice's directory ``d`` is swapped for a link to bob's workspace."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from wsgidav import fs_dav_provider

from enclave.errors import Unauthenticated
from enclave.notebooks import webdav
from tests.notebooks.conftest import FakeAccount


def main(jhome: str, alice_uid: int, bob_uid: int) -> None:
    accounts = {name: FakeAccount(name, uid, uid, f"{jhome}/{name}", f"{jhome}/{name}/workspace")
                for name, uid in (("alice", alice_uid), ("bob", bob_uid))}
    real_rmtree = shutil.rmtree

    def racing(path: str, *args: Any, **kw: Any) -> None:
        if path.rstrip("/").endswith("/victim"):
            ws = Path(accounts["alice"].workspace_path)
            os.rename(ws / "d", ws / "d.orig")
            os.symlink(accounts["bob"].workspace_path, ws / "d")
        real_rmtree(path, *args, **kw)

    fs_dav_provider.shutil.rmtree = racing  # type: ignore[attr-defined]

    def authenticate(username: str, token: str, write: bool) -> FakeAccount:
        if token != f"tok-{username}" or username not in accounts:
            raise Unauthenticated("unknown token")
        return accounts[username]

    running = webdav.start(webdav.make_app(authenticate, anchor=jhome, verbose=0), poll_seconds=0.05)
    status = Path("/proc/self/status").read_text()
    cap_eff = next(line.split()[1] for line in status.splitlines() if line.startswith("CapEff:"))
    print(running.url, os.geteuid(), cap_eff, flush=True)
    sys.stdin.read()
    running.stop()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
