"""The services a CLI command calls, over the API: the same methods, arguments and returned models as
``AccountService``, ``TokenService``, ``JournalService`` and ``ImageService`` (``enclave.services``), so a command
is one code path whether ``cli.options.enclave`` hands it the local factory or ``Remote``. Each method is one
route of ``enclave.api.routes``; the server checks the token's permission and journals as the token's account."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from datetime import datetime
from typing import Any
from urllib.parse import quote

from pydantic import TypeAdapter

from enclave.accounts.lifecycle import Allocation
from enclave.accounts.types import AccountKind, AccountStatus, AccountView, IssuedToken, TokenView
from enclave.broker.execute import Outcome
from enclave.client.http import API_PREFIX, NOT_ENCLAVE, TIMEOUT_S, Api
from enclave.domain.capacity import (
    Action,
    DeletePods,
    DeployPods,
    DrainNode,
    DrainStartd,
    Relabel,
    ReturnNode,
    StartHTCondor,
)
from enclave.domain.logs import LogRequest
from enclave.domain.schedule import ObservingSchedule
from enclave.errors import ExternalError, NotFound
from enclave.journal import Entry
from enclave.ops.images import ImageStatus
from enclave.services.broker import DrainOverrides
from enclave.services.images import ImageView
from enclave.services.schedule import ScheduleView
from enclave.spec.models import Role

MAX_JOURNAL = 1000
"""The API's largest page of journal entries (``enclave.api.routes.journal``): the newest this many."""


def _allocation(allocation: Allocation | None) -> dict[str, Any] | None:
    if allocation is None:
        return None
    return {"proposal_id": allocation.proposal_id, "quota_gib": allocation.quota_gib,
            "expires": allocation.expires.isoformat() if allocation.expires else None}


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


_NAMED: dict[str, tuple[str, str, str]] = {
    "account": ("no account named {!r}", "--as / username", "check the spelling; `enclave accounts list` shows every "
                "account"),
    "token": ("no token with key {!r}", "token", "`enclave tokens list USER` shows keys"),
}
"""What local mode says of a name that names nothing (``accounts.authorize.find_account``, ``accounts.tokens``)."""


def _segment(value: str, kind: str = "account") -> str:
    """One URL path segment taken from an argument — a username, namespace, token key, role, pod — percent-encoded
    whole (``quote(value, safe="")``: ``?``, ``#``, ``%`` and ``/`` included), so it names exactly that one thing,
    as local mode takes the argument: ``victim?x`` no longer asks for victim's account. A segment of dots alone
    (``.``, ``..``) is a dot-segment that URL resolution removes (RFC 3986 §5.2.4), so its dots are encoded too.

    The server decodes ``%2F`` before routing (uvicorn's ``scope["path"]``), so a value with a ``/`` — or an empty
    one — would reach another route, or none, and cannot be sent as one segment. No account, namespace, token key,
    role or pod has such a name (each is a single identifier), so it names nothing: NotFound here, as local mode
    answers (``kind`` picks its words)."""
    if not value or "/" in value:
        what, where, fix = _NAMED.get(kind, (f"no {kind} named {{!r}}", kind, "check the spelling"))
        raise NotFound(what.format(value), where=where, fix=fix)
    quoted = quote(value, safe="")
    return quoted.replace(".", "%2E") if quoted.strip(".") == "" else quoted


_ACCOUNTS = TypeAdapter(list[AccountView])
_TOKENS = TypeAdapter(list[TokenView])
_IMAGES = TypeAdapter(list[ImageView])


