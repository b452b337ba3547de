"""Adapter to the accounts database: account lookups for the hub and token authentication for WebDAV.

Returns frozen snapshots rather than ORM rows, so nothing downstream can lazily touch a closed
session (the WebDAV server answers many requests per token check, from several threads).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from enclave.access.permissions import account_permissions
from enclave.access.tokens import DATA_READ, DATA_WRITE, verify
from enclave.accounts.models import Account
from enclave.accounts.service import get
from enclave.db import Database
from enclave.notebooks.account import AccountLike
from enclave.notebooks.options import ImageVetter, spec_vetter
from enclave.ops.images import pin
from enclave.ops.images import vetter as ops_vetter
from enclave.spec.models import EnclaveSpec


@dataclass(frozen=True)
class AccountSnapshot:
    username: str
    uid: int
    gid: int
    kind: str
    status: str
    home_path: str
    workspace_path: str
    quota_gib: float
    allocation_expires: datetime | None
    permissions: frozenset[str]
    """What the account's roles allow right now (enclave.access.permissions); notebooks need
    notebooks.spawn."""


def snapshot(account: Account) -> AccountSnapshot:
    return AccountSnapshot(username=account.username, uid=account.uid, gid=account.gid, kind=account.kind,
                           status=account.status, home_path=account.home_path,
                           workspace_path=account.workspace_path, quota_gib=account.quota_gib,
                           allocation_expires=account.allocation_expires,
                           permissions=frozenset(p.value for p in account_permissions(account)))


def account_lookup(db: Database) -> Callable[[str], AccountLike]:
    """username → account, for the JupyterHub hook (NotFound for an unknown user)."""

    def lookup(username: str) -> AccountLike:
        with db.session() as session:
            return snapshot(get(session, username))

    return lookup


def token_authenticator(db: Database, clock: Callable[[], datetime | None] = lambda: None
                        ) -> Callable[[str, str, bool], AccountLike]:
    """WebDAV Basic auth: the password is an enclave token with scope data.read (data.write to change
    files). Expired accounts still authenticate for reading (seed §4); departed ones never do."""

    def authenticate(username: str, token: str, write: bool) -> AccountLike:
        with db.session() as session:
            account = verify(session, token, scope=DATA_WRITE if write else DATA_READ, data_read=True, now=clock())
            return snapshot(account)

    return authenticate


def image_vetter(db: Database, spec: EnclaveSpec) -> ImageVetter:
    """Vetting as enclave.ops records it (seed §10): an image is offered only if the spec lists it and,
    when the registry requires vetting, security approved its digest (or a tag with a digest)."""
    listed = spec_vetter(spec)
    if not spec.registry.vetting_required:
        return listed
    def vetted(image: str) -> bool:
        # Read approvals at each check: an approval (or a withdrawal) counts from the next spawn on.
        if not listed(image):
            return False
        with db.session() as session:
            return ops_vetter(session)(image)

    return vetted


def image_pinner(db: Database) -> Callable[[str], str]:
    """image → the approved ``repository@sha256:…`` to launch, so a re-pushed tag cannot swap the image."""

    def pinned(image: str) -> str:
        with db.session() as session:
            return pin(session, image)

    return pinned
