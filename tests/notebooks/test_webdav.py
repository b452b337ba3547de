"""The File Workspace over WebDAV, driven by a real client (webdavclient3) and raw HTTP over 127.0.0.1."""

from __future__ import annotations

import contextlib
import os
from datetime import timedelta
from pathlib import Path

import pytest
from webdav3.client import Client
from webdav3.exceptions import WebDavException

from tests.notebooks.conftest import NOW, Dav, made_by, raw

SECRET = "bob's secret"
HOME_SECRET = "alice's ssh key"


@pytest.fixture()
def two(dav: Dav) -> Dav:
    alice = dav.add("alice", 1001)
    bob = dav.add("bob", 1002)
    Path(bob.workspace_path, "secret.txt").write_text(SECRET)
    Path(alice.home_path, ".ssh").mkdir()
    Path(alice.home_path, ".ssh", "id").write_text(HOME_SECRET)
    Path(alice.home_path, "notes.txt").write_text("home, not workspace")
    return dav


def client(dav: Dav, user: str, token: str | None = None, root: str | None = None) -> Client:
    return Client({"webdav_hostname": dav.url, "webdav_login": user, "webdav_password": token or f"tok-{user}",
                   "webdav_root": root if root is not None else f"/{user}/", "webdav_timeout": 10})


def test_owner_puts_gets_lists_and_deletes(two: Dav, tmp_path: Path) -> None:
    c = client(two, "alice")
    src = tmp_path / "data.csv"
    src.write_text("ra,dec\n1,2\n")
    c.mkdir("results")
    c.upload_sync(remote_path="results/data.csv", local_path=str(src))
    assert Path(two.accounts["alice"].workspace_path, "results", "data.csv").read_text() == "ra,dec\n1,2\n"
    assert c.list() == ["results/"]
    assert c.list("results") == ["data.csv"]
    out = tmp_path / "back.csv"
    c.download_sync(remote_path="results/data.csv", local_path=str(out))
    assert out.read_text() == "ra,dec\n1,2\n"
    src.write_text("ra,dec\n3,4\n")
    c.upload_sync(remote_path="results/data.csv", local_path=str(src))
    assert Path(two.accounts["alice"].workspace_path, "results", "data.csv").read_text() == "ra,dec\n3,4\n"
    c.move("results/data.csv", "results/moved.csv")
    c.copy("results/moved.csv", "copy.csv")
    assert sorted(c.list("results")) == ["moved.csv"]
    c.clean("results/moved.csv")
    c.clean("results")
    assert c.list() == ["copy.csv"]
    # No upload temporaries are left behind.
    assert os.listdir(two.accounts["alice"].workspace_path) == ["copy.csv"]


def test_home_itself_is_never_listed(two: Dav) -> None:
    names = client(two, "alice").list()
    assert ".ssh/" not in names and "notes.txt" not in names and "workspace/" not in names


@pytest.mark.parametrize("path", [
    "../", "../.ssh/id", "../../bob/workspace/secret.txt", "../notes.txt",
])
def test_client_traversal_fails(two: Dav, tmp_path: Path, path: str) -> None:
    c = client(two, "alice")
    out = tmp_path / "out"
    with contextlib.suppress(WebDavException):
        c.download_sync(remote_path=path, local_path=str(out))
    got = [out] if out.is_file() else list(out.rglob("*")) if out.exists() else []
    for f in got:
        if f.is_file():
            assert SECRET not in f.read_text() and HOME_SECRET not in f.read_text()
    # Whatever the client made of '..', it stayed inside alice's own (empty) workspace.
    assert all(f.is_dir() for f in got)


