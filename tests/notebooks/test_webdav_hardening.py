"""WebDAV limits (issue 20): header size, XML body size, non-UTF-8 paths, and the quota held by concurrent
uploads (each reserves its bytes before it starts)."""

from __future__ import annotations

import base64
import http.client
import os
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

from enclave.notebooks import serving, webdav
from enclave.notebooks.serving import MAX_HEADER_BYTES
from enclave.notebooks.webdav import MAX_XML_BODY_BYTES, usage
from tests.notebooks.conftest import Dav, raw


def _send_head(url: str, lines: list[str]) -> int:
    """Send a request head as given (no body) on a raw socket; the status code of the answer."""
    u = urlparse(url)
    with socket.create_connection((u.hostname or "127.0.0.1", u.port or 80), timeout=10) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        data = b""
        while b"\r\n" not in data:
            more = s.recv(4096)
            if not more:
                break
            data += more
    return int(data.split(b" ", 2)[1])


def test_oversized_header_is_refused_before_authentication(dav: Dav) -> None:
    big = "a" * (MAX_HEADER_BYTES + 1024)
    # cheroot answers 413 once the head passes max_request_header_size (cheroot/server.py parse_request).
    assert _send_head(dav.url, ["GET /x/ HTTP/1.1", "Host: x", f"X-Junk: {big}"]) == 413
    # A head within the limit is read and answered (401: no credentials), so the limit is not too tight.
    assert _send_head(dav.url, ["GET /x/ HTTP/1.1", "Host: x", f"X-Junk: {'a' * 8000}"]) == 401


def test_oversized_xml_body_is_refused_unread(dav: Dav) -> None:
    dav.add("alice", 1001)
    auth = base64.b64encode(b"alice:tok-alice").decode()
    status = _send_head(dav.url, ["PROPFIND /alice/ HTTP/1.1", "Host: x", f"Authorization: Basic {auth}",
                                  "Depth: 0", f"Content-Length: {MAX_XML_BODY_BYTES + 1}"])
    assert status == 413
    status, _ = raw(dav.url, "PROPFIND", "/alice/", "alice", "tok-alice", headers={"Depth": "0"})
    assert status == 207


def test_non_utf8_path_is_a_400_before_and_after_authentication(dav: Dav) -> None:
    dav.add("alice", 1001)
    for token in ("tok-alice", "wrong"):
        status, body = raw(dav.url, "GET", "/alice/%ff%fe.txt", "alice", token)
        assert status == 400 and b"not UTF-8" in body, (status, body)


def _slow_put(url: str, path: str, size: int, start: threading.Barrier, out: list[int]) -> None:
    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port, timeout=30)
    conn.putrequest("PUT", path, skip_accept_encoding=True)
    conn.putheader("Authorization", "Basic " + base64.b64encode(b"dana:tok-dana").decode())
    conn.putheader("Content-Length", str(size))
    conn.endheaders()
    piece = size // 8
    try:
        conn.send(b"x" * piece)
        start.wait()  # every upload has been admitted (or refused) and is writing when the others start
        for _ in range(7):
            time.sleep(0.02)
            conn.send(b"x" * piece)
        conn.send(b"x" * (size - 8 * piece))
    except OSError:
        pass  # a refused upload's connection may be closed under us; its status is read below
    try:
        resp = conn.getresponse()
        resp.read()
        out.append(resp.status)
    except OSError:
        out.append(0)
    finally:
        conn.close()


def test_parallel_uploads_never_exceed_the_quota(dav: Dav) -> None:
    quota = 1 << 20
    dana = dav.add("dana", 1004, quota_gib=quota / 1024**3)
    size, n = 400 * 1024, 4  # each fits alone; all four would be 1.6 × the quota
    start = threading.Barrier(n, timeout=20)
    statuses: list[int] = []
    threads = [threading.Thread(target=_slow_put, args=(dav.url, f"/dana/f{i}.bin", size, start, statuses))
               for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(statuses) == n
    ok = statuses.count(201)
    # Two fit (800 KiB ≤ 1 MiB), a third would not: exactly two succeed, the others are told why.
    assert sorted(statuses) == [201, 201, 507, 507], statuses
    assert usage(Path(dana.home_path)) == ok * size <= quota
    assert not [p for p in os.listdir(dana.workspace_path) if p.startswith(webdav.UPLOAD_PREFIX)]
    # Every reservation was given back: one more upload of what is free still fits.
    status, _ = raw(dav.url, "PUT", "/dana/last.bin", "dana", "tok-dana", body=b"y" * (quota - 2 * size))
    assert status == 201


def test_a_quota_stored_as_infinity_refuses_uploads_instead_of_a_500(dav: Dav) -> None:
    dav.add("erin", 1005, quota_gib=float("inf"))  # what grow-quota accepted before quotas were bounded
    status, body = raw(dav.url, "PUT", "/erin/a.txt", "erin", "tok-erin", body=b"hello")
    assert status == 507 and b"quota" in body
    status, _ = raw(dav.url, "PROPFIND", "/erin/", "erin", "tok-erin", headers={"Depth": "0"})
    assert status == 207


def test_a_copy_refused_for_its_destination_gives_its_reservation_back(dav: Dav) -> None:
    quota = 1 << 20
    dana = dav.add("dana", 1004, quota_gib=quota / 1024**3)
    dav.add("erin", 1005)
    assert raw(dav.url, "PUT", "/dana/a.bin", "dana", "tok-dana", body=b"a" * (300 * 1024))[0] == 201
    # The copy reserves its 300 KiB before its destination, in erin's workspace, is judged and refused…
    status, _ = raw(dav.url, "COPY", "/dana/a.bin", "dana", "tok-dana",
                    headers={"Destination": f"{dav.url}/erin/a.bin"})
    assert status == 403
    # …and gives them back before it answers: all the quota leaves beside a.bin is free again (kept, the copy's
    # 300 KiB would leave 424 KiB).
    assert raw(dav.url, "PUT", "/dana/b.bin", "dana", "tok-dana", body=b"b" * (quota - 300 * 1024))[0] == 201
    assert usage(Path(dana.home_path)) == quota


def test_ledger_gives_back_written_bytes_and_the_rest_on_close(jhome: Path) -> None:
    ledger = webdav.Ledger(jhome / ".enclave-quota")
    first = ledger.reserve("dana", lambda others: (100, 100))
    assert first is not None and ledger.outstanding == {"dana": 100}
    # A second request sees the first one's outstanding bytes and may refuse on them.
    assert ledger.reserve("dana", lambda others: None if others + 50 > 120 else (50, 50)) is None
    first.written(30)  # 30 bytes reached the disk: the disk counts them now, not the ledger
    assert ledger.outstanding == {"dana": 70}
    # The server closes a response it never iterated (client gone): PEP 3333 close() still releases.
    serving.Closing([b"x"], first.release).close()
    assert ledger.outstanding == {}


def test_vospace_has_the_same_header_limit() -> None:
    """Both protocols are served by one copy of the server settings (enclave.notebooks.serving)."""
    from enclave.notebooks import vospace

    def refuse(username: str, token: str, write: bool) -> object:
        raise AssertionError("never reached: the head is refused before authentication")

    running = vospace.start(vospace.make_app(refuse), poll_seconds=0.05)
    try:
        big = "a" * (MAX_HEADER_BYTES + 1024)
        assert _send_head(running.url, ["GET /nodes/x HTTP/1.1", "Host: x", f"X-Junk: {big}"]) == 413
    finally:
        running.stop()
