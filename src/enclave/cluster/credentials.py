"""The HTCondor credentials of a deploy bundle, checked before they are applied (docs/deploy.md, step 6).

An IDTOKEN is a JWT that ``condor_token_create`` signs (htcondor/htcondor src/condor_io/condor_auth_passwd.cpp,
``Condor_Auth_Passwd::generate_token``): header ``kid``, the signing key's name ("POOL" when none is given); claims
``iss``, the TRUST_DOMAIN of the host that made it; ``sub``, the identity; ``jti``; ``iat``; ``exp`` when it has a
lifetime; ``scope``, "condor:/<authz> …" when it is limited to some authorizations.

A client presents a token to a server only when the server knows its key and the issuer is the server's trust
domain (``checkToken``: "Ignoring token as it is from trust domain …"). A token minted before the pool's
rendered ``TRUST_DOMAIN = $(CONDOR_HOST)`` was adopted carries HTCondor's default, ``$(UID_DOMAIN)``, which is
the minting host's name unless set (param_info.in), and is never presented: the broker's drains and the worker
pods' advertising then fail with nothing but a log line on the daemon's side.
This module reads each token file of the bundle and says what HTCondor would make of it.

The signature is not checked: that needs the signing key, which only the broker key's file brings, and HTCondor's
own derivation of the HMAC key from it (``getTokenSigningKey``, ``hkdf``), which nothing here could be checked
against without an HTCondor that mints tokens.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enclave.batch.render import BROKER_IDENTITY
from enclave.cluster import deploy
from enclave.cluster.objects import BROKER_KEY
from enclave.spec.models import EnclaveSpec

POOL_KEY = "POOL"
"""The key ``condor_token_create`` signs with when given no ``-key`` (``generate_token``: ``key_id.empty() ?
"POOL"``), the pool's."""

# Which authorizations each one implies (htcondor/htcondor src/condor_utils/condor_perms.cpp,
# DCpermissionHierarchy::aImpliedNext), followed transitively by a token's bounding set (sock.cpp,
# computeAuthorizationBoundingSet): a token limited to ADMINISTRATOR may also WRITE and READ.
_SIGNED = ("HS256", "HS384", "HS512")
"""The algorithms a server verifies a token with (condor_auth_passwd.cpp: jwt-cpp's hs256, hs384, hs512)."""
_IMPLIES = {"WRITE": "READ", "NEGOTIATOR": "READ", "ADMINISTRATOR": "WRITE", "CONFIG": "READ", "DAEMON": "WRITE",
            "ADVERTISE_STARTD": "READ", "ADVERTISE_SCHEDD": "READ", "ADVERTISE_MASTER": "READ"}


@dataclass(frozen=True)
class Wanted:
    """A token file of the bundle and what it must hold to be presented and accepted."""

    file: str
    user: str
    domain: str | None
    """The identity's domain when a rendered file names it (``QUEUE_SUPER_USERS``); None when any is admitted."""
    key: str
    authz: tuple[str, ...]
    presented_to: str


@dataclass(frozen=True)
class Token:
    """One IDTOKEN's header and claims, as HTCondor reads them."""

    algorithm: str | None
    key: str | None
    issuer: str | None
    subject: str | None
    jti: str | None
    expires: float | None
    scopes: tuple[str, ...] | None
    """The authorizations of its ``condor:/`` scopes; None when it has none (unlimited: HTCondor sets a bounding set
    only from a non-empty list, condor_auth_passwd.cpp, and an empty one is no bound, sock.cpp)."""
    capability: bool = False


@dataclass(frozen=True)
class Finding:
    """What one file of the bundle holds and what is wrong with it (nothing when ``problems`` is empty)."""

    file: str
    presented_to: str
    token: Token | None
    problems: tuple[str, ...]


