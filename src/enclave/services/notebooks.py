"""Notebooks (seed §5, §6.2, §13): what an account may spawn, checking a choice, and the lookups the JupyterHub
hook and the WebDAV server are given (they are front ends and never open the database themselves)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from enclave.access.permissions import Permission
from enclave.accounts import lifecycle, tokens
from enclave.accounts.authorize import account_permissions
from enclave.accounts.models import Account
from enclave.accounts.tokens import DATA_READ, DATA_WRITE
from enclave.db import Database
from enclave.errors import Unauthenticated
from enclave.notebooks.account import AccountLike, require_notebook_access
from enclave.notebooks.options import Choice, ImageVetter, Options, Spawn, options_for, spec_vetter, validate
from enclave.services.images import ImageService
from enclave.spec.models import EnclaveSpec


@dataclass(frozen=True)
class AccountSnapshot:
    """An account detached from its session: what notebooks and WebDAV decide with."""

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
    """What the account's roles allow right now (enclave.access.permissions); notebooks need notebooks.spawn."""


def snapshot(account: Account) -> AccountSnapshot:
    return AccountSnapshot(username=account.username, uid=account.uid, gid=account.gid, kind=account.kind,
                           status=account.status, home_path=account.home_path,
                           workspace_path=account.workspace_path, quota_gib=account.quota_gib,
                           allocation_expires=account.allocation_expires,
                           permissions=frozenset(p.value for p in account_permissions(account)))


@dataclass
class NotebookService:
    db: Database
    spec: EnclaveSpec
    images: ImageService

    def vetter(self) -> ImageVetter:
        """Vetting as enclave.ops records it (seed §10): an image is offered only if the spec lists it and, when
        the registry requires vetting, security approved its digest (or a tag with a digest)."""
        listed = spec_vetter(self.spec)
        if not self.spec.registry.vetting_required:
            return listed
        approved = self.images.vetter()
        return lambda image: listed(image) and approved(image)

    def pinner(self) -> Callable[[str], str] | None:
        """image → the approved ``repository@digest`` to launch, so a re-pushed tag cannot swap the image."""
        return self.images.pin if self.spec.registry.vetting_required else None

    def lookup(self, username: str) -> AccountLike:
        """username → account, for the JupyterHub hook (NotFound for an unknown user)."""
        with self.db.session() as session:
            return snapshot(lifecycle.get(session, username))

    def options(self, actor: str) -> Options:
        """The images and sizes ``actor`` may pick (notebooks.spawn; vetted images only). ``options_for`` and
        ``validate`` check the account (``require_notebook_access``: active, and a role with notebooks.spawn), the
        one copy of the rule, which also says why an expired or departed account gets none. A ``require`` here as
        well, which said only "is expired, so it may not notebooks.spawn", answered first; without it no test
        failed (stop 57's mutation round)."""
        return options_for(self.spec, self.lookup(actor), vetted=self.vetter())

    def options_of(self, username: str) -> Options:
        """The operator's view of someone's options (refused for expired or departed accounts by the rule)."""
        return options_for(self.spec, self.lookup(username), vetted=self.vetter())

    def validate(self, actor: str, choice: Choice) -> Spawn:
        return validate(self.spec, self.lookup(actor), choice, vetted=self.vetter())

    def authenticator(self, clock: Callable[[], datetime | None] = lambda: None
                      ) -> Callable[[str, str, bool], AccountLike]:
        """WebDAV Basic auth: the password is an enclave token with scope data.read (data.write to change
        files). Expired accounts still authenticate for reading (seed §4); departed ones never do."""

        def authenticate(username: str, token: str, write: bool) -> AccountLike:
            with self.db.session() as session:
                account = tokens.verify(session, token, scope=DATA_WRITE if write else DATA_READ, data_read=True,
                                        now=clock())
                return snapshot(account)

        return authenticate

    def admit(self, username: str, *, now: datetime | None = None) -> AccountSnapshot:
        """May ``username`` use the hub now? The account, or PermissionDenied saying why not (departed, allocation
        expired, no role with notebooks.spawn) or NotFound. The hub's Authenticator asks at login and again in
        ``refresh_user``, so an account that changes loses its hub session on its next request."""
        with self.db.session() as session:
            account = snapshot(lifecycle.get(session, username))
        require_notebook_access(account, now)
        return account

    def hub_login(self, username: str, token: str, *, now: datetime | None = None) -> AccountSnapshot:
        """A hub login with an enclave token (scope notebooks.spawn) as the password: the token must be ``username``'s
        own, and the account admitted (``admit``). For hubs without a site login (tests, small sites)."""
        with self.db.session() as session:
            owner = tokens.verify(session, token, scope=Permission.NOTEBOOKS_SPAWN.value, now=now).username
        if owner != username:
            raise Unauthenticated(f"the token belongs to {owner!r}, not {username!r}", where="password",
                                  fix="log in with your own user name and one of your tokens")
        return self.admit(username, now=now)
