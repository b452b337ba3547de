"""The File Workspace over VOSpace 2.1 (seed §6.2), the IVOA storage interface astronomers' tools speak.

Standard: IVOA VOSpace 2.1 Recommendation, https://www.ivoa.net/documents/VOSpace/20180620/REC-VOSpace-2.1.html
(sections cited below as "VOSpace §n"). A REST binding (§4) served as a plain WSGI application on cheroot, beside
WebDAV and over the same workspace, with the same rules from ``enclave.notebooks.workspace``:

    GET  /capabilities, /availability     VOSI capabilities and availability (what clients discover first)
    GET  /reg/resource-caps               a one-line registry, for clients pointed here with VOSPACE_WEBSERVICE
    /nodes/<username>/<path>              getNode (GET), createNode (PUT), setNode (POST), deleteNode (DELETE)
    POST /synctrans                       synchronous pushToVoSpace / pullFromVoSpace (§6.4, ID #sync-2.1)
    POST /transfers                       asynchronous transfers: moveNode / copyNode (§6.2.2, §6.2.3), UWS jobs
    /transfers/<job>[/phase|/error|/results/transferDetails]    the UWS job of a transfer
    GET|PUT /files/<username>/<path>      the bytes: the endpoints the transfer negotiation hands out

Node URIs are ``vos://<authority>/<username>/<path>`` (§2); each user sees only their own workspace. Login is the
WebDAV one: an enclave token, as ``Authorization: Bearer <token>`` (the ``vos`` tools' ``--token``) or HTTP Basic
with the user name and the token as password (a ``~/.netrc`` entry for ``vos -n``). Reads need data.read, anything
that changes files data.write; expired accounts read only, departed ones are refused (seed §4).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import shutil
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlparse
from xml.etree import ElementTree as ET

from cheroot import wsgi
from lxml import etree as LX

from enclave.errors import Unauthenticated
from enclave.notebooks import serving
from enclave.notebooks.account import AccountLike, access_of
from enclave.notebooks.serving import Running
from enclave.notebooks.workspace import (
    UPLOAD_PREFIX,
    Authenticator,
    Clock,
    Ledger,
    Refused,
    act_as,
    act_as_server,
    decide,
    drop_supplementary_groups,
    open_inside,
    quota_bytes,
    reserve,
    resolve,
    size_of,
    still_allowed,
    url_user,
    usage,
    workspace_root,
)

VOS_NS = "http://www.ivoa.net/xml/VOSpace/v2.0"
"""§4: 2.1 documents keep the 2.0 namespace and carry version="2.1" (IVOA XML Schema Versioning note)."""
VOS_VERSION = "2.1"
PCHAR = "/!$&'()*+,;=:@~"
"""What a node URI's path keeps unencoded: RFC 3986 §3.3 ``pchar`` (unreserved, sub-delims, ":" and "@") and the
segment separator; everything else, ``#``, ``?``, ``%`` and spaces among it, is percent-encoded."""
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
UWS_NS = "http://www.ivoa.net/xml/UWS/v1.0"
XLINK_NS = "http://www.w3.org/1999/xlink"
CAPS_NS = "http://www.ivoa.net/xml/VOSICapabilities/v1.0"
VR_NS = "http://www.ivoa.net/xml/VOResource/v1.0"
VS_NS = "http://www.ivoa.net/xml/VODataService/v1.1"
AVAIL_NS = "http://www.ivoa.net/xml/VOSIAvailability/v1.0"

CORE = "ivo://ivoa.net/vospace/core"
PROP_LENGTH = f"{CORE}#length"  # §3.2.4 standard properties
PROP_DATE = f"{CORE}#date"
PROP_QUOTA = f"{CORE}#quota"
PROP_AVAILABLE = f"{CORE}#availableSpace"
PROTOCOL_GET = {"http": f"{CORE}#httpget", "https": f"{CORE}#httpsget"}  # §3.5.4 standard protocols
PROTOCOL_PUT = {"http": f"{CORE}#httpput", "https": f"{CORE}#httpsput"}
PUSH, PULL = "pushToVoSpace", "pullFromVoSpace"  # §6.4

# Capability standard IDs (§4) and the ones the CADC client looks up besides them (vos/vos.py, EndPoints).
STD_NODES = "ivo://ivoa.net/std/VOSpace/v2.0#nodes"
STD_TRANSFERS = "ivo://ivoa.net/std/VOSpace/v2.0#transfers"
STD_SYNC = "ivo://ivoa.net/std/VOSpace#sync-2.1"
STD_FILES = "ivo://ivoa.net/std/VOSpace#files-proto"  # CADC: where vos reads a file's bytes directly
STD_CAPABILITIES = "ivo://ivoa.net/std/VOSI#capabilities"
STD_AVAILABILITY = "ivo://ivoa.net/std/VOSI#availability"
SSO_BASIC = "ivo://ivoa.net/sso#BasicAA"  # IVOA SSO 2.0 security method IDs, as cadcutils.net.auth names them
SSO_TOKEN = "ivo://ivoa.net/sso#token"

