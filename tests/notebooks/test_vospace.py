"""The File Workspace over VOSpace 2.1, driven by the real CADC client (``vos`` 3.7: its ``Client`` class and its
vls/vcp/vmkdir/vmv/vrm tools) and by raw HTTP over 127.0.0.1; the XML checked against the IVOA schema.

Expected behaviour comes from the IVOA VOSpace 2.1 Recommendation (https://www.ivoa.net/documents/VOSpace/20180620/,
"VOSpace §n") and from the same workspace rules WebDAV follows (tests/notebooks/test_webdav.py makes the same
traversal and other-user attempts)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
from cadcutils.exceptions import AlreadyExistsException
from lxml import etree
from vos import Client

from enclave.errors import Unauthenticated
from enclave.notebooks import vospace
from tests.notebooks.conftest import NOW, FakeAccount, made_by, make_account, raw
from tests.notebooks.test_upload_outlasts_access import put_across_a_status_change
from tests.notebooks.vos_support import AUTHORITY, run_tool, use_home, vos_uri

SECRET = "bob's secret"
HOME_SECRET = "alice's ssh key"
VOS = "{http://www.ivoa.net/xml/VOSpace/v2.0}"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
SCHEMAS = Path(__file__).parent / "schemas"
SCHEMA = etree.XMLSchema(etree.parse(str(SCHEMAS / "VOSpace-2.1.xsd")))
XLINK_STUB = b"""<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" targetNamespace="http://www.w3.org/1999/xlink">
  <xs:attribute name="type" type="xs:string"/><xs:attribute name="href" type="xs:anyURI"/></xs:schema>"""


class _Xlink(etree.Resolver):
    """UWS.xsd imports http://www.ivoa.net/xml/Xlink/xlink.xsd; offline, a stand-in declares the two attributes
    UWS uses (xlink:type, xlink:href)."""

    def resolve(self, url: str, pubid: str, context: object) -> object:
        return self.resolve_string(XLINK_STUB, context) if "xlink" in url.lower() else None


def _uws_schema() -> etree.XMLSchema:
    parser = etree.XMLParser()
    parser.resolvers.add(_Xlink())
    return etree.XMLSchema(etree.parse(str(SCHEMAS / "UWS-1.1.xsd"), parser))


UWS_SCHEMA = _uws_schema()


@dataclass
class Vo:
    url: str
    jhome: Path
    home: Path
    accounts: dict[str, FakeAccount]
    tokens: dict[str, tuple[str, bool]]

    def add(self, username: str, uid: int, **kw: object) -> FakeAccount:
        account = make_account(self.jhome, username, uid, **kw)
        self.accounts[username] = account
        self.tokens[f"tok-{username}"] = (username, True)
        self.tokens[f"ro-{username}"] = (username, False)
        return account

    def ws(self, username: str) -> Path:
        return Path(self.accounts[username].workspace_path)


@pytest.fixture()
def vo(tmp_path: Path, jhome: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Vo]:
    accounts: dict[str, FakeAccount] = {}
    tokens: dict[str, tuple[str, bool]] = {}

    def authenticate(username: str, token: str, write: bool) -> FakeAccount:
        # Like NotebookService.authenticator: the token names the account; a data.read-only token cannot write.
        who, may_write = tokens.get(token, ("", False))
        if not who or (write and not may_write):
            raise Unauthenticated("unknown token or missing scope")
        return accounts[who]

    running = vospace.start(vospace.make_app(authenticate, clock=lambda: NOW), poll_seconds=0.05)
    home = tmp_path / "client-home"
    use_home(monkeypatch, home, running.url)
    try:
        yield Vo(running.url, jhome, home, accounts, tokens)
    finally:
        running.stop()


@pytest.fixture()
def two(vo: Vo) -> Vo:
    alice = vo.add("alice", 1001)
    bob = vo.add("bob", 1002)
    Path(bob.workspace_path, "secret.txt").write_text(SECRET)
    Path(alice.home_path, ".ssh").mkdir()
    Path(alice.home_path, ".ssh", "id").write_text(HOME_SECRET)
    Path(alice.home_path, "notes.txt").write_text("home, not workspace")
    return vo


def client(user: str = "alice", token: str | None = None) -> Client:
    return Client(vospace_token=token or f"tok-{user}")


def transfer_doc(target: str, direction: str, keep: bool | None = None) -> bytes:
    keep_xml = "" if keep is None else f"<vos:keepBytes>{'true' if keep else 'false'}</vos:keepBytes>"
    return (f'<vos:transfer xmlns:vos="http://www.ivoa.net/xml/VOSpace/v2.0" version="2.1">'
            f"<vos:target>{target}</vos:target><vos:direction>{direction}</vos:direction>{keep_xml}"
            "</vos:transfer>").encode()


def negotiate(vo: Vo, target: str, direction: str, token: str = "tok-alice", user: str = "alice"
              ) -> tuple[str, ET.Element]:
    """POST a transfer to /synctrans (VOSpace §6.4), follow the 303 to the transfer details; (phase, details)."""
    import http.client
    from urllib.parse import urlparse

    u = urlparse(vo.url)
    conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port, timeout=10)
    body = transfer_doc(target, direction)
    conn.request("POST", "/synctrans", body=body, headers={"Authorization": f"Bearer {token}",
                                                             "Content-Type": "text/xml"})
    resp = conn.getresponse()
    resp.read()
    assert resp.status == 303, resp.status
    details_url = urlparse(resp.getheader("Location") or "").path
    assert details_url.endswith("/results/transferDetails")
    status, details = raw(vo.url, "GET", details_url, user, token)
    assert status == 200
    job = details_url.removesuffix("/results/transferDetails")
    _, phase = raw(vo.url, "GET", job + "/phase", user, token)
    return phase.decode(), ET.fromstring(details)


def assert_valid(document: bytes) -> etree._Element:
    """Validate against the VOSpace 2.1 XSD. The schema declares no top-level node element (its top-level
    elements are transfer, properties, views, protocols, searchDetails), so a node document is checked as the
    vos:node child of a searchDetails list, whose declared type vos:Node lets xsi:type select the full
    ContainerNode or DataNode content model."""
    doc = etree.fromstring(document)
    if doc.tag == f"{VOS}node":
        wrapper = etree.Element(f"{VOS}searchDetails", nsmap={"vos": VOS[1:-1]})
        etree.SubElement(wrapper, f"{VOS}nodes").append(doc)
        SCHEMA.assertValid(wrapper)
    else:
        SCHEMA.assertValid(doc)
    return doc


# ---------------------------------------------------------------------------------------------------
# The client round trip


def test_client_lists_uploads_downloads_mkdirs_moves_and_deletes(two: Vo, tmp_path: Path) -> None:
    c = client()
    ws = two.ws("alice")
    c.mkdir(vos_uri("alice/results"))
    assert (ws / "results").is_dir()
    with pytest.raises(AlreadyExistsException, match="DuplicateNode"):  # §6.2.1: DuplicateNode, HTTP 409
        c.mkdir(vos_uri("alice/results"))
    src = tmp_path / "data.csv"
    src.write_text("ra,dec\n1,2\n")
    assert c.copy(str(src), vos_uri("alice/results/data.csv")) == len("ra,dec\n1,2\n")
    assert (ws / "results" / "data.csv").read_text() == "ra,dec\n1,2\n"
    assert c.listdir(vos_uri("alice"), force=True) == ["results"]
    assert c.listdir(vos_uri("alice/results"), force=True) == ["data.csv"]
    assert c.isdir(vos_uri("alice/results")) and c.isfile(vos_uri("alice/results/data.csv"))
    node = c.get_node(vos_uri("alice/results/data.csv"), force=True)
    assert node.props["length"] == str(len("ra,dec\n1,2\n"))
    mtime = datetime.fromtimestamp((ws / "results" / "data.csv").stat().st_mtime, UTC)
    assert node.props["date"].startswith(mtime.strftime("%Y-%m-%dT%H:%M:%S"))
    out = tmp_path / "back.csv"
    c.copy(vos_uri("alice/results/data.csv"), str(out))
    assert out.read_text() == "ra,dec\n1,2\n"
    src.write_text("ra,dec\n3,4\n5,6\n")
    c.copy(str(src), vos_uri("alice/results/data.csv"))
    assert (ws / "results" / "data.csv").read_text() == "ra,dec\n3,4\n5,6\n"
    # moveNode (§6.2.2): a rename, then into an existing container.
    c.move(vos_uri("alice/results/data.csv"), vos_uri("alice/moved.csv"))
    assert sorted(os.listdir(ws)) == ["moved.csv", "results"]
    c.mkdir(vos_uri("alice/archive"))
    c.move(vos_uri("alice/moved.csv"), vos_uri("alice/archive"))
    assert os.listdir(ws / "archive") == ["moved.csv"]
    c.delete(vos_uri("alice/archive/moved.csv"))
    c.delete(vos_uri("alice/archive"))
    c.delete(vos_uri("alice/results"))
    assert c.listdir(vos_uri("alice"), force=True) == []
    assert os.listdir(ws) == []  # no upload temporaries left behind


def test_command_line_tools(two: Vo, tmp_path: Path) -> None:
    ws = two.ws("alice")
    src = tmp_path / "image.fits"
    src.write_bytes(b"SIMPLE  =                    T" + b" " * 50)
    steps = [("vmkdir", vos_uri("alice/run1")), ("vcp", str(src), vos_uri("alice/run1/image.fits")),
             ("vmv", vos_uri("alice/run1/image.fits"), vos_uri("alice/run1/renamed.fits")),
             ("vcp", vos_uri("alice/run1/renamed.fits"), str(tmp_path / "down.fits"))]
    for tool, *args in steps:
        done = run_tool(two.home, tool, *args, token="tok-alice")
        assert done.returncode == 0, (tool, done.stdout, done.stderr)
    assert os.listdir(ws / "run1") == ["renamed.fits"]
    assert (tmp_path / "down.fits").read_bytes() == src.read_bytes()
    listing = run_tool(two.home, "vls", vos_uri("alice/run1"), token="tok-alice")
    assert listing.returncode == 0 and listing.stdout.split() == ["renamed.fits"], listing
    done = run_tool(two.home, "vrm", vos_uri("alice/run1/renamed.fits"), token="tok-alice")
    assert done.returncode == 0, done.stderr
    assert os.listdir(ws / "run1") == []
    # The tools fail, with a non-zero exit, on someone else's files.
    refused = run_tool(two.home, "vls", vos_uri("bob"), token="tok-alice")
    assert refused.returncode != 0 and SECRET not in refused.stdout


def test_pull_and_push_are_negotiated_through_synctrans(two: Vo) -> None:
    (two.ws("alice") / "x.txt").write_text("bytes")
    phase, details = negotiate(two, vos_uri("alice/x.txt"), "pullFromVoSpace")
    assert phase == "COMPLETED"
    protocols = details.findall(f"{VOS}protocol")
    assert [p.get("uri") for p in protocols] == ["ivo://ivoa.net/vospace/core#httpget"]  # §3.5.4, plain HTTP here
    endpoint = protocols[0].findtext(f"{VOS}endpoint") or ""
    assert endpoint == f"{two.url}/files/alice/x.txt"
    assert raw(two.url, "GET", "/files/alice/x.txt", "alice", "tok-alice") == (200, b"bytes")
    phase, details = negotiate(two, vos_uri("alice/new.txt"), "pushToVoSpace")
    assert phase == "COMPLETED"
    endpoint = details.find(f"{VOS}protocol/{VOS}endpoint")
    assert endpoint is not None and endpoint.text == f"{two.url}/files/alice/new.txt"
    assert raw(two.url, "PUT", "/files/alice/new.txt", "alice", "tok-alice", body=b"pushed")[0] == 201
    assert (two.ws("alice") / "new.txt").read_bytes() == b"pushed"
    # A pull of what does not exist fails in the job, with the fault the client maps to ENOENT.
    phase, _ = negotiate(two, vos_uri("alice/missing.txt"), "pullFromVoSpace")
    assert phase == "ERROR"
    with pytest.raises(Exception, match="NodeNotFound"):
        client().copy(vos_uri("alice/missing.txt"), str(two.home / "missing"))


# ---------------------------------------------------------------------------------------------------
# Quota


def test_quota_is_enforced(vo: Vo, tmp_path: Path) -> None:
    quota = 4096
    carol = vo.add("carol", 1003, quota_gib=quota / 1024**3)
    Path(carol.home_path, "notebook.ipynb").write_bytes(b"n" * 1000)  # home usage counts (one quota per home)
    c = client("carol")
    small = tmp_path / "small"
    small.write_bytes(b"s" * 2000)
    c.copy(str(small), vos_uri("carol/small.bin"))
    big = tmp_path / "big"
    big.write_bytes(b"b" * 2000)
    with pytest.raises(OSError) as refused:
        c.copy(str(big), vos_uri("carol/big.bin"))
    assert "quota" in str(refused.value)
    assert os.listdir(carol.workspace_path) == ["small.bin"]
    # Replacing a file counts only the growth.
    small.write_bytes(b"t" * 2500)
    c.copy(str(small), vos_uri("carol/small.bin"))
    assert Path(carol.workspace_path, "small.bin").read_bytes() == b"t" * 2500
    # A chunked upload (no Content-Length) is cut off past the quota and leaves nothing.
    status, body = raw(vo.url, "PUT", "/files/carol/chunked.bin", "carol", "tok-carol", body=b"c" * 3000,
                       headers={"Transfer-Encoding": "chunked"})
    assert status == 413 and b"quota" in body
    status, body = raw(vo.url, "PUT", "/files/carol/declared.bin", "carol", "tok-carol", body=b"d" * 1000)
    assert status == 413 and b"quota" in body
    assert os.listdir(carol.workspace_path) == ["small.bin"]
    # copyNode duplicates bytes, so it is held to the quota too (the job ends in ERROR).
    with pytest.raises(OSError):
        copy_node(vo, "carol", vos_uri("carol/small.bin"), vos_uri("carol/again.bin"))
    assert os.listdir(carol.workspace_path) == ["small.bin"]
    # The workspace node reports the account's quota (§3.2.4 core#quota) and what is left of it.
    node = c.get_node(vos_uri("carol"), force=True)
    assert node.props["quota"] == str(quota) and node.props["availableSpace"] == str(quota - 1000 - 2500)


def copy_node(vo: Vo, user: str, source: str, dest: str) -> None:
    """copyNode (§6.2.3) through the asynchronous transfer endpoint with the client's own UWS helper."""
    from cadcutils.net import Transfer

    session = client(user).get_session(source)
    response = session.post(f"{vo.url}/transfers", data=transfer_doc(source, dest, keep=True),
                            headers={"Content-Type": "text/xml"}, allow_redirects=False)
    job = response.headers["Location"]
    session.post(job + "/phase", data="PHASE=RUN", headers={"Content-type": "application/x-www-form-urlencoded"})
    Transfer(session).get_transfer_error(job, source)


