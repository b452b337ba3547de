"""API tokens for the REST API and the WebDAV server.

A token reads ``enc_<key>_<secret>``: the key finds the row, the secret is compared against a stored
SHA-256 hash (the plaintext is shown once, at issue). The account's state is checked on every
verification, so a departure takes effect on the next request without touching tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from enclave.access.permissions import Permission
from enclave.accounts import storage
from enclave.accounts.authorize import account_permissions, find_account, require
from enclave.accounts.models import Account, Token
from enclave.accounts.types import AccountStatus
from enclave.clock import or_now
from enclave.errors import InputError, NotFound, PermissionDenied, Problem, Unauthenticated
from enclave.journal import lock, record

PREFIX = "enc"
DATA_READ = "data.read"
DATA_WRITE = "data.write"
SCOPES: frozenset[str] = frozenset({p.value for p in Permission} | {DATA_READ, DATA_WRITE, "*"})
"""A scope narrows what a token may be used for; ``*`` means everything its account may do."""
MAX_TTL_SECONDS = 366 * 24 * 3600
_TOKEN = re.compile(r"^enc_([A-Za-z0-9]{16})_([A-Za-z0-9_-]{43})$")


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _check_request(scopes: list[str] | tuple[str, ...] | frozenset[str], ttl_seconds: int) -> None:
    bad = sorted(set(scopes) - SCOPES)
    problems = []
    if not scopes:
        problems.append(Problem("scopes", "no scope given", f"name at least one of {', '.join(sorted(SCOPES))}"))
    if bad:
        problems.append(Problem("scopes", f"unknown scope(s) {', '.join(bad)}",
                                f"use {', '.join(sorted(SCOPES))}"))
    if not 60 <= ttl_seconds <= MAX_TTL_SECONDS:
        problems.append(Problem("ttl_seconds", f"{ttl_seconds} is out of range",
                                f"use between 60 and {MAX_TTL_SECONDS} seconds"))
    if problems:
        raise InputError(problems)


def _may_hold(account: Account, scopes: Collection[str]) -> bool:
    """Whether ``account`` may be issued a token of ``scopes``: an active one any; one whose allocation expired
    only ``data.read``, since it keeps reading its data (seed §4: a science user whose allocation ends "will still be
    able to access their data"; the workspace is read-only then) and its tokens lapse within 366 days; a departed
    one none."""
    return account.status == AccountStatus.ACTIVE or (
        account.status == AccountStatus.EXPIRED and set(scopes) <= {DATA_READ})


def _holder(session: Session, actor: str, username: str, scopes: Collection[str]) -> Account:
    """The account the token is for: the actor's own, or another one with accounts.manage (``_may_hold``)."""
    if actor == username:
        acting = find_account(session, actor)
        if not _may_hold(acting, scopes):
            raise PermissionDenied(f"account {actor!r} is {acting.status} and cannot issue tokens"
                                   + (f" but of scope {DATA_READ}" if acting.status == AccountStatus.EXPIRED else ""),
                                   where=f"--as {actor}", fix=f"ask for scope {DATA_READ} only, or ask a sysadmin"
                                   if acting.status == AccountStatus.EXPIRED else "ask a sysadmin")
        return acting
    require(session, actor, Permission.ACCOUNTS_MANAGE)
    holder = find_account(session, username)
    if not _may_hold(holder, scopes):
        raise PermissionDenied(f"account {username!r} is {holder.status}; tokens are issued to active accounts, "
                               f"and of scope {DATA_READ} to expired ones", where="username")
    return holder


def _parent(session: Session, actor: str, key: str, scopes: Collection[str], when: datetime) -> Token:
    """The token the issuing request came with: live, the actor's, and holding every scope asked for — a token
    can only hand on what it holds itself, so a narrowly scoped token cannot mint a ``*`` one (Gafaelfawr's
    ``TokenService._validate_scopes``: "Requested scopes are broader than your current scopes")."""
    row = storage.token_by_key(session, key)
    if row is None or row.revoked_at is not None or row.expires_at <= when:
        raise Unauthenticated("the token this request came with is no longer valid", where="Authorization",
                              fix="issue a new token")
    if storage.account_by_id(session, row.account_id).username != actor:
        raise PermissionDenied(f"token {key} is not {actor!r}'s", where="Authorization")
    held = set(row.scopes.split())
    if "*" not in held and not set(scopes) <= held:
        raise PermissionDenied(f"this token's scopes ({', '.join(sorted(held))}) do not cover "
                               f"{', '.join(sorted(set(scopes) - held))}", where="scopes",
                               fix="request only scopes your token carries, or use a token with scope *")
    return row


def issue(session: Session, actor: str, username: str, scopes: list[str] | tuple[str, ...] | frozenset[str],
          ttl_seconds: int, *, reason: str = "token issued", parent: str | None = None,
          now: datetime | None = None) -> str:
    """Issue a token for ``username``; return the plaintext (shown once; only its hash is stored).

    Anyone active may issue a token for themselves; issuing for someone else needs accounts.manage. ``parent``: the
    key of the token the issuing request came with (None in local mode, and for the tokens ``serve`` mints). Such a
    token derives from its parent as Gafaelfawr's derived tokens do: no scope the parent lacks, and no expiry after
    the parent's (``TokenCacheService._create_internal_token`` caps a child's ``expires`` at its parent's; its
    ``TokenService._audit_token`` reports "Token expires after its parent"). It also keeps the parent's
    ``delegated_by``: a token issued on someone's behalf mints them no token of their own (audit, finding 1).
    """
    _check_request(scopes, ttl_seconds)
    # The journal's head lock before the checks, as a revoke takes it (``revoke``): on PostgreSQL (READ COMMITTED)
    # a revoke of the parent could otherwise commit between ``_parent``'s check and the insert, missing the child,
    # which would then outlive its revoked parent. SQLite's BEGIN IMMEDIATE serializes the two already.
    lock(session)
    holder = _holder(session, actor, username, scopes)
    when = or_now(now)
    expires = when + timedelta(seconds=ttl_seconds)
    origin = _parent(session, actor, parent, scopes, when) if parent is not None else None
    if origin is not None:
        expires = min(expires, origin.expires_at)
    delegated_by = (origin.delegated_by if origin is not None else None) or \
        (actor if actor != holder.username else None)
    key = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    token = Token(key=key, secret_hash=_hash(secret), account_id=holder.id, scopes=" ".join(sorted(set(scopes))),
                  issued_by=actor, created_at=when, expires_at=expires, parent_id=origin.id if origin else None,
                  delegated_by=delegated_by)
    storage.add(session, token)
    session.flush()
    record(session, actor=actor, action="tokens.issue", target=f"account/{holder.username}", reason=reason,
           before=None, after={"token": key, "scopes": sorted(set(scopes)), "expires": token.expires_at,
                               "parent": parent, "delegated_by": delegated_by})
    return f"{PREFIX}_{key}_{secret}"


def _lookup(session: Session, token: str) -> tuple[Token, Account]:
    match = _TOKEN.match(token.strip()) if isinstance(token, str) else None
    if match is None:
        raise Unauthenticated("malformed token", where="Authorization",
                              fix="send the token exactly as `enclave tokens issue` printed it")
    key, secret = match.groups()
    row = storage.token_by_key(session, key)
    # Compare even when the key is unknown, so timing does not reveal which keys exist.
    stored = row.secret_hash if row else _hash("")
    if not hmac.compare_digest(stored, _hash(secret)) or row is None:
        raise Unauthenticated("unknown token", where="Authorization", fix="issue a new token")
    return row, storage.account_by_id(session, row.account_id)


def verify(session: Session, token: str, *, scope: str | None = None, data_read: bool = False,
           now: datetime | None = None) -> Account:
    """The account a token belongs to, or Unauthenticated.

    Refuses malformed, unknown, expired and revoked tokens, and accounts that are no longer active.
    With ``data_read=True`` an EXPIRED account is accepted too: a science user whose allocation ended
    keeps read access to their own data (seed §4); pair it with ``enclave.accounts.data`` checks.
    ``scope`` additionally requires the token to carry that scope (or ``*``).
    """
    row, account = _lookup(session, token)
    when = or_now(now)
    # The account's state comes first: it is the reason a person most needs to hear.
    allowed = {AccountStatus.ACTIVE.value} | ({AccountStatus.EXPIRED.value} if data_read else set())
    if account.status not in allowed:
        raise Unauthenticated(f"account {account.username!r} is {account.status}", where="Authorization",
                              fix="only active accounts may use enclave services")
    if row.revoked_at is not None:
        raise Unauthenticated("token was revoked", where="Authorization", fix="issue a new token")
    if row.expires_at <= when:
        raise Unauthenticated(f"token expired at {row.expires_at.isoformat()}", where="Authorization",
                              fix="issue a new token")
    if scope is not None:
        held = set(row.scopes.split())
        if scope not in held and "*" not in held:
            raise Unauthenticated(f"token lacks scope {scope!r} (it has {', '.join(sorted(held))})",
                                  where="Authorization", fix=f"issue a token with scope {scope}")
    return account


def token_permissions(session: Session, token: str, *, now: datetime | None = None) -> frozenset[Permission]:
    """What a token may do: its account's permissions narrowed to its scopes."""
    row, account = _lookup(session, token)
    verify(session, token, now=now)
    held = set(row.scopes.split())
    perms = account_permissions(account)
    return perms if "*" in held else frozenset(p for p in perms if p.value in held)


def revoke(session: Session, actor: str, token_or_key: str, *, reason: str = "token revoked",
           now: datetime | None = None) -> None:
    """Revoke one token, by plaintext or by key. Owners may revoke their own; accounts.manage any."""
    match = _TOKEN.match(token_or_key.strip())
    key = match.group(1) if match else token_or_key.strip()
    lock(session)  # before reading the token and its children: a child issued meanwhile is committed, and found
    row = storage.token_by_key(session, key)
    if row is None:
        raise NotFound(f"no token with key {key!r}", where="token", fix="`enclave tokens list USER` shows keys")
    owner = storage.account_by_id(session, row.account_id)
    if owner.username != actor:
        require(session, actor, Permission.ACCOUNTS_MANAGE)
    else:
        find_account(session, actor)
    if row.revoked_at is not None:
        return
    children = _revoke_with_children(session, [row], or_now(now))[1:]
    record(session, actor=actor, action="tokens.revoke", target=f"account/{owner.username}", reason=reason,
           before={"token": key, "revoked": False},
           after={"token": key, "revoked": True, **({"children": children} if children else {})})


def _revoke_with_children(session: Session, rows: list[Token], when: datetime) -> list[str]:
    """Revoke ``rows`` and every live token issued with one of them, generation by generation; return their keys.
    A token lives no longer than the one it was issued with, as Gafaelfawr's ``TokenService.delete_token`` deletes
    a token's children with it: otherwise a leaked token, revoked, lives on in the tokens it minted."""
    keys: list[str] = []
    generation = rows
    while generation:
        for row in generation:
            row.revoked_at = when
            keys.append(row.key)
        generation = storage.live_children(session, [row.id for row in generation])
    return keys


def revoke_all(session: Session, account: Account, *, now: datetime | None = None) -> list[str]:
    """Revoke every live token of an account, and the tokens issued with them (part of a lifecycle change,
    journaled by the caller)."""
    return _revoke_with_children(session, storage.live_tokens(session, account.id), or_now(now))


def list_tokens(session: Session, username: str) -> list[Token]:
    account = find_account(session, username)
    return storage.tokens_of(session, account.id)