RAW_ESCAPES = [
    "/alice/../alice/../bob/workspace/secret.txt",
    "/alice/../.ssh/id",
    "/alice/%2e%2e/.ssh/id",
    "/alice/%2E%2E/%2e%2e/bob/workspace/secret.txt",
    "/alice/..%2f.ssh%2fid",
    "/alice/%2e%2e%2f%2e%2e%2fbob%2fworkspace%2fsecret.txt",
    "/alice/..%5c.ssh%5cid",
    "/alice/%252e%252e/.ssh/id",
    "/alice/./../notes.txt",
    "/alice//../notes.txt",
    "/alice/%00/../notes.txt",
    "/bob/secret.txt",
    "/bob/../alice/../bob/secret.txt",
    "/",
    "/alice/../",
]


@pytest.mark.parametrize("path", RAW_ESCAPES)
def test_raw_traversal_read_fails(two: Dav, path: str) -> None:
    for method in ("GET", "PROPFIND"):
        status, body = raw(two.url, method, path, "alice", "tok-alice", headers={"Depth": "1"})
        assert status in (400, 403, 404), (method, path, status)
        text = body.decode(errors="replace")
        assert SECRET not in text and HOME_SECRET not in text and "home, not workspace" not in text


@pytest.mark.parametrize("path", [
    "/alice/../evil.txt", "/alice/%2e%2e/evil.txt", "/alice/..%2fevil.txt", "/bob/evil.txt",
    "/alice/%2e%2e%2f%2e%2e%2fbob%2fworkspace%2fevil.txt",
])
def test_raw_traversal_write_fails(two: Dav, path: str) -> None:
    status, _ = raw(two.url, "PUT", path, "alice", "tok-alice", body=b"pwned")
    ws = Path(two.accounts["alice"].workspace_path)
    written = list(two.jhome.rglob("*evil*"))
    # Either refused, or stored under a literal name (an undecoded '%2f' is not a separator) inside
    # alice's own workspace: never anywhere else.
    assert status in (400, 403, 404, 409) or status == 201, (path, status)
    assert all(p.parent == ws for p in written), written
    if status != 201:
        assert written == []


def test_symlink_escape_fails(two: Dav, tmp_path: Path) -> None:
    alice = two.accounts["alice"]
    ws = Path(alice.workspace_path)
    (ws / "to-bob").symlink_to(two.accounts["bob"].workspace_path)
    (ws / "to-home").symlink_to(alice.home_path)
    (ws / "passwd").symlink_to("/etc/passwd")
    (ws / "sub").mkdir()
    (ws / "sub" / "up").symlink_to("../..")
    (ws / "ok.txt").write_text("mine")
    made_by(alice)
    c = client(two, "alice")
    assert c.list() == ["ok.txt", "sub/"] or sorted(c.list()) == ["ok.txt", "sub/"]
    assert c.list("sub") == []
    for path in ["/alice/to-bob/secret.txt", "/alice/to-home/.ssh/id", "/alice/passwd", "/alice/sub/up/.ssh/id",
                 "/alice/to-bob/", "/alice/to-home"]:
        status, body = raw(two.url, "GET", path, "alice", "tok-alice")
        assert status in (403, 404), (path, status)
        assert SECRET.encode() not in body and HOME_SECRET.encode() not in body and b"root:" not in body
    for path in ["/alice/to-bob/new.txt", "/alice/to-home/new.txt", "/alice/sub/up/new.txt"]:
        status, _ = raw(two.url, "PUT", path, "alice", "tok-alice", body=b"x")
        assert status in (403, 404, 409), (path, status)
    assert not Path(two.accounts["bob"].workspace_path, "new.txt").exists()
    assert not Path(alice.home_path, "new.txt").exists()
    # Deleting through a link must not touch the target.
    status, _ = raw(two.url, "DELETE", "/alice/to-bob/secret.txt", "alice", "tok-alice")
    assert status in (403, 404)
    assert Path(two.accounts["bob"].workspace_path, "secret.txt").read_text() == SECRET
    # A MOVE/COPY whose destination is another user's workspace is refused.
    for method in ("MOVE", "COPY"):
        status, _ = raw(two.url, method, "/alice/ok.txt", "alice", "tok-alice",
                        headers={"Destination": f"{two.url}/bob/stolen.txt"})
        assert status == 403
        status, _ = raw(two.url, method, "/alice/ok.txt", "alice", "tok-alice",
                        headers={"Destination": f"{two.url}/alice/%2e%2e/stolen.txt"})
        assert status in (400, 403, 404, 409, 502)
    assert not list(two.jhome.rglob("stolen.txt"))
    assert (ws / "ok.txt").read_text() == "mine"
    # Deleting a folder that holds a link to the home removes the link, never what it points to.
    client(two, "alice").clean("sub")
    assert not (ws / "sub").exists()
    assert Path(alice.home_path, ".ssh", "id").read_text() == HOME_SECRET
    assert Path(two.accounts["bob"].workspace_path, "secret.txt").read_text() == SECRET