def test_copy_node(two: Vo) -> None:
    ws = two.ws("alice")
    (ws / "d").mkdir()
    (ws / "d" / "f.txt").write_text("f")
    copy_node(two, "alice", vos_uri("alice/d"), vos_uri("alice/e"))
    assert (ws / "e" / "f.txt").read_text() == "f" and (ws / "d" / "f.txt").read_text() == "f"


# ---------------------------------------------------------------------------------------------------
# Confinement: the traversal and other-user attempts of test_webdav.py, through VOSpace


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


def no_secret(body: bytes) -> bool:
    text = body.decode(errors="replace")
    return SECRET not in text and HOME_SECRET not in text and "home, not workspace" not in text


@pytest.mark.parametrize("path", RAW_ESCAPES)
def test_raw_traversal_read_fails(two: Vo, path: str) -> None:
    for prefix in ("/nodes", "/files"):
        status, body = raw(two.url, "GET", prefix + path, "alice", "tok-alice")
        assert status in (400, 403, 404), (prefix + path, status)
        assert no_secret(body)


@pytest.mark.parametrize("path", [
    "/alice/../evil.txt", "/alice/%2e%2e/evil.txt", "/alice/..%2fevil.txt", "/bob/evil.txt",
    "/alice/%2e%2e%2f%2e%2e%2fbob%2fworkspace%2fevil.txt",
])
def test_raw_traversal_write_fails(two: Vo, path: str) -> None:
    status, _ = raw(two.url, "PUT", "/files" + path, "alice", "tok-alice", body=b"pwned")
    node = (b'<vos:node xmlns:vos="http://www.ivoa.net/xml/VOSpace/v2.0" '
            b'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="vos:ContainerNode"/>')
    status_node, _ = raw(two.url, "PUT", "/nodes" + path, "alice", "tok-alice", body=node)
    written = list(two.jhome.rglob("*evil*"))
    # Refused, or stored under a literal name inside alice's own workspace: never anywhere else.
    assert all(p.parent == two.ws("alice") for p in written), written
    for s in (status, status_node):
        assert s in (400, 403, 404, 409) or s == 201, (path, s)
    if status != 201 and status_node != 201:
        assert written == []


