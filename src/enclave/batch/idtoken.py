"""HTCondor IDTOKENs minted by enclave itself, from a named signing key's file (docs/batch.md, "Notebook pods'
tokens"): the hub gives each notebook pod a short-lived token for its own account, so the pod can submit to a
commons schedd, which admits nothing unauthenticated. Pure: the key's bytes come in, the token string goes out.

Every fact below was read in htcondor/htcondor 7491a14 and is what ``condor_token_create -key <name>`` does
(src/condor_io/condor_auth_passwd.cpp, ``Condor_Auth_Passwd::generate_token``); tests/batch/test_idtoken.py has
HTCondor's own ``generate_token`` (the installed bindings' library) mint the same token and compares them byte for
byte.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import secrets
from collections.abc import Mapping, Sequence
from typing import Any

from enclave.errors import InputError, Problem
from enclave.spec.models import EnclaveSpec

POOL_KEY = "POOL"
"""The pool's key, which ``mint`` refuses: HTCondor reads it from SEC_TOKEN_POOL_SIGNING_KEY_FILE and doubles it
(store_cred.cpp ``getTokenSigningKeyPath``, ``getTokenSigningKey``: ``double_the_key = is_pool``), and every
daemon of the pool accepts it, so a process that mints with it can be any daemon. Notebook tokens are signed with
a key only the commons schedds hold."""

SCRAMBLE = bytes((0xDE, 0xAD, 0xBE, 0xEF))
"""A key file is the secret XORed with DE AD BE EF repeated (secure_file.cpp ``simple_scramble``), which
``getTokenSigningKey`` undoes after ``read_secure_file``; a named key (not ``POOL_KEY``) is used as read, with
no doubling and no truncation at a NUL."""

HKDF_SALT, HKDF_INFO, JWT_KEY_BYTES = b"htcondor", b"master jwt", 32
"""The HMAC key is HKDF-SHA256 of the secret, salt "htcondor", info "master jwt", ``key_strength_bytes_v2()`` =
AUTH_PW_KEY_STRENGTH = 256/8 bytes (``generate_token``, ``Condor_Auth_Passwd::hkdf``; condor_auth_passwd.h)."""

JTI_BYTES = 16
"""``jti`` is ``Condor_Crypt_Base::randomHexKey(16)``: 16 random bytes as lower-case hex (condor_crypt.cpp)."""

AUTHORIZATIONS = frozenset({"READ", "WRITE", "NEGOTIATOR", "ADMINISTRATOR", "CONFIG", "DAEMON", "CLIENT",
                            "ADVERTISE_STARTD", "ADVERTISE_SCHEDD", "ADVERTISE_MASTER"})
"""The authorization levels a ``condor:/`` scope may name (condor_utils/condor_perms.cpp, the permission table)."""

_KEY_NAME = re.compile(r"[A-Za-z0-9_-]+")
"""A key is the file of its name in SEC_PASSWORD_DIRECTORY (store_cred.cpp ``getTokenSigningKeyPath``: ``dircat``),
and a server advertises its keys as a ", "-separated list of those files, skipping names that
LOCAL_CONFIG_DIR_EXCLUDE_REGEXP excludes (dot files, backups: ``getCachedIssuerKeyNames``): letters, digits, '_'
and '-' are a file name, a list item and never excluded."""
_NAME_PART = re.compile(r"[A-Za-z0-9_.-]+")
"""A user or a domain of ``sub``. The server splits the subject at its last '@' into user and domain
(condor_auth_passwd.cpp, ``authenticate_continue``: ``strrchr(login, '@')``), and ALLOW lists and
QUEUE_SUPER_USERS are comma- and space-separated, so neither part may hold '@', ',', '/' or white space."""


RESERVED_USERS = ("root", "condor")
"""HTCondor's default QUEUE_SUPER_USERS (param_info.in: "root, condor"), which the rendered schedds keep: a bare
entry means that user in the schedd's UID_DOMAIN (qmgmt.cpp ``ContainsUserName``: ASSUME_UID_DOMAIN), the domain
notebook tokens name, so an account of either name would get a token that edits everyone's jobs. None is minted
for them (``notebook_subject``)."""


def commons_uid_domain(spec: EnclaveSpec) -> str:
    """UID_DOMAIN of every commons schedd, and the domain of every notebook token's ``sub``: the DNS suffix their
    Service names share (``render.commons_schedd``: ``<service>.<notebook namespace>.svc``). One domain for all of
    them, because a pod's client presents the first token whose key and issuer the server takes (condor_auth_passwd.cpp
    ``findToken``), the same for every commons schedd. It must be the schedd's UID_DOMAIN: the schedd takes the
    identity's domain for the job's, and a job whose domain is not its UID_DOMAIN is no local user (qmgmt.cpp,
    ``SetAttribute`` of Owner: "Owner is not in UID_DOMAIN; setting IsLocalUser=false"). Not the central manager's
    name, the domain of the broker's identity (``render.BROKER_IDENTITY``), so no account's token is the broker."""
    return f"{spec.notebooks.namespace}.svc"


def notebook_subject(spec: EnclaveSpec, username: str) -> str:
    """The ``sub`` of ``username``'s notebook token: ``<username>@<commons UID_DOMAIN>``, so the schedd's job Owner is
    the account (qmgmt.cpp: Owner is the authenticated user, OsUser derived from it). Raises InputError for
    ``RESERVED_USERS``."""
    if username in RESERVED_USERS:
        raise InputError([Problem("account", f"{username!r} is a queue super user on every schedd "
                                  "(QUEUE_SUPER_USERS)", "no batch token is minted for this account")])
    return f"{username}@{commons_uid_domain(spec)}"


def _b64(data: bytes) -> str:
    """JWT's base64url without padding (RFC 7515 §2), as jwt-cpp writes it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _json(value: dict[str, object]) -> bytes:
    """JSON as jwt-cpp's picojson writes it (``generate_token`` builds with ``jwt::traits::kazuho_picojson``): keys
    in sorted order (a std::map), no spaces, '/' escaped as "\\/". Any JSON would verify, since the server checks the
    signature over the bytes it is given; writing HTCondor's bytes lets the test compare tokens whole."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).replace("/", "\\/").encode()


def jwt_key(key_file: bytes) -> bytes:
    """The HMAC-SHA256 key HTCondor signs with, from a named key's file (``SCRAMBLE``, then ``HKDF_*``)."""
    secret = bytes(b ^ SCRAMBLE[i % len(SCRAMBLE)] for i, b in enumerate(key_file))
    prk = hmac.new(HKDF_SALT, secret, hashlib.sha256).digest()  # RFC 5869 extract
    okm, block, counter = b"", b"", 1
    while len(okm) < JWT_KEY_BYTES:  # RFC 5869 expand
        block = hmac.new(prk, block + HKDF_INFO + bytes([counter]), hashlib.sha256).digest()
        okm, counter = okm + block, counter + 1
    return okm[:JWT_KEY_BYTES]


