"""The File Workspace over WebDAV (seed §6.2), served by WsgiDAV on cheroot.

URL layout: ``/<username>/<path>`` is ``<workspace of username>/<path>``. Each user sees only their
own workspace subdirectory — never the home directory itself, never anyone else's files. Putting the
username in the URL keeps WsgiDAV's lock namespace per user (locks are keyed by URL), and makes an
attempt on someone else's files an explicit, refusable request.

Who may do what (seed §4):
- active accounts read and write, within their storage quota (checked before and during upload);
- accounts whose allocation expired read only ('still able to access their data');
- departed accounts are refused.

Layers: ``WorkspaceDC`` authenticates (HTTP Basic; the password is an enclave token), ``WorkspaceGate``
decides per request (pure decision in ``decide``), ``WorkspaceProvider`` maps URLs to files with
symlink-resolving containment checks, and ``QuotaFile`` streams uploads to a temporary file that only
replaces the target when complete and within quota.

Quota under concurrency: every PUT and COPY reserves its bytes in the account's quota ledger before it starts
(measure the home and add up the other requests' outstanding reservations under the ledger's lock), and a writer
can never write more than it reserved; the ledger is a file beside the homes that every WebDAV and VOSpace server
of them shares (``workspace.Ledger``), so however many uploads run at once, on however many servers, the home
never ends above its quota once they are done (a replaced file's old bytes stay on disk until the new file is
renamed over it), as long as each server's walk of the home lists a file landed through another NFS client
within ``workspace.SETTLE_SECONDS`` (docs/notebooks.md, "Quota ledger"). An upload without Content-Length
reserves all the free space: concurrent ones then wait their turn (507).

Limits (docs/hardening.md): request headers at most ``serving.MAX_HEADER_BYTES`` (cheroot answers 413), request
bodies other than PUT's at most ``MAX_XML_BODY_BYTES`` (WsgiDAV reads them into memory to parse XML),
PUT bodies stream to disk and stop at the reservation; a path that is not UTF-8 is a 400.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlparse

from cheroot import wsgi
from wsgidav.dav_error import HTTP_FORBIDDEN, DAVError
from wsgidav.dc.base_dc import BaseDomainController
from wsgidav.dir_browser import WsgiDavDirBrowser
from wsgidav.error_printer import ErrorPrinter
from wsgidav.fs_dav_provider import FileResource, FilesystemProvider, FolderResource
from wsgidav.http_authenticator import HTTPAuthenticator
from wsgidav.mw.base_mw import BaseMiddleware
from wsgidav.request_resolver import RequestResolver
from wsgidav.util import normalize_path, re_encode_wsgi
from wsgidav.wsgidav_app import WsgiDAVApp

from enclave.errors import Unauthenticated
from enclave.notebooks import serving, workspace
from enclave.notebooks.account import AccountLike, access_of
from enclave.notebooks.serving import Running
from enclave.notebooks.workspace import (
    HTTP_INSUFFICIENT_STORAGE,
    READ_METHODS,
    UPLOAD_PREFIX,
    Authenticator,
    Clock,
    Ledger,
    Refused,
    Reservation,
    act_as,
    act_as_server,
    decide,
    drop_supplementary_groups,
    quota_bytes,
    reserve,
    usage,
)
from enclave.notebooks.workspace import url_user as _url_user

_ACCOUNT = serving.ACCOUNT
_ROOT = "enclave.workspace_root"
_ALLOWANCE = "enclave.upload_allowance"
_RESERVATION = "enclave.reservation"
_USED = "enclave.used_bytes"
_REAUTHENTICATE = "enclave.reauthenticate"
MAX_XML_BODY_BYTES = 1024 * 1024
"""PROPFIND/PROPPATCH/LOCK bodies are XML that WsgiDAV reads whole (wsgidav/util.py parse_xml_body); real
clients send well under a few KiB."""


# ---------------------------------------------------------------------------------------------------
# The workspace rules (enclave.notebooks.workspace, shared with VOSpace), raising WsgiDAV's error type


def _dav(refusal: Refused) -> DAVError:
    return DAVError(refusal.status, refusal.reason)


def workspace_root(account: AccountLike) -> str:
    try:
        return workspace.workspace_root(account)
    except Refused as refusal:
        raise _dav(refusal) from None


def resolve(root: str, username: str, path: str) -> str:
    try:
        return workspace.resolve(root, username, path)
    except Refused as refusal:
        raise _dav(refusal) from None


def _open_inside(root: str, path: str, flags: int, mode: int = 0o600, dir_fd: int | None = None) -> int:
    try:
        return workspace.open_inside(root, path, flags, mode, dir_fd)
    except Refused as refusal:
        raise _dav(refusal) from None


# ---------------------------------------------------------------------------------------------------
# WsgiDAV pieces


class WorkspaceDC(BaseDomainController):  # type: ignore[misc]
    """HTTP Basic authentication through the pluggable authenticator (enclave tokens in production)."""

    def get_domain_realm(self, path_info: str, environ: dict[str, Any] | None) -> str:
        return "enclave workspace"

    def require_authentication(self, realm: str, environ: dict[str, Any] | None) -> bool:
        return True

    def basic_auth_user(self, realm: str, user_name: str, password: str, environ: dict[str, Any]) -> bool:
        authenticate: Authenticator = self.config["enclave"]["authenticator"]
        try:
            write = environ["REQUEST_METHOD"].upper() not in READ_METHODS
            account = authenticate(user_name, password, write)
        except Unauthenticated:
            return False
        if account.username != user_name:
            # A valid token of someone else: never let the Basic user name pick the identity.
            return False
        environ[_ACCOUNT] = account
        # For the check just before an upload lands (QuotaFile.end_write): the same token, read again.
        environ[_REAUTHENTICATE] = lambda: authenticate(user_name, password, write)
        return True

    def supports_http_digest_auth(self) -> bool:
        # Digest needs the server to know the secret; enclave tokens are only verifiable, not recoverable.
        return False


class WorkspaceGate(BaseMiddleware):  # type: ignore[misc]
    """Per-request policy between authentication and the WebDAV handlers."""

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        account: AccountLike | None = environ.get(_ACCOUNT)
        if account is None:
            return _deny(start_response, 401, "authenticate with your user name and an enclave token")
        opts = self.config["enclave"]
        clock: Clock = opts["clock"]
        method = environ["REQUEST_METHOD"].upper()
        user, _ = _url_user(environ.get("PATH_INFO", ""))
        verdict = decide(account, access_of(account, clock()), method, user)
        if not verdict.allowed:
            return _deny(start_response, verdict.status, verdict.reason)
        if method == "PROPFIND" and environ.get("HTTP_DEPTH", "infinity").strip().lower() == "infinity":
            return _refuse_infinite_depth(start_response)
        # Everything below touches the file system as the account (workspace.act_as); the server calls close()
        # in this same thread whatever happened (PEP 3333; cheroot/wsgi.py, Gateway.respond), and that is where
        # the thread becomes the server again.
        try:
            act_as(account)
        except Refused as refusal:
            return _deny(start_response, refusal.status, refusal.reason)
        try:
            return self._serve(environ, start_response, account, method)
        except BaseException:
            act_as_server()
            raise

    def _serve(self, environ: dict[str, Any], start_response: Callable[..., Any], account: AccountLike,
               method: str) -> Any:
        try:
            refusal = self._check(environ, account, method)
        except DAVError as err:
            refusal = (err.value, str(err.context_info))
        reservation: Reservation | None = environ.get(_RESERVATION)
        if refusal is not None:
            if reservation is not None:  # a COPY refused for its destination reserved first: give it back now
                reservation.release()
            return serving.Closing(_deny(start_response, *refusal), act_as_server)
        if reservation is None:
            return serving.Closing(self.next_app(environ, start_response), act_as_server)

        def done() -> None:
            reservation.release()
            act_as_server()

        try:
            # The reservation is given back in close() too, which the server calls even if it never iterated
            # (a generator's ``finally`` would not run then).
            return serving.Closing(self.next_app(environ, start_response), done)
        except BaseException:
            reservation.release()
            raise

    def _check(self, environ: dict[str, Any], account: AccountLike, method: str) -> tuple[int, str] | None:
        root = workspace_root(account)
        environ[_ROOT] = root
        length = environ.get("CONTENT_LENGTH") or ""
        if method != "PUT" and length.isdigit() and int(length) > MAX_XML_BODY_BYTES:
            return (413, f"a {method} body may be at most {MAX_XML_BODY_BYTES} bytes")
        if method in ("PUT", "COPY"):
            refusal = self._reserve(environ, account, root, method, int(length) if length.isdigit() else None)
            if refusal is not None:
                return refusal
        if method in ("COPY", "MOVE"):
            # Judge the destination as WsgiDAV will route it: decoded, then normalised.
            dest = normalize_path(unquote(urlparse(environ.get("HTTP_DESTINATION", "")).path))
            if _url_user(dest)[0] != account.username:
                return (403, "copies and moves stay inside your own workspace")
            resolve(root, account.username, dest)
        return None


    def _reserve(self, environ: dict[str, Any], account: AccountLike, root: str, method: str,
                 length: int | None) -> tuple[int, str] | None:
        """Reserve what this PUT or COPY may add to the home, or say why not (507; 503 when the account's quota ledger
        cannot be used; ``workspace.reserve``)."""
        ledger: Ledger = self.config["enclave"]["ledger"]
        path = resolve(root, account.username, environ["PATH_INFO"])
        try:
            if method == "COPY":
                reservation = reserve(ledger, account, _size(path), what="copy")
            else:
                replaced = os.path.getsize(path) if os.path.isfile(path) and not os.path.islink(path) else 0
                reservation = reserve(ledger, account, length, replaced)
        except Refused as refusal:  # the ledger cannot be used (503): nothing is written that it cannot count
            return (refusal.status, refusal.reason)
        if isinstance(reservation, str):
            return (HTTP_INSUFFICIENT_STORAGE, reservation)
        environ[_RESERVATION] = reservation
        environ[_ALLOWANCE] = reservation.cap
        return None


def _size(path: str) -> int:
    if not os.path.exists(path) or os.path.islink(path):
        return 0
    return usage(Path(path)) if os.path.isdir(path) else os.path.getsize(path)


def _refuse_infinite_depth(start_response: Callable[..., Any]) -> list[bytes]:
    """RFC 4918 §9.1: a PROPFIND without a Depth header is Depth: infinity, and a server may refuse that with 403
    and the DAV:propfind-finite-depth precondition (§16) in a DAV:error body. Refused because one request would walk
    the whole workspace (WsgiDAV 4.4 always allows it: request_server.py, allow_propfind_infinite = True)."""
    body = (b'<?xml version="1.0" encoding="utf-8"?>\n<D:error xmlns:D="DAV:"><D:propfind-finite-depth/>'
            b"</D:error>\n<!-- send Depth: 0 or Depth: 1; list deeper folders one at a time -->\n")
    start_response("403 Forbidden", [("Content-Type", "application/xml; charset=utf-8"),
                                     ("Content-Length", str(len(body)))])
    return [body]


def _deny(start_response: Callable[..., Any], status: int, reason: str) -> list[bytes]:
    phrases = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
               413: "Content Too Large", 503: "Service Unavailable", 507: "Insufficient Storage"}
    body = (reason + "\n").encode()
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    if status == 401:
        headers.append(("WWW-Authenticate", 'Basic realm="enclave workspace"'))
    start_response(f"{status} {phrases.get(status, 'Error')}", headers)
    return [body]


class _LimitedWriter:
    """Writes an upload to a temporary file beside its target, refusing bytes beyond the allowance."""

    def __init__(self, root: str, directory: str, allowance: int, reservation: Reservation | None) -> None:
        self.name = f"{UPLOAD_PREFIX}{uuid.uuid4().hex}"
        self.allowance = allowance
        self.reservation = reservation
        self.written = 0
        # Everything below goes through a descriptor of the (verified) directory, not through its path.
        self.dir_fd = _open_inside(root, directory, os.O_RDONLY | os.O_DIRECTORY)
        fd = os.open(self.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                     dir_fd=self.dir_fd)
        # Unbuffered: a byte counts as written (and leaves the reservation) only once it is on disk.
        self._fh: IO[bytes] = os.fdopen(fd, "wb", buffering=0)

    def write(self, data: bytes) -> int:
        self.written += len(data)
        if self.written > self.allowance:
            raise DAVError(HTTP_INSUFFICIENT_STORAGE, f"upload exceeds the storage quota ({self.allowance} bytes "
                                                      "were free); delete files or ask for more space")
        view = memoryview(data)
        while view:
            n = self._fh.write(view) or 0
            view = view[n:]
        if self.reservation is not None:
            self.reservation.written(len(data))
        return len(data)

    def close(self) -> None:
        self._fh.close()

    def finish(self, target_name: str | None) -> None:
        """Rename into place (``target_name``) or discard (None), then let go of the directory."""
        try:
            if target_name is None:
                os.unlink(self.name, dir_fd=self.dir_fd)
            else:
                os.replace(self.name, target_name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
        finally:
            os.close(self.dir_fd)


class QuotaFile(FileResource):  # type: ignore[misc]
    """A file read through a verified descriptor, whose upload lands atomically and only within quota."""

    _writer: _LimitedWriter | None = None

    def get_content(self) -> IO[bytes]:
        fd = _open_inside(self.environ[_ROOT], self._file_path, os.O_RDONLY)
        return os.fdopen(fd, "rb")

    def begin_write(self, *, content_type: str | None = None) -> _LimitedWriter:
        self._writer = _LimitedWriter(self.environ[_ROOT], os.path.dirname(self._file_path),
                                      self.environ.get(_ALLOWANCE, 0), self.environ.get(_RESERVATION))
        return self._writer

    def end_write(self, *, with_errors: bool) -> None:
        writer = self._writer
        self._writer = None
        if writer is None:
            return
        try:
            self._land(writer, with_errors)
        finally:
            # The upload is in place or gone: its reservation ends now, before the response is sent, not in close()
            # after it, where a client's next upload, on this server or another, could still find it held.
            reservation: Reservation | None = self.environ.get(_RESERVATION)
            if reservation is not None:
                reservation.release()

    def _land(self, writer: _LimitedWriter, with_errors: bool) -> None:
        writer.close()
        refusal = None
        if not with_errors:
            clock: Clock = self.environ["wsgidav.config"]["enclave"]["clock"]
            try:
                workspace.still_allowed(self.environ[_REAUTHENTICATE], clock, "PUT", _url_user(self.path)[0])
            except Refused as refused:
                refusal = refused
        if with_errors or refusal is not None:
            writer.finish(None)
            # do_PUT creates an empty file before writing a new one; a refused upload leaves nothing.
            if self.environ.get("enclave.put_new") and os.path.getsize(self._file_path) == 0:
                os.unlink(self._file_path)
            if refusal is not None:
                raise _dav(refusal)
            return
        writer.finish(os.path.basename(self._file_path))
        self.file_stat = os.stat(self._file_path)


class WorkspaceFolder(FolderResource):  # type: ignore[misc]
    """Reports the account's quota, not the size of the shared filesystem underneath (which is none of
    the user's business and would differ from what uploads are held to).

    Only the workspace itself carries the quota properties (RFC 4331 §3: a server may report them on the
    collections it chooses), and the home is measured at most once per request: WsgiDAV asks for each property
    twice per folder (dav_provider.py 4.4.0, get_property_names and get_property_value), and a walk of the whole
    home per folder of a listing made a PROPFIND cost folders × 4 walks."""

    def _quota(self) -> tuple[int, int] | None:
        if os.path.realpath(self._file_path) != self.environ[_ROOT]:
            return None
        account: AccountLike = self.environ[_ACCOUNT]
        if _USED not in self.environ:
            self.environ[_USED] = usage(Path(account.home_path))
        used: int = self.environ[_USED]
        return used, max(0, quota_bytes(account) - used)

    def get_member_names(self) -> list[str]:
        # Half-written uploads are not files yet; listing them would let a client fetch partial data.
        names: list[str] = super().get_member_names()
        return [n for n in names if not n.startswith(UPLOAD_PREFIX)]

    def get_used_bytes(self) -> int | None:
        quota = self._quota()
        return None if quota is None else quota[0]

    def get_available_bytes(self) -> int | None:
        quota = self._quota()
        return None if quota is None else quota[1]


class WorkspaceProvider(FilesystemProvider):  # type: ignore[misc]
    """A filesystem provider whose root is the authenticated user's workspace, per request."""

    def __init__(self, anchor: str) -> None:
        super().__init__(anchor, readonly=False, fs_opts={"follow_symlinks": False})

    def _loc_to_file_path(self, path: str, environ: dict[str, Any] | None = None) -> str:
        root = environ.get(_ROOT) if environ else None
        account: AccountLike | None = environ.get(_ACCOUNT) if environ else None
        if root is None or account is None:
            raise DAVError(HTTP_FORBIDDEN, "no workspace for this request")
        return resolve(root, account.username, path)

    def get_resource_inst(self, path: str, environ: dict[str, Any]) -> FileResource | FolderResource | None:
        fp = self._loc_to_file_path(path, environ)
        if not os.path.lexists(fp):
            if environ.get("REQUEST_METHOD") == "PUT" and path == environ.get("PATH_INFO"):
                environ["enclave.put_new"] = True
            return None
        if os.path.islink(fp):
            raise DAVError(HTTP_FORBIDDEN, "symbolic links are not served")
        if os.path.isdir(fp):
            return WorkspaceFolder(path, environ, fp)
        return QuotaFile(path, environ, fp)


