"""One copy of each File Workspace rule (seed §6.2: the workspace is reachable over WebDAV and VOSpace): both
protocols use the functions of enclave.notebooks.workspace, and those refuse in a protocol-free way."""

from __future__ import annotations

import base64
import errno
import fcntl
import hashlib
import http.client
import inspect
import multiprocessing
import os
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from multiprocessing.connection import Connection
from pathlib import Path
from urllib.parse import urlparse

import pytest

from enclave.errors import Unauthenticated
from enclave.notebooks import vospace, webdav, workspace
from enclave.notebooks.workspace import Ledger, Refused, Reservation, reserve, resolve, size_of, workspace_root
from tests.notebooks.conftest import NOW, Dav, FakeAccount, make_account

SHARED = ["decide", "quota_bytes", "reserve", "usage", "resolve", "workspace_root", "open_inside", "act_as",
          "act_as_server", "drop_supplementary_groups", "url_user"]


def test_both_protocols_use_the_shared_rules() -> None:
    for name in SHARED:
        rule = getattr(workspace, name)
        in_vospace = getattr(vospace, name)
        assert in_vospace is rule, name
    for name in ("decide", "quota_bytes", "reserve", "usage"):  # one quota rule for both (workspace.reserve)
        assert getattr(webdav, name) is getattr(workspace, name), name
    # WebDAV's path rules only translate the refusal into WsgiDAV's error type; the rule itself is not restated.
    for adapter in (webdav.resolve, webdav.workspace_root, webdav._open_inside):
        source = inspect.getsource(adapter)
        assert "workspace." in source and "realpath" not in source and "commonpath" not in source
    for module in (webdav, vospace):
        source = inspect.getsource(module)
        assert "os.path.commonpath" not in source and "def decide" not in source and "def usage" not in source


def test_refusals_carry_a_status_and_a_reason(tmp_path: Path) -> None:
    account = make_account(tmp_path, "alice", 1001)
    root = workspace_root(account)
    with pytest.raises(Refused) as other:
        resolve(root, "alice", "/bob/x")
    assert other.value.status == 403 and "/alice/" in other.value.reason
    with pytest.raises(Refused) as dots:
        resolve(root, "alice", "/alice/a/../../x")
    assert dots.value.status == 403 and "'..'" in dots.value.reason
    Path(account.workspace_path).rmdir()
    with pytest.raises(Refused) as missing:
        workspace_root(account)
    assert missing.value.status == 404 and "is missing" in missing.value.reason


def test_a_link_to_a_sibling_named_like_the_workspace_stays_out(tmp_path: Path) -> None:
    """Inside means a path below the workspace, not a path that starts with its name: ``~/workspace-private`` is the
    home's, which neither protocol serves (``workspace_root``). A prefix test took it for the workspace's (a mutant
    comparing strings passed every test, stop 57); ``os.path.commonpath`` compares whole components."""
    account = make_account(tmp_path, "alice", 1001)
    root = workspace_root(account)
    private = Path(account.home_path) / (Path(root).name + "-private")
    private.mkdir()
    (private / "secret.txt").write_text("not served")
    (Path(root) / "to-sibling").symlink_to(private)
    with pytest.raises(Refused) as outside:
        resolve(root, "alice", "/alice/to-sibling/secret.txt")
    assert outside.value.status == 403 and "outside your workspace" in outside.value.reason
    assert not workspace.within(root, str(private)) and workspace.within(root, os.path.join(root, "a"))