DEFAULT_RESOURCE_ID = "ivo://enclave.local/vospace"
MAX_JOBS = 1000
"""Transfer jobs kept in memory (oldest dropped first); a job lives as long as a client needs to read it back."""
BLOCK = 1 << 16

NSMAP = {"vos": VOS_NS, "xsi": XSI_NS, "uws": UWS_NS, "xlink": XLINK_NS}
"""Prefixes of the documents we write (lxml keeps them per document; ElementTree's are process-wide and would
leak into a client in the same process). xsi:type values name types as 'vos:...', so 'vos' must be bound."""
Element = Any  # an lxml element

# Incoming documents are parsed with ElementTree (expat: no external entities, no network).


def new(tag: str, attrib: dict[str, str] | None = None, nsmap: dict[str, str] | None = None) -> Element:
    return LX.Element(tag, attrib or {}, nsmap=nsmap or NSMAP)


def q(ns: str, tag: str) -> str:
    return f"{{{ns}}}{tag}"


class Fault(Exception):
    """A VOSpace fault (§6.5): HTTP status, the fault name, and a detail that says what and how to fix it."""

    def __init__(self, status: int, name: str, detail: str) -> None:
        super().__init__(f"{name}: {detail}")
        self.status = status
        self.name = name
        self.detail = detail


def fault_of(refusal: Refused) -> Fault:
    names = {403: "PermissionDenied", 404: "NodeNotFound", 413: "RequestEntityTooLarge", 503: "InternalFault"}
    return Fault(refusal.status, names.get(refusal.status, "InvalidArgument"), refusal.reason)


# ---------------------------------------------------------------------------------------------------
# Requests and responses


@dataclass
class Response:
    status: str
    body: bytes | Iterable[bytes] = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "text/xml; charset=utf-8"


def xml_response(status: str, element: Element) -> Response:
    return Response(status, LX.tostring(element, encoding="utf-8", xml_declaration=True))


def text_response(status: str, text: str) -> Response:
    return Response(status, (text + "\n").encode(), content_type="text/plain; charset=utf-8")


def redirect(location: str) -> Response:
    return Response("303 See Other", headers=[("Location", location)], content_type="text/plain")


@dataclass
class Request:
    environ: dict[str, Any]
    method: str
    path: str

    @property
    def base(self) -> str:
        scheme = self.environ.get("wsgi.url_scheme", "http")
        host = self.environ.get("HTTP_HOST") or f"{self.environ['SERVER_NAME']}:{self.environ['SERVER_PORT']}"
        return f"{scheme}://{host}"

    def query(self) -> dict[str, list[str]]:
        return parse_qs(self.environ.get("QUERY_STRING", ""))

    def read(self, limit: int = 1 << 20) -> bytes:
        """A small request body (an XML document or a form): refused past ``limit`` bytes."""
        stream = self.environ["wsgi.input"]
        data = b""
        while len(data) <= limit:
            chunk = stream.read(min(BLOCK, limit + 1 - len(data)))
            if not chunk:
                return data
            data += chunk
        raise Fault(413, "InvalidArgument", f"request document larger than {limit} bytes")


def wsgi_path(environ: dict[str, Any]) -> str:
    """PEP 3333 hands PATH_INFO over as latin-1 text of the decoded bytes; file names are UTF-8."""
    raw: str = environ.get("PATH_INFO", "")
    try:
        return raw.encode("latin-1").decode("utf-8")
    except UnicodeError:
        raise Fault(400, "InvalidURI", "the path is not valid UTF-8") from None


# ---------------------------------------------------------------------------------------------------
# Nodes (VOSpace §3.1, §6.3.1 getNode)


def iso_date(timestamp: float) -> str:
    """IVOA datetime (UTC, no zone suffix), the form §3.2.4's core#date property takes."""
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


def visible(name: str, path: str) -> bool:
    """Half-written uploads are not files yet, and symbolic links are never served (they could point anywhere)."""
    return not name.startswith(UPLOAD_PREFIX) and not os.path.islink(path)


def add_properties(node: Element, props: list[tuple[str, str]]) -> None:
    properties = LX.SubElement(node, q(VOS_NS, "properties"))
    for uri, value in props:
        LX.SubElement(properties, q(VOS_NS, "property"), {"uri": uri, "readOnly": "true"}).text = value


def node_element(uri: str, path: str, *, children: list[Element] | None = None,
                 extra: Iterable[tuple[str, str]] = ()) -> Element:
    """One node; a container lists ``children`` (None when it is itself a child in a listing). A container's
    length is the bytes under it when it is the node asked for; in its parent's listing it is 0, so listing a
    folder never walks every subtree below it."""
    is_dir = os.path.isdir(path)
    st = os.stat(path, follow_symlinks=False)
    node = new(q(VOS_NS, "node"), {"uri": uri})
    node.set(q(XSI_NS, "type"), "vos:ContainerNode" if is_dir else "vos:DataNode")
    length = usage(Path(path)) if is_dir and children is not None else (0 if is_dir else st.st_size)
    add_properties(node, [(PROP_LENGTH, str(length)), (PROP_DATE, iso_date(st.st_mtime)), *extra])
    LX.SubElement(node, q(VOS_NS, "accepts"))
    LX.SubElement(node, q(VOS_NS, "provides"))
    LX.SubElement(node, q(VOS_NS, "capabilities"))
    if is_dir:
        nodes = LX.SubElement(node, q(VOS_NS, "nodes"))
        for child in children or []:
            nodes.append(child)
    return node