# ---------------------------------------------------------------------------------------------------
# Assembly


class WorkspaceApp:
    """The WsgiDAV application behind one guard of our own.

    WsgiDAV 4.4 refuses a path that climbs above '/' ('/../x') from inside a generator, which drops
    the error body while keeping its Content-Length, so the client waits for bytes that never come.
    We refuse those paths here, with a complete response, before WsgiDAV sees them.
    """

    def __init__(self, dav: WsgiDAVApp) -> None:
        self.dav = dav

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        # Every request starts as the server (authentication reads the database), whatever a previous request on
        # this thread left behind; WorkspaceGate takes the account's identity once the request is allowed.
        act_as_server()
        path = environ.get("PATH_INFO", "")
        if path == HEALTH_PATH and environ.get("REQUEST_METHOD", "").upper() in ("GET", "HEAD"):
            return _health(start_response)
        if path != "*":
            try:
                normalize_path(re_encode_wsgi(path))
            except DAVError:
                return _deny(start_response, 400, "the path climbs above the root; '..' cannot leave your workspace")
            except UnicodeDecodeError:  # WsgiDAV would raise it later, as a 500
                return _deny(start_response, 400, "the path is not UTF-8; percent-encode the UTF-8 bytes of the name")
        return self.dav(environ, start_response)


