"""The File Workspace rules both file protocols apply (seed §6.2: "Anything in the File Workspace is accessible
via VOSpace and WebDAV"): who may do what, where a path may lead, and how much may be written.

WebDAV (``enclave.notebooks.webdav``) and VOSpace (``enclave.notebooks.vospace``) import these and keep no copy
of their own. Nothing here knows a protocol: a refusal is a ``Refused`` carrying an HTTP status and a reason,
which each protocol turns into its own error (a WsgiDAV ``DAVError``, a VOSpace fault).

URL layout shared by both: ``/<username>/<path>`` is ``<workspace of username>/<path>``.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import json
import logging
import math
import os
import re
import stat
import sys
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from enclave import logs
from enclave.clock import stamp
from enclave.errors import Unauthenticated
from enclave.notebooks.account import Access, AccountLike, access_of

Authenticator = Callable[[str, str, bool], AccountLike]
"""(username, password, wants_write) → account, raising Unauthenticated. The password is an enclave
token; ``wants_write`` lets the authenticator require a write scope for requests that change files. The token
alone decides the identity: the caller compares the returned account with any user name it was given."""

Clock = Callable[[], datetime | None]

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PROPFIND"})
HTTP_INSUFFICIENT_STORAGE = 507
UPLOAD_PREFIX = ".enclave-upload-"
"""Uploads in progress are written beside their target under this prefix and renamed when complete."""


class Refused(Exception):
    """A request the workspace rules refuse: ``status`` is the HTTP status, ``reason`` says why and what to do."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


# ---------------------------------------------------------------------------------------------------
# Who may do what (seed §4)


@dataclass(frozen=True)
class Verdict:
    status: int
    reason: str

    @property
    def allowed(self) -> bool:
        return self.status == 0


ALLOW = Verdict(0, "")


def decide(account: AccountLike, access: Access, method: str, url_user: str | None) -> Verdict:
    """May this account make this request? Independent of the filesystem. ``method`` is the HTTP verb of the
    request, or for VOSpace the verb its operation amounts to (a pull reads like GET, a push writes like PUT)."""
    if access is Access.NONE:
        return Verdict(403, f"account '{account.username}' has departed: no access to the workspace (seed §4)")
    if url_user is None:
        if method in READ_METHODS:
            return Verdict(403, f"the File Workspace of '{account.username}' is at /{account.username}/")
        return Verdict(403, "nothing can be written outside /<username>/")
    if url_user != account.username:
        return Verdict(403, f"'{account.username}' may not access the workspace of another user")
    if access is Access.DATA_ONLY and method not in READ_METHODS:
        return Verdict(403, f"the allocation of '{account.username}' has expired: the workspace is read-only "
                            "(seed §4); renew the allocation to write again")
    return ALLOW


def still_allowed(authenticate: Callable[[], AccountLike], clock: Clock, method: str, url_user: str | None) -> None:
    """Just before a write lands (an upload renamed into place): may the request still make it? ``authenticate``
    reads the token and the account again, as at the start of the request — an upload can outlast a departure or
    an expiry (seed §4: departed, no access; expired, read only), and a write that lands afterwards would be made
    by an account that no longer may. Refused (403) otherwise; the caller discards what it wrote."""
    with as_server():  # the authenticator reads the server's database, not the account's files
        try:
            account = authenticate()
        except Unauthenticated:
            raise Refused(403, "the token no longer allows this write (revoked, lapsed, or the account departed or "
                               "expired during the upload); the upload was discarded") from None
    verdict = decide(account, access_of(account, clock()), method, url_user)
    if not verdict.allowed:
        raise Refused(403, f"{verdict.reason}; the upload was discarded")


# ---------------------------------------------------------------------------------------------------
# Quota


def quota_bytes(account: AccountLike) -> int:
    """The quota in bytes; a quota that is not a finite positive number (stored before quotas were bounded)
    allows nothing until an administrator corrects it (`enclave accounts correct-quota`)."""
    q = account.quota_gib
    return int(q * 1024**3) if math.isfinite(q) and q > 0 else 0


def upload_allowance(quota: int, used: int, replaced: int) -> int:
    """Bytes an upload may take: what is free under the quota (``used`` counts the bytes other uploads in
    progress have reserved), plus the size of the file it replaces."""
    return max(0, quota - used + replaced)