def _problems(key_file: bytes, key_name: str, issuer: str, subject: str, lifetime_s: float,
              scopes: Sequence[str]) -> list[Problem]:
    problems = []
    if not key_file:
        problems.append(Problem("key file", "is empty", "make the key with `head -c 64 /dev/urandom` (docs/deploy.md)"))
    if key_name == POOL_KEY:
        problems.append(Problem("key name", "POOL is the pool's key, which every daemon accepts",
                                "sign with a key of its own that only the commons schedds hold, e.g. NOTEBOOKS"))
    elif not _KEY_NAME.fullmatch(key_name):
        problems.append(Problem("key name", f"{key_name!r} is not a key file's name",
                                "use letters, digits, '_' and '-' (the file's name in SEC_PASSWORD_DIRECTORY)"))
    # generate_token refuses an issuer with ", \t"; analyze_token refuses an empty one.
    if not issuer or re.search(r"[,\s]", issuer):
        problems.append(Problem("issuer", f"{issuer!r} is no trust domain",
                                "give the pool's TRUST_DOMAIN (the rendered files: the central manager's name)"))
    user, at, domain = subject.rpartition("@")
    if not (at and _NAME_PART.fullmatch(user) and _NAME_PART.fullmatch(domain)):
        problems.append(Problem("subject", f"{subject!r} is not user@domain",
                                "give <account>@<the commons schedd's UID_DOMAIN>"))
    if not (0 < lifetime_s < math.inf):
        problems.append(Problem("lifetime", f"{lifetime_s!r} seconds",
                                "give a positive number of seconds: a notebook's token must expire"))
    unknown = [s for s in scopes if s not in AUTHORIZATIONS]
    if not scopes or unknown:
        problems.append(Problem("scopes", f"{', '.join(unknown) or 'none'} (a token without scopes is unlimited)",
                                f"give one or more of {', '.join(sorted(AUTHORIZATIONS))}"))
    return problems