HEALTH_PATH = "/-/health"
"""Answered by the process alone, without a login, for the kubelet's probes (enclave.cluster.deploy): no workspace
has this name, since a user name starts with a letter (enclave.accounts.lifecycle.USERNAME)."""


def _health(start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "3")])
    return [b"ok\n"]


def make_app(authenticator: Authenticator, *, anchor: str | Path = "/", clock: Clock = lambda: None,
             verbose: int = 1) -> WorkspaceApp:
    """The WSGI application. ``anchor`` is any existing directory (WsgiDAV wants one at start-up);
    files are only ever served from the per-request workspace root, as the account (workspace.act_as)."""
    drop_supplementary_groups()
    config = {
        "provider_mapping": {"/": WorkspaceProvider(str(anchor))},
        "http_authenticator": {
            "domain_controller": WorkspaceDC,
            "accept_basic": True,
            "accept_digest": False,
            "default_to_digest": False,
        },
        "middleware_stack": [ErrorPrinter, HTTPAuthenticator, WorkspaceGate, WsgiDavDirBrowser, RequestResolver],
        "enclave": {"authenticator": authenticator, "clock": clock, "ledger": Ledger()},
        "verbose": verbose,
        "logging": {"enable": False, "enable_loggers": []},
        "lock_storage": True,
        "property_manager": None,
        # Browsing answers HEAD/GET on a folder (clients probe folders that way); it lists through the
        # same provider, so it shows exactly what PROPFIND shows.
        "dir_browser": {"enable": True, "response_trailer": "enclave File Workspace", "davmount": False,
                        "ms_sharepoint_support": False},
    }
    return WorkspaceApp(WsgiDAVApp(config))


def make_server(app: WorkspaceApp, host: str = "127.0.0.1", port: int = 8090, threads: int = 4) -> wsgi.Server:
    return serving.make_server(app, host, port, threads, name="webdav")


def start(app: WorkspaceApp, host: str = "127.0.0.1", port: int = 0, poll_seconds: float = 0.5) -> Running:
    """Serve in a background thread (port 0: pick a free one), for tests and embedding."""
    return serving.start(app, "enclave-webdav", host, port, poll_seconds)