def wanted(spec: EnclaveSpec) -> list[Wanted]:
    """The three tokens docs/deploy.md has the operator mint, from the files the bundle's Secrets take."""
    broker = deploy.BROKER_FILES
    return [
        # ALLOW_ADMINISTRATOR/ALLOW_CONFIG of the startd hosts: enclave-broker@*/* (render._startd_common). Drains
        # (DRAIN_JOBS) and reconfigs through the master take ADMINISTRATOR; runtime settings are accepted at any
        # level whose SETTABLE_ATTRS_<level> names the knob (daemon_core.cpp, the DC_CONFIG_RUNTIME handler), and
        # the rendered SETTABLE_ATTRS_ADMINISTRATOR does: ADMINISTRATOR alone is enough.
        Wanted(broker["token"], BROKER_IDENTITY, None, BROKER_KEY, ("ADMINISTRATOR",), "startds and masters"),
        # QUEUE_SUPER_USERS names enclave-broker@<central manager> (render, submit hosts).
        Wanted(broker["schedd-token"], BROKER_IDENTITY, spec.batch.central_manager, POOL_KEY, ("WRITE",),
               "schedds"),
        # The collector admits condor@* to advertise startds and masters.
        Wanted(deploy.WORKER_FILES["token"], "condor", None, POOL_KEY, ("ADVERTISE_MASTER", "ADVERTISE_STARTD"),
               "collector (worker pods)"),
    ]