def test_size_of_counts_what_a_copy_adds(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_bytes(b"x" * 7)
    (tmp_path / "f").write_bytes(b"y" * 3)
    (tmp_path / "link").symlink_to(tmp_path / "d")
    assert size_of(str(tmp_path / "d")) == 7
    assert size_of(str(tmp_path / "f")) == 3
    assert size_of(str(tmp_path / "link")) == 0  # a copy keeps links as links
    assert size_of(str(tmp_path / "absent")) == 0


# ---------------------------------------------------------------------------------------------------
# The quota ledger, shared by every process that serves the homes (workspace.Ledger)
#
# Expected results follow from the rule (workspace.reserve): an upload may take what the quota leaves after the
# home's usage and the reservations that still count — another process's until it releases it, or until its lease
# (LEASE_SECONDS from its last renewal) has passed. Every ledger here reads a fixed clock: nothing waits on time.

KIB = 1024
QUOTA = 1024 * KIB
T0 = 1_900_000_000.0
LEASE = workspace.LEASE_SECONDS


def _quota_account(jhome: Path) -> FakeAccount:
    return make_account(jhome, "alice", 1001, quota_gib=QUOTA / 1024**3)


def _ledger_file(jhome: Path) -> Path:
    return jhome / workspace.LEDGER_DIR / "alice"


def _holder(account: FakeAccount, size: int, conn: Connection) -> None:
    """In a forked process: reserve ``size`` bytes at T0, say how it went, then obey: 'renew <t>' renews at clock t,
    'release' releases, 'die' ends the process without releasing (as a killed server would)."""
    now = [T0]
    ledger = Ledger(clock=lambda: now[0])
    got = reserve(ledger, account, size)
    conn.send(got.cap if isinstance(got, Reservation) else got)
    while True:
        command = conn.recv()
        if command == "die":
            os._exit(0)
        if command.startswith("renew "):
            now[0] = float(command.split()[1])
            ledger.renew()
        elif command == "release" and isinstance(got, Reservation):
            got.release()
        conn.send("done")


@contextmanager
def _other_process(account: FakeAccount, size: int) -> Iterator[tuple[Connection, int | str]]:
    """A second server process (fork: a real process with its own Ledger) holding a reservation of ``size``."""
    context = multiprocessing.get_context("fork")
    ours, theirs = context.Pipe()
    process = context.Process(target=_holder, args=(account, size, theirs))
    process.start()
    theirs.close()  # the child's end, in this process
    try:
        yield ours, ours.recv()
    finally:
        with suppress(OSError):  # it may have ended already
            ours.send("die")
        process.join(timeout=30)


def _tell(conn: Connection, command: str) -> None:
    conn.send(command)
    assert conn.recv() == "done"


def _at(when: float) -> Ledger:
    return Ledger(clock=lambda: when)


def test_two_processes_share_one_ledger(jhome: Path) -> None:
    alice = _quota_account(jhome)
    with _other_process(alice, 600 * KIB) as (conn, first):
        assert first == 600 * KIB  # alone, it fits
        here = _at(T0)
        refused = reserve(here, alice, 600 * KIB)
        # 600 KiB more would pass the quota by 176 KiB: refused, saying what the other process holds.
        assert isinstance(refused, str) and f"{600 * KIB} bytes reserved" in refused
        unknown = reserve(here, alice, None)  # an upload without a length may take what the other left: 424 KiB
        assert isinstance(unknown, Reservation) and unknown.cap == QUOTA - 600 * KIB
        unknown.release()
        _tell(conn, "release")
        again = reserve(here, alice, 600 * KIB)  # released: its bytes are free again
        assert isinstance(again, Reservation) and again.cap == 600 * KIB
        again.release()


def test_a_dead_process_holds_its_reservation_for_one_lease_at_most(jhome: Path) -> None:
    alice = _quota_account(jhome)
    with _other_process(alice, 600 * KIB) as (conn, first):
        assert first == 600 * KIB
        conn.send("die")  # killed mid-upload: it never releases
    # Until its lease ends, its reservation counts (it might still be writing)…
    assert isinstance(reserve(_at(T0 + LEASE - 1), alice, 600 * KIB), str)
    # …and from then on it does not: nobody renewed it.
    late = reserve(_at(T0 + LEASE), alice, 600 * KIB)
    assert isinstance(late, Reservation) and late.cap == 600 * KIB
    late.release()


def test_a_live_process_renews_its_reservations(jhome: Path) -> None:
    alice = _quota_account(jhome)
    with _other_process(alice, 600 * KIB) as (conn, _):
        _tell(conn, f"renew {T0 + LEASE - 1}")  # its renewal thread's work, done on command
        # A lease after it was made, the reservation still counts: renewed at T0 + LEASE - 1, it runs a lease on…
        assert isinstance(reserve(_at(T0 + LEASE + 10), alice, 600 * KIB), str)
        assert isinstance(reserve(_at(T0 + 2 * LEASE - 2), alice, 600 * KIB), str)
        free = reserve(_at(T0 + 2 * LEASE - 2), alice, QUOTA - 600 * KIB)  # (what it leaves is still free)
        assert isinstance(free, Reservation)
        free.release()
        # …and ends at T0 + 2 × LEASE - 1 unless renewed again.
        late = reserve(_at(T0 + 2 * LEASE - 1), alice, 600 * KIB)
        assert isinstance(late, Reservation)
        late.release()


def test_the_ledger_is_the_servers_own_beside_the_homes(jhome: Path) -> None:
    alice = _quota_account(jhome)
    ledger = Ledger()
    with workspace.as_account(alice):  # as in a request: its file-system calls are the account's
        held = reserve(ledger, alice, 10 * KIB)
    assert isinstance(held, Reservation)
    path = _ledger_file(jhome)
    assert held.path == str(path)  # beside the homes, in none of them: never counted as the account's
    directory = path.parent.stat()
    # Made as the server (workspace.as_server), not as alice: she cannot read, forge or remove reservations.
    assert (directory.st_uid, stat.S_IMODE(directory.st_mode)) == (os.geteuid(), 0o700)
    assert (path.stat().st_uid, stat.S_IMODE(path.stat().st_mode)) == (os.geteuid(), 0o600)
    assert workspace.usage(Path(alice.home_path)) == 0
    held.release()
    seen: list[int] = []
    assert Ledger().reserve("alice", lambda others: seen.append(others), home=alice.home_path) is None
    assert seen == [0]  # released: nothing counts any more


@pytest.mark.parametrize("damage", ["garbage", "torn"])
def test_an_unreadable_ledger_is_reset_and_new_reservations_wait_a_lease(jhome: Path, damage: str) -> None:
    alice = _quota_account(jhome)
    with _other_process(alice, 600 * KIB) as (conn, _):
        path = _ledger_file(jhome)
        good = path.read_bytes()
        bad = b"\x00not a ledger" if damage == "garbage" else good[:len(good) - 20]  # a write cut short
        path.write_bytes(bad)
        # What the lost content held is unknown: nothing new is let through for one lease…
        with pytest.raises(Refused) as blocked:
            reserve(_at(T0 + 1), alice, 1)
        assert blocked.value.status == 503 and "unreadable" in blocked.value.reason
        assert Path(f"{path}.unreadable").read_bytes() == bad  # kept for whoever looks into it
        # …in which every live process enters its reservations again, at its next renewal.
        _tell(conn, f"renew {T0 + 2}")
        after = _at(T0 + 1 + LEASE)
        assert isinstance(reserve(after, alice, 600 * KIB), str)  # the other's 600 KiB still count
        rest = reserve(after, alice, QUOTA - 600 * KIB)
        assert isinstance(rest, Reservation)
        rest.release()


def test_a_ledger_of_a_newer_enclave_is_refused_and_left_alone(jhome: Path) -> None:
    alice = _quota_account(jhome)
    path = _ledger_file(jhome)
    path.parent.mkdir(mode=0o700)
    newer = b"enclave-quota-ledger 2 2 0\n{}\n"
    path.write_bytes(newer)
    with pytest.raises(Refused) as refused:
        reserve(_at(T0), alice, 1)
    assert refused.value.status == 503 and "newer enclave" in refused.value.reason
    assert path.read_bytes() == newer


def test_a_ledger_directory_others_may_write_is_refused(jhome: Path) -> None:
    alice = _quota_account(jhome)
    directory = _ledger_file(jhome).parent
    directory.mkdir()
    directory.chmod(0o777)  # anyone could plant or remove reservations
    with pytest.raises(Refused) as refused:
        reserve(_at(T0), alice, 1)
    assert refused.value.status == 503 and f"chmod 700 {directory}" in refused.value.reason


def _reserved(account: FakeAccount) -> int:
    """What another upload of the account would see reserved now (read through a ledger of the test's own)."""
    seen: list[int] = []
    Ledger().reserve(account.username, lambda others: seen.append(others), home=account.home_path)
    return seen[0]


def test_uploads_over_webdav_and_vospace_share_the_quota(dav: Dav) -> None:
    """The two servers keep a Ledger each, as they do in separate processes: only the ledger file joins them."""
    dana = dav.add("dana", 1004, quota_gib=QUOTA / 1024**3)

    def authenticate(username: str, token: str, write: bool) -> FakeAccount:
        if token not in dav.tokens:
            raise Unauthenticated("unknown token")
        return dav.accounts[dav.tokens[token]]

    vo = vospace.start(vospace.make_app(authenticate, clock=lambda: NOW), poll_seconds=0.05)
    u = urlparse(dav.url)
    upload = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port, timeout=30)
    try:
        upload.putrequest("PUT", "/dana/big.bin", skip_accept_encoding=True)
        upload.putheader("Authorization", "Basic " + base64.b64encode(b"dana:tok-dana").decode())
        upload.putheader("Content-Length", str(600 * KIB))
        upload.endheaders()
        upload.send(b"x" * KIB)  # WebDAV has reserved 600 KiB and is writing
        for _ in range(2000):  # until WebDAV's reservation is in the ledger (a condition, not a duration)
            if _reserved(dana) == 600 * KIB:
                break
            time.sleep(0.01)
        assert _reserved(dana) == 600 * KIB
        status, body = _vospace_put(vo.url, "/files/dana/v.bin", 600 * KIB)
        assert status == 413 and f"{600 * KIB} bytes reserved" in body  # 1200 KiB would pass the 1 MiB quota
        upload.send(b"x" * (599 * KIB))
        response = upload.getresponse()
        response.read()
        assert response.status == 201
        assert _vospace_put(vo.url, "/files/dana/v.bin", QUOTA - 600 * KIB)[0] == 201  # what is left fits exactly
        assert workspace.usage(Path(dana.home_path)) == QUOTA
        assert _reserved(dana) == 0
    finally:
        upload.close()
        vo.stop()


