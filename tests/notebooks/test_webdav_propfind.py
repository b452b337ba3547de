"""What a PROPFIND costs and how deep it may go (audit D3). A listing measures the home at most once, whatever
the number of folders in it, and reports the quota (RFC 4331 §3-4: DAV:quota-used-bytes and
DAV:quota-available-bytes) on the workspace alone; Depth: infinity, and a PROPFIND without a Depth header, which
RFC 4918 §9.1 says is Depth: infinity, are refused with 403 and a DAV:error body naming the
DAV:propfind-finite-depth precondition (RFC 4918 §9.1, §16)."""

from __future__ import annotations

from pathlib import Path
from unittest import mock
from xml.etree import ElementTree as ET

import pytest

from enclave.notebooks import webdav
from tests.notebooks.conftest import Dav, made_by, raw

DAV = "{DAV:}"
FOLDERS = 30


def test_a_listing_measures_the_home_once_and_reports_the_quota_on_the_workspace_only(dav: Dav) -> None:
    alice = dav.add("alice", 1001, quota_gib=1.0)
    ws = Path(alice.workspace_path)
    for i in range(FOLDERS):
        (ws / f"dir{i:02}").mkdir()
    (ws / "data.bin").write_bytes(b"x" * 1000)
    made_by(alice)
    calls: list[Path] = []
    real = webdav.usage

    def counting(path: Path) -> int:
        calls.append(path)
        return real(path)

    with mock.patch.object(webdav, "usage", counting):
        status, body = raw(dav.url, "PROPFIND", "/alice/", "alice", "tok-alice", headers={"Depth": "1"})
    assert status == 207
    assert len(calls) <= 1
    responses = ET.fromstring(body).findall(f"{DAV}response")
    assert len(responses) == FOLDERS + 2  # the workspace, its folders, data.bin (RFC 4918 §9.1: Depth 1)
    with_quota = {r.findtext(f"{DAV}href") for r in responses if r.find(f".//{DAV}quota-used-bytes") is not None}
    assert with_quota == {"/alice/"}
    root = next(r for r in responses if r.findtext(f"{DAV}href") == "/alice/")
    assert int(root.findtext(f".//{DAV}quota-used-bytes") or "-1") == 1000
    assert int(root.findtext(f".//{DAV}quota-available-bytes") or "-1") == 1024**3 - 1000


@pytest.mark.parametrize("depth", ["infinity", None])
def test_infinite_depth_is_refused_with_the_precondition(dav: Dav, depth: str | None) -> None:
    dav.add("alice", 1001)
    status, body = raw(dav.url, "PROPFIND", "/alice/", "alice", "tok-alice",
                       headers={"Depth": depth} if depth else {})
    assert status == 403
    error = ET.fromstring(body)
    assert error.tag == f"{DAV}error" and error.find(f"{DAV}propfind-finite-depth") is not None