def _segment(text: str) -> dict[str, Any]:
    padded = text + "=" * (-len(text) % 4)
    value = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _string(claims: dict[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value if isinstance(value, str) and value else None


def _seconds(value: object) -> float | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    try:
        return float(value)
    except OverflowError:  # an integer beyond a float: never, as far as anyone will see
        return math.inf


def read_token(line: str) -> Token:
    """The header and claims of one token (a JWT: header.payload.signature, base64url); ValueError if it is none."""
    parts = line.strip().split(".")
    if len(parts) != 3:
        raise ValueError(f"a JWT has three parts separated by '.', this has {len(parts)}")
    try:
        header, claims = _segment(parts[0]), _segment(parts[1])
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise ValueError(f"its header or claims are not base64url JSON ({exc})") from exc
    scope = _string(claims, "scope")
    # Split as HTCondor's StringTokenIterator does (", \t\r\n"), keeping only condor:/ scopes.
    authz = tuple(s[len("condor:/"):] for s in re.split(r"[,\s]+", scope or "") if s.startswith("condor:/"))
    return Token(
        algorithm=_string(header, "alg"), key=_string(header, "kid"), issuer=_string(claims, "iss"),
        subject=_string(claims, "sub"), jti=_string(claims, "jti"), expires=_seconds(claims.get("exp")),
        scopes=authz or None, capability=claims.get("cap") is True)


def tokens_in(text: str) -> list[str]:
    """The tokens of a token file: each line, blank lines and '#' comments skipped (``findToken``)."""
    return [line.strip() for line in text.split("\n") if line.strip() and not line.strip().startswith("#")]


def _bound(scopes: tuple[str, ...]) -> set[str]:
    """What a token limited to ``scopes`` may do, with what each implies."""
    out = set()
    for authz in scopes:
        while authz and authz not in out:
            out.add(authz)
            authz = _IMPLIES.get(authz, "")
    return out


def _same_domain(a: str, b: str) -> bool:
    """HTCondor's COMPARE_DOMAIN_PREFIX (uids.cpp, ``is_same_domain``), as QUEUE_SUPER_USERS matches (qmgmt.cpp): case
    aside, equal, or one the other's prefix up to a '.' ("tonic" matches "tonic.cs.wisc.edu")."""
    a, b = a.lower(), b.lower()
    short, long = sorted((a, b), key=len)
    return long == short or long.startswith(short + ".")


def presentable(token: Token, want: Wanted, trust_domain: str) -> bool:
    """Would the client present it to ``want``'s server: a key the server holds, the server's trust domain
    (``checkToken``)."""
    return token.key == want.key and token.issuer == trust_domain


def problems(token: Token, want: Wanted, trust_domain: str, now: float) -> Iterator[str]:
    """Why HTCondor would not present ``token`` to its server, or not grant it what ``want`` needs."""
    if token.key != want.key:
        yield (f"signed with key {token.key or '(none)'}, not {want.key}: the server knows only its own keys "
               f"and skips the token")
    if token.issuer != trust_domain:
        yield (f"issued in trust domain {token.issuer or '(none)'}, not the pool's {trust_domain} (TRUST_DOMAIN = "
               f"$(CONDOR_HOST)): never presented; mint it again with _CONDOR_TRUST_DOMAIN={trust_domain}")
    if token.algorithm not in _SIGNED:
        yield f"algorithm {token.algorithm or '(none)'}: the server verifies only {', '.join(_SIGNED)}"
    if token.capability:
        yield "a capability token (cap): the server looks it up in its own token database, which holds none of these"
    user, _, domain = (token.subject or "").partition("@")
    if user != want.user or (want.domain is not None and not _same_domain(domain, want.domain)):
        yield f"identity {token.subject or '(none)'}, not {want.user}@{want.domain or '<any>'}"
    if token.jti is None:
        yield "no jti claim: HTCondor refuses a token without one"
    if token.expires is not None and token.expires < now:  # refused once now - exp > 0 (condor_auth_passwd.cpp)
        yield "expired"
    if token.scopes is not None:
        missing = [a for a in want.authz if a not in _bound(token.scopes)]
        if missing:
            yield f"its scope does not grant {', '.join(missing)} (it has {', '.join(token.scopes)})"


def _findings(want: Wanted, path: Path, trust_domain: str, now: float) -> Iterator[Finding]:
    """What ``path`` holds for ``want``. A client presents the file's first token it may present (``findToken``:
    the first line ``checkToken`` passes) and ignores the rest, so only that one is judged; when there is none,
    each line says why."""
    if not path.is_file():
        yield Finding(want.file, want.presented_to, None, ("missing: docs/deploy.md, step 6",))
        return
    try:
        lines = tokens_in(path.read_text(errors="replace"))
    except OSError as exc:
        yield Finding(want.file, want.presented_to, None, (f"unreadable: {exc.strerror or exc}",))
        return
    if not lines:
        yield Finding(want.file, want.presented_to, None, ("holds no token",))
    read: list[tuple[str, Token | None]] = []
    for line in lines:
        try:
            read.append(("", read_token(line)))
        except ValueError as exc:
            read.append((f"not an IDTOKEN: {exc}", None))
    chosen = next((t for _, t in read if t is not None and presentable(t, want, trust_domain)), None)
    if chosen is not None:
        yield Finding(want.file, want.presented_to, chosen, tuple(problems(chosen, want, trust_domain, now)))
        return
    for error, token in read:
        yield Finding(want.file, want.presented_to, token,
                      (error,) if token is None else tuple(problems(token, want, trust_domain, now)))


def check(spec: EnclaveSpec, directory: Path, now: float) -> list[Finding]:
    """Each wanted token file in ``directory``, and the broker's signing key, as HTCondor would take them."""
    trust_domain = spec.batch.central_manager
    findings = [f for want in wanted(spec) for f in _findings(want, directory / want.file, trust_domain, now)]
    key_file = deploy.WORKER_FILES[BROKER_KEY]
    key = directory / key_file
    held = key.is_file() and key.stat().st_size > 0
    findings.append(Finding(key_file, f"worker pods (key {BROKER_KEY})", None,
                            () if held else ("missing or empty: docs/deploy.md, step 6",)))
    return findings


def presented(spec: EnclaveSpec, directory: Path, now: float) -> list[Finding]:
    """The broker's own tokens where an API pod's HTCondor client reads them (``deploy.HTCONDOR_TOKENS``: the init
    container's copies, named by the Secret's keys), as HTCondor would take them."""
    by_file = {w.file: w for w in wanted(spec)}
    trust_domain = spec.batch.central_manager
    return [f for key, file in deploy.BROKER_FILES.items()
            for f in _findings(by_file[file], directory / key, trust_domain, now)]