# ---------------------------------------------------------------------------------------------------
# Transfer jobs (VOSpace §3.6, §6.4; UWS 1.0 job representation)


@dataclass
class Job:
    id: str
    owner: str
    target: str
    direction: str
    keep_bytes: bool = True
    phase: str = "PENDING"
    error: str = ""
    protocols: list[tuple[str, str]] = field(default_factory=list)
    """(protocol URI, endpoint) of a negotiated external transfer."""
    created: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))

    def fail(self, fault: Fault) -> None:
        self.phase, self.error = "ERROR", str(fault)

    def transfer_element(self) -> Element:
        root = new(q(VOS_NS, "transfer"), {"version": VOS_VERSION})
        LX.SubElement(root, q(VOS_NS, "target")).text = self.target
        LX.SubElement(root, q(VOS_NS, "direction")).text = self.direction
        for uri, endpoint in self.protocols:
            LX.SubElement(LX.SubElement(root, q(VOS_NS, "protocol"), {"uri": uri}), q(VOS_NS, "endpoint")).text = \
                endpoint
        if self.direction not in (PUSH, PULL):
            LX.SubElement(root, q(VOS_NS, "keepBytes")).text = "true" if self.keep_bytes else "false"
        return root

    def uws_element(self, base: str) -> Element:
        """The UWS job (UWS 1.1 REC, https://www.ivoa.net/documents/UWS/20161024/; UWS.xsd type JobSummary, its
        elements in the schema's order; the times nobody tracks here are nil, as the schema allows)."""
        job = new(q(UWS_NS, "job"))
        LX.SubElement(job, q(UWS_NS, "jobId")).text = self.id
        LX.SubElement(job, q(UWS_NS, "ownerId")).text = self.owner
        LX.SubElement(job, q(UWS_NS, "phase")).text = self.phase
        LX.SubElement(job, q(UWS_NS, "creationTime")).text = self.created
        for name in ("startTime", "endTime"):
            LX.SubElement(job, q(UWS_NS, name)).set(q(XSI_NS, "nil"), "true")
        LX.SubElement(job, q(UWS_NS, "executionDuration")).text = "0"  # 0: unlimited
        LX.SubElement(job, q(UWS_NS, "destruction")).set(q(XSI_NS, "nil"), "true")
        results = LX.SubElement(job, q(UWS_NS, "results"))
        if self.protocols:
            result = LX.SubElement(results, q(UWS_NS, "result"), {"id": "transferDetails"})
            result.set(q(XLINK_NS, "href"), f"{base}/transfers/{self.id}/results/transferDetails")
        if self.error:
            summary = LX.SubElement(job, q(UWS_NS, "errorSummary"), {"type": "fatal", "hasDetail": "true"})
            LX.SubElement(summary, q(UWS_NS, "message")).text = self.error
        LX.SubElement(job, q(UWS_NS, "jobInfo")).append(self.transfer_element())
        return job


