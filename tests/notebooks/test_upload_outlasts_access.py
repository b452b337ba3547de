"""An upload that outlasts its account's access does not land (audit D4). Seed §4: a departed account loses all
access, an expired one keeps read access only; a PUT that began before the change is checked again just before
its bytes would be renamed into place (workspace.still_allowed), so it ends 403 and leaves no file, on WebDAV and
on VOSpace's /files alike (tests/notebooks/test_vospace.py)."""

from __future__ import annotations

import base64
import http.client
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.notebooks.conftest import Dav, FakeAccount, raw

HALF = 65536


def put_across_a_status_change(url: str, path: str, auth: str, account: FakeAccount, status: str) -> int:
    """Send half the body, change the account's status (as depart/expire commit it), send the rest."""
    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port, timeout=10)
    conn.putrequest("PUT", path)
    conn.putheader("Authorization", auth)
    conn.putheader("Content-Length", str(2 * HALF))
    conn.endheaders()
    conn.send(b"a" * HALF)
    time.sleep(0.3)  # the server has checked the request and is writing
    account.status = status
    conn.send(b"b" * HALF)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status


@pytest.mark.parametrize("status", ["departed", "expired"])
def test_a_webdav_upload_does_not_land_after_access_ends(dav: Dav, status: str) -> None:
    alice = dav.add("alice", 1001)
    auth = "Basic " + base64.b64encode(b"alice:tok-alice").decode()
    assert put_across_a_status_change(dav.url, "/alice/late.bin", auth, alice, status) == 403
    assert not Path(alice.workspace_path, "late.bin").exists()
    assert [p.name for p in Path(alice.workspace_path).iterdir()] == []  # no temporary file left either
    assert raw(dav.url, "PUT", "/alice/new.bin", "alice", "tok-alice", body=b"x")[0] == 403  # as a new request