@pytest.mark.parametrize("target", [
    "bob/secret.txt", "alice/../bob/workspace/secret.txt", "alice/../.ssh/id", "alice/%2e%2e/.ssh/id",
])
def test_transfers_outside_the_workspace_fail(two: Vo, target: str, tmp_path: Path) -> None:
    for direction in ("pullFromVoSpace", "pushToVoSpace"):
        phase, details = negotiate(two, vos_uri(target), direction)
        assert phase == "ERROR" and details.find(f"{VOS}protocol") is None, (target, direction)
    with pytest.raises(OSError):
        client().copy(vos_uri(target), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_moves_and_copies_stay_inside(two: Vo) -> None:
    ws = two.ws("alice")
    (ws / "ok.txt").write_text("mine")
    c = client()
    for dest in ("bob/stolen.txt", "alice/../stolen.txt", "alice/%2e%2e/stolen.txt", "alice/../../bob/stolen.txt"):
        with pytest.raises(OSError):
            c.move(vos_uri("alice/ok.txt"), vos_uri(dest))
        with pytest.raises(OSError):
            copy_node(two, "alice", vos_uri("alice/ok.txt"), vos_uri(dest))
    with pytest.raises(OSError):
        c.move(vos_uri("bob/secret.txt"), vos_uri("alice/got.txt"))
    # A URI of another VOSpace service is not a node here.
    with pytest.raises(Exception, match="InvalidURI"):
        copy_node(two, "alice", vos_uri("alice/ok.txt"), "vos://elsewhere~vospace/alice/x")
    assert not list(two.jhome.rglob("stolen.txt")) and not (ws / "got.txt").exists()
    assert (ws / "ok.txt").read_text() == "mine"
    assert Path(two.accounts["bob"].workspace_path, "secret.txt").read_text() == SECRET


def test_symlink_escape_fails(two: Vo) -> None:
    alice = two.accounts["alice"]
    ws = two.ws("alice")
    (ws / "to-bob").symlink_to(two.accounts["bob"].workspace_path)
    (ws / "to-home").symlink_to(alice.home_path)
    (ws / "passwd").symlink_to("/etc/passwd")
    (ws / "sub").mkdir()
    (ws / "sub" / "up").symlink_to("../..")
    (ws / "ok.txt").write_text("mine")
    made_by(alice)
    c = client()
    assert c.listdir(vos_uri("alice"), force=True) == ["ok.txt", "sub"]
    assert c.listdir(vos_uri("alice/sub"), force=True) == []
    for path in ["/alice/to-bob/secret.txt", "/alice/to-home/.ssh/id", "/alice/passwd", "/alice/sub/up/.ssh/id",
                 "/alice/to-bob/", "/alice/to-home"]:
        for prefix in ("/nodes", "/files"):
            status, body = raw(two.url, "GET", prefix + path, "alice", "tok-alice")
            assert status in (403, 404), (prefix + path, status)
            assert no_secret(body) and b"root:" not in body
    for path in ["/alice/to-bob/new.txt", "/alice/to-home/new.txt", "/alice/sub/up/new.txt"]:
        status, _ = raw(two.url, "PUT", "/files" + path, "alice", "tok-alice", body=b"x")
        assert status in (403, 404, 409), (path, status)
    assert not Path(two.accounts["bob"].workspace_path, "new.txt").exists()
    assert not Path(alice.home_path, "new.txt").exists()
    status, _ = raw(two.url, "DELETE", "/nodes/alice/to-bob/secret.txt", "alice", "tok-alice")
    assert status in (403, 404)
    # Deleting a container that holds a link to the home removes the link, never what it points to.
    c.delete(vos_uri("alice/sub"))
    assert not (ws / "sub").exists()
    assert Path(alice.home_path, ".ssh", "id").read_text() == HOME_SECRET
    assert Path(two.accounts["bob"].workspace_path, "secret.txt").read_text() == SECRET


def test_half_written_uploads_are_not_listed(two: Vo) -> None:
    ws = two.ws("alice")
    (ws / ".enclave-upload-0123").write_text("partial")
    (ws / "done.txt").write_text("whole")
    assert client().listdir(vos_uri("alice"), force=True) == ["done.txt"]


def test_workspace_replaced_by_link_to_home_is_refused(two: Vo) -> None:
    alice = two.accounts["alice"]
    ws = two.ws("alice")
    ws.rmdir()
    ws.symlink_to(alice.home_path)
    status, body = raw(two.url, "GET", "/nodes/alice", "alice", "tok-alice")
    assert status == 403 and b"symbolic link" in body
    assert raw(two.url, "GET", "/files/alice/.ssh/id", "alice", "tok-alice")[0] == 403


def test_other_user_and_bad_credentials(two: Vo, tmp_path: Path) -> None:
    status, body = raw(two.url, "GET", "/nodes/bob", "alice", "tok-alice")
    assert status == 403 and b"another user" in body and no_secret(body)
    assert raw(two.url, "GET", "/files/bob/secret.txt", "alice", "tok-alice")[0] == 403
    # Bob's token under Alice's name: the token decides the identity, and they disagree.
    assert raw(two.url, "GET", "/nodes/bob", "alice", "tok-bob")[0] == 401
    assert raw(two.url, "GET", "/nodes/alice", "alice", "tok-alice" + "x")[0] == 401
    with pytest.raises(OSError):
        client().copy(vos_uri("bob/secret.txt"), str(tmp_path / "s"))
    with pytest.raises(Exception, match="403|[Pp]ermission"):
        client().listdir(vos_uri("bob"), force=True)
    with pytest.raises(Exception, match="token was not accepted"):
        client(token="wrong").listdir(vos_uri("alice"), force=True)
    # Another user's transfer job is as invisible as one that never was.
    (two.ws("alice") / "x").write_text("x")
    import http.client
    from urllib.parse import urlparse

    u = urlparse(two.url)
    conn = http.client.HTTPConnection(u.hostname or "", u.port, timeout=10)
    conn.request("POST", "/synctrans", body=transfer_doc(vos_uri("alice/x"), "pullFromVoSpace"),
                 headers={"Authorization": "Bearer tok-alice"})
    job = urlparse(conn.getresponse().getheader("Location") or "").path.removesuffix("/results/transferDetails")
    assert raw(two.url, "GET", job + "/phase", "alice", "tok-alice") == (200, b"COMPLETED")
    assert raw(two.url, "GET", job, "bob", "tok-bob")[0] == 404
    assert raw(two.url, "GET", job + "/results/transferDetails", "bob", "tok-bob")[0] == 404


@pytest.mark.parametrize("how", ["status", "date"])
def test_expired_allocation_is_read_only(two: Vo, tmp_path: Path, how: str) -> None:
    alice = two.accounts["alice"]
    ws = two.ws("alice")
    (ws / "keep.txt").write_text("data")
    if how == "status":
        alice.status = "expired"
    else:
        alice.allocation_expires = NOW - timedelta(days=1)
    c = client()
    assert c.listdir(vos_uri("alice"), force=True) == ["keep.txt"]
    c.copy(vos_uri("alice/keep.txt"), str(tmp_path / "keep"))
    assert (tmp_path / "keep").read_text() == "data"
    src = tmp_path / "new.txt"
    src.write_text("x")
    with pytest.raises(OSError):
        c.copy(str(src), vos_uri("alice/new.txt"))
    with pytest.raises(Exception, match="403|[Pp]ermission|read-only"):
        c.mkdir(vos_uri("alice/d"))
    with pytest.raises(Exception, match="403|[Pp]ermission|read-only"):
        c.delete(vos_uri("alice/keep.txt"))
    with pytest.raises(OSError):
        c.move(vos_uri("alice/keep.txt"), vos_uri("alice/moved.txt"))
    status, body = raw(two.url, "PUT", "/files/alice/keep.txt", "alice", "tok-alice", body=b"changed")
    assert status == 403 and b"read-only" in body
    assert os.listdir(ws) == ["keep.txt"] and (ws / "keep.txt").read_text() == "data"


def test_departed_account_is_refused(two: Vo) -> None:
    two.accounts["alice"].status = "departed"
    status, body = raw(two.url, "GET", "/nodes/alice", "alice", "tok-alice")
    assert status == 403 and b"departed" in body
    with pytest.raises(Exception, match="403|[Pp]ermission"):
        client().listdir(vos_uri("alice"), force=True)


def test_read_only_token_reads_but_cannot_write(two: Vo) -> None:
    (two.ws("alice") / "a.txt").write_text("result")
    assert raw(two.url, "GET", "/files/alice/a.txt", "alice", "ro-alice") == (200, b"result")
    assert raw(two.url, "PUT", "/files/alice/b.txt", "alice", "ro-alice", body=b"x")[0] == 401
    assert raw(two.url, "DELETE", "/nodes/alice/a.txt", "alice", "ro-alice")[0] == 401
    assert (two.ws("alice") / "a.txt").exists() and not (two.ws("alice") / "b.txt").exists()


# ---------------------------------------------------------------------------------------------------
# The documents validate against the VOSpace 2.1 schema


def test_documents_validate_against_the_schema(two: Vo) -> None:
    ws = two.ws("alice")
    (ws / "dir").mkdir()
    (ws / "dir" / "f.txt").write_text("12345")
    (ws / "top.txt").write_text("x")
    root = assert_valid(raw(two.url, "GET", "/nodes/alice", "alice", "tok-alice")[1])
    assert root.get(XSI_TYPE) == "vos:ContainerNode" and root.get("version") == "2.1"
    assert root.get("uri") == f"vos://{AUTHORITY}/alice"
    children = root.findall(f"{VOS}nodes/{VOS}node")
    assert [(n.get("uri"), n.get(XSI_TYPE)) for n in children] == [
        (f"vos://{AUTHORITY}/alice/dir", "vos:ContainerNode"), (f"vos://{AUTHORITY}/alice/top.txt", "vos:DataNode")]
    sub = assert_valid(raw(two.url, "GET", "/nodes/alice/dir", "alice", "tok-alice")[1])
    props = {p.get("uri"): p.text for p in sub.iter(f"{VOS}property") if p.getparent().getparent() is sub}
    assert props["ivo://ivoa.net/vospace/core#length"] == "5"
    data = assert_valid(raw(two.url, "GET", "/nodes/alice/dir/f.txt", "alice", "tok-alice")[1])
    assert data.get(XSI_TYPE) == "vos:DataNode"
    node = (f'<vos:node xmlns:vos="http://www.ivoa.net/xml/VOSpace/v2.0" uri="vos://{AUTHORITY}/alice/made" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="vos:ContainerNode"/>').encode()
    status, created = raw(two.url, "PUT", "/nodes/alice/made", "alice", "tok-alice", body=node)
    assert status == 201 and assert_valid(created).get(XSI_TYPE) == "vos:ContainerNode"
    for target, direction in [("alice/top.txt", "pullFromVoSpace"), ("alice/up.txt", "pushToVoSpace"),
                              ("bob/secret.txt", "pullFromVoSpace")]:
        _, details = negotiate(two, vos_uri(target), direction)
        assert_valid(ET.tostring(details))
    # The schema does catch a wrong document: a container without its nodes list (minOccurs 1) fails.
    broken = etree.fromstring(raw(two.url, "GET", "/nodes/alice/dir", "alice", "tok-alice")[1])
    broken.remove(broken.find(f"{VOS}nodes"))
    with pytest.raises(etree.DocumentInvalid):
        assert_valid(etree.tostring(broken))


def test_basic_login_from_netrc(two: Vo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `vos -n`: user name and token from ~/.netrc, sent as HTTP Basic (cadcutils Subject(netrc=True)).
    (two.home / ".netrc").write_text("machine 127.0.0.1 login alice password tok-alice\n")
    (two.home / ".netrc").chmod(0o600)
    monkeypatch.setenv("HOME", str(two.home))
    c = Client()
    src = tmp_path / "n.txt"
    src.write_text("via netrc")
    c.copy(str(src), vos_uri("alice/n.txt"))
    assert c.listdir(vos_uri("alice"), force=True) == ["n.txt"]
    assert (two.ws("alice") / "n.txt").read_text() == "via netrc"
    # Bob's name with Alice's token: the token decides the identity, and they disagree.
    (two.home / ".netrc").write_text("machine 127.0.0.1 login bob password tok-alice\n")
    with pytest.raises(Exception, match="token was not accepted"):
        Client().listdir(vos_uri("bob"), force=True)


def test_a_bad_digest_or_limit_is_the_clients_fault_not_a_500(two: Vo) -> None:
    """Review, stop 48: `Digest: md5=a` (not base64) and `limit=²` (str.isdigit, not int) ended in a traceback and
    an empty 500. A Digest that is not base64 is a 400 InvalidArgument fault; a limit that is not ASCII digits is
    ignored, as any other non-number was."""
    status, body = raw(two.url, "PUT", "/files/alice/d.bin", "alice", "tok-alice", body=b"x",
                       headers={"Digest": "md5=a", "Content-Length": "1"})
    assert status == 400 and b"InvalidArgument" in body and b"not base64" in body
    assert not (two.ws("alice") / "d.bin").exists()
    (two.ws("alice") / "a").write_text("a")
    for limit in ("%C2%B2", "9" * 5000):
        status, body = raw(two.url, "GET", f"/nodes/alice?limit={limit}", "alice", "tok-alice")
        assert status == 200 and vos_uri("alice/a").encode() in body


def test_listing_pages_and_head(two: Vo) -> None:
    ws = two.ws("alice")
    for name in ("a", "b", "c", "d"):
        (ws / name).write_text(name * 3)
    first = ET.fromstring(raw(two.url, "GET", "/nodes/alice?limit=2", "alice", "tok-alice")[1])
    uris = [n.get("uri") for n in first.iter(f"{VOS}node") if n is not first]
    assert uris == [vos_uri("alice/a"), vos_uri("alice/b")]
    # VOSpace 2.1 §6.3.1: with `uri`, the list "begins at the node matching" it (the CADC client drops the first
    # child of every later page, which repeats the last of the page before)
    rest = ET.fromstring(raw(two.url, "GET", f"/nodes/alice?limit=5&uri={vos_uri('alice/b')}", "alice",
                             "tok-alice")[1])
    assert [n.get("uri") for n in rest.iter(f"{VOS}node") if n is not rest] == [
        vos_uri("alice/b"), vos_uri("alice/c"), vos_uri("alice/d")]
    node = client().get_node(vos_uri("alice"), limit=0, force=True)  # the real client pages through all
    assert [os.path.basename(n.uri) for n in node.get_children(client(), None, None, limit=2)] == list("abcd")
    import http.client
    from urllib.parse import urlparse

    u = urlparse(two.url)
    conn = http.client.HTTPConnection(u.hostname or "", u.port, timeout=10)
    conn.request("HEAD", "/files/alice/c", headers={"Authorization": "Bearer tok-alice"})
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Length") == "3" and resp.read() == b""


def test_vospace_webservice_over_tls(two: Vo, tmp_path: Path) -> None:
    """The operator's second way (docs/notebooks.md): VOSPACE_WEBSERVICE=<host:port> makes cadcutils read the
    registry from https://<host:port>/reg/resource-caps (cadcutils/net/ws.py, WsCapabilities), which the service
    answers; no registry file is written. Over TLS the negotiation offers the https protocols (§3.5.4)."""
    import threading

    from cheroot.ssl.builtin import BuiltinSSLAdapter

    from tests.notebooks.vos_support import self_signed

    def authenticate(username: str, token: str, write: bool) -> FakeAccount:
        if token != "tok-alice":
            raise Unauthenticated("unknown token")
        return two.accounts["alice"]

    server = vospace.make_server(vospace.make_app(authenticate, clock=lambda: NOW), "127.0.0.1", 0)
    server.ssl_adapter = BuiltinSSLAdapter(*map(str, self_signed(tmp_path)))
    server.expiration_interval = 0.05
    server.prepare()
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    home = tmp_path / "fresh-home"
    versions = home / ".config" / "vos" / "caches"
    versions.mkdir(parents=True)
    (versions / ".pypi_versions.json").write_text('{"releases": {"3.7": []}}')
    env = {"VOSPACE_WEBSERVICE": f"127.0.0.1:{server.bind_addr[1]}"}
    try:
        (two.ws("alice") / "x.txt").write_text("over tls")
        listing = run_tool(home, "vls", "--insecure", vos_uri("alice"), token="tok-alice", env=env)
        assert listing.returncode == 0 and listing.stdout.split() == ["x.txt"], listing
        done = run_tool(home, "vcp", "--insecure", vos_uri("alice/x.txt"), str(tmp_path / "down"), token="tok-alice",
                        env=env)
        assert done.returncode == 0, done.stderr
        assert (tmp_path / "down").read_text() == "over tls"
        assert not (home / ".config" / "cadc-registry" / "resource-caps").exists()
        caps = home / ".config" / "cadc-registry" / "alt-domains" / env["VOSPACE_WEBSERVICE"] / "resource-caps"
        assert caps.read_text().startswith("ivo://enclave.local/vospace = https://127.0.0.1:")
        import requests

        response = requests.post(f"https://{env['VOSPACE_WEBSERVICE']}/synctrans", verify=False, timeout=10,
                                 data=transfer_doc(vos_uri("alice/x.txt"), "pullFromVoSpace"),
                                 headers={"Authorization": "Bearer tok-alice"})  # follows the 303 to the details
        protocol = ET.fromstring(response.content).find(f"{VOS}protocol")
        assert protocol is not None and protocol.get("uri") == "ivo://ivoa.net/vospace/core#httpsget"
        assert protocol.findtext(f"{VOS}endpoint") == f"https://{env['VOSPACE_WEBSERVICE']}/files/alice/x.txt"
    finally:
        server.stop()
        thread.join(timeout=10)


def test_async_jobs_run_once_abort_and_run_on_creation(two: Vo) -> None:
    """UWS phases of a move (§6.4): PHASE=RUN on creation runs it at once; an aborted job never runs."""
    ws = two.ws("alice")
    (ws / "a.txt").write_text("a")
    session = client().get_session(vos_uri("alice"))

    def create(source: str, dest: str, query: str = "") -> str:
        response = session.post(f"{two.url}/transfers{query}", data=transfer_doc(source, dest, keep=False),
                                allow_redirects=False)
        assert response.status_code == 303
        return str(response.headers["Location"])

    job = create(vos_uri("alice/a.txt"), vos_uri("alice/b.txt"), "?PHASE=RUN")
    assert session.get(job + "/phase").text == "COMPLETED" and os.listdir(ws) == ["b.txt"]
    job = create(vos_uri("alice/b.txt"), vos_uri("alice/c.txt"))
    assert session.get(job + "/phase").text == "PENDING"
    session.post(job + "/phase", data="PHASE=ABORT", headers={"Content-type": "application/x-www-form-urlencoded"})
    session.post(job + "/phase", data="PHASE=RUN", headers={"Content-type": "application/x-www-form-urlencoded"})
    assert session.get(job + "/phase").text == "ABORTED" and os.listdir(ws) == ["b.txt"]
    uws = etree.fromstring(session.get(job).content)
    assert uws.findtext("{http://www.ivoa.net/xml/UWS/v1.0}phase") == "ABORTED"
    assert uws.find(f".//{VOS}transfer/{VOS}keepBytes").text == "false"


def test_uws_jobs_validate_against_the_uws_schema(two: Vo) -> None:
    (two.ws("alice") / "x").write_text("x")
    import http.client
    from urllib.parse import urlparse

    u = urlparse(two.url)
    jobs = []
    for target in ("alice/x", "bob/x"):
        body = transfer_doc(vos_uri(target), "pullFromVoSpace")
        conn = http.client.HTTPConnection(u.hostname or "", u.port, timeout=10)
        conn.request("POST", "/synctrans", body=body, headers={"Authorization": "Bearer tok-alice"})
        jobs.append(urlparse(conn.getresponse().getheader("Location") or "").path.removesuffix(
            "/results/transferDetails"))
    phases = []
    for job in jobs:
        doc = etree.fromstring(raw(two.url, "GET", job, "alice", "tok-alice")[1])
        UWS_SCHEMA.assertValid(doc)
        phases.append(doc.findtext("{http://www.ivoa.net/xml/UWS/v1.0}phase"))
        # The transfer inside jobInfo is a VOSpace document of its own (§3.6.1).
        transfer = doc.find(f"{{http://www.ivoa.net/xml/UWS/v1.0}}jobInfo/{VOS}transfer")
        assert transfer is not None
        assert_valid(etree.tostring(transfer))
    assert phases == ["COMPLETED", "ERROR"]
    # The schema does catch a wrong job: without its executionDuration (required) it fails.
    broken = etree.fromstring(raw(two.url, "GET", jobs[0], "alice", "tok-alice")[1])
    broken.remove(broken.find("{http://www.ivoa.net/xml/UWS/v1.0}executionDuration"))
    with pytest.raises(etree.DocumentInvalid):
        UWS_SCHEMA.assertValid(broken)


@pytest.mark.parametrize("status", ["departed", "expired"])
def test_a_vospace_upload_does_not_land_after_access_ends(vo: Vo, status: str) -> None:
    """Seed §4 (departed: no access; expired: read only): checked again just before the upload lands."""
    alice = vo.add("alice", 1001)
    assert put_across_a_status_change(vo.url, "/files/alice/late.bin", "Bearer tok-alice", alice, status) == 403
    assert not Path(alice.workspace_path, "late.bin").exists()
    assert [p.name for p in Path(alice.workspace_path).iterdir()] == []


def test_node_uris_are_encoded_and_decoded(two: Vo, tmp_path: Path) -> None:
    """VOSpace 2.1 §3.1: node URIs are URI-encoded (RFC 3986), so a name with '#', '?', '%' or a space is one node:
    listed encoded, found from its encoded URI, written under its decoded name."""
    ws = two.ws("alice")
    names = ("run#1.fits", "what?.txt", "50%.txt", "a b.txt")
    for name in names:
        (ws / name).write_text(name)
    body = raw(two.url, "GET", "/nodes/alice", "alice", "tok-alice")[1]
    listed = {n.get("uri") for n in ET.fromstring(body).iter(f"{VOS}node")}
    assert {vos_uri("alice/run%231.fits"), vos_uri("alice/what%3F.txt"), vos_uri("alice/50%25.txt"),
            vos_uri("alice/a%20b.txt")} <= listed
    c = client()
    assert sorted(os.path.basename(n.uri) for n in c.get_node(vos_uri("alice"), limit=None, force=True).node_list
                  ) == sorted(["run%231.fits", "what%3F.txt", "50%25.txt", "a%20b.txt"])
    out = tmp_path / "out"
    c.copy(vos_uri("alice/run%231.fits"), str(out))
    assert out.read_text() == "run#1.fits"
    src = tmp_path / "src"
    src.write_text("up")
    c.copy(str(src), vos_uri("alice/new%231.fits"))
    assert (ws / "new#1.fits").read_text() == "up" and not (ws / "new%231.fits").exists()


def test_parallel_uploads_never_exceed_the_quota(vo: Vo) -> None:
    """As on WebDAV (test_webdav.py): each upload reserves its bytes in the app's ledger before its body is read
    (workspace.reserve), so three 600 KiB uploads started together against a 1 MiB quota store one and refuse
    two, instead of each seeing the same free space."""
    import contextlib
    import http.client
    import threading
    import time
    from urllib.parse import urlparse

    from enclave.notebooks import workspace

    size = 600 * 1024
    alice = vo.add("alice", 1001, quota_gib=1 / 1024)
    statuses: list[int] = []
    go = threading.Event()

    def put_slowly(path: str) -> None:
        u = urlparse(vo.url)
        conn = http.client.HTTPConnection(u.hostname or "", u.port, timeout=20)
        conn.putrequest("PUT", path)
        conn.putheader("Authorization", "Bearer tok-alice")
        conn.putheader("Content-Length", str(size))
        conn.endheaders()
        go.wait()  # every request's head is in, and judged, before any body byte
        with contextlib.suppress(OSError):  # a refused upload is answered before its body is read
            conn.send(b"x" * size)
        response = conn.getresponse()
        response.read()
        statuses.append(response.status)

    threads = [threading.Thread(target=put_slowly, args=(f"/files/alice/f{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    go.set()
    for t in threads:
        t.join()
    assert sorted(statuses) == [201, 413, 413]
    assert workspace.usage(Path(alice.home_path)) <= 1024 * 1024