def test_half_written_uploads_are_not_listed(two: Dav) -> None:
    ws = Path(two.accounts["alice"].workspace_path)
    (ws / ".enclave-upload-0123").write_text("partial")
    (ws / "done.txt").write_text("whole")
    assert client(two, "alice").list() == ["done.txt"]


def test_a_link_that_stays_inside_the_workspace_is_not_served_either(two: Dav) -> None:
    """No path check refuses a link to the user's own file (it resolves inside the workspace): the provider does,
    as it serves no link at all, whatever it points to."""
    alice = two.accounts["alice"]
    ws = Path(alice.workspace_path)
    (ws / "ok.txt").write_text("mine")
    (ws / "alias.txt").symlink_to(ws / "ok.txt")
    made_by(alice)
    for method in ("GET", "PUT", "DELETE"):
        status, body = raw(two.url, method, "/alice/alias.txt", "alice", "tok-alice",
                           body=b"x" if method == "PUT" else None)
        assert (status, b"symbolic links are not served" in body) == (403, True), method
    assert (ws / "ok.txt").read_text() == "mine" and (ws / "alias.txt").is_symlink()


def test_workspace_replaced_by_link_to_home_is_refused(two: Dav) -> None:
    alice = two.accounts["alice"]
    ws = Path(alice.workspace_path)
    ws.rmdir()
    ws.symlink_to(alice.home_path)
    status, body = raw(two.url, "PROPFIND", "/alice/", "alice", "tok-alice", headers={"Depth": "1"})
    assert status == 403 and b"symbolic link" in body
    status, _ = raw(two.url, "GET", "/alice/.ssh/id", "alice", "tok-alice")
    assert status == 403


def test_workspace_equal_to_home_is_refused(two: Dav) -> None:
    alice = two.accounts["alice"]
    alice.workspace_path = alice.home_path
    status, body = raw(two.url, "PROPFIND", "/alice/", "alice", "tok-alice", headers={"Depth": "1"})
    assert status == 403 and b"not a subdirectory of its home" in body


def test_other_user_and_bad_credentials(two: Dav) -> None:
    status, body = raw(two.url, "GET", "/bob/secret.txt", "alice", "tok-alice")
    assert status == 403 and b"another user" in body
    # Bob's token under Alice's name: the token decides the identity, and they disagree.
    assert raw(two.url, "GET", "/bob/secret.txt", "alice", "tok-bob")[0] == 401
    assert raw(two.url, "GET", "/alice/", "alice", "tok-alice" + "x")[0] == 401
    with pytest.raises(WebDavException):
        client(two, "alice", root="/bob/").list()
    with pytest.raises(WebDavException):
        client(two, "alice", token="wrong").list()