@dataclass
class RemoteAccounts:
    api: Api

    def _one(self, actor: str, method: str, path: str, **kw: Any) -> AccountView:
        self.api.acting(actor)
        return AccountView.model_validate(self.api.call(method, path, **kw))

    def show(self, actor: str, username: str) -> AccountView:
        return self._one(actor, "GET", f"/accounts/{_segment(username)}")

    def list_accounts(self, actor: str, *, status: AccountStatus | None = None,
                      kind: AccountKind | None = None) -> list[AccountView]:
        self.api.acting(actor)
        return _ACCOUNTS.validate_python(self.api.call("GET", "/accounts", params={"status": status, "kind": kind}))

    def onboard(self, actor: str, username: str, *, name: str, email: str, kind: AccountKind, reason: str,
                roles: Iterable[Role] | None = None, allocation: Allocation | None = None,
                namespaces: Iterable[str] = (), uid: int | None = None) -> AccountView:
        body = {"username": username, "name": name, "email": email, "kind": kind.value, "reason": reason,
                "roles": [r.value for r in roles] if roles is not None else None,
                "allocation": _allocation(allocation), "namespaces": list(namespaces), "uid": uid}
        return self._one(actor, "POST", "/accounts", json=body)

    def depart(self, actor: str, username: str, *, reason: str) -> AccountView:
        return self._one(actor, "POST", f"/accounts/{_segment(username)}/depart", json={"reason": reason})

    def expire(self, actor: str, username: str, *, reason: str) -> AccountView:
        return self._one(actor, "POST", f"/accounts/{_segment(username)}/expire", json={"reason": reason})

    def renew(self, actor: str, username: str, allocation: Allocation, *, reason: str) -> AccountView:
        return self._one(actor, "POST", f"/accounts/{_segment(username)}/renew",
                         json={"allocation": _allocation(allocation), "reason": reason})

    def promote(self, actor: str, username: str, *, reason: str, roles: Iterable[Role] | None = None) -> AccountView:
        return self._one(actor, "POST", f"/accounts/{_segment(username)}/promote",
                         json={"reason": reason, "roles": [r.value for r in roles] if roles is not None else None})

    def demote(self, actor: str, username: str, *, new_username: str, reason: str,
               allocation: Allocation | None = None) -> AccountView:
        return self._one(actor, "POST", f"/accounts/{_segment(username)}/demote",
                         json={"new_username": new_username, "reason": reason, "allocation": _allocation(allocation)})

    def grow_quota(self, actor: str, username: str, quota_gib: float, *, reason: str,
                   proposal_id: str | None = None) -> AccountView:
        return self._one(actor, "POST", f"/accounts/{_segment(username)}/quota",
                         json={"quota_gib": quota_gib, "reason": reason, "proposal_id": proposal_id})

    def correct_quota(self, actor: str, username: str, quota_gib: float, *, reason: str) -> AccountView:
        return self._one(actor, "PUT", f"/accounts/{_segment(username)}/quota",
                         json={"quota_gib": quota_gib, "reason": reason})

    def grant_role(self, actor: str, username: str, role: Role, *, reason: str) -> AccountView:
        return self._one(actor, "POST", f"/accounts/{_segment(username)}/roles",
                         json={"role": role.value, "reason": reason})

    def revoke_role(self, actor: str, username: str, role: Role, *, reason: str) -> AccountView:
        return self._one(actor, "DELETE", f"/accounts/{_segment(username)}/roles/{_segment(role.value, 'role')}",
                         params={"reason": reason})

    def join_namespace(self, actor: str, username: str, namespace: str, *, reason: str) -> AccountView:
        return self._one(actor, "POST", f"/accounts/{_segment(username)}/namespaces",
                         json={"namespace": namespace, "reason": reason})

    def leave_namespace(self, actor: str, username: str, namespace: str, *, reason: str) -> AccountView:
        path = f"/accounts/{_segment(username)}/namespaces/{_segment(namespace, 'namespace')}"
        return self._one(actor, "DELETE", path, params={"reason": reason})


@dataclass
class RemoteTokens:
    api: Api

    def issue(self, actor: str, username: str | None, scopes: list[str], ttl_seconds: int, *,
              reason: str = "token issued") -> IssuedToken:
        self.api.acting(actor)
        body = {"username": username, "scopes": scopes, "ttl_seconds": ttl_seconds, "reason": reason}
        return IssuedToken.model_validate(self.api.call("POST", "/tokens", json=body))

    def listing(self, actor: str, username: str | None = None) -> list[TokenView]:
        self.api.acting(actor)
        return _TOKENS.validate_python(self.api.call("GET", "/tokens", params={"username": username}))

    def revoke(self, actor: str, token_or_key: str, *, reason: str = "token revoked") -> None:
        self.api.acting(actor)
        # A token is enclave_<key>_<secret> (enclave.accounts.tokens): only the key travels, never the secret.
        parts = token_or_key.strip().split("_", 2)
        key = parts[1] if len(parts) == 3 else token_or_key.strip()
        self.api.call("DELETE", f"/tokens/{_segment(key, 'token')}", params={"reason": reason})