# The ledger is shared by every process that serves the same homes — WebDAV and VOSpace, and any number of replicas
# of each, on any node that mounts the home file system — without a service of its own: it lives on that file
# system, one small file per account in ``<home root>/.enclave-quota/`` (``LEDGER_DIR``, beside the homes and
# inside none of them), found from the account's home path, which every server reads from the same database, so
# no two servers of one home can be configured with different ledgers.
#
# Whose files: the servers' own, never the accounts'. A request's thread acts as its account (``act_as``) and steps
# out of that identity for the ledger (``as_server``), as it does for the database: the directory is made 0700 by
# the server's identity, so no account — which sees the home root from its notebooks and login nodes — can read
# others' reservations, forge one, or remove its own to pass its quota. The deployed server is uid 0 without
# CAP_DAC_OVERRIDE (enclave.cluster.deploy.webdav_security), so it may create the directory only where uid 0 owns
# the home root, as it usually does; an NFS export that squashes root maps it to the anonymous uid (exports(5),
# root_squash, anonuid), which may not: the operator then makes the directory once, owned by an anonuid of the
# ledger's own, and names it in ``LEDGER_OWNER_ENV`` (docs/notebooks.md, "Quota ledger"). Whoever owns the
# directory or a file could empty it, and an empty file reads as a new ledger (every reservation forgotten): so the
# directory and every file must be owned by that uid (the server's own by default), never 65534 (``NOBODY_UID``),
# the files have one link, and the directory is opened without following a link (O_NOFOLLOW|O_DIRECTORY), checked
# on its descriptor, and the files opened relative to it (openat(2)), leaving no window between check and use.
#
# Locks: POSIX record locks (fcntl(2) F_SETLK through fcntl.lockf, polled up to ``LOCK_WAIT_SECONDS``: a request
# waiting for another one's walk of a large home holds a server worker), which NFS carries to the server and so to
# every client — NLM for NFSv3 (nfs(5), ``lock``, the default; ``nolock`` and ``local_lock`` make them local to
# one client), the protocol itself for NFSv4 (RFC 7530 §9) — while flock(2) locked only on the local host before
# Linux 2.6.12 (flock(2), "NFS details"). Taking the lock makes the NFS client read the file afresh, and it writes
# it back before letting go (RFC 7530 §10.3.2, "Data Caching and File Locking"), so each server reads the last
# writer's ledger. A record lock belongs to the process, not the thread, and closing any descriptor of the file
# drops all of the process's locks on it (fcntl(2), "Advisory record locking"): so one thread lock per file, across
# every Ledger of the process, is held whenever a thread has the file open.
#
# Leases: every reservation in a file carries an id and an expiry. The process that made it renews all of its
# reservations every ``RENEW_SECONDS`` from one thread (``Ledger.renew``), and readers ignore one whose expiry has
# passed, so one whose process died (killed mid-upload, its node lost) stops counting ``LEASE_SECONDS`` later. The
# renewal is the process's, not the upload's: a copy writes nothing the ledger hears of, and a client may stall
# between two chunks, yet both hold their bytes until they end. Ten renewals per lease ride out a slow or
# restarting NFS server; expiries are wall-clock seconds, compared across hosts whose clocks agree to well under a
# renewal; one far in the future (a host whose clock is wrong) is cut to one lease from the reader's clock when the
# file is written again.
#
# What is counted: a server counts its own reservations as they are now (the bytes a PUT has written leave it at
# once: the disk shows them), and other processes' at their full size until they end: written bytes may then be
# counted twice meanwhile, erring toward refusal, where counting them once would trust another NFS client's bytes
# to show in this one's walk of the home already, which its attribute cache can delay by up to a minute (nfs(5),
# ``acregmax`` and ``acdirmax``, 60 s by default).
#
# Settling: for the same reason a released reservation does not leave the file at once. It stays, for
# ``SETTLE_SECONDS`` (90 s: acdirmax plus clock skew), at what the write may have added (``Reservation.settling``),
# tagged with the releasing host's kernel boot id, and processes on other hosts count it meanwhile; processes on the
# same host skip it, since they share that kernel's NFS client cache (nfs(5), ``sharecache``, the default), whose
# own RENAME shows the file at once. Without it, uploads alternating between N servers could each measure a home
# missing the files the others had just landed, and the home end above quota by up to N uploads' size. Nothing
# renews a settling entry: it lapses like a dead process's reservation. A write that ended without landing (an
# upload cut off) settles too, erring toward refusal for that time on other hosts.

LEDGER_DIR = ".enclave-quota"
"""Beside the homes: ``<home root>/.enclave-quota/<username>``. No home has this name (a user name starts with a
letter: enclave.accounts.lifecycle.USERNAME), so no walk of a home counts the ledger."""
LEASE_SECONDS = 300.0
"""How long a reservation counts after its process last renewed it."""
RENEW_SECONDS = 30.0
"""How often a process renews its reservations."""
LOCK_WAIT_SECONDS = 5.0
"""How long a request waits for an account's ledger while another request of the account holds it, before it is
refused (503) to retry. The holder measures the home (``usage``) under the lock, and a waiting request holds one of
the server's worker threads: a walk of a usual home (10⁴–10⁵ files) takes well under a second, so this outlasts it
several times over, while one account with millions of files can hold no worker longer than this, on any server.
Renewals never wait (``Ledger.renew``)."""
_LOCK_POLL_SECONDS = 0.05
"""Between two attempts at a record lock another process holds (F_SETLKW, the waiting form, has no timeout)."""
LEDGER_OWNER_ENV = "ENCLAVE_QUOTA_LEDGER_UID"
"""Environment variable: the uid that owns the ledger directory and files where it is not the servers' own — on an
NFS export that squashes root, the export's ``anonuid`` (exports(5)), which must be a uid of the ledger's alone."""
NOBODY_UID = 65534
"""The usual anonymous uid (exports(5): anonuid defaults to 65534), also the uid notebook pods run as
(enclave.notebooks.profiles.NOBODY): a ledger owned by it could be rewritten from any notebook, so it is refused."""
SETTLE_SECONDS = 90.0
"""How long a released reservation still counts for processes on other hosts: a file landed through one NFS client
may be missing from another client's walk of the home until that client revalidates the directory, after up to
acdirmax (nfs(5): 60 s by default; acregmax, also 60 s, for a file's size), and expiries are compared across hosts
whose clocks agree to well under 30 s. Raise it with mounts that set acdirmax, acregmax or actimeo higher."""
LEDGER_FORMAT = "enclave-quota-ledger"
LEDGER_VERSION = 1
_MAX_LEDGER_BYTES = 1 << 20
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_log = logs.logger("quota")


