"""IDTOKENs in the shape ``condor_token_create`` gives them (htcondor/htcondor src/condor_io/condor_auth_passwd.cpp,
``generate_token``: header ``alg`` HS256 and ``kid``; claims ``iss`` from TRUST_DOMAIN, ``iat``, ``jti``, ``sub``,
``exp`` with a lifetime, ``scope`` "condor:/A condor:/B" with ``-authz``), signed with nothing: enclave reads their
claims and never checks a signature."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from enclave.spec import EnclaveSpec

NOW = 1_800_000_000.0


def _b64(value: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).rstrip(b"=").decode()


def mint(identity: str, *, trust_domain: str, key: str | None = None, authz: tuple[str, ...] = (),
         lifetime: float | None = None, raw_scope: str | None = None, algorithm: str = "HS256",
         capability: bool = False, exp: int | None = None) -> str:
    """What `_CONDOR_TRUST_DOMAIN=<trust_domain> condor_token_create -identity <identity> [-key K] [-authz A …]
    [-lifetime S]` prints (``raw_scope``, ``algorithm``, ``capability``, ``exp``: claims it would not write)."""
    claims: dict[str, object] = {"iat": int(NOW) - 3600, "iss": trust_domain, "jti": "c760c2af193a1fd4e40bc9c53c96ee7c",
                                 "sub": identity}
    if lifetime is not None:
        claims["exp"] = int(NOW - 3600 + lifetime)
    if exp is not None:
        claims["exp"] = exp
    if authz or raw_scope is not None:
        claims["scope"] = raw_scope if raw_scope is not None else " ".join(f"condor:/{a}" for a in authz)
    if capability:
        claims["cap"] = True
    return f"{_b64({'alg': algorithm, 'kid': key or 'POOL'})}.{_b64(claims)}.c2lnbmF0dXJl"


def as_documented(spec: EnclaveSpec, directory: Path) -> Path:
    """The bundle's credentials made by docs/deploy.md's step 6 commands."""
    cm = spec.batch.central_manager
    files = {
        "htcondor-token": mint(f"enclave-broker@{cm}", trust_domain=cm, key="ENCLAVE",
                               authz=("READ", "ADMINISTRATOR", "CONFIG")),
        "htcondor-schedd-token": mint(f"enclave-broker@{cm}", trust_domain=cm, authz=("READ", "WRITE")),
        "htcondor-worker-token": mint(f"condor@{cm}", trust_domain=cm,
                                      authz=("READ", "ADVERTISE_MASTER", "ADVERTISE_STARTD")),
    }
    directory.mkdir(exist_ok=True)
    for name, token in files.items():
        (directory / name).write_text(token + "\n")
    (directory / "htcondor-broker-key").write_bytes(bytes(range(1, 65)))
    return directory
