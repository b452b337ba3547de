"""API tokens: issue (the plaintext is returned once), list, revoke, and authenticate a presented token."""

from __future__ import annotations

from dataclasses import dataclass

from enclave.access.permissions import Permission
from enclave.accounts import storage, tokens
from enclave.accounts.authorize import account_permissions, find_account, require
from enclave.accounts.types import Caller, IssuedToken, TokenView
from enclave.db import Database
from enclave.db.core import DELEGATED_BY


def acting_for(caller: Caller) -> None:
    """From here to the end of the current context — one API request — the sessions the services open carry who
    issued ``caller``'s token on its holder's behalf (``enclave.db.core.DELEGATED_BY``): every journal entry names
    them and the image two-person rule counts them as acting. Call it in the request's own context (an async
    dependency): a sync one runs in a copy of the context that is dropped when it returns."""
    DELEGATED_BY.set(caller.delegated_by)


@dataclass
class TokenService:
    db: Database

    def issue(self, actor: str, username: str | None, scopes: list[str], ttl_seconds: int, *,
              reason: str = "token issued", parent: str | None = None) -> IssuedToken:
        """A token for ``username`` (default the actor). ``parent``: the key of the token the request came with, if
        any (``Caller.key``): the new token then holds no scope it lacks, expires no later and is revoked with it
        (``enclave.accounts.tokens.issue``)."""
        holder = username or actor
        with self.db.session() as session:
            plaintext = tokens.issue(session, actor, holder, scopes, ttl_seconds, reason=reason, parent=parent)
            key = plaintext.split("_", 2)[1]
            row = storage.token_by_key(session, key)
            assert row is not None
            return IssuedToken(token=plaintext, username=holder, scopes=row.scopes.split(),
                               expires_at=row.expires_at)

    def listing(self, actor: str, username: str | None = None) -> list[TokenView]:
        """Tokens of an account: your own, or anyone's with accounts.manage. Never the secrets."""
        who = username or actor
        with self.db.session() as session:
            if who != actor:
                require(session, actor, Permission.ACCOUNTS_MANAGE)
            find_account(session, who)
            return [TokenView(key=t.key, scopes=t.scopes.split(), issued_by=t.issued_by,
                              on_behalf=t.delegated_by is not None, delegated_by=t.delegated_by,
                              parent=storage.token_key(session, t.parent_id), created_at=t.created_at,
                              expires_at=t.expires_at, revoked_at=t.revoked_at)
                    for t in tokens.list_tokens(session, who)]

    def revoke(self, actor: str, token_or_key: str, *, reason: str = "token revoked") -> None:
        """Owners revoke their own tokens; accounts.manage any. Refused on the token's very next use."""
        with self.db.session() as session:
            tokens.revoke(session, actor, token_or_key, reason=reason)

    def derives_from(self, key: str, ancestor: str) -> bool:
        """Whether token ``key`` is ``ancestor`` or one of its descendants: issued with it, or with a token issued
        with it, generation by generation (``Token.parent_id``). False for an unknown key."""
        with self.db.session() as session:
            row = storage.token_by_key(session, key)
            seen: set[int] = set()
            while row is not None and row.id not in seen:
                if row.key == ancestor:
                    return True
                seen.add(row.id)
                parent = storage.token_key(session, row.parent_id)
                row = storage.token_by_key(session, parent) if parent is not None else None
            return False

    def owner(self, key: str) -> str | None:
        """The username a token key belongs to (None for an unknown key)."""
        with self.db.session() as session:
            row = storage.token_by_key(session, key)
            return storage.account_by_id(session, row.account_id).username if row else None

    def authenticate(self, token: str) -> Caller:
        """The caller behind a token, verified now: unknown, expired or revoked tokens and accounts that are no
        longer active are refused (Unauthenticated). Nothing is cached between calls."""
        with self.db.session() as session:
            account = tokens.verify(session, token)
            row = storage.token_by_key(session, token.strip().split("_", 2)[1])
            assert row is not None
            scopes = frozenset(row.scopes.split())
            perms = account_permissions(account)
            if "*" not in scopes:
                perms = frozenset(p for p in perms if p.value in scopes)
            return Caller(username=account.username, scopes=scopes, permissions=frozenset(p.value for p in perms),
                          delegated_by=row.delegated_by, key=row.key)

    def exists(self, username: str) -> None:
        """NotFound unless ``username`` names an account."""
        with self.db.session() as session:
            find_account(session, username)