class _Unreadable(Exception):
    """A ledger file whose content cannot be trusted (torn by a crash mid-write, or altered)."""


class _Newer(Exception):
    """A ledger file written by a newer enclave."""


_Entry = tuple[int, float, str]
"""A reservation in a file: bytes, expiry, and "" — or, once released and settling, the ``host_id`` of the kernel
whose NFS client landed its bytes (processes there see them on disk already and skip it)."""


@dataclass
class _Book:
    """What one ledger file holds: each reservation by id, and when the file had to be reset, until when new
    reservations wait."""

    entries: dict[str, _Entry]
    blocked_until: float | None = None


def _host_id() -> str:
    """What the processes sharing one kernel, and so one NFS client cache, have in common: the kernel's boot id
    (random(4), /proc/sys/kernel/random/boot_id; not namespaced, so every container on a node reads the same).
    Where it cannot be read, one of this process's own: its settling entries then count for every other process."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            boot = f.read().strip()
    except OSError:
        boot = ""
    return boot if _SAFE_NAME.fullmatch(boot) else uuid.uuid4().hex


_HOST = _host_id()


def _decode(data: bytes) -> _Book:
    """What ``data`` holds; any failure to decode it (``_decode_checked``) makes it unreadable: content with a valid
    checksum can still be crafted to fail anywhere (JSON nested deep enough raises RecursionError from json.loads,
    a header number of thousands of digits ValueError from int: sys.set_int_max_str_digits)."""
    try:
        return _decode_checked(data)
    except (_Newer, _Unreadable):
        raise
    except Exception as err:
        raise _Unreadable(f"its content is malformed ({type(err).__name__})") from None


def _decode_checked(data: bytes) -> _Book:
    """A file is ``enclave-quota-ledger <version> <length> <sha256>`` on one line, then the JSON body of that length.
    The length lets a shorter rewrite leave an old tail behind harmlessly (the file is written before it is
    truncated), and the checksum catches a write torn by a crash, which JSON alone might parse."""
    if not data:
        # Just made: nobody has reserved yet. (Or removed or emptied by hand: the live reservations then enter again
        # at their processes' next renewal, within RENEW_SECONDS.)
        return _Book({})
    if len(data) > _MAX_LEDGER_BYTES:
        raise _Unreadable(f"it is larger than any ledger ({_MAX_LEDGER_BYTES} bytes)")
    head, newline, rest = data.partition(b"\n")
    fields = head.decode("ascii", "replace").split(" ")
    if not newline or len(fields) != 4 or fields[0] != LEDGER_FORMAT or not fields[1].isdigit() \
            or not fields[2].isdigit():
        raise _Unreadable("it is not an enclave quota ledger (bad header)")
    if int(fields[1]) > LEDGER_VERSION:
        raise _Newer(fields[1])
    body = rest[:int(fields[2])]
    if int(fields[1]) != LEDGER_VERSION or len(body) != int(fields[2]) \
            or hashlib.sha256(body).hexdigest() != fields[3]:
        raise _Unreadable("its content is incomplete or altered (length or checksum does not match)")
    try:
        doc = json.loads(body)
        entries = {str(i): (_count(e["bytes"]), _instant(e["expires"]), _settled_on(e.get("settling_on", "")))
                   for i, e in doc["reservations"].items()}
        blocked = doc["blocked_until"]
        return _Book(entries, None if blocked is None else _instant(blocked))
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise _Unreadable(f"its content is malformed ({type(err).__name__}: {err})") from None


def _count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"reserved bytes {value!r} are not a count")
    return value


def _settled_on(value: object) -> str:
    if not isinstance(value, str) or len(value) > 64:
        raise ValueError(f"host {value!r} is not a host id")
    return value


def _instant(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"time {value!r} is not a finite number of seconds")
    return float(value)


def _encode(book: _Book) -> bytes:
    # "settling_on" only where set: a version-1 reader without it (KeyError-free, it reads bytes and expires) counts
    # a settling entry as a reservation until it expires, erring toward refusal, so the format stays version 1.
    body = json.dumps({"reservations": {i: {"bytes": b, "expires": e} | ({"settling_on": h} if h else {})
                                        for i, (b, e, h) in sorted(book.entries.items())},
                       "blocked_until": book.blocked_until}, separators=(",", ":")).encode()
    head = f"{LEDGER_FORMAT} {LEDGER_VERSION} {len(body)} {hashlib.sha256(body).hexdigest()}\n"
    return head.encode() + body + b"\n"


def ledger_owner() -> int:
    """Who must own the ledger: ``LEDGER_OWNER_ENV`` where set (root_squash), else the server's own uid."""
    value = os.environ.get(LEDGER_OWNER_ENV, "").strip()
    if not value:
        return os.geteuid()
    if not value.isdigit():
        raise ValueError(f"{LEDGER_OWNER_ENV}={value!r} is not a uid")
    return int(value)


_path_locks: dict[str, threading.Lock] = {}
_path_locks_guard = threading.Lock()
_ledgers: weakref.WeakSet[Ledger] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """A forked child has only the thread that forked: locks other threads held stay held forever, and the parent's
    reservations are the parent's to renew and release."""
    global _path_locks_guard
    _path_locks.clear()
    _path_locks_guard = threading.Lock()
    for ledger in list(_ledgers):
        ledger._start_empty()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _path_lock(path: str) -> threading.Lock:
    with _path_locks_guard:
        return _path_locks.setdefault(path, threading.Lock())


