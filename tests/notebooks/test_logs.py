"""The File Workspace servers' access log (`enclave webdav`, `enclave vospace`): one JSON event per request
with method, path without its query, status, duration and the caller's account — never the token, which
travels as the Basic password or the Bearer value (issue 16 item 5)."""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from enclave import logs
from enclave.accounts.lifecycle import bootstrap, onboard
from enclave.accounts.tokens import DATA_READ, DATA_WRITE, issue
from enclave.accounts.types import AccountKind
from enclave.db import Database
from enclave.notebooks import vospace, webdav
from enclave.services.factory import Factory
from enclave.spec import EnclaveSpec
from tests.notebooks.conftest import NOW, provision_home


@pytest.fixture()
def captured() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    logs.configure("info", "json", stream=buf)
    try:
        yield buf
    finally:
        root = logging.getLogger()
        for handler in [h for h in root.handlers if h.get_name() == "enclave-logs"]:
            root.removeHandler(handler)


def _events(buf: io.StringIO, name: str) -> list[dict[str, object]]:
    return [e for e in map(json.loads, buf.getvalue().splitlines()) if e["logger"] == name]


def test_webdav_and_vospace_log_each_request_without_tokens(captured: io.StringIO, tmp_path: Path, jhome: Path,
                                                             minimal: EnclaveSpec) -> None:
    spec = minimal.model_copy(update={"storage": minimal.storage.model_copy(update={"home_root": str(jhome)})})
    db = Database(f"sqlite:///{tmp_path / 'enclave.db'}")
    db.migrate()
    with db.session() as s:
        bootstrap(s, spec, "root", name="Root Admin", email="root@example.org", now=NOW)
        account = onboard(s, "root", spec, "dev", name="dev person", email="dev@example.org",
                          kind=AccountKind.STAFF, reason="test", now=NOW)
        provision_home(account)
        token = issue(s, "root", "dev", [DATA_READ, DATA_WRITE], 3600, now=NOW)
    later = NOW + timedelta(minutes=1)
    authenticate = Factory(spec, db).notebooks.authenticator(clock=lambda: later)
    dav = webdav.start(webdav.make_app(authenticate, anchor=jhome, clock=lambda: later), poll_seconds=0.05)
    vo = vospace.start(vospace.make_app(authenticate, clock=lambda: later), poll_seconds=0.05)
    basic = "Basic " + base64.b64encode(f"dev:{token}".encode()).decode()
    try:
        put = httpx.put(f"{dav.url}/dev/a.txt?sig={token}", content=b"hello", headers={"Authorization": basic})
        assert put.status_code == 201, put.text
        assert httpx.get(f"{dav.url}/dev/a.txt", headers={"Authorization": "Basic "
                         + base64.b64encode(b"dev:enc_wrongwrongwrong").decode()}).status_code == 401
        assert httpx.get(f"{vo.url}/nodes/dev", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    finally:
        dav.stop()
        vo.stop()
        db.dispose()
    text = captured.getvalue()
    assert token not in text and "wrongwrong" not in text
    dav_events = _events(captured, "enclave.webdav.access")
    assert [(e["method"], e["path"], e["status"], e["account"]) for e in dav_events] == [
        ("PUT", "/dev/a.txt", 201, "dev"), ("GET", "/dev/a.txt", 401, None)]
    assert all(isinstance(e["duration_ms"], float) for e in dav_events)
    vo_events = _events(captured, "enclave.vospace.access")
    assert [(e["method"], e["path"], e["status"], e["account"]) for e in vo_events] == [
        ("GET", "/nodes/dev", 200, "dev")]