def parse_transfer(body: bytes) -> tuple[str, str, bool]:
    """A transfer document (§3.6.1) → (target, direction, keepBytes)."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError as err:
        raise Fault(400, "InvalidArgument", f"the transfer document is not XML: {err}") from None
    if root.tag != q(VOS_NS, "transfer"):
        raise Fault(400, "InvalidArgument", f"expected a vos:transfer document in namespace {VOS_NS}")
    target = (root.findtext(q(VOS_NS, "target")) or "").strip()
    direction = (root.findtext(q(VOS_NS, "direction")) or "").strip()
    keep = (root.findtext(q(VOS_NS, "keepBytes")) or "true").strip().lower() != "false"
    if not target or not direction:
        raise Fault(400, "InvalidArgument", "a transfer needs a vos:target and a vos:direction")
    return target, direction, keep


# ---------------------------------------------------------------------------------------------------
# The service


@dataclass
class Caller:
    account: AccountLike
    root: str


class VOSpaceApp:
    """The WSGI application. ``resource_id`` names the service (``ivo://authority/path``); node URIs are
    ``vos://authority~path/<username>/...`` (§2: '~' or '!' separates the authority from the service path)."""

    def __init__(self, authenticator: Authenticator, *, clock: Clock = lambda: None,
                 resource_id: str = DEFAULT_RESOURCE_ID, public_url: str | None = None,
                 ledger: Ledger | None = None) -> None:
        parsed = urlparse(resource_id)
        if parsed.scheme != "ivo" or not parsed.netloc:
            raise ValueError(f"resource ID '{resource_id}' must look like ivo://authority/path")
        self.authenticate = authenticator
        self.clock = clock
        self.resource_id = resource_id
        self.authority = f"{parsed.netloc}{parsed.path.replace('/', '~', 1)}" if parsed.path else parsed.netloc
        self.public_url = public_url.rstrip("/") if public_url else None
        self.jobs: OrderedDict[str, Job] = OrderedDict()
        self.lock = threading.Lock()
        self.ledger = ledger or Ledger()
        """Bytes reserved by uploads and copies in progress (``workspace.reserve``), in the ledger files beside the
        homes that every WebDAV and VOSpace server of them shares."""

    # -- WSGI -----------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        # A request starts as the server (authentication reads the database) and acts as the account once it is
        # allowed (``allowed``: workspace.act_as); a response body is an open descriptor, read without the identity.
        act_as_server()
        try:
            request = Request(environ, environ["REQUEST_METHOD"].upper(), wsgi_path(environ))
            response = self.route(request)
        except Fault as fault:
            response = text_response(f"{fault.status} {fault.name}", str(fault))
            if fault.status == 401:
                response.headers.append(("WWW-Authenticate", 'Basic realm="enclave workspace"'))
                response.headers.append(("WWW-Authenticate", "Bearer"))
        except Refused as refusal:
            refused = fault_of(refusal)
            response = text_response(f"{refused.status} {refused.name}", str(refused))
        except OSError as err:
            # §6.5 InternalFault: what the file system said, without paths (they are the server's business).
            response = text_response("500 InternalFault", f"InternalFault: {err.strerror or 'file system error'}")
        finally:
            act_as_server()
        headers = [("Content-Type", response.content_type), *response.headers]
        if isinstance(response.body, bytes) and not any(k == "Content-Length" for k, _ in headers):
            headers.append(("Content-Length", str(len(response.body))))
        start_response(response.status, headers)
        if environ.get("REQUEST_METHOD", "").upper() == "HEAD":
            return [b""]
        return [response.body] if isinstance(response.body, bytes) else response.body

    def route(self, request: Request) -> Response:
        path, method = request.path, request.method
        if path == "/capabilities" and method == "GET":
            return xml_response("200 OK", self.capabilities(self.base(request)))
        if path == "/availability" and method == "GET":
            return xml_response("200 OK", availability())
        if path == "/reg/resource-caps" and method == "GET":
            return Response("200 OK", f"{self.resource_id} = {self.base(request)}/capabilities\n".encode(),
                            content_type="text/plain; charset=utf-8")
        for prefix, handler in (("/nodes", self.nodes), ("/files", self.files), ("/synctrans", self.synctrans),
                                ("/transfers", self.transfers)):
            if path == prefix or path.startswith(prefix + "/"):
                return handler(request, path[len(prefix):] or "/")
        raise Fault(404, "NodeNotFound", f"no such resource: {path} (nodes are under /nodes/<username>/)")

    def base(self, request: Request) -> str:
        return self.public_url or request.base

    # -- authentication and the shared rules ---------------------------------------------------------------

    def caller(self, request: Request, write: bool) -> AccountLike:
        """The account behind the request's token (Bearer, or Basic with the user name): as WebDAV does it."""
        header = request.environ.get("HTTP_AUTHORIZATION", "")
        scheme, _, value = header.partition(" ")
        try:
            if scheme.lower() == "bearer" and value.strip():
                account = self.authenticate("", value.strip(), write)
            elif scheme.lower() == "basic":
                user, _, token = base64.b64decode(value.strip()).decode().partition(":")
                account = self.authenticate(user, token, write)
                if account.username != user:
                    # A valid token of someone else: never let the Basic user name pick the identity.
                    raise Unauthenticated("the token does not belong to this user")
            else:
                account = None
            if account is not None:
                request.environ[serving.ACCOUNT] = account  # for the access log (serving.AccessLog)
                return account
        except (Unauthenticated, binascii.Error, UnicodeError):
            raise Fault(401, "PermissionDenied", "the token was not accepted: present a valid enclave token "
                                                 "(scope data.read; data.write to change files)") from None
        raise Fault(401, "PermissionDenied", "authenticate with an enclave token: Authorization: Bearer <token>, "
                                             "or Basic with your user name and the token as password")

    def allowed(self, account: AccountLike, verb: str, node_path: str) -> Caller:
        """The one permission rule (workspace.decide) for ``verb`` on ``/<user>/...``, then the confined root."""
        verdict = decide(account, access_of(account, self.clock()), verb, url_user(node_path)[0])
        if not verdict.allowed:
            raise Fault(verdict.status, "PermissionDenied", verdict.reason)
        act_as(account)
        return Caller(account, workspace_root(account))

    def enter(self, request: Request, verb: str, node_path: str, *, write: bool) -> tuple[Caller, str]:
        caller = self.allowed(self.caller(request, write), verb, node_path)
        return caller, resolve(caller.root, caller.account.username, node_path)

    def node_path(self, uri: str) -> str:
        """vos://authority/<user>/<path> → /<user>/<path> (§2), refusing other services' URIs. A node URI is
        URI-encoded (VOSpace 2.1 §3.1, RFC 3986): ``run%231.fits`` names the file ``run#1.fits``."""
        parsed = urlparse(uri)
        authority = parsed.netloc.replace("!", "~")
        if parsed.scheme != "vos" or authority != self.authority:
            raise Fault(400, "InvalidURI", f"'{uri}' is not a node of this service; use vos://{self.authority}/"
                                           "<username>/<path>")
        return unquote(parsed.path) or "/"

    def uri(self, node_path: str) -> str:
        """The node's URI, each path segment encoded (VOSpace 2.1 §3.1: RFC 3986), so a name with ``#``, ``?``,
        ``%`` or a space is one node, not a fragment, a query or another name."""
        return f"vos://{self.authority}{quote(node_path.rstrip('/') or '/', safe=PCHAR)}"

    # -- /nodes (§6.2.1 createNode, §6.2.4 deleteNode, §6.3.1 getNode, §6.3.2 setNode) ------------------------

    def nodes(self, request: Request, node_path: str) -> Response:
        if request.method == "GET":
            return self.get_node(request, node_path)
        if request.method == "PUT":
            return self.create_node(request, node_path)
        if request.method == "DELETE":
            return self.delete_node(request, node_path)
        if request.method == "POST":
            # setNode: every property this service reports is read-only (§6.3.2: changing one is refused).
            self.enter(request, "PROPPATCH", node_path, write=True)
            raise Fault(403, "PermissionDenied", "node properties here are read-only (length, date, quota come "
                                                 "from the file system)")
        raise Fault(405, "InvalidArgument", f"{request.method} is not a VOSpace node operation")

    def existing(self, path: str, node_path: str) -> None:
        if os.path.islink(path):
            raise Fault(403, "PermissionDenied", "symbolic links are not served")
        if not os.path.exists(path):
            raise Fault(404, "NodeNotFound", self.uri(node_path))

    def get_node(self, request: Request, node_path: str) -> Response:
        caller, path = self.enter(request, "GET", node_path, write=False)
        self.existing(path, node_path)
        extra: list[tuple[str, str]] = []
        if os.path.realpath(path) == caller.root:
            quota = quota_bytes(caller.account)
            used = usage(Path(caller.account.home_path))
            extra = [(PROP_QUOTA, str(quota)), (PROP_AVAILABLE, str(max(0, quota - used)))]
        children = self.children(request, node_path, path) if os.path.isdir(path) else None
        node = node_element(self.uri(node_path), path, children=children, extra=extra)
        node.set("version", VOS_VERSION)
        return xml_response("200 OK", node)

    def children(self, request: Request, node_path: str, path: str) -> list[Element]:
        """A container's direct children, sorted by name (§6.3.1): ``uri`` starts the page at that child ("the
        list begins at the node matching" it; the CADC vos client drops the first child of every later page),
        ``limit`` caps its length (vos pages through large containers with both)."""
        params = request.query()
        base = node_path.rstrip("/")
        names = sorted(n for n in os.listdir(path) if visible(n, os.path.join(path, n)))
        start = params.get("uri", [""])[0]
        if start.startswith(self.uri(base) + "/"):
            first = unquote(start[len(self.uri(base)) + 1:])
            names = [n for n in names if n >= first]
        limit = params.get("limit", [""])[0]
        # ASCII digits only, and few enough for int(): str.isdigit takes '²', and int() refuses 4,301 digits.
        if re.fullmatch(r"[0-9]{1,18}", limit):
            names = names[:int(limit)]
        return [node_element(self.uri(f"{base}/{n}"), os.path.join(path, n), children=None) for n in names]

    def create_node(self, request: Request, node_path: str) -> Response:
        caller, path = self.enter(request, "PUT", node_path, write=True)
        try:
            doc = ET.fromstring(request.read())
        except ET.ParseError as err:
            raise Fault(400, "InvalidArgument", f"the node document is not XML: {err}") from None
        kind = doc.get(q(XSI_NS, "type"), "vos:DataNode")
        if doc.get("uri") and self.node_path(doc.get("uri", "")).rstrip("/") != node_path.rstrip("/"):
            raise Fault(400, "InvalidURI", "the node's uri attribute and the URL name different nodes")
        if kind not in ("vos:ContainerNode", "vos:DataNode", "vos:UnstructuredDataNode"):
            raise Fault(400, "TypeNotSupported", f"{kind}: only container and data nodes can be created")
        self.check_parent(path, node_path)
        if os.path.lexists(path):
            raise Fault(409, "DuplicateNode", self.uri(node_path))
        if kind == "vos:ContainerNode":
            os.mkdir(path)
        else:
            os.close(open_inside(caller.root, path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        return xml_response("201 Created", node_element(self.uri(node_path), path, children=[]))

    def check_parent(self, path: str, node_path: str) -> None:
        if url_user(node_path)[1].strip("/") == "":
            raise Fault(409, "DuplicateNode", f"{self.uri(node_path)} is your workspace itself")
        parent = os.path.dirname(path)
        if os.path.islink(parent) or not os.path.isdir(parent):
            raise Fault(404, "ContainerNotFound", f"the parent of {self.uri(node_path)} is not a container")

    def delete_node(self, request: Request, node_path: str) -> Response:
        _, path = self.enter(request, "DELETE", node_path, write=True)
        if url_user(node_path)[1].strip("/") == "":
            raise Fault(403, "PermissionDenied", "your workspace itself cannot be deleted, only what is in it")
        self.existing(path, node_path)
        if os.path.isdir(path):
            shutil.rmtree(path)  # removes links found inside, never what they point to
        else:
            os.unlink(path)
        return Response("204 No Content")

    # -- /files: the bytes behind the negotiated endpoints ------------------------------------------------

    def files(self, request: Request, node_path: str) -> Response:
        if request.method in ("GET", "HEAD"):
            return self.read_file(request, node_path)
        if request.method == "PUT":
            return self.write_file(request, node_path)
        raise Fault(405, "InvalidArgument", f"{request.method}: data endpoints take GET and PUT")

    def read_file(self, request: Request, node_path: str) -> Response:
        caller, path = self.enter(request, "GET", node_path, write=False)
        self.existing(path, node_path)
        if os.path.isdir(path):
            raise Fault(400, "InvalidArgument", f"{self.uri(node_path)} is a container; list it under /nodes")
        fd = open_inside(caller.root, path, os.O_RDONLY)
        size = os.fstat(fd).st_size
        name = quote(os.path.basename(path))
        headers = [("Content-Length", str(size)), ("Content-Disposition", f"inline; filename*=utf-8''{name}")]
        if request.method == "HEAD":
            os.close(fd)
            return Response("200 OK", b"", headers, content_type="application/octet-stream")
        return Response("200 OK", FileStream(fd), headers, content_type="application/octet-stream")

    def write_file(self, request: Request, node_path: str) -> Response:
        caller, path = self.enter(request, "PUT", node_path, write=True)
        self.check_parent(path, node_path)
        if os.path.islink(path) or os.path.isdir(path):
            raise Fault(409, "DuplicateNode", f"{self.uri(node_path)} exists and is not a data node")
        replaced = os.path.getsize(path) if os.path.isfile(path) else 0
        length = request.environ.get("CONTENT_LENGTH") or ""
        reservation = reserve(self.ledger, caller.account, int(length) if length.isdigit() else None, replaced)
        if isinstance(reservation, str):
            raise Fault(413, "RequestEntityTooLarge", reservation)
        created = not os.path.exists(path)

        def reauthenticate() -> AccountLike:
            try:
                return self.caller(request, write=True)
            except Fault as fault:  # still_allowed turns a refused token into its own refusal
                raise Unauthenticated(fault.detail) from None

        try:
            digest = receive(request, caller, path, reservation.cap,
                             lambda: still_allowed(reauthenticate, self.clock, "PUT", url_user(node_path)[0]))
        finally:
            reservation.release()  # the disk counts what was written
        headers = [("Digest", "md5=" + base64.b64encode(digest).decode())]
        return Response("201 Created" if created else "200 OK", b"", headers, content_type="text/plain")

    # -- /synctrans and /transfers (§6.4 external transfers, §6.2.2-3 internal ones) ----------------------------

    def synctrans(self, request: Request, rest: str) -> Response:
        if request.method != "POST" or rest != "/":
            raise Fault(405, "InvalidArgument", "POST a vos:transfer document to /synctrans")
        target, direction, keep = parse_transfer(request.read())
        if direction not in (PUSH, PULL):
            raise Fault(400, "InvalidArgument", f"direction '{direction}': /synctrans negotiates {PUSH} and {PULL};"
                                                " moves and copies go to /transfers")
        account = self.caller(request, write=direction == PUSH)
        job = self.new_job(account.username, target, direction, keep)
        try:
            job.protocols = self.negotiate(request, account, target, direction)
            job.phase = "COMPLETED"
        except Fault as fault:
            job.fail(fault)
        except Refused as refusal:
            job.fail(fault_of(refusal))
        # §6.4: the synchronous endpoint starts the job at once and redirects to its transfer details (§4).
        return redirect(f"{self.base(request)}/transfers/{job.id}/results/transferDetails")

    def negotiate(self, request: Request, account: AccountLike, target: str, direction: str) -> list[tuple[str, str]]:
        """The endpoint a push or pull uses: our own /files URL, after the same checks the data request makes."""
        node_path = self.node_path(target)
        caller = self.allowed(account, "PUT" if direction == PUSH else "GET", node_path)
        path = resolve(caller.root, account.username, node_path)
        if direction == PULL:
            self.existing(path, node_path)
            if os.path.isdir(path):
                raise Fault(400, "InvalidArgument", f"{target} is a container: only data nodes have bytes to pull")
        else:
            self.check_parent(path, node_path)
        base = self.base(request)
        scheme = urlparse(base).scheme
        protocol = (PROTOCOL_PUT if direction == PUSH else PROTOCOL_GET).get(scheme, PROTOCOL_GET["http"])
        return [(protocol, f"{base}/files{quote(node_path)}")]

    def transfers(self, request: Request, rest: str) -> Response:
        if rest == "/":
            if request.method != "POST":
                raise Fault(405, "InvalidArgument", "POST a vos:transfer document to /transfers")
            return self.create_async(request)
        parts = rest.strip("/").split("/")
        job = self.job(request, parts[0])
        tail = "/".join(parts[1:])
        if tail == "" and request.method == "GET":
            return xml_response("200 OK", job.uws_element(self.base(request)))
        if tail == "phase":
            return self.phase(request, job)
        if tail == "error" and request.method == "GET":
            return Response("200 OK", (job.error or "no error").encode(), content_type="text/plain")
        if tail == "results/transferDetails" and request.method == "GET":
            return xml_response("200 OK", job.transfer_element())
        raise Fault(404, "NodeNotFound", f"no such job resource: {rest}")

    def create_async(self, request: Request) -> Response:
        target, direction, keep = parse_transfer(request.read())
        if direction in (PUSH, PULL):
            raise Fault(400, "InvalidArgument", f"{direction} is negotiated at /synctrans")
        account = self.caller(request, write=True)
        for uri in (target, direction):
            self.node_path(uri)  # both must be nodes of this service
        job = self.new_job(account.username, target, direction, keep)
        if request.query().get("PHASE", [""])[0].upper() == "RUN":  # §6.4: run on creation when asked
            job.phase = "EXECUTING"
            self.run(request, job, account)
        return redirect(f"{self.base(request)}/transfers/{job.id}")

    def phase(self, request: Request, job: Job) -> Response:
        if request.method == "GET":
            # UWS 1.0 §2.2.3.1: the phase alone, as plain text (clients compare it verbatim).
            return Response("200 OK", job.phase.encode(), content_type="text/plain")
        if request.method != "POST":
            raise Fault(405, "InvalidArgument", "GET or POST PHASE=RUN")
        form = parse_qs(request.read().decode(errors="replace"))
        action = form.get("PHASE", [""])[0].upper()
        if action not in ("RUN", "ABORT"):
            raise Fault(400, "InvalidArgument", f"PHASE={action}: use RUN or ABORT")
        account = self.caller(request, write=True)
        with self.lock:  # a job runs once, however many RUNs arrive at the same time
            pending = job.phase == "PENDING"
            if pending:
                job.phase = "EXECUTING" if action == "RUN" else "ABORTED"
        if pending and action == "RUN":
            self.run(request, job, account)
        return redirect(f"{self.base(request)}/transfers/{job.id}")

    def run(self, request: Request, job: Job, account: AccountLike) -> None:
        """moveNode (keepBytes false) or copyNode (keepBytes true), §6.2.2 and §6.2.3, within one workspace."""
        try:
            verb = "COPY" if job.keep_bytes else "MOVE"
            source_path, dest_path = self.node_path(job.target), self.node_path(job.direction)
            caller = self.allowed(account, verb, source_path)
            self.allowed(account, verb, dest_path)
            source = resolve(caller.root, account.username, source_path)
            dest = resolve(caller.root, account.username, dest_path)
            self.move_or_copy(caller, source, source_path, dest, dest_path, job.keep_bytes)
            job.phase = "COMPLETED"
        except Fault as fault:
            job.fail(fault)
        except Refused as refusal:
            job.fail(fault_of(refusal))

    def move_or_copy(self, caller: Caller, source: str, source_path: str, dest: str, dest_path: str,
                     keep: bool) -> None:
        if url_user(source_path)[1].strip("/") == "":
            raise Fault(403, "PermissionDenied", "your workspace itself cannot be moved or copied")
        self.existing(source, source_path)
        if os.path.isdir(dest) and not os.path.islink(dest):
            dest = os.path.join(dest, os.path.basename(source))  # into an existing container (§6.2.2)
        else:
            self.check_parent(dest, dest_path)
        if os.path.lexists(dest):
            raise Fault(409, "DuplicateNode", f"{self.uri(dest_path)} already holds {os.path.basename(dest)}")
        if os.path.realpath(dest).startswith(os.path.realpath(source) + os.sep):
            raise Fault(400, "InvalidArgument", "a container cannot be moved or copied into itself")
        if not keep:
            os.rename(source, dest)
            return
        reservation = reserve(self.ledger, caller.account, size_of(source), what="copy")
        if isinstance(reservation, str):
            raise Fault(413, "RequestEntityTooLarge", reservation)
        try:
            if os.path.isdir(source):
                shutil.copytree(source, dest, symlinks=True)  # links are copied as links, never followed
            else:
                shutil.copy2(source, dest, follow_symlinks=False)
        finally:
            reservation.release()

    def new_job(self, owner: str, target: str, direction: str, keep: bool) -> Job:
        job = Job(uuid.uuid4().hex, owner, target, direction, keep)
        with self.lock:
            self.jobs[job.id] = job
            while len(self.jobs) > MAX_JOBS:
                self.jobs.popitem(last=False)
        return job

    def job(self, request: Request, job_id: str) -> Job:
        account = self.caller(request, write=False)
        with self.lock:
            job = self.jobs.get(job_id)
        if job is None or job.owner != account.username:
            # Someone else's job is as invisible as one that never was.
            raise Fault(404, "NodeNotFound", f"no transfer job {job_id}")
        return job

    # -- VOSI (the capabilities document vos reads first) ------------------------------------------------

    def capabilities(self, base: str) -> Element:
        root = new(q(CAPS_NS, "capabilities"), nsmap={"vosi": CAPS_NS, "xsi": XSI_NS, "vs": VS_NS, "vr": VR_NS})
        for standard, path, secured in ((STD_CAPABILITIES, "/capabilities", False),
                                        (STD_AVAILABILITY, "/availability", False),
                                        (STD_NODES, "/nodes", True), (STD_TRANSFERS, "/transfers", True),
                                        (STD_SYNC, "/synctrans", True), (STD_FILES, "/files", True)):
            capability = LX.SubElement(root, "capability", {"standardID": standard})
            methods = (SSO_TOKEN, SSO_BASIC) if secured else (None,)
            for method in methods:
                interface = LX.SubElement(capability, "interface", {"role": "std"})
                interface.set(q(XSI_NS, "type"), "vs:ParamHTTP")
                LX.SubElement(interface, "accessURL", {"use": "base"}).text = base + path
                if method:
                    LX.SubElement(interface, "securityMethod", {"standardID": method})
        return root


def availability() -> Element:
    root = new(q(AVAIL_NS, "availability"), nsmap={"vosi": AVAIL_NS})
    LX.SubElement(root, q(AVAIL_NS, "available")).text = "true"
    return root


class FileStream:
    """A file's bytes for the WSGI server, from a verified descriptor. ``close`` (which the server calls when
    the response ends, finished or not, PEP 3333) releases the descriptor even if no byte was sent."""

    def __init__(self, fd: int) -> None:
        self.fh = os.fdopen(fd, "rb")

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.fh.read(BLOCK):
            yield chunk

    def close(self) -> None:
        self.fh.close()


def receive(request: Request, caller: Caller, path: str, allowance: int, recheck: Callable[[], None]) -> bytes:
    """Stream the request body into a temporary file beside ``path`` (through a verified descriptor of its
    directory) and rename it into place only when complete, within ``allowance``, matching any MD5 the
    client sent (``Digest: md5=<base64>``, RFC 3230, which cadcutils sends) and once ``recheck`` (the account may
    still write: workspace.still_allowed) has passed: a refused upload leaves nothing."""
    directory, name = os.path.split(path)
    temp = f"{UPLOAD_PREFIX}{uuid.uuid4().hex}"
    dir_fd = open_inside(caller.root, directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=dir_fd)
        md5 = hashlib.md5(usedforsecurity=False)
        try:
            with os.fdopen(fd, "wb") as out:
                copy_limited(request.environ["wsgi.input"], out, md5, allowance, caller.account)
            expected = request.environ.get("HTTP_DIGEST", "")
            if expected.lower().startswith("md5=") and _digest(expected[4:]) != md5.digest():
                raise Fault(412, "InvalidData", "the bytes received do not match the MD5 the client sent; retry")
            recheck()
            os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            os.unlink(temp, dir_fd=dir_fd)
            raise
    finally:
        os.close(dir_fd)
    return md5.digest()


def copy_limited(source: Any, out: Any, md5: Any, allowance: int, account: AccountLike) -> None:
    written = 0
    while chunk := source.read(BLOCK):
        written += len(chunk)
        if written > allowance:
            raise Fault(413, "RequestEntityTooLarge", f"upload exceeds the storage quota of '{account.username}' "
                                                      f"({allowance} bytes were free); delete files or ask for more")
        md5.update(chunk)
        out.write(chunk)


# ---------------------------------------------------------------------------------------------------
# Serving


def make_app(authenticator: Authenticator, *, clock: Clock = lambda: None, resource_id: str = DEFAULT_RESOURCE_ID,
             public_url: str | None = None) -> VOSpaceApp:
    drop_supplementary_groups()
    return VOSpaceApp(authenticator, clock=clock, resource_id=resource_id, public_url=public_url)


def make_server(app: VOSpaceApp, host: str = "127.0.0.1", port: int = 8091, threads: int = 4) -> wsgi.Server:
    return serving.make_server(app, host, port, threads, name="vospace")


def start(app: VOSpaceApp, host: str = "127.0.0.1", port: int = 0, poll_seconds: float = 0.5) -> Running:
    """Serve in a background thread (port 0: pick a free one), for tests and embedding."""
    return serving.start(app, "enclave-vospace", host, port, poll_seconds)


def _digest(text: str) -> bytes:
    """An RFC 3230 ``Digest: md5=`` value: base64 (RFC 1864), refused as the client's mistake when it is not."""
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise Fault(400, "InvalidArgument", f"Digest md5={text} is not base64; send the MD5 base64-encoded "
                    "(RFC 1864)") from None