@pytest.mark.parametrize("how", ["status", "date"])
def test_expired_allocation_is_read_only(two: Dav, tmp_path: Path, how: str) -> None:
    alice = two.accounts["alice"]
    Path(alice.workspace_path, "keep.txt").write_text("data")
    if how == "status":
        alice.status = "expired"
    else:
        alice.allocation_expires = NOW - timedelta(days=1)
    c = client(two, "alice")
    assert c.list() == ["keep.txt"]
    out = tmp_path / "keep"
    c.download_sync(remote_path="keep.txt", local_path=str(out))
    assert out.read_text() == "data"
    src = tmp_path / "new.txt"
    src.write_text("x")
    with pytest.raises(WebDavException):
        c.upload_sync(remote_path="new.txt", local_path=str(src))
    with pytest.raises(WebDavException):
        c.clean("keep.txt")
    with pytest.raises(WebDavException):
        c.mkdir("d")
    for method, headers in [("MOVE", {"Destination": f"{two.url}/alice/moved.txt"}), ("PROPPATCH", {}),
                            ("LOCK", {})]:
        status, body = raw(two.url, method, "/alice/keep.txt", "alice", "tok-alice", headers=headers)
        assert status == 403 and b"read-only" in body
    assert sorted(os.listdir(alice.workspace_path)) == ["keep.txt"]


def test_departed_account_is_refused(two: Dav) -> None:
    two.accounts["alice"].status = "departed"
    status, body = raw(two.url, "GET", "/alice/", "alice", "tok-alice")
    assert status == 403 and b"departed" in body
    with pytest.raises(WebDavException):
        client(two, "alice").list()


def test_a_refused_upload_over_an_empty_file_leaves_the_file(dav: Dav) -> None:
    """A refused upload removes only the empty file WsgiDAV's do_PUT made for a new name; a file the user had,
    empty or not, stays as it was (nothing a user owns is silently lost)."""
    erin = dav.add("erin", 1005, quota_gib=4096 / 1024**3)
    Path(erin.workspace_path, "empty.txt").write_bytes(b"")
    made_by(erin)
    status, body = raw(dav.url, "PUT", "/erin/empty.txt", "erin", "tok-erin", body=b"e" * 5000,
                       headers={"Transfer-Encoding": "chunked"})
    assert status == 507, body
    assert Path(erin.workspace_path, "empty.txt").read_bytes() == b""
    status, body = raw(dav.url, "PUT", "/erin/new.txt", "erin", "tok-erin", body=b"e" * 5000,
                       headers={"Transfer-Encoding": "chunked"})
    assert status == 507, body
    assert sorted(os.listdir(erin.workspace_path)) == ["empty.txt"]


def test_quota_is_enforced_on_upload(dav: Dav, tmp_path: Path) -> None:
    quota = 4096
    carol = dav.add("carol", 1003, quota_gib=quota / 1024**3)
    Path(carol.home_path, "notebook.ipynb").write_bytes(b"n" * 1000)  # home usage counts (one jhome quota)
    c = client(dav, "carol")
    small = tmp_path / "small"
    small.write_bytes(b"s" * 2000)
    c.upload_sync(remote_path="small.bin", local_path=str(small))
    big = tmp_path / "big"
    big.write_bytes(b"b" * 2000)
    with pytest.raises(WebDavException):
        c.upload_sync(remote_path="big.bin", local_path=str(big))
    assert sorted(os.listdir(carol.workspace_path)) == ["small.bin"]
    # Replacing a file counts only the growth.
    small.write_bytes(b"t" * 2500)
    c.upload_sync(remote_path="small.bin", local_path=str(small))
    assert Path(carol.workspace_path, "small.bin").read_bytes() == b"t" * 2500
    # A chunked upload (no Content-Length) is cut off when it passes the quota and leaves nothing.
    status, body = raw(dav.url, "PUT", "/carol/chunked.bin", "carol", "tok-carol", body=b"c" * 3000,
                       headers={"Transfer-Encoding": "chunked"})
    assert status == 507, body
    status, body = raw(dav.url, "PUT", "/carol/small.bin", "carol", "tok-carol", body=b"c" * 5000,
                       headers={"Transfer-Encoding": "chunked"})
    assert status == 507, body
    assert sorted(os.listdir(carol.workspace_path)) == ["small.bin"]
    assert Path(carol.workspace_path, "small.bin").read_bytes() == b"t" * 2500
    # Copies duplicate bytes, so they are held to the quota too.
    status, body = raw(dav.url, "COPY", "/carol/small.bin", "carol", "tok-carol",
                       headers={"Destination": f"{dav.url}/carol/again.bin"})
    assert status == 507 and b"quota" in body
    status, body = raw(dav.url, "PUT", "/carol/declared.bin", "carol", "tok-carol", body=b"d" * 1000)
    assert status == 507 and b"quota" in body
    # Folder properties report the account's quota, not the disk underneath.
    status, body = raw(dav.url, "PROPFIND", "/carol/", "carol", "tok-carol", headers={"Depth": "0"})
    assert status == 207 and b"quota-used-bytes>3500<" in body and b"quota-available-bytes>596<" in body