def _busy(username: str) -> Refused:
    return Refused(503, f"another upload of {username}'s is being measured; retry in a few seconds")


@contextmanager
def _ledger_file(path: str, username: str, wait: float, owner: int) -> Iterator[int]:
    """The ledger file at ``path``, open and locked against every other thread and process, made if missing.
    Waits at most ``wait`` seconds for whoever holds it (0: one attempt), then refuses (503, ``_busy``): the holder
    may be walking a home of millions of files, and a request that waited for it would hold a server worker
    meanwhile, and a renewal would hold up every other account's."""
    deadline = time.monotonic() + wait
    lock = _path_lock(path)
    if not lock.acquire(timeout=wait):
        raise _busy(username)
    try:
        fd = _open_ledger(path, owner)
        try:
            while True:
                try:
                    # F_SETLK on the whole file (Python's lockf with LOCK_NB): "If a conflicting lock is held by
                    # another process, this call returns -1 and sets errno to EACCES or EAGAIN" (fcntl(2)). Polled
                    # rather than F_SETLKW, which has no timeout.
                    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as err:
                    if err.errno not in (errno.EACCES, errno.EAGAIN):
                        raise Refused(503, f"the quota ledger {path} cannot be locked ({err.strerror}): the home "
                                           "file system must carry POSIX record locks between its clients (NFS: "
                                           "mounted without nolock or local_lock; docs/notebooks.md, 'Quota "
                                           "ledger')") from None
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise _busy(username) from None
                    time.sleep(min(_LOCK_POLL_SECONDS, left))
            yield fd
        finally:
            # Closing drops the lock (fcntl(2)). Whatever was written is on the server already (``_write`` syncs,
            # and reports a failure), so an error only closing changes nothing.
            with suppress(OSError):
                os.close(fd)
    finally:
        lock.release()


def _open_ledger_dir(directory: str, owner: int) -> int:
    """The ledger directory, open, checked to be the servers' own: a directory (not a link to one), owned by
    ``owner`` and written by nobody else. Called as the server (``as_server``). Checked on the open descriptor
    (fstat) and the files opened relative to it (``dir_fd``), so nothing can be swapped in between check and use."""
    with suppress(FileExistsError):
        os.mkdir(directory, 0o700)
    try:
        # O_NOFOLLOW with O_DIRECTORY: a symbolic link fails (ELOOP), as does anything not a directory (ENOTDIR)
        # (open(2)).
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as err:
        if err.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        raise Refused(503, f"the quota ledger directory {directory} is not a directory; uploads and copies "
                           "are refused until a sysadmin removes it (the servers make it again, 0700)") from None
    try:
        st = os.fstat(dfd)
        if st.st_uid != owner:
            raise Refused(503, f"the quota ledger directory {directory} is owned by uid {st.st_uid}, not by the "
                               f"servers' uid {owner}: whoever owns it could empty the ledger; uploads and copies "
                               f"are refused until a sysadmin removes it (the servers make it again) or, on an NFS "
                               f"export that squashes root, makes it owned by the configured {LEDGER_OWNER_ENV} "
                               "(docs/notebooks.md, 'Quota ledger')")
        if st.st_mode & 0o022:
            raise Refused(503, f"the quota ledger directory {directory} may be written by others (mode "
                               f"{stat.S_IMODE(st.st_mode):04o}); uploads and copies are refused until a "
                               f"sysadmin makes it the servers' alone: chmod 700 {directory}")
    except BaseException:
        os.close(dfd)
        raise
    return dfd


def _open_ledger(path: str, owner: int) -> int:
    directory, name = os.path.split(path)
    try:
        with as_server():
            dfd = _open_ledger_dir(directory, owner)
            try:
                fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dfd)
            finally:
                os.close(dfd)
        st = os.fstat(fd)
    except OSError as err:
        raise Refused(503, f"the quota ledger {path} cannot be opened as uid {os.geteuid()} ({err.strerror}); the "
                           "WebDAV and VOSpace servers' own identity must be able to make and lock files in "
                           f"{directory} (on an NFS export that squashes root: docs/notebooks.md, 'Quota ledger', "
                           f"and {LEDGER_OWNER_ENV})") from None
    why = ("is not a regular file" if not stat.S_ISREG(st.st_mode)
           else f"is owned by uid {st.st_uid}, not by the servers' uid {owner}" if st.st_uid != owner
           # A second link elsewhere (made before the directory was the servers') would let its owner write it.
           else f"has {st.st_nlink} links (a hard link to it could rewrite it)" if st.st_nlink != 1
           else f"may be written by others (mode {stat.S_IMODE(st.st_mode):04o})" if st.st_mode & 0o022
           else "")
    if why:
        os.close(fd)
        raise Refused(503, f"the quota ledger {path} {why}; uploads and copies of the account are refused until "
                           "a sysadmin removes it (the servers make it again)")
    return fd