def _vospace_put(url: str, path: str, size: int) -> tuple[int, str]:
    u = urlparse(url)
    conn = http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port, timeout=30)
    try:
        conn.putrequest("PUT", path, skip_accept_encoding=True)
        conn.putheader("Authorization", "Bearer tok-dana")
        conn.putheader("Content-Length", str(size))
        conn.endheaders()
        with suppress(OSError):  # a refused upload is answered before its body is read, and the server may close
            conn.send(b"y" * size)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------------
# Whose the ledger is: only the servers' uid (or the configured owner, for root_squash) may own it, since whoever
# owns the directory or a file could empty it, and an emptied ledger reads as one nobody has reserved in.


def _prepared_ledger(jhome: Path, owner: int = 0) -> Path:
    """The ledger directory and alice's file as the servers make them, then owned by ``owner`` (0: the tester)."""
    path = _ledger_file(jhome)
    path.parent.mkdir(mode=0o700)
    path.write_bytes(b"")
    path.chmod(0o600)
    if owner:
        os.chown(path.parent, owner, owner)
        os.chown(path, owner, owner)
    return path


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another uid needs root")
def test_a_ledger_directory_another_uid_owns_is_refused(jhome: Path) -> None:
    alice = _quota_account(jhome)
    directory = _ledger_file(jhome).parent
    directory.mkdir(mode=0o700)
    os.chown(directory, alice.uid, alice.gid)  # made first by a user (the home root is hers to create in, say)
    with pytest.raises(Refused) as refused:
        reserve(_at(T0), alice, 1)
    assert refused.value.status == 503 and f"owned by uid {alice.uid}" in refused.value.reason
    assert not _ledger_file(jhome).exists()  # nothing made in a directory she could empty


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another uid needs root")
@pytest.mark.parametrize("damage", ["owner", "link"])
def test_a_ledger_file_another_uid_owns_or_links_is_refused(jhome: Path, damage: str) -> None:
    alice = _quota_account(jhome)
    path = _prepared_ledger(jhome)
    if damage == "owner":
        os.chown(path, alice.uid, alice.gid)
        expected = f"owned by uid {alice.uid}"
    else:
        os.link(path, jhome / "alias")  # a second name for it, which the directory's mode does not guard
        expected = "2 links"
    with pytest.raises(Refused) as refused:
        reserve(_at(T0), alice, 1)
    assert refused.value.status == 503 and expected in refused.value.reason


