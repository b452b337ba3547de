"""Fixtures for the notebooks tests: accounts with the attribute names of enclave.accounts.Account,
home/workspace trees in a temporary jhome, and a WebDAV server on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from enclave.errors import Unauthenticated
from enclave.notebooks import webdav
from enclave.notebooks.account import AccountLike
from enclave.spec import EnclaveSpec, load
from enclave.spec.defaults import EXAMPLES

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@dataclass
class FakeAccount:
    """Shaped like enclave.accounts.Account (username, uid, gid, kind, status, paths, quota, allocation)."""

    username: str
    uid: int
    gid: int
    home_path: str
    workspace_path: str
    kind: str = "science"
    status: str = "active"
    quota_gib: float = 100.0
    allocation_expires: datetime | None = field(default_factory=lambda: NOW + timedelta(days=30))
    permissions: frozenset[str] = frozenset({"notebooks.spawn"})


@pytest.fixture(scope="session")
def ldf() -> EnclaveSpec:
    return load(EXAMPLES / "lsst-ldf.yaml")


@pytest.fixture(scope="session")
def minimal() -> EnclaveSpec:
    return load(EXAMPLES / "minimal.yaml")


@pytest.fixture()
def jhome() -> Iterator[Path]:
    """A home root every account can enter, as the real one (mode 0755): run as root, the servers touch files as
    each account (workspace.act_as), and pytest's own temporary directories are 0700."""
    root = Path(tempfile.mkdtemp(prefix="jhome-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root)


def provision_home(account: AccountLike) -> None:
    """Home and workspace as onboarding makes them (enclave.accounts.homes.make_home): mode 0700, owned by the
    account's uid and gid when the tests run as root (as anyone else they stay the tester's)."""
    for path in (Path(account.home_path), Path(account.workspace_path)):
        path.mkdir(mode=0o700, exist_ok=True)
        path.chmod(0o700)
        if os.geteuid() == 0:
            os.chown(path, account.uid, account.gid)


def made_by(account: AccountLike) -> None:
    """Give everything in the account's workspace to the account, as if its notebook had made it (the tests make
    their files as root)."""
    if os.geteuid() != 0:
        return
    for directory, dirs, names in os.walk(account.workspace_path):
        for name in (*dirs, *names):
            os.chown(os.path.join(directory, name), account.uid, account.gid, follow_symlinks=False)


def with_notebooks(spec: EnclaveSpec, **update: object) -> EnclaveSpec:
    """``spec`` with its ``notebooks`` section's fields replaced by ``update`` (not validated again)."""
    return spec.model_copy(update={"notebooks": spec.notebooks.model_copy(update=update)})


def make_account(jhome: Path, username: str, uid: int, **kw: object) -> FakeAccount:
    home = jhome / username
    account = FakeAccount(username=username, uid=uid, gid=uid, home_path=str(home),
                          workspace_path=str(home / "workspace"), **kw)  # type: ignore[arg-type]
    provision_home(account)
    return account


@dataclass
class Dav:
    url: str
    jhome: Path
    accounts: dict[str, FakeAccount]
    tokens: dict[str, str]

    def add(self, username: str, uid: int, **kw: object) -> FakeAccount:
        account = make_account(self.jhome, username, uid, **kw)
        self.accounts[username] = account
        self.tokens[f"tok-{username}"] = username
        return account


@pytest.fixture()
def dav(jhome: Path) -> Iterator[Dav]:
    accounts: dict[str, FakeAccount] = {}
    tokens: dict[str, str] = {}

    def authenticate(username: str, token: str, write: bool) -> FakeAccount:
        who = tokens.get(token)
        if who is None:
            raise Unauthenticated("unknown token")
        return accounts[who]

    app = webdav.make_app(authenticate, anchor=jhome, clock=lambda: NOW)
    running = webdav.start(app, poll_seconds=0.05)
    try:
        yield Dav(running.url, jhome, accounts, tokens)
    finally:
        running.stop()


def raw(url: str, method: str, path: str, user: str, token: str, body: bytes | None = None,
        headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """Send a request with the path exactly as given (no client-side normalisation of '..' or %2e)."""
    import base64
    import http.client
    from urllib.parse import urlparse

    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port, timeout=10)
    auth = base64.b64encode(f"{user}:{token}".encode()).decode()
    conn.putrequest(method, path, skip_accept_encoding=True)
    conn.putheader("Authorization", f"Basic {auth}")
    for k, v in (headers or {}).items():
        conn.putheader(k, v)
    if body is not None and "Transfer-Encoding" not in (headers or {}):
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders()
    if body is not None:
        if (headers or {}).get("Transfer-Encoding") == "chunked":
            for i in range(0, len(body), 1000):
                chunk = body[i:i + 1000]
                conn.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            conn.send(b"0\r\n\r\n")
        else:
            conn.send(body)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data
