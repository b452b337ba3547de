"""The WebDAV server with the real token check (enclave.accounts.tokens) against a migrated database."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from webdav3.client import Client
from webdav3.exceptions import WebDavException

from enclave.accounts.lifecycle import Allocation, bootstrap, depart, expire, onboard
from enclave.accounts.tokens import DATA_READ, DATA_WRITE, issue
from enclave.accounts.types import AccountKind
from enclave.db import Database
from enclave.notebooks import webdav
from enclave.services.factory import Factory
from enclave.spec import EnclaveSpec
from tests.notebooks.conftest import NOW, provision_home, raw


@pytest.fixture()
def world(tmp_path: Path, jhome: Path, minimal: EnclaveSpec) -> Iterator[tuple[Database, str, dict[str, str]]]:
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
    authenticate = Factory(spec, db).notebooks.authenticator(clock=lambda: NOW + timedelta(minutes=1))
    running = webdav.start(webdav.make_app(authenticate, anchor=jhome, clock=lambda: NOW + timedelta(minutes=1)))
    try:
        yield db, running.url, tokens
    finally:
        running.stop()
        db.dispose()


def test_tokens_gate_the_workspace(world: tuple[Database, str, dict[str, str]], tmp_path: Path,
                                   minimal: EnclaveSpec) -> None:
    db, url, tokens = world
    sci = Factory(minimal, db).notebooks.lookup("sci")
    c = Client({"webdav_hostname": url, "webdav_login": "sci", "webdav_password": tokens["sci"],
                "webdav_root": "/sci/"})
    src = tmp_path / "a.txt"
    src.write_text("result")
    c.upload_sync(remote_path="a.txt", local_path=str(src))
    assert os.listdir(sci.workspace_path) == ["a.txt"]
    # A read-only token reads but cannot write.
    assert raw(url, "GET", "/sci/a.txt", "sci", tokens["sci-ro"]) == (200, b"result")
    assert raw(url, "PUT", "/sci/b.txt", "sci", tokens["sci-ro"], body=b"x")[0] == 401
    # Someone else's valid token under this name, and this token on someone else's files.
    assert raw(url, "GET", "/sci/a.txt", "sci", tokens["dev"])[0] == 401
    assert raw(url, "GET", "/sci/a.txt", "dev", tokens["dev"])[0] == 403
    assert raw(url, "GET", "/sci/a.txt", "sci", "enc_0000000000000000_" + "x" * 43)[0] == 401

    with db.session() as s:
        expire(s, "root", "sci", reason="allocation ended", now=NOW)
    assert raw(url, "GET", "/sci/a.txt", "sci", tokens["sci-ro"]) == (200, b"result")
    status, _ = raw(url, "PUT", "/sci/a.txt", "sci", tokens["sci"], body=b"changed")
    assert status in (401, 403)
    assert Path(sci.workspace_path, "a.txt").read_text() == "result"

    with db.session() as s:
        depart(s, "root", "dev", reason="left the project", now=NOW)
    with pytest.raises(WebDavException):
        Client({"webdav_hostname": url, "webdav_login": "dev", "webdav_password": tokens["dev"],
                "webdav_root": "/dev/"}).list()


def test_enclave_webdav_command_serves(tmp_path: Path) -> None:
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
    proc = subprocess.Popen([str(exe), "webdav", "--port", str(port), "--db", db_url],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120  # a start-up bound only: at a load of 5 on two cores 30 s ran out
        while True:
            try:
                status, _ = raw(f"http://127.0.0.1:{port}", "PROPFIND", "/sci/", "sci", "not-a-token")
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else b""
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert status == 401
    finally:
        proc.terminate()
        proc.wait(timeout=10)