def test_a_ledger_directory_that_is_a_link_is_refused(jhome: Path) -> None:
    alice = _quota_account(jhome)
    (jhome / "elsewhere").mkdir(mode=0o700)
    _ledger_file(jhome).parent.symlink_to(jhome / "elsewhere")
    with pytest.raises(Refused) as refused:
        reserve(_at(T0), alice, 1)
    assert refused.value.status == 503 and "is not a directory" in refused.value.reason


def test_a_ledger_directory_that_cannot_be_opened_is_not_called_a_link(jhome: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Only ELOOP and ENOTDIR say the path is no directory (open(2) with O_NOFOLLOW | O_DIRECTORY); another error
    (here EIO) is the file system's, and is refused as a ledger that cannot be opened, with its reason."""
    alice = _quota_account(jhome)
    directory = str(_ledger_file(jhome).parent)
    real_open = os.open

    def failing(path: str, flags: int, *args: object, **kwargs: object) -> int:
        if path == directory:
            raise OSError(errno.EIO, os.strerror(errno.EIO), path)
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(workspace.os, "open", failing)
    with pytest.raises(Refused) as refused:
        reserve(_at(T0), alice, 1)
    assert "cannot be opened" in refused.value.reason and os.strerror(errno.EIO) in refused.value.reason
    assert "is not a directory" not in refused.value.reason


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another uid needs root")
def test_a_configured_owner_replaces_the_servers_uid(jhome: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On an export that squashes root the files are the anonymous uid's (exports(5) anonuid): configured, it is the
    one owner accepted; the servers' own uid then is not."""
    alice = _quota_account(jhome)
    _prepared_ledger(jhome, owner=4242)
    monkeypatch.setenv(workspace.LEDGER_OWNER_ENV, "4242")
    held = reserve(Ledger(clock=lambda: T0), alice, 1)
    assert isinstance(held, Reservation)
    held.release()
    monkeypatch.delenv(workspace.LEDGER_OWNER_ENV)
    with pytest.raises(Refused) as refused:
        reserve(_at(T0), alice, 1)
    assert "owned by uid 4242" in refused.value.reason
    # The uid notebook pods run as, and every squashed root by default, is never an owner.
    with pytest.raises(ValueError, match="65534"):
        Ledger(owner=workspace.NOBODY_UID)


def test_a_ledger_crafted_to_nest_deeply_is_unreadable(jhome: Path) -> None:
    """A valid checksum over JSON nested past Python's recursion limit: json.loads raises RecursionError."""
    alice = _quota_account(jhome)
    path = _prepared_ledger(jhome)
    body = b"[" * 200_000 + b"]" * 200_000
    path.write_bytes(f"{workspace.LEDGER_FORMAT} {workspace.LEDGER_VERSION} {len(body)} ".encode()
                     + hashlib.sha256(body).hexdigest().encode() + b"\n" + body)
    with pytest.raises(Refused) as blocked:
        reserve(_at(T0), alice, 1)
    assert blocked.value.status == 503 and "unreadable" in blocked.value.reason


def _ledger_of(body: bytes) -> bytes:
    """A ledger file around ``body``, its header's length and checksum right (``workspace._decode_checked``)."""
    head = f"{workspace.LEDGER_FORMAT} {workspace.LEDGER_VERSION} {len(body)} {hashlib.sha256(body).hexdigest()}\n"
    return head.encode() + body + b"\n"


@pytest.mark.parametrize("entry", [
    b'{"bytes":-1,"expires":1}',  # a count is an int >= 0
    b'{"bytes":true,"expires":1}',  # JSON true is no count, though Python's bool is an int
    b'{"bytes":1,"expires":NaN}',  # json.loads takes NaN; no lease ends then
    b'{"bytes":1,"expires":"soon"}',
    b'{"bytes":1,"expires":1,"settling_on":5}',  # a host id is a string …
    b'{"bytes":1,"expires":1,"settling_on":"' + b"h" * 65 + b'"}',  # … of at most 64 characters
])
def test_a_ledger_whose_entries_no_server_writes_is_unreadable(jhome: Path, entry: bytes) -> None:
    """Length and checksum right, but an entry no server writes (``_encode``): read as unreadable, as a torn one."""
    alice = _quota_account(jhome)
    _prepared_ledger(jhome).write_bytes(_ledger_of(b'{"reservations":{"1":' + entry + b'},"blocked_until":null}'))
    with pytest.raises(Refused) as blocked:
        reserve(_at(T0), alice, 1)
    assert blocked.value.status == 503 and "unreadable" in blocked.value.reason


def test_a_host_id_of_64_characters_is_read() -> None:
    body = b'{"reservations":{"1":{"bytes":1,"expires":1,"settling_on":"' + b"h" * 64 + b'"}},"blocked_until":null}'
    assert workspace._decode(_ledger_of(body)).entries == {"1": (1, 1.0, "h" * 64)}


def _full_ledger() -> bytes:
    """An empty ledger padded (JSON allows the whitespace) to exactly ``_MAX_LEDGER_BYTES``."""
    bound = workspace._MAX_LEDGER_BYTES
    doc = b'{"reservations":{},"blocked_until":null}'
    pad = bound - len(_ledger_of(doc))
    while len(_ledger_of(doc + b" " * pad)) > bound:  # the padding lengthens the header's length field too
        pad -= 1
    full = _ledger_of(doc + b" " * pad)
    assert len(full) == bound
    return full


def test_a_ledger_is_read_up_to_its_bound_and_no_further() -> None:
    """A ledger of exactly ``_MAX_LEDGER_BYTES`` is read; one byte more is refused before it is parsed."""
    full = _full_ledger()
    assert workspace._decode(full).entries == {}
    with pytest.raises(workspace._Unreadable, match="larger than any ledger"):
        workspace._decode(full + b" ")


def test_a_ledger_file_past_the_bound_is_unreadable(jhome: Path) -> None:
    """Read from the file, the byte past the bound is read too (``_read``), so a valid ledger followed by more is
    not taken for its first ``_MAX_LEDGER_BYTES`` bytes."""
    alice = _quota_account(jhome)
    _prepared_ledger(jhome).write_bytes(_full_ledger() + b" ")
    with pytest.raises(Refused) as blocked:
        reserve(_at(T0), alice, 1)
    assert blocked.value.status == 503 and "unreadable" in blocked.value.reason


@pytest.mark.parametrize("failure", [RuntimeError, SystemExit])
def test_the_renewal_thread_outlives_a_failure_and_always_lets_go(jhome: Path, failure: type[BaseException]) -> None:
    """An Exception in one round is logged and the next round runs; anything that ends the thread (here SystemExit)
    still clears the running flag, so the next reservation starts a renewer again."""
    alice = _quota_account(jhome)
    ledger = Ledger(renew_seconds=0.001, clock=lambda: T0)
    rounds: list[int] = []
    second = threading.Event()

    def flaky() -> None:
        rounds.append(1)
        if len(rounds) == 1:
            raise failure("boom")
        second.set()

    ledger.renew = flaky  # type: ignore[method-assign]
    held = reserve(ledger, alice, 1)
    assert isinstance(held, Reservation)
    # The ledger's own reference: with SystemExit the thread may have ended before threading.enumerate() would
    # list it (a flaky "not enough values to unpack").
    renewer = ledger._renewer
    assert renewer is not None and renewer.name == "enclave-quota-lease"
    if failure is SystemExit:
        renewer.join(timeout=30)
        assert not renewer.is_alive() and rounds == [1] and not ledger._renewing
    else:
        assert second.wait(timeout=30)  # a condition, not a duration: the round after the failure ran
    held.release()
    renewer.join(timeout=30)
    assert not renewer.is_alive() and not ledger._renewing


# ---------------------------------------------------------------------------------------------------
# Bounded waits: a request waits at most Ledger.wait_seconds (LOCK_WAIT_SECONDS) for an account's ledger, and a
# renewal not at all. Each test here holds the ledger itself until it has seen the answer: no timing is asserted.


def test_a_request_does_not_wait_out_another_requests_walk(jhome: Path) -> None:
    alice = _quota_account(jhome)
    walking, done = threading.Event(), threading.Event()

    def slow_walk(others: int) -> tuple[int, int]:
        walking.set()
        done.wait(timeout=60)  # a home of millions of files, being measured under the lock
        return 1, 1

    first = threading.Thread(target=lambda: Ledger(clock=lambda: T0).reserve("alice", slow_walk,
                                                                              home=alice.home_path))
    first.start()
    try:
        assert walking.wait(timeout=30)
        with pytest.raises(Refused) as busy:
            reserve(Ledger(clock=lambda: T0, wait_seconds=0), alice, 1)
        assert busy.value.status == 503 and "another upload of alice's is being measured; retry" in busy.value.reason
    finally:
        done.set()
        first.join(timeout=30)


def _lock_holder(path: str, conn: Connection) -> None:
    """In a forked process: hold a record lock on ``path`` until told to let go (another server's reservation)."""
    fd = os.open(path, os.O_RDWR)
    fcntl.lockf(fd, fcntl.LOCK_EX)
    conn.send("locked")
    conn.recv()
    os._exit(0)


@contextmanager
def _locked_in_another_process(path: Path) -> Iterator[None]:
    context = multiprocessing.get_context("fork")
    ours, theirs = context.Pipe()
    process = context.Process(target=_lock_holder, args=(str(path), theirs))
    process.start()
    theirs.close()
    try:
        assert ours.recv() == "locked"
        yield
    finally:
        with suppress(OSError):
            ours.send("go")
        process.join(timeout=30)


def test_a_request_does_not_wait_out_another_processs_lock(jhome: Path) -> None:
    alice = _quota_account(jhome)
    path = _prepared_ledger(jhome)
    with _locked_in_another_process(path):
        with pytest.raises(Refused) as busy:
            reserve(Ledger(clock=lambda: T0, wait_seconds=0), alice, 1)
        assert busy.value.status == 503 and "being measured; retry" in busy.value.reason
    held = reserve(Ledger(clock=lambda: T0, wait_seconds=0), alice, 1)  # let go: the next attempt gets it
    assert isinstance(held, Reservation)
    held.release()


def test_a_renewal_skips_an_account_whose_ledger_is_held(jhome: Path) -> None:
    """Renewing alice's reservation must not wait on her ledger: bob's is renewed in the same round, and alice's in
    a later one, once it is free."""
    alice, bob = _quota_account(jhome), make_account(jhome, "bob", 1002, quota_gib=QUOTA / 1024**3)
    now = [T0]
    ledger = Ledger(clock=lambda: now[0], renew_seconds=3600)  # rounds run by hand here
    held = [reserve(ledger, account, 1) for account in (alice, bob)]
    assert all(isinstance(h, Reservation) for h in held)

    def expiries(path: Path) -> list[float]:
        return [e for _, e, _ in workspace._decode(path.read_bytes()).entries.values()]

    alice_file, bob_file = _ledger_file(jhome), jhome / workspace.LEDGER_DIR / "bob"
    now[0] = T0 + 100
    with _locked_in_another_process(alice_file):
        renewal = threading.Thread(target=ledger.renew)
        renewal.start()
        renewal.join(timeout=30)
        assert not renewal.is_alive()  # it did not wait for alice's holder
        assert expiries(bob_file) == [T0 + 100 + LEASE]
        assert expiries(alice_file) == [T0 + LEASE]  # not renewed this round…
    ledger.renew()
    assert expiries(alice_file) == [T0 + 100 + LEASE]  # …but the next
    for h in held:
        assert isinstance(h, Reservation)
        h.release()


# ---------------------------------------------------------------------------------------------------
# Settling: a released reservation still counts for processes on other hosts for SETTLE_SECONDS, the time another
# NFS client may take to see a landed file in its walk of the home (nfs(5) acdirmax); on the same host (one kernel,
# one NFS client cache) the walk sees it at once. Hosts are named here; every clock is fixed.

SETTLE = workspace.SETTLE_SECONDS


def _others_seen(account: FakeAccount, when: float, host: str) -> int:
    """What a process on ``host`` would count as reserved by others at ``when`` (it reserves nothing itself)."""
    seen: list[int] = []
    Ledger(clock=lambda: when, host=host).reserve(account.username, lambda others: seen.append(others),
                                                  home=account.home_path)
    return seen[0]


def test_a_landed_upload_settles_for_other_hosts(jhome: Path) -> None:
    alice = _quota_account(jhome)
    held = reserve(Ledger(clock=lambda: T0, host="node-a"), alice, 600 * KIB)
    assert isinstance(held, Reservation)
    held.written(600 * KIB)
    held.release()  # landed on node-a at T0: node-b's walk may not list it for up to acdirmax
    assert _others_seen(alice, T0 + 1, "node-a") == 0  # node-a's own walk lists it
    assert _others_seen(alice, T0 + SETTLE - 1, "node-b") == 600 * KIB
    refused = reserve(Ledger(clock=lambda: T0 + SETTLE - 1, host="node-b"), alice, 600 * KIB)
    assert isinstance(refused, str) and f"{600 * KIB} bytes reserved" in refused  # not 1200 KiB in a 1 MiB quota
    assert _others_seen(alice, T0 + SETTLE, "node-b") == 0  # by then node-b's walk lists the file itself


def test_what_a_released_write_settles_with(jhome: Path) -> None:
    """What it may have added to the home: what it wrote less the file it replaced; all it reserved when its writer
    reports no writes (a copy); for a write of unknown length only what it wrote, not the free space it reserved."""
    alice = _quota_account(jhome)
    cases: list[tuple[int | None, int, str, int | None, int]] = [
        # (length, replaced, what, written, settles with)
        (300 * KIB, 0, "upload", 300 * KIB, 300 * KIB),
        (300 * KIB, 200 * KIB, "upload", 300 * KIB, 100 * KIB),
        (300 * KIB, 200 * KIB, "upload", 250 * KIB, 50 * KIB),  # ended early
        (100 * KIB, 200 * KIB, "upload", 100 * KIB, 0),  # smaller than what it replaced
        (300 * KIB, 0, "copy", None, 300 * KIB),
        (None, 0, "upload", 100 * KIB, 100 * KIB),
        (None, 0, "upload", 0, 0),
    ]
    for k, (length, replaced, what, written, settles) in enumerate(cases):
        at = T0 + k * 10 * SETTLE  # each case alone: the previous one's settling is over
        held = reserve(Ledger(clock=lambda at=at: at, host="node-a"), alice, length, replaced, what=what)
        assert isinstance(held, Reservation), k
        if written is not None:
            held.written(written)
        held.release()
        assert _others_seen(alice, at + 1, "node-b") == settles, k


@pytest.mark.parametrize(("value", "expected"), [("", os.geteuid()), (" 1500 ", 1500), ("-1", None), ("abc", None)])
def test_the_ledger_owner_from_the_environment(monkeypatch: pytest.MonkeyPatch, value: str,
                                               expected: int | None) -> None:
    """A uid is a number >= 0: "-1" is none, though int() reads it."""
    monkeypatch.setenv(workspace.LEDGER_OWNER_ENV, value)
    if expected is None:
        with pytest.raises(ValueError, match="is not a uid"):
            workspace.ledger_owner()
    else:
        assert workspace.ledger_owner() == expected


def test_a_file_system_without_record_locks_is_refused_at_once(jhome: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only EACCES and EAGAIN mean another process holds the lock (fcntl(2), F_SETLK); an NFS mount with nolock
    answers ENOLCK, and waiting would not help: refused with what to fix, not after the lock's wait."""
    alice = _quota_account(jhome)

    def no_locks(fd: int, cmd: int, *args: object) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(workspace.fcntl, "lockf", no_locks)
    with pytest.raises(Refused) as refused:
        reserve(_at(T0), alice, 1)
    # Not "another upload … is being measured", which would come after the wait.
    assert refused.value.status == 503 and "POSIX record locks" in refused.value.reason


@pytest.mark.parametrize("name", ["../alice", "alice/x", ".hidden", ""])
def test_a_user_name_that_is_no_file_name_names_no_ledger(jhome: Path, name: str) -> None:
    """The account's name is the file's, in the servers' directory: one that would leave it is refused."""
    with pytest.raises(ValueError, match="cannot name a ledger file"):
        Ledger(jhome / "ledgers").file_of(name)


def test_a_ledger_beside_the_homes_needs_the_home(jhome: Path) -> None:
    with pytest.raises(ValueError, match="give the home"):
        Ledger().file_of("alice")
    assert Ledger().file_of("alice", str(jhome / "alice")) == str(jhome / workspace.LEDGER_DIR / "alice")


def test_this_process_counts_only_its_own_reservations_of_the_same_account(tmp_path: Path) -> None:
    """Bob's upload held in this process is not alice's: her measure sees none of it."""
    ledger = Ledger(tmp_path / "ledgers")
    bobs = ledger.reserve("bob", lambda others: (100, 100))
    assert bobs is not None
    seen: list[int] = []
    assert ledger.reserve("alice", lambda others: seen.append(others)) is None
    assert seen == [0]
    assert ledger.reserve("bob", lambda others: seen.append(others)) is None
    assert seen == [0, 100]
    bobs.release()


def test_another_processs_reservation_stays_in_the_file(jhome: Path) -> None:
    """This process writes its own entries back beside the ones it found, never in their place."""
    alice = _quota_account(jhome)
    path = _prepared_ledger(jhome)
    path.write_bytes(_ledger_of(b'{"reservations":{"x":{"bytes":512,"expires":%d}},"blocked_until":null}'
                                % int(T0 + LEASE)))
    held = reserve(_at(T0), alice, 1)
    assert isinstance(held, Reservation)
    entries = workspace._decode(path.read_bytes()).entries
    assert entries["x"] == (512, T0 + LEASE, "") and len(entries) == 2
    held.release()


def test_one_renewal_thread_serves_every_reservation(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledgers")
    held = [ledger.reserve("alice", lambda others: (10, 10))]
    renewer = ledger._renewer
    held += [ledger.reserve(name, lambda others: (10, 10)) for name in ("bob", "alice")]
    assert renewer is not None and renewer.is_alive() and ledger._renewer is renewer
    for h in held:
        assert h is not None
        h.release()


def test_a_relative_path_is_within_no_root() -> None:
    """os.path.commonpath refuses to mix absolute and relative paths (ValueError): not within."""
    assert not workspace.within("/jhome/alice", "alice/workspace")
