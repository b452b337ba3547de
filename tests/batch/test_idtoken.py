"""enclave's IDTOKENs against HTCondor's own: the installed bindings' library mints with the same key file, and the
two tokens must be the same bytes (``htcondor_mint``: ``Condor_Auth_Passwd::generate_token``, htcondor/htcondor
7491a14). Equal bytes mean the same header, claims and signature, so the same key derivation from the file; a
server verifies the signature over the bytes it is given (jwt-cpp), so it takes enclave's as it takes HTCondor's."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import pytest

from enclave.batch import idtoken
from enclave.errors import InputError

from .htcondor_mint import htcondor_mint

TRUST_DOMAIN = "lsst-condor-cm.ncsa.illinois.edu"
SUBJECT = "alice@schedd.jupyter-lsst.svc"


def _part(token: str, index: int) -> dict[str, Any]:
    segment = token.split(".")[index]
    value: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return value


def _theirs(key_file: bytes, tmp_path: Path, *, lifetime: int, authz: tuple[str, ...] = ("READ", "WRITE"),
            key_name: str = "NOTEBOOKS") -> str:
    """HTCondor's token, minted within one second: generate_token reads the clock twice, for ``iat``
    (``set_issued_at(now())``) and for ``exp`` (``now() + lifetime``), which then differ by ``lifetime`` + 1 if a
    second boundary falls between the two reads."""
    for _ in range(3):
        token = htcondor_mint(key_file, key_name=key_name, trust_domain=TRUST_DOMAIN, identity=SUBJECT, authz=authz,
                              lifetime=lifetime, workdir=tmp_path)
        claims = _part(token, 1)
        if claims["exp"] - claims["iat"] == lifetime:
            return token
    raise AssertionError("HTCondor's iat and exp fell in different seconds three times")


KEYS = {
    "64 random bytes, as docs/deploy.md makes it": bytes.fromhex(
        "5f1c9a0e7b2d44c3a8e61f09d2b7c5a3e4f60718293a4b5c6d7e8f9012345678"
        "9abcdef00112233445566778899aabbccddeeff00f1e2d3c4b5a69788796a5b4"),
    # DE AD BE EF unscrambles to NULs: a named key is not truncated at a NUL (only the POOL key may be,
    # SEC_TOKEN_POOL_SIGNING_KEY_IS_PASSWORD, getTokenSigningKey), so these keys differ from each other.
    "a secret of NULs": bytes.fromhex("deadbeef" * 8),
    "a secret of NULs and one byte more": bytes.fromhex("deadbeef" * 8 + "01"),
    "one byte": b"\x00",
    "longer than a SHA-256 block": bytes(range(256)) * 2,
}


@pytest.mark.parametrize("key_file", list(KEYS.values()), ids=list(KEYS))
def test_the_same_token_as_htcondor_mints(key_file: bytes, tmp_path: Path) -> None:
    theirs = _theirs(key_file, tmp_path, lifetime=43200)
    claims = _part(theirs, 1)
    ours = idtoken.mint(key_file, key_name="NOTEBOOKS", issuer=TRUST_DOMAIN, subject=SUBJECT, lifetime_s=43200,
                        now=claims["iat"] + 0.75, scopes=("READ", "WRITE"), jti=claims["jti"])
    assert ours == theirs


def test_one_scope_and_another_key_name(tmp_path: Path) -> None:
    key_file = KEYS["64 random bytes, as docs/deploy.md makes it"]
    theirs = _theirs(key_file, tmp_path, lifetime=60, authz=("READ",), key_name="site-hub_2")
    claims = _part(theirs, 1)
    ours = idtoken.mint(key_file, key_name="site-hub_2", issuer=TRUST_DOMAIN, subject=SUBJECT, lifetime_s=60,
                        now=claims["iat"], scopes=("READ",), jti=claims["jti"])
    assert ours == theirs


def test_the_key_decides_the_signature(tmp_path: Path) -> None:
    """A token HTCondor signed with one key is not the one enclave signs with another (the comparison above is not
    blind to the key)."""
    theirs = _theirs(KEYS["a secret of NULs"], tmp_path, lifetime=60)
    claims = _part(theirs, 1)
    ours = idtoken.mint(KEYS["a secret of NULs and one byte more"], key_name="NOTEBOOKS", issuer=TRUST_DOMAIN,
                        subject=SUBJECT, lifetime_s=60, now=claims["iat"], jti=claims["jti"])
    assert ours.rsplit(".", 1)[0] == theirs.rsplit(".", 1)[0]
    assert ours.rsplit(".", 1)[1] != theirs.rsplit(".", 1)[1]


def test_a_fresh_jti_has_htcondors_form(tmp_path: Path) -> None:
    """``jti`` is randomHexKey(16): 16 bytes printed "%02x" each (condor_crypt.cpp), new for every token; what the
    server requires of it is that it is there (analyze_token: "token has no jti")."""
    theirs = _part(_theirs(KEYS["one byte"], tmp_path, lifetime=60), 1)["jti"]
    ours = [_part(idtoken.mint(b"k", key_name="NOTEBOOKS", issuer=TRUST_DOMAIN, subject=SUBJECT, lifetime_s=60,
                               now=0), 1)["jti"] for _ in range(2)]
    form = re.compile(r"[0-9a-f]{32}")
    assert form.fullmatch(theirs)
    assert all(form.fullmatch(j) for j in ours)
    assert ours[0] != ours[1]


def _refused(field: str, **changes: Any) -> None:
    args: dict[str, Any] = {"key_name": "NOTEBOOKS", "issuer": TRUST_DOMAIN, "subject": SUBJECT, "lifetime_s": 60,
                            "now": 0, "scopes": ("READ", "WRITE")}
    key_file = changes.pop("key_file", b"k")
    args.update(changes)
    with pytest.raises(InputError) as caught:
        idtoken.mint(key_file, **args)
    assert [p.where for p in caught.value.problems] == [field]


@pytest.mark.parametrize(("field", "changes"), [
    ("key file", {"key_file": b""}),
    # The pool's key is read from another knob and doubled (getTokenSigningKey) and every daemon takes it.
    ("key name", {"key_name": "POOL"}),
    # dircat(SEC_PASSWORD_DIRECTORY, key_id): a path, not a name; a dot file LOCAL_CONFIG_DIR_EXCLUDE_REGEXP skips;
    # the server lists its keys comma-separated.
    ("key name", {"key_name": "../POOL"}),
    ("key name", {"key_name": ".hidden"}),
    ("key name", {"key_name": "A,B"}),
    ("key name", {"key_name": ""}),
    # generate_token: "Issuer namespace may not contain spaces or commas"; analyze_token: empty issuer.
    ("issuer", {"issuer": ""}),
    ("issuer", {"issuer": "cm.example.org, other"}),
    ("issuer", {"issuer": "cm example"}),
    # The server splits sub at its last '@' (authenticate_continue): no user or no domain is no identity here.
    ("subject", {"subject": "alice"}),
    ("subject", {"subject": "@schedd.jupyter-lsst.svc"}),
    ("subject", {"subject": "alice@"}),
    ("subject", {"subject": "alice@bob@schedd.jupyter-lsst.svc"}),
    ("subject", {"subject": "alice, condor@schedd.jupyter-lsst.svc"}),
    ("lifetime", {"lifetime_s": 0}),
    ("lifetime", {"lifetime_s": -1}),
    ("lifetime", {"lifetime_s": float("inf")}),
    ("lifetime", {"lifetime_s": float("nan")}),
    ("scopes", {"scopes": ()}),
    ("scopes", {"scopes": ("READ", "SUPERUSER")}),
])
def test_bad_input_is_refused_by_name(field: str, changes: dict[str, Any]) -> None:
    _refused(field, **changes)
