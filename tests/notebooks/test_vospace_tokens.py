"""The VOSpace service with the real token check (enclave.accounts.tokens) against a migrated database, and the
`enclave vospace` command: the same authentication WebDAV uses (NotebookService.authenticator)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from vos import Client

from enclave.accounts.lifecycle import Allocation, bootstrap, depart, expire, onboard
from enclave.accounts.tokens import DATA_READ, DATA_WRITE, issue
from enclave.accounts.types import AccountKind
from enclave.db import Database
from enclave.notebooks import vospace
from enclave.services.factory import Factory
from enclave.spec import EnclaveSpec
from tests.notebooks.conftest import NOW, provision_home, raw
from tests.notebooks.vos_support import use_home, vos_uri


@pytest.fixture()
def world(tmp_path: Path, jhome: Path, minimal: EnclaveSpec, monkeypatch: pytest.MonkeyPatch
          ) -> Iterator[tuple[Database, str, dict[str, str]]]:
    spec = minimal.model_copy(update={"storage": minimal.storage.model_copy(update={"home_root": str(jhome)})})
    db = Database(f"sqlite:///{tmp_path / 'enclave.db'}")
    db.migrate()
    tokens: dict[str, str] = {}
    with db.session() as s:
        bootstrap(s, spec, "root", name="Root Admin", email="root@example.org", now=NOW)
        for user, kind in (("sci", AccountKind.SCIENCE), ("dev", AccountKind.STAFF)):
            account = onboard(s, "root", spec, user, name=f"{user} person", email=f"{user}@example.org", kind=kind,
                              reason="test", now=NOW,
                              allocation=Allocation("P-1", expires=NOW + timedelta(days=90))
                              if kind == AccountKind.SCIENCE else None)
            provision_home(account)
            tokens[user] = issue(s, "root", user, [DATA_READ, DATA_WRITE], 3600, now=NOW)
        tokens["sci-ro"] = issue(s, "root", "sci", [DATA_READ], 3600, now=NOW)
    clock = lambda: NOW + timedelta(minutes=1)  # noqa: E731
    authenticate = Factory(spec, db).notebooks.authenticator(clock=clock)
    running = vospace.start(vospace.make_app(authenticate, clock=clock), poll_seconds=0.05)
    use_home(monkeypatch, tmp_path / "client-home", running.url)
    try:
        yield db, running.url, tokens
    finally:
        running.stop()
        db.dispose()


def test_tokens_gate_the_workspace(world: tuple[Database, str, dict[str, str]], tmp_path: Path,
                                   minimal: EnclaveSpec) -> None:
    db, url, tokens = world
    sci = Factory(minimal, db).notebooks.lookup("sci")
    src = tmp_path / "a.txt"
    src.write_text("result")
    Client(vospace_token=tokens["sci"]).copy(str(src), vos_uri("sci/a.txt"))
    assert os.listdir(sci.workspace_path) == ["a.txt"]
    # A read-only token reads but cannot write.
    assert Client(vospace_token=tokens["sci-ro"]).listdir(vos_uri("sci"), force=True) == ["a.txt"]
    with pytest.raises(Exception, match="token was not accepted"):
        Client(vospace_token=tokens["sci-ro"]).copy(str(src), vos_uri("sci/b.txt"))
    assert raw(url, "PUT", "/files/sci/b.txt", "sci", tokens["sci-ro"], body=b"x")[0] == 401
    # Someone else's valid token under this name, and this token on someone else's files.
    assert raw(url, "GET", "/files/sci/a.txt", "sci", tokens["dev"])[0] == 401
    assert raw(url, "GET", "/files/sci/a.txt", "dev", tokens["dev"])[0] == 403
    assert raw(url, "GET", "/files/sci/a.txt", "sci", "enc_0000000000000000_" + "x" * 43)[0] == 401

    with db.session() as s:
        expire(s, "root", "sci", reason="allocation ended", now=NOW)
    assert raw(url, "GET", "/files/sci/a.txt", "sci", tokens["sci-ro"]) == (200, b"result")
    status, _ = raw(url, "PUT", "/files/sci/a.txt", "sci", tokens["sci"], body=b"changed")
    assert status in (401, 403)
    assert Path(sci.workspace_path, "a.txt").read_text() == "result"

    with db.session() as s:
        depart(s, "root", "dev", reason="left the project", now=NOW)
    with pytest.raises(Exception, match="token was not accepted|departed"):
        Client(vospace_token=tokens["dev"]).listdir(vos_uri("dev"), force=True)


def test_enclave_vospace_command_serves(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    db_url = f"sqlite:///{tmp_path / 'enclave.db'}"
    Database(db_url).migrate()
    exe = Path(sys.executable).parent / "enclave"
    bad = subprocess.run([str(exe), "vospace", "--db", db_url, "--resource-id", "not-an-ivo-id"],
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "ivo://" in bad.stdout + bad.stderr
    proc = subprocess.Popen([str(exe), "vospace", "--port", str(port), "--db", db_url],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120  # a start-up bound only: at a load of 5 on two cores 30 s ran out
        while True:
            try:
                status, body = raw(f"http://127.0.0.1:{port}", "GET", "/capabilities", "sci", "not-a-token")
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else b""
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert status == 200 and b"ivo://ivoa.net/std/VOSpace#sync-2.1" in body
        assert raw(f"http://127.0.0.1:{port}", "GET", "/nodes/sci", "sci", "not-a-token")[0] == 401
    finally:
        proc.terminate()
        proc.wait(timeout=10)
