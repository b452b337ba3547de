"""The File Workspace rules both file protocols apply (seed §6.2: "Anything in the File Workspace is accessible
via VOSpace and WebDAV"): who may do what, where a path may lead, and how much may be written.

WebDAV (``enclave.notebooks.webdav``) and VOSpace (``enclave.notebooks.vospace``) import these and keep no copy
of their own. Nothing here knows a protocol: a refusal is a ``Refused`` carrying an HTTP status and a reason,
which each protocol turns into its own error (a WsgiDAV ``DAVError``, a VOSpace fault).

URL layout shared by both: ``/<username>/<path>`` is ``<workspace of username>/<path>``.
"""

from __future__ import annotations

import ctypes
import math
import os
import stat
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

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


class Ledger:
    """Bytes reserved by requests in progress, per account: a PUT or COPY reserves what it may write before it
    starts and gives back, as it writes, what has reached the disk (so the home's usage plus the outstanding
    reservations never double-count and never undercount)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.outstanding: dict[str, int] = {}

    def reserve(self, username: str, measure: Callable[[int], tuple[int, int] | None]) -> Reservation | None:
        """Under the lock: ``measure(outstanding of others)`` returns (bytes to reserve, writer cap) or None
        to refuse; the reservation is recorded before the lock is let go."""
        with self.lock:
            decided = measure(self.outstanding.get(username, 0))
            if decided is None:
                return None
            amount, cap = decided
            self.outstanding[username] = self.outstanding.get(username, 0) + amount
            return Reservation(self, username, amount, cap)

    def _give_back(self, username: str, amount: int) -> None:
        with self.lock:
            left = self.outstanding.get(username, 0) - amount
            if left > 0:
                self.outstanding[username] = left
            else:
                self.outstanding.pop(username, None)


class Reservation:
    """One request's share of the ledger: ``cap`` bytes may be written, ``held`` are still reserved."""

    def __init__(self, ledger: Ledger, username: str, held: int, cap: int) -> None:
        self.ledger, self.username, self.held, self.cap = ledger, username, held, cap

    def written(self, n: int) -> None:
        """``n`` more bytes are on disk now: they stop being outstanding (the disk counts them)."""
        n = min(n, self.held)
        self.held -= n
        self.ledger._give_back(self.username, n)

    def release(self) -> None:
        held, self.held = self.held, 0
        if held:
            self.ledger._give_back(self.username, held)


def reserve(ledger: Ledger, account: AccountLike, length: int | None, replaced: int = 0, *,
            what: str = "upload") -> Reservation | str:
    """Reserve what a write of ``length`` bytes (None: unknown, then all that is free) replacing ``replaced``
    bytes may add to the home, or say why not. The one quota rule of WebDAV's PUT and COPY and VOSpace's upload
    and copy: however many run at once, the home never ends above its quota by more than one upload's size."""
    quota = quota_bytes(account)
    why: list[str] = []

    def measure(others: int) -> tuple[int, int] | None:
        used = usage(Path(account.home_path))
        allowance = upload_allowance(quota, used + others, replaced)
        if length is not None and length > allowance:
            why.append(f"{what} of {length} bytes exceeds the quota of '{account.username}' "
                       f"({account.quota_gib:g} GiB, {used} bytes used, {others} bytes reserved by uploads in "
                       "progress); delete files or ask for more space")
            return None
        cap = allowance if length is None else length
        return max(0, cap - replaced), cap

    reservation = ledger.reserve(account.username, measure)
    return reservation if reservation is not None else why[0]


def usage(path: Path) -> int:
    """Bytes under path, not following symlinks (a link to a big file outside costs nothing)."""
    total = 0
    stack = [str(path)]
    while stack:
        try:
            with os.scandir(stack.pop()) as entries:
                for entry in entries:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                        elif entry.is_file(follow_symlinks=False):
                            total += entry.stat(follow_symlinks=False).st_size
                    except OSError:
                        continue
        except OSError:
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
                           "(enclave.accounts.homes.provision makes them so), and the server must run as root "
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