def test_a_directory_made_unreadable_still_counts_against_the_quota(dav: Dav) -> None:
    """Review, stop 48: the quota walk counted a directory it could not list as empty, so a directory the account
    made unreadable (chmod 000 from a notebook) hid its files, and uploads passed the quota without end. The write
    it cannot account for is refused (503), saying which directory and how to fix it."""
    carol = dav.add("carol", 1003, quota_gib=4096 / 1024**3)
    hidden = Path(carol.workspace_path, "hid")
    hidden.mkdir()
    (hidden / "f.bin").write_bytes(b"h" * 3000)
    hidden.chmod(0)
    try:
        status, body = raw(dav.url, "PUT", "/carol/more.bin", "carol", "tok-carol", body=b"m" * 2000)
    finally:
        hidden.chmod(0o755)
    assert status == 503 and b"hid, which cannot be read as the account" in body, body
    assert b"cannot be counted against the quota" in body and b"chmod u+rx" in body
    assert not Path(carol.workspace_path, "more.bin").exists()


LOCKINFO = (b'<?xml version="1.0" encoding="utf-8"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/>'
            b'</D:lockscope><D:locktype><D:write/></D:locktype><D:owner>me</D:owner></D:lockinfo>')


def test_owner_can_lock_and_locks_are_per_user(two: Dav) -> None:
    # Desktop clients (Finder, Explorer) LOCK before they write; locks are keyed by URL, and URLs carry
    # the user, so one user's lock never blocks or reveals another's files.
    Path(two.accounts["alice"].workspace_path, "doc.txt").write_text("v1")
    Path(two.accounts["bob"].workspace_path, "doc.txt").write_text("b1")
    status, body = raw(two.url, "LOCK", "/alice/doc.txt", "alice", "tok-alice", body=LOCKINFO,
                       headers={"Content-Type": "application/xml", "Timeout": "Second-60"})
    assert status == 200, body
    token = body.split(b"<D:href>")[1].split(b"</D:href>")[0].decode()
    assert raw(two.url, "PUT", "/alice/doc.txt", "alice", "tok-alice", body=b"v2")[0] == 423
    status, _ = raw(two.url, "PUT", "/alice/doc.txt", "alice", "tok-alice", body=b"v2",
                    headers={"If": f"(<{token}>)"})
    assert status == 204
    assert raw(two.url, "PUT", "/bob/doc.txt", "bob", "tok-bob", body=b"b2")[0] == 204
    status, _ = raw(two.url, "UNLOCK", "/alice/doc.txt", "alice", "tok-alice", headers={"Lock-Token": f"<{token}>"})
    assert status == 204
    assert Path(two.accounts["alice"].workspace_path, "doc.txt").read_text() == "v2"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give files away")
def test_server_created_files_belong_to_the_account(two: Dav, tmp_path: Path) -> None:
    c = client(two, "alice")
    src = tmp_path / "f.txt"
    src.write_text("x")
    c.mkdir("dir")
    c.upload_sync(remote_path="dir/f.txt", local_path=str(src))
    c.copy("dir/f.txt", "g.txt")
    ws = Path(two.accounts["alice"].workspace_path)
    for p in (ws / "dir", ws / "dir" / "f.txt", ws / "g.txt"):
        st = p.stat()
        assert (st.st_uid, st.st_gid) == (1001, 1001), p