def _read(fd: int) -> bytes:
    """The file, up to one byte more than any ledger (``_decode`` refuses that)."""
    chunks: list[bytes] = []
    offset = 0
    while offset <= _MAX_LEDGER_BYTES:
        chunk = os.pread(fd, 1 << 16, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


def _write(fd: int, data: bytes) -> None:
    """Over the old content, then cut to length: a crash in between leaves the new ledger and an old tail, which
    ``_decode`` ignores; a crash mid-write leaves a checksum that does not match."""
    view, offset = memoryview(data), 0
    while offset < len(data):
        offset += os.pwrite(fd, view[offset:], offset)
    os.ftruncate(fd, len(data))
    os.fsync(fd)


class Ledger:
    """Bytes reserved by requests in progress, per account, shared through a file per account by every process that
    serves the homes (the design above). A PUT or COPY reserves what it may write before it starts and gives back,
    as it writes, what has reached the disk (so this process never double-counts and never undercounts; other
    processes count it at its full size until it ends). ``directory`` holds the files; by default the one beside
    the account's home (``LEDGER_DIR``), where every server of that home finds it."""

    def __init__(self, directory: str | os.PathLike[str] | None = None, *, lease_seconds: float = LEASE_SECONDS,
                 renew_seconds: float = RENEW_SECONDS, clock: Callable[[], float] = time.time,
                 wait_seconds: float = LOCK_WAIT_SECONDS, owner: int | None = None,
                 settle_seconds: float = SETTLE_SECONDS, host: str | None = None) -> None:
        self.directory = None if directory is None else os.fspath(directory)
        self.lease_seconds = lease_seconds
        self.renew_seconds = renew_seconds
        self.clock = clock
        self.wait_seconds = wait_seconds
        self.settle_seconds = settle_seconds
        self.host = host or _HOST
        self.owner = ledger_owner() if owner is None else owner
        if self.owner == NOBODY_UID:
            raise ValueError(f"the quota ledger may not be owned by uid {NOBODY_UID}: notebook pods run as it, and "
                             "on most NFS exports every squashed root is it; give the export an anonuid of the "
                             f"ledger's own and set {LEDGER_OWNER_ENV} to it (docs/notebooks.md, 'Quota ledger')")
        self._start_empty()
        _ledgers.add(self)

    def _start_empty(self) -> None:
        self.lock = threading.Lock()  # this process's reservations (the files have their own locks)
        self._live: dict[str, Reservation] = {}
        # Released, not yet written back as settling (its rewrite failed): per file, id → bytes it settles with.
        self._gone: dict[str, dict[str, int]] = {}
        self._renewing = False
        self._renewer: threading.Thread | None = None

    @property
    def outstanding(self) -> dict[str, int]:
        """Bytes this process's reservations still hold, per account (other processes' are in the files)."""
        totals: dict[str, int] = {}
        with self.lock:
            for r in self._live.values():
                if r.held:
                    totals[r.username] = totals.get(r.username, 0) + r.held
        return totals

    def file_of(self, username: str, home: str | None = None) -> str:
        if not _SAFE_NAME.fullmatch(username):
            raise ValueError(f"user name {username!r} cannot name a ledger file")
        if self.directory is not None:
            return os.path.join(self.directory, username)
        if not home:
            raise ValueError("a ledger without a directory finds it beside the account's home: give the home")
        return os.path.join(os.path.dirname(os.path.normpath(home)), LEDGER_DIR, username)

    def reserve(self, username: str, measure: Callable[[int], tuple[int, int] | None],
                home: str | None = None) -> Reservation | None:
        """Under the account's ledger lock: ``measure(outstanding of others)`` returns (bytes to reserve, writer
        cap) or None to refuse; the reservation is in the file before the lock is let go. Refused (503) when the
        ledger cannot be read or written: a write it cannot account for is not let through."""
        path = self.file_of(username, home)
        with _ledger_file(path, username, self.wait_seconds, self.owner) as fd:
            now = self.clock()
            book = self._load(fd, path, now)
            if book.blocked_until is not None:
                self._store(fd, path, book, now)
                raise Refused(503, f"the quota ledger of '{username}' ({path}) was unreadable and has been reset: "
                                   f"new uploads and copies wait until {stamp(book.blocked_until)} while those in "
                                   "progress on every server enter it again; try again then")
            with self.lock:
                mine = [r for r in self._live.values() if r.path == path]
                own = {r.id for r in mine} | set(self._gone.get(path, {}))
            # Settling entries landed through this kernel's NFS client are on disk for this walk already.
            others = sum(r.held for r in mine) + sum(b for i, (b, _, h) in book.entries.items()
                                                     if i not in own and h != self.host)
            decided = measure(others)
            if decided is None:
                return None
            reservation = Reservation(self, username, decided[0], decided[1], path=path)
            with self.lock:
                self._live[reservation.id] = reservation
            try:
                self._store(fd, path, book, now)
            except BaseException:
                with self.lock:
                    self._live.pop(reservation.id, None)
                raise
        self._keep_renewing()
        return reservation

    def renew(self) -> None:
        """Extend each of this process's reservations to a lease from now, and take released ones out of files
        that still list them. Called every ``renew_seconds`` while there are any; a failure is logged and the next
        round tries again (a reservation lapses only after a whole lease of failures). A file another thread or
        process holds is not waited for (a request may be walking a large home under it): the next round, within
        ``renew_seconds``, tries again, and a lease is ten rounds."""
        with self.lock:
            paths = {r.path for r in self._live.values()} | set(self._gone)
        for path in sorted(paths):
            try:
                self._rewrite(path, wait=0.0)
            except Refused as refusal:
                logs.event(_log, logging.WARNING, "quota ledger not renewed", file=path, reason=refusal.reason)

    def _rewrite(self, path: str, wait: float | None = None) -> None:
        wait = self.wait_seconds if wait is None else wait
        with _ledger_file(path, os.path.basename(path), wait, self.owner) as fd:
            now = self.clock()
            self._store(fd, path, self._load(fd, path, now), now)

    def _release(self, reservation: Reservation) -> None:
        with self.lock:
            if self._live.pop(reservation.id, None) is None:
                return
            self._gone.setdefault(reservation.path, {})[reservation.id] = reservation.settling
        try:
            self._rewrite(reservation.path)
        except Refused as refusal:
            # Never raised to the request: it ended. Its entry lapses with its lease, or the next renewal removes it.
            logs.event(_log, logging.WARNING, "quota reservation not yet removed from its ledger",
                       file=reservation.path, reason=refusal.reason)
            self._keep_renewing()

    def _load(self, fd: int, path: str, now: float) -> _Book:
        """The file's reservations that still count (lapsed ones dropped, none beyond a lease from now). Content that
        cannot be trusted is set aside and the ledger starts again blocked for a lease: long enough for every live
        reservation to be renewed into it by its own process, so nothing is let through that the lost content held."""
        try:
            data = _read(fd)
        except OSError as err:
            raise Refused(503, f"the quota ledger {path} cannot be read ({err.strerror})") from None
        try:
            book = _decode(data)
        except _Newer as newer:
            raise Refused(503, f"the quota ledger {path} was written by a newer enclave (format {newer}); run one "
                               "version of the WebDAV and VOSpace servers over the same homes") from None
        except _Unreadable as bad:
            self._set_aside(path, data, str(bad))
            return _Book({}, now + self.lease_seconds)
        horizon = now + self.lease_seconds
        entries = {i: (b, min(e, horizon), h) for i, (b, e, h) in book.entries.items() if e > now}
        blocked = book.blocked_until
        return _Book(entries, min(blocked, horizon) if blocked is not None and blocked > now else None)

    def _set_aside(self, path: str, data: bytes, why: str) -> None:
        aside = path + ".unreadable"
        try:
            with as_server():
                dfd = _open_ledger_dir(os.path.dirname(path), self.owner)
                try:
                    fd = os.open(os.path.basename(aside), os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
                                 | os.O_CLOEXEC, 0o600, dir_fd=dfd)
                finally:
                    os.close(dfd)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
        except (OSError, Refused):
            aside = ""
        logs.event(_log, logging.WARNING, "quota ledger unreadable: reset, new reservations wait one lease",
                   file=path, reason=why, kept_as=aside or None, lease_seconds=self.lease_seconds)

    def _store(self, fd: int, path: str, book: _Book, now: float) -> None:
        """Write ``book`` back with this process's reservations renewed and its released ones settling."""
        with self.lock:
            ours = {r.id: r.amount for r in self._live.values() if r.path == path}
            gone = dict(self._gone.get(path, {}))
        entries = {i: e for i, e in book.entries.items() if i not in ours and i not in gone}
        entries.update({i: (amount, now + self.lease_seconds, "") for i, amount in ours.items()})
        entries.update({i: (settling, now + self.settle_seconds, self.host)
                        for i, settling in gone.items() if settling})
        try:
            _write(fd, _encode(_Book(entries, book.blocked_until)))
        except OSError as err:
            raise Refused(503, f"the quota ledger {path} cannot be written ({err.strerror})") from None
        with self.lock:
            left = {i: b for i, b in self._gone.get(path, {}).items() if i not in gone}
            if left:
                self._gone[path] = left
            else:
                self._gone.pop(path, None)

    def _keep_renewing(self) -> None:
        with self.lock:
            if self._renewing:
                return
            self._renewing = True
        self._renewer = threading.Thread(target=self._renewals, name="enclave-quota-lease", daemon=True)
        self._renewer.start()

    def _renewals(self) -> None:
        """The renewal thread. It must outlive any failure of one round (a dead renewer lets every reservation of
        the process lapse while its uploads still write), and whatever ends it must let the next reservation start
        another (``_renewing``)."""
        stopped = False
        try:
            while True:
                time.sleep(self.renew_seconds)
                with self.lock:
                    if not self._live and not self._gone:
                        # Reset under the lock that found nothing left: a reservation made after it starts a new
                        # thread (``_keep_renewing``).
                        self._renewing, stopped = False, True
                        return
                try:
                    self.renew()
                except Exception as err:  # renew logs what it expects; anything else is logged here, and retried
                    logs.event(_log, logging.ERROR, "quota ledger renewal failed", error=repr(err))
        finally:
            if not stopped:
                with self.lock:
                    self._renewing = False


class Reservation:
    """One request's share of the ledger: ``cap`` bytes may be written, ``held`` are still reserved (of ``amount``,
    what it reserved, which other processes count until it is released, and other hosts' a while after:
    ``settling``)."""

    def __init__(self, ledger: Ledger, username: str, held: int, cap: int, *, path: str = "") -> None:
        self.ledger, self.username, self.held, self.cap = ledger, username, held, cap
        self.amount = held
        self.path = path
        self.id = uuid.uuid4().hex
        self.wrote: int | None = None
        """Bytes the writer reported (``written``); None for one that reports none (a copy)."""

    def written(self, n: int) -> None:
        """``n`` more bytes are on disk now: they stop being outstanding here (the disk counts them)."""
        with self.ledger.lock:
            self.held -= min(n, self.held)
            self.wrote = (self.wrote or 0) + n

    @property
    def settling(self) -> int:
        """What the write may have added to the home, counted by other hosts' processes for ``settle_seconds`` after
        it is released: all it reserved for a writer that reports no writes (a copy), else what it wrote less the
        replaced file's bytes (``cap - amount`` when it reserved anything; with nothing reserved it replaced at
        least all it could write)."""
        if self.wrote is None:
            return self.amount
        return max(0, min(self.amount, self.wrote - (self.cap - self.amount)))

    def release(self) -> None:
        """The request ended: its reservation leaves the ledger (idempotent; never raises)."""
        with self.ledger.lock:
            self.held = 0
        self.ledger._release(self)


def reserve(ledger: Ledger, account: AccountLike, length: int | None, replaced: int = 0, *,
            what: str = "upload") -> Reservation | str:
    """Reserve what a write of ``length`` bytes (None: unknown, then all that is free) replacing ``replaced``
    bytes may add to the home, or say why not. The one quota rule of WebDAV's PUT and COPY and VOSpace's upload
    and copy: however many run at once, on however many servers of the homes, the home never ends above its quota
    by more than one upload's size — provided a file landed through another host's NFS client shows in this one's
    walk within the ledger's ``settle_seconds`` (``SETTLE_SECONDS``: nfs(5) acdirmax, 60 s by default; the
    design above). Raises Refused (503) when the account's ledger cannot be used."""
    quota = quota_bytes(account)
    why: list[str] = []

    def measure(others: int) -> tuple[int, int] | None:
        used = counted_usage(account)
        allowance = upload_allowance(quota, used + others, replaced)
        if length is not None and length > allowance:
            why.append(f"{what} of {length} bytes exceeds the quota of '{account.username}' "
                       f"({account.quota_gib:g} GiB, {used} bytes used, {others} bytes reserved by uploads in "
                       "progress); delete files or ask for more space")
            return None
        cap = allowance if length is None else length
        return max(0, cap - replaced), cap

    reservation = ledger.reserve(account.username, measure, home=account.home_path)
    if reservation is not None and length is None:
        # A write of unknown length is a stream whose writer reports each write: it settles with what it wrote, not
        # with all the free space it reserved, even if it wrote nothing.
        reservation.wrote = 0
    return reservation if reservation is not None else why[0]


def counted_usage(account: AccountLike) -> int:
    """The home's bytes as the quota counts them, walked as the account (the deployed server holds no capability to
    read what the account cannot). A directory the walk cannot list refuses the write (503): counted as nothing, a
    directory the account made unreadable (chmod 000 from a notebook) hid its files and let uploads pass the quota
    without end (review, stop 48). A write that cannot be accounted for is not let through."""
    try:
        return usage(Path(account.home_path), strict=True)
    except Unreadable as exc:
        raise Refused(503, f"the home of '{account.username}' holds {exc.path}, which cannot be read as the "
                           f"account ({exc.reason}): its bytes cannot be counted against the quota; make it readable "
                           "(chmod u+rx) and retry") from None


class Unreadable(OSError):
    """A directory ``usage(strict=True)`` could not list."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def usage(path: Path, *, strict: bool = False) -> int:
    """Bytes under path, not following symlinks (a link to a big file outside costs nothing). ``strict``: a
    directory that cannot be listed raises ``Unreadable`` instead of counting nothing."""
    total = 0
    stack = [str(path)]
    while stack:
        where = stack.pop()
        try:
            with os.scandir(where) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        elif entry.is_file(follow_symlinks=False):
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue
        except FileNotFoundError:
            continue  # gone while walking: nothing left to count
        except OSError as exc:
            if strict:
                raise Unreadable(where, exc.strerror or type(exc).__name__) from None
            continue
    return total


def size_of(path: str) -> int:
    """What copying ``path`` would add: a file's size, a directory's usage, nothing for a link."""
    if os.path.islink(path) or not os.path.exists(path):
        return 0
    return usage(Path(path)) if os.path.isdir(path) else os.path.getsize(path)


# ---------------------------------------------------------------------------------------------------
# Where a path may lead


def within(root: str, path: str) -> bool:
    try:
        return os.path.commonpath([root, path]) == root
    except ValueError:
        return False


def workspace_root(account: AccountLike) -> str:
    """The real path of the account's workspace, after checking it is a proper subdirectory of its home.

    A user can replace ``~/workspace`` with a symlink from a notebook (to ``~`` or ``/``); resolving
    both paths and insisting the workspace is strictly inside the home keeps the home itself, and
    everything else, off both protocols whatever the user did to the link. Called as the account
    (``as_account``): a home the account itself cannot enter is one the server cannot enter either.
    """
    home = os.path.realpath(account.home_path)
    ws = account.workspace_path
    if os.path.islink(ws):
        raise Refused(403, f"the workspace of '{account.username}' is a symbolic link; it must be a "
                           "real directory — replace the link with a directory")
    real = os.path.realpath(ws)
    if real == home or not within(home, real):
        raise Refused(403, f"the workspace of '{account.username}' is not a subdirectory of its home; "
                           "a sysadmin must fix the account's workspace path (seed §6.2)")
    try:
        is_dir = stat.S_ISDIR(os.stat(real).st_mode)
    except FileNotFoundError:
        is_dir = False
    except PermissionError:
        raise Refused(403, f"the workspace of '{account.username}' ({ws}) cannot be entered as uid {account.uid}: "
                           f"its home and workspace must belong to uid {account.uid} and gid {account.gid} "
                           "(enclave.accounts.homes.make_home makes them so), and the server must run as root "
                           "with CAP_SETUID and CAP_SETGID to act as the account (docs/deploy.md)") from None
    if not is_dir:
        raise Refused(404, f"the workspace of '{account.username}' ({ws}) is missing: onboarding makes it "
                           "(docs/accounts.md, home provisioning); a sysadmin can make it by hand: "
                           f"mkdir -m 700 {ws} && chown {account.uid}:{account.gid} {ws}")
    return real


def url_user(path_info: str) -> tuple[str | None, str]:
    """'/<user>/a/b' → ('<user>', '/a/b'); no user → (None, '/')."""
    parts = path_info.split("/")
    user = parts[1] if len(parts) > 1 and parts[1] else None
    rest = "/" + "/".join(parts[2:])
    return user, rest


def resolve(root: str, username: str, path: str) -> str:
    """URL path '/<user>/a/b' → file path under root, refusing anything that resolves outside it.

    realpath resolves every symlink on the way, so a link anywhere in the path that points out of the
    workspace (or a '..' that survived URL decoding) lands outside root and is refused.
    """
    user, rest = url_user(path)
    if user != username:
        raise Refused(403, f"'{username}' may only reach /{username}/")
    parts = [p for p in rest.split("/") if p]
    if any(p in ("..", ".") or "\x00" in p or "\\" in p for p in parts):
        raise Refused(403, "path segments '.' and '..' are not allowed")
    file_path = os.path.join(root, *parts)
    if not within(root, os.path.realpath(file_path)):
        raise Refused(403, "access outside your workspace is not allowed")
    return file_path


def fd_inside(fd: int, root: str) -> bool:
    """Is what this descriptor actually opened inside root? Checked after open, so a directory swapped
    for a symlink between our path check and the open (a race a user can run from a notebook) is
    caught: the kernel reports the real file, whatever path led to it."""
    if not os.path.isdir("/proc/self/fd"):
        return True  # not Linux: the path check before the open stands alone
    try:
        return within(root, os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        return False


def open_inside(root: str, path: str, flags: int, mode: int = 0o600, dir_fd: int | None = None) -> int:
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    if not fd_inside(fd, root):
        os.close(fd)
        raise Refused(403, "access outside your workspace is not allowed")
    return fd


# ---------------------------------------------------------------------------------------------------
# As whom the file system is touched
#
# A workspace request touches the file system with the account's own identity, so the kernel applies the
# account's permissions to every call of it: a directory swapped for a symbolic link between a path check and
# its use (a race a user can run from a notebook) then reaches only what the account itself could reach, and
# whatever the request creates is the account's. Why this and not descriptor-relative operations only: WsgiDAV's
# FilesystemProvider deletes, moves and copies by path (wsgidav/fs_dav_provider.py 4.4.0: shutil.rmtree,
# shutil.move, shutil.copy2), and re-implementing each with *at() calls would fork it; the identity covers all
# of them, and every call a future version adds.
#
# The identity is the thread's file-system uid and gid (setfsuid(2), setfsgid(2)): the kernel checks file access
# against them alone, and they belong to the calling thread only (man 2 setfsuid, "C library/kernel differences";
# glibc's wrappers are the bare system calls, not broadcast to every thread as its setuid(2) wrapper is — checked
# by tests/notebooks/test_identity.py). cheroot runs a request, its response iteration and its close() in one
# worker thread (cheroot/wsgi.py 11.1.2, Gateway.respond), so an identity taken for a request holds for all of
# it and for no other request. When the file-system uid changes from 0, the kernel also clears CAP_DAC_OVERRIDE,
# CAP_DAC_READ_SEARCH, CAP_CHOWN, CAP_FOWNER and the other file-system capabilities from the thread's effective
# set (man 7 capabilities, "Effect of user ID changes on capabilities"): even a full root server has none of
# them while it acts for an account. Only a process whose effective uid is 0 switches (it needs CAP_SETUID and
# CAP_SETGID, the only capabilities the deployed container keeps: docs/deploy.md); one run as a plain user
# serves with that user's own permissions.

_libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
_current = threading.local()


def switches_identity() -> bool:
    """Does this server act as each account? Only a Linux process running as root can."""
    return _libc is not None and os.geteuid() == 0


def drop_supplementary_groups() -> None:
    """Called once at start, before serving: the server's own supplementary groups would otherwise count in every
    permission check made as an account (setfsgid replaces the primary group only). setgroups(2) is process-wide."""
    if switches_identity():
        os.setgroups([])


def _set_fs_ids(uid: int, gid: int) -> bool:
    assert _libc is not None
    _libc.setfsgid(gid)
    _libc.setfsuid(uid)
    # Neither call reports failure; a second call returns the value now in force (man 2 setfsuid, RETURN VALUE).
    return bool(_libc.setfsuid(uid) == uid and _libc.setfsgid(gid) == gid)


def act_as(account: AccountLike) -> None:
    """From now on this thread touches the file system as ``account`` (until ``act_as_server``)."""
    if not switches_identity():
        return
    if not _set_fs_ids(account.uid, account.gid):
        act_as_server()
        raise Refused(503, f"the workspace server cannot act as uid {account.uid}: it needs CAP_SETUID and "
                           "CAP_SETGID (docs/deploy.md, the enclave-webdav container)")
    _current.account = account


def act_as_server() -> None:
    """This thread touches the file system as the server process again."""
    if switches_identity():
        _set_fs_ids(os.geteuid(), os.getegid())
        _current.account = None


@contextmanager
def as_account(account: AccountLike) -> Iterator[None]:
    act_as(account)
    try:
        yield
    finally:
        act_as_server()


@contextmanager
def as_server() -> Iterator[None]:
    """Step out of the account's identity for the server's own business (its database) and back."""
    account = getattr(_current, "account", None)
    act_as_server()
    try:
        yield
    finally:
        if account is not None:
            act_as(account)
