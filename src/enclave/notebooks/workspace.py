"""The File Workspace rules both file protocols apply (seed §6.2: "Anything in the File Workspace is accessible
via VOSpace and WebDAV"): who may do what, where a path may lead, and how much may be written.

WebDAV (``enclave.notebooks.webdav``) and VOSpace (``enclave.notebooks.vospace``) import these and keep no copy
of their own. Nothing here knows a protocol: a refusal is a ``Refused`` carrying an HTTP status and a reason,
which each protocol turns into its own error (a WsgiDAV ``DAVError``, a VOSpace fault).

URL layout shared by both: ``/<username>/<path>`` is ``<workspace of username>/<path>``.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from enclave.notebooks.account import Access, AccountLike

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
    everything else, off both protocols whatever the user did to the link.
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
    if not os.path.isdir(real):
        raise Refused(404, f"the workspace of '{account.username}' does not exist yet; a sysadmin creates it "
                           "with the account")
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


def own(path: str, account: AccountLike, dir_fd: int | None = None) -> None:
    """Give what the server created to the account: run as root, the server would otherwise leave files
    the user cannot change from their notebook."""
    if os.geteuid() == 0:
        os.chown(path, account.uid, account.gid, dir_fd=dir_fd, follow_symlinks=False)