def mint(key_file: bytes, *, key_name: str, issuer: str, subject: str, lifetime_s: float, now: float,
         scopes: Sequence[str] = ("READ", "WRITE"), jti: str | None = None) -> str:
    """An IDTOKEN for ``subject`` signed with the named key whose file holds ``key_file``, as ``condor_token_create
    -key <key_name> -identity <subject> -lifetime <lifetime_s> -authz …`` run at ``now`` in trust domain ``issuer``
    makes it (``generate_token``):

    - header ``{"alg": "HS256", "kid": key_name}`` (``jwt::algorithm::hs256``, ``set_key_id``);
    - ``iss`` the issuer (a client presents the token only to a server whose TRUST_DOMAIN it is: ``checkToken``);
    - ``iat`` and ``exp`` = iat + lifetime, whole seconds (``set_issued_at``, ``set_expires_at``);
    - ``jti`` fresh (``JTI_BYTES``) unless given (the test's comparison with HTCondor's own token);
    - ``sub`` the identity, and ``scope`` "condor:/A condor:/B" limiting it to those authorizations.

    Raises InputError for an empty key, the pool's key or a malformed name, issuer, subject, lifetime or scope."""
    problems = _problems(key_file, key_name, issuer, subject, lifetime_s, scopes)
    if problems:
        raise InputError(problems)
    iat = int(now)
    claims: dict[str, object] = {"iss": issuer, "iat": iat, "exp": int(now + lifetime_s),
                                 "jti": jti if jti is not None else secrets.token_hex(JTI_BYTES),
                                 "sub": subject, "scope": " ".join(f"condor:/{s}" for s in scopes)}
    signing_input = f"{_b64(_json({'alg': 'HS256', 'kid': key_name}))}.{_b64(_json(claims))}"
    signature = hmac.new(jwt_key(key_file), signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def copy_container(*, name: str, image: str, security_context: Mapping[str, Any], resources: Mapping[str, Any],
                   secret_volume: str, secret_mount: str, files: Sequence[str], tokens_volume: str,
                   tokens_dir: str) -> dict[str, Any]:
    """The init container that puts a pod's IDTOKENs where HTCondor's client reads them: the files ``files`` of the
    Secret volume ``secret_volume`` (mounted at ``secret_mount``) copied into ``tokens_dir`` (volume
    ``tokens_volume``, an in-memory emptyDir), mode 0600, by the user the pod's HTCondor client runs as
    (``security_context``: the same image and user as that container).

    HTCondor reads a token file only if the reading uid owns it and it grants nothing to group or others
    (condor_auth_passwd.cpp ``findToken``: ``read_secure_file`` with SECURE_FILE_VERIFY_ALL; secure_file.cpp checks
    ``st_uid`` against the reader and ``st_mode & 077``), which a Secret volume's files, root's, never are.
    The client finds the copy by ``_CONDOR_SEC_TOKEN_DIRECTORY``."""
    return {"name": name, "image": image,
            "command": ["install", "-m", "0600", "-t", tokens_dir, *(f"{secret_mount}/{f}" for f in files)],
            "securityContext": dict(security_context), "resources": dict(resources),
            "volumeMounts": [{"name": secret_volume, "mountPath": secret_mount, "readOnly": True},
                             {"name": tokens_volume, "mountPath": tokens_dir}]}