@dataclass
class RemoteJournal:
    api: Api

    def entries(self, actor: str, *, by: str | None = None, action: str | None = None, target: str | None = None,
                since: datetime | None = None, until: datetime | None = None, limit: int | None = None,
                newest_first: bool = True) -> list[Entry]:
        """As ``JournalService.entries``; without ``limit`` the newest ``MAX_JOURNAL`` (the API's page)."""
        self.api.acting(actor)
        rows = self.api.call("GET", "/journal", params={
            "actor": by, "action": action, "target": target, "since": _time(since), "until": _time(until),
            "limit": min(limit or MAX_JOURNAL, MAX_JOURNAL)})
        entries = [Entry(**row) for row in rows]  # the API sends them newest first
        return entries if newest_first else entries[::-1]

    def verify(self, actor: str) -> int:
        self.api.acting(actor)
        return int(self.api.call("GET", "/journal/verify")["entries"])


@dataclass
class RemoteImages:
    api: Api

    def _one(self, actor: str, path: str, image: str, reason: str) -> ImageView:
        self.api.acting(actor)
        return ImageView.model_validate(self.api.call("POST", path, json={"image": image, "reason": reason}))

    def submit(self, actor: str, image: str, *, reason: str = "") -> ImageView:
        return self._one(actor, "/images", image, reason)

    def approve(self, actor: str, image: str, *, reason: str) -> ImageView:
        return self._one(actor, "/images/approve", image, reason)

    def reject(self, actor: str, image: str, *, reason: str) -> ImageView:
        return self._one(actor, "/images/reject", image, reason)

    def listing(self, status: ImageStatus | None = None) -> list[ImageView]:
        return _IMAGES.validate_python(self.api.call("GET", "/images", params={"status": status}))


_ACTIONS: dict[str, Callable[..., Action]] = {cls.__name__: cls for cls in (
    Relabel, DeployPods, DeletePods, DrainNode, StartHTCondor, ReturnNode, DrainStartd)}


def _action(data: dict[str, Any]) -> Action:
    """The action the server applied, from its JSON (``enclave.api.plain``: fields plus ``kind``)."""
    cls = _ACTIONS[str(data["kind"])]
    # Only the fields this client's action has: a newer server's extra ones (ReturnNode.drain_stuck, stop 39) are
    # not refused after the server has already applied the action.
    known = {f.name for f in dataclass_fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known})


@dataclass
class RemoteBroker:
    """The manual BCS procedures of ``BrokerService``, as ``POST /broker/actions``: applied by the server's broker
    to the enclave it runs, role-checked and journaled there."""

    api: Api

    @property
    def where(self) -> str:
        return f"{self.api.context.server} (context {self.api.context.name})"

    def _act(self, actor: str, body: dict[str, Any], wait: float | None = None) -> Outcome:
        """``wait``: seconds the server may take beyond a call's usual (a drain it waits for)."""
        self.api.acting(actor)
        done = self.api.call("POST", "/broker/actions", json=body, read_timeout=None if wait is None else
                             TIMEOUT_S + wait)
        return Outcome(_action(done["action"]), bool(done["applied"]), done["journal_seq"])

    def move(self, actor: str, startd: str, to_pool: str, *, reason: str) -> Outcome:
        return self._act(actor, {"kind": "relabel", "startd": startd, "to_pool": to_pool, "reason": reason})

    def add_pods(self, actor: str, node: str, pool: str, *, reason: str, count: int = 1, cores: int | None = None,
                 memory_mib: int | None = None) -> Outcome:
        return self._act(actor, {"kind": "deploy-pods", "node": node, "pool": pool, "count": count,
                                 "cores_per_pod": cores, "memory_mib_per_pod": memory_mib, "reason": reason})

    def delete_pods(self, actor: str, pods: Iterable[str], *, reason: str) -> Outcome:
        return self._act(actor, {"kind": "delete-pods", "pods": list(pods), "reason": reason})

    def drain_node(self, actor: str, node: str, *, reason: str, flags: DrainOverrides | None = None) -> Outcome:
        f = flags or DrainOverrides()
        return self._act(actor, {"kind": "drain-node", "node": node, "reason": reason, "force": f.force,
                                 "ignore_daemonsets": f.ignore_daemonsets,
                                 "delete_emptydir_data": f.delete_emptydir_data,
                                 "grace_period_seconds": f.grace_period_seconds,
                                 "timeout_seconds": f.timeout_seconds}, wait=f.timeout_seconds)

    def start_htcondor(self, actor: str, node: str, pool: str, *, reason: str) -> Outcome:
        return self._act(actor, {"kind": "start-htcondor", "node": node, "pool": pool, "reason": reason})

    def return_node(self, actor: str, node: str, *, reason: str) -> Outcome:
        return self._act(actor, {"kind": "return-node", "node": node, "reason": reason})

    def drain_startd(self, actor: str, startd: str, *, reason: str, vacate_after: float | None = None) -> Outcome:
        return self._act(actor, {"kind": "drain-startd", "startd": startd, "vacate_after_seconds": vacate_after,
                                 "reason": reason})


@dataclass
class RemoteSchedules:
    """``enclave.services.schedule.ScheduleService`` over the API (``/broker/schedule``): the server checks the
    role and journals the push as the token's account."""

    api: Api

    def push(self, actor: str, schedule: ObservingSchedule, *, reason: str) -> ScheduleView:
        self.api.acting(actor)
        body = {"schedule": schedule.model_dump(mode="json"), "reason": reason}
        return ScheduleView.model_validate(self.api.call("POST", "/broker/schedule", json=body))

    def show(self, actor: str) -> ScheduleView | None:
        self.api.acting(actor)
        data = self.api.call("GET", "/broker/schedule")
        return None if data is None else ScheduleView.model_validate(data)


class RemoteLogs:
    """``enclave.services.logs.LogService`` over the API: the server checks logs.read and journals the read."""

    def __init__(self, api: Api) -> None:
        self.api = api

    def read(self, actor: str, request: LogRequest) -> Iterator[str]:
        self.api.acting(actor)
        path = f"/namespaces/{_segment(request.namespace, 'namespace')}/pods/{_segment(request.pod, 'pod')}/log"
        # A read timeout unless following: a log that is only read must not wait for ever on a silent server.
        return self.api.lines(path, params={"container": request.container, "sinceSeconds": request.since_seconds,
                                            "tailLines": request.tail_lines,
                                            "follow": "true" if request.follow else None}, follow=request.follow)


class Remote:
    """What ``enclave.services.factory.Factory`` offers the commands that have API routes, over one context."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.accounts = RemoteAccounts(api)
        self.tokens = RemoteTokens(api)
        self.journal = RemoteJournal(api)
        self.images = RemoteImages(api)
        self.broker = RemoteBroker(api)
        self.logs = RemoteLogs(api)
        self.schedules = RemoteSchedules(api)

    def whoami(self) -> dict[str, Any]:
        """The token's account, roles and permissions (``GET /whoami``), checked by the server now."""
        data = self.api.call("GET", "/whoami")
        if not (isinstance(data, dict) and isinstance(data.get("username"), str)
                and isinstance(data.get("roles"), list)):
            raise ExternalError(f"GET {self.api.context.server.rstrip('/')}{API_PREFIX}/whoami answered JSON "
                                "without an account's username and roles: not the enclave API's answer",
                                where=f"context {self.api.context.name}",
                                fix=f"{NOT_ENCLAVE} (its URL is the base URL, without /api/v1)")
        return data
