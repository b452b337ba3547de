"""The deploy bundle's HTCondor credentials, checked as HTCondor takes them (``enclave security credentials``);
the tokens are made as ``condor_token_create`` makes them (``tests.cluster.tokens``)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from enclave.cluster import credentials, deploy
from enclave.services.factory import _say_what_htcondor_refuses
from enclave.spec import EnclaveSpec, load
from enclave.spec.defaults import EXAMPLES
from tests.cluster.tokens import NOW, as_documented, mint

# A token from the HTCondor manual (docs/admin-manual/security.rst, "Revoking Tokens"), as printed there.
MANUAL_TOKEN = ("eyJhbGciOiJIUzI1NiIsImtpZCI6IlBPT0wifQ."
                "eyJpYXQiOjE1ODg0NzQ3MTksImlzcyI6ImhjYy1icmlhbnRlc3Q3LnVubC5lZHUi"
                "LCJqdGkiOiJjNzYwYzJhZjE5M2ExZmQ0ZTQwYmM5YzUzYzk2ZWU3YyIsInN1YiI6ImJib2NrZWxtQGhjYy1icmlhbnRlc3Q3LnVu"
                "bC5lZHUifQ.fiqfgwjyTkxMSdxwm84xxMTVcGfearddEDj_rhiIbi4ummU")


@pytest.fixture(scope="module")
def ldf() -> EnclaveSpec:
    return load(EXAMPLES / "lsst-ldf.yaml")


def _problems(spec: EnclaveSpec, directory: Path) -> dict[str, tuple[str, ...]]:
    return {f.file: f.problems for f in credentials.check(spec, directory, NOW)}


def test_a_token_from_the_manual_reads_as_its_claims_say() -> None:
    token = credentials.read_token(MANUAL_TOKEN)
    assert (token.key, token.issuer, token.subject, token.jti) == (
        "POOL", "hcc-briantest7.unl.edu", "bbockelm@hcc-briantest7.unl.edu", "c760c2af193a1fd4e40bc9c53c96ee7c")
    assert token.expires is None and token.scopes is None  # no lifetime, no -authz: unlimited


def test_the_documented_credentials_pass(ldf: EnclaveSpec, tmp_path: Path) -> None:
    assert _problems(ldf, as_documented(ldf, tmp_path / "deploy")) == {
        "htcondor-token": (), "htcondor-schedd-token": (), "htcondor-worker-token": (), "htcondor-broker-key": ()}


def test_a_token_minted_before_the_pools_trust_domain_is_refused(ldf: EnclaveSpec, tmp_path: Path) -> None:
    """Without TRUST_DOMAIN set, the issuer is HTCondor's default, $(UID_DOMAIN), else the host's FULL_HOSTNAME
    (param_info.in), here an admin host's name: a client presents
    only tokens whose issuer is the server's trust domain (``checkToken``), so this one never reaches the startds."""
    bundle = as_documented(ldf, tmp_path / "deploy")
    cm = ldf.batch.central_manager
    (bundle / "htcondor-token").write_text(mint(f"enclave-broker@{cm}", trust_domain="admin01.example.org",
                                                key="ENCLAVE") + "\n")
    [problem] = _problems(ldf, bundle)["htcondor-token"]
    assert "trust domain admin01.example.org" in problem and f"_CONDOR_TRUST_DOMAIN={cm}" in problem


def test_the_startds_token_must_be_signed_with_the_brokers_key(ldf: EnclaveSpec, tmp_path: Path) -> None:
    """The startds hold the broker's key alone (``ENCLAVE``), not the pool's: a token signed with POOL is skipped
    ("signed with key … (not known to the server)")."""
    bundle = as_documented(ldf, tmp_path / "deploy")
    cm = ldf.batch.central_manager
    (bundle / "htcondor-token").write_text(mint(f"enclave-broker@{cm}", trust_domain=cm) + "\n")
    [problem] = _problems(ldf, bundle)["htcondor-token"]
    assert problem.startswith("signed with key POOL, not ENCLAVE")


@pytest.mark.parametrize(("authz", "missing"), [
    (("READ",), "ADMINISTRATOR"),
    (("CONFIG",), "ADMINISTRATOR"),  # runtime settings, but no drain (DRAIN_JOBS is ADMINISTRATOR's)
    # The knobs are settable at ADMINISTRATOR too (the rendered SETTABLE_ATTRS_ADMINISTRATOR = $(SETTABLE_ATTRS_CONFIG);
    # daemon_core.cpp takes any level that lists the knob), and READ is implied (condor_perms.cpp, aImpliedNext).
    (("ADMINISTRATOR",), None),
])
def test_a_limited_token_must_grant_what_it_is_for(ldf: EnclaveSpec, tmp_path: Path, authz: tuple[str, ...],
                                                    missing: str | None) -> None:
    bundle = as_documented(ldf, tmp_path / "deploy")
    cm = ldf.batch.central_manager
    (bundle / "htcondor-token").write_text(mint(f"enclave-broker@{cm}", trust_domain=cm, key="ENCLAVE",
                                                authz=authz) + "\n")
    got = _problems(ldf, bundle)["htcondor-token"]
    assert got == (() if missing is None else (f"its scope does not grant {missing} (it has {', '.join(authz)})",))


@pytest.mark.parametrize(("scope", "scopes"), [
    ("condor:/READ,condor:/ADMINISTRATOR", ("READ", "ADMINISTRATOR")),  # split on ", \t\r\n" as HTCondor does
    ("openid profile", None),  # no condor:/ scope: no bound at all (sock.cpp: an empty set is none)
])
def test_scopes_are_read_as_htcondor_reads_them(ldf: EnclaveSpec, scope: str, scopes: tuple[str, ...] | None) -> None:
    token = credentials.read_token(mint("enclave-broker@x", trust_domain="x", key="ENCLAVE", raw_scope=scope))
    assert token.scopes == scopes
    want = credentials.wanted(ldf)[0]
    assert list(credentials.problems(token, want, "x", NOW)) == []


def test_of_several_tokens_in_a_file_the_first_presented_is_judged(ldf: EnclaveSpec, tmp_path: Path) -> None:
    """The client presents the first line ``checkToken`` passes (right key, the server's trust domain) and ignores
    the rest (``findToken``): an old token before a good one does no harm, and nothing after it counts."""
    bundle = as_documented(ldf, tmp_path / "deploy")
    cm = ldf.batch.central_manager
    good = (bundle / "htcondor-token").read_text()
    old = mint(f"enclave-broker@{cm}", trust_domain="admin01", key="ENCLAVE")
    expired = mint(f"enclave-broker@{cm}", trust_domain=cm, key="ENCLAVE", lifetime=60)
    (bundle / "htcondor-token").write_text(f"{old}\n{good}{expired}\n")
    assert [f.problems for f in credentials.check(ldf, bundle, NOW) if f.file == "htcondor-token"] == [()]
    (bundle / "htcondor-token").write_text(f"{old}\n{expired}\n")  # the expired one is presented, and refused
    assert [f.problems for f in credentials.check(ldf, bundle, NOW) if f.file == "htcondor-token"] == [("expired",)]


def test_tokens_the_server_would_not_verify(ldf: EnclaveSpec, tmp_path: Path) -> None:
    """Only HS256/384/512 are verified (condor_auth_passwd.cpp), and a capability (``cap``) is looked up in the
    server's own token database, which holds none of these."""
    cm = ldf.batch.central_manager
    want = credentials.wanted(ldf)[1]
    unsigned = credentials.read_token(mint(f"enclave-broker@{cm}", trust_domain=cm, algorithm="none"))
    assert list(credentials.problems(unsigned, want, cm, NOW)) == [
        "algorithm none: the server verifies only HS256, HS384, HS512"]
    capability = credentials.read_token(mint(f"enclave-broker@{cm}", trust_domain=cm, capability=True))
    assert [p.split(" (")[0] for p in credentials.problems(capability, want, cm, NOW)] == ["a capability token"]


def test_an_unreadable_file_or_an_unending_expiry_is_no_crash(ldf: EnclaveSpec, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = as_documented(ldf, tmp_path / "deploy")
    cm = ldf.batch.central_manager
    (bundle / "htcondor-worker-token").write_text(mint(f"condor@{cm}", trust_domain=cm, exp=10**400) + "\n")
    assert _problems(ldf, bundle)["htcondor-worker-token"] == ()  # beyond any float: never expires
    real = Path.read_text

    def refused(path: Path, *args: object, **kwargs: object) -> str:
        if path.name == "htcondor-token":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", refused)
    assert _problems(ldf, bundle)["htcondor-token"] == ("unreadable: Permission denied",)


def test_administrator_implies_write_for_the_schedds(ldf: EnclaveSpec, tmp_path: Path) -> None:
    bundle = as_documented(ldf, tmp_path / "deploy")
    cm = ldf.batch.central_manager
    (bundle / "htcondor-schedd-token").write_text(mint(f"enclave-broker@{cm}", trust_domain=cm,
                                                       authz=("ADMINISTRATOR",)) + "\n")
    assert _problems(ldf, bundle)["htcondor-schedd-token"] == ()


def test_the_schedds_know_the_broker_by_its_full_name(ldf: EnclaveSpec, tmp_path: Path) -> None:
    """QUEUE_SUPER_USERS names enclave-broker@<central manager>, matched with COMPARE_DOMAIN_PREFIX (qmgmt.cpp;
    uids.cpp ``is_same_domain``: case aside, or one domain the other's prefix up to a '.'); the startds admit
    enclave-broker@* (rendered)."""
    bundle = as_documented(ldf, tmp_path / "deploy")
    cm = ldf.batch.central_manager
    for domain in (cm.upper(), cm.split(".")[0]):
        (bundle / "htcondor-schedd-token").write_text(mint(f"enclave-broker@{domain}", trust_domain=cm) + "\n")
        assert _problems(ldf, bundle)["htcondor-schedd-token"] == ()
    for name, key in (("htcondor-schedd-token", None), ("htcondor-token", "ENCLAVE")):
        (bundle / name).write_text(mint("enclave-broker@elsewhere.org", trust_domain=cm, key=key) + "\n")
    got = _problems(ldf, bundle)
    assert got["htcondor-schedd-token"] == (f"identity enclave-broker@elsewhere.org, not enclave-broker@{cm}",)
    assert got["htcondor-token"] == ()


def test_an_expired_token_is_refused(ldf: EnclaveSpec, tmp_path: Path) -> None:
    bundle = as_documented(ldf, tmp_path / "deploy")
    cm = ldf.batch.central_manager
    (bundle / "htcondor-worker-token").write_text(mint(f"condor@{cm}", trust_domain=cm, lifetime=600) + "\n")
    assert _problems(ldf, bundle)["htcondor-worker-token"] == ("expired",)
    # Refused only once the expiry is past: condor_auth_passwd.cpp checks ``now - exp > 0``.
    (bundle / "htcondor-worker-token").write_text(mint(f"condor@{cm}", trust_domain=cm, exp=int(NOW)) + "\n")
    assert _problems(ldf, bundle)["htcondor-worker-token"] == ()


def test_a_jwt_whose_header_or_claims_are_no_object_is_no_token() -> None:
    # "W10" is base64url of "[]": JSON, but a JWT's header and claims are JSON objects (RFC 7519, section 7.2).
    with pytest.raises(ValueError, match="not a JSON object"):
        credentials.read_token("W10.W10.c2lnbmF0dXJl")


def test_files_that_hold_no_token(ldf: EnclaveSpec, tmp_path: Path) -> None:
    """Blank lines and '#' comments are skipped as HTCondor's ``findToken`` does; anything else must be a JWT."""
    bundle = as_documented(ldf, tmp_path / "deploy")
    (bundle / "htcondor-token").write_text("# made on admin01\n\n")
    (bundle / "htcondor-schedd-token").write_text("condor_token_create: command not found\n")
    (bundle / "htcondor-broker-key").write_bytes(b"")
    (bundle / "htcondor-worker-token").unlink()
    got = _problems(ldf, bundle)
    assert got["htcondor-token"] == ("holds no token",)
    assert got["htcondor-schedd-token"][0].startswith("not an IDTOKEN: a JWT has three parts")
    assert got["htcondor-worker-token"] == ("missing: docs/deploy.md, step 6",)
    assert got["htcondor-broker-key"] == ("missing or empty: docs/deploy.md, step 6",)


def test_an_api_pods_own_tokens_are_read_by_the_secrets_keys(ldf: EnclaveSpec, tmp_path: Path) -> None:
    """The init container copies the Secret's ``token`` and ``schedd-token`` into the client's token directory
    (``deploy._token_copy``): the broker checks those as it starts."""
    bundle = as_documented(ldf, tmp_path / "deploy")
    tokens = tmp_path / "tokens.d"
    tokens.mkdir()
    (tokens / "token").write_text((bundle / "htcondor-token").read_text())
    (tokens / "schedd-token").write_text(mint("enclave-broker@admin01", trust_domain="admin01") + "\n")
    got = {f.file: f.problems for f in credentials.presented(ldf, tokens, NOW)}
    assert got["htcondor-token"] == ()
    assert [p.split(",")[0] for p in got["htcondor-schedd-token"]] == [
        "issued in trust domain admin01", "identity enclave-broker@admin01"]


def test_the_live_broker_logs_a_token_htcondor_would_refuse(ldf: EnclaveSpec, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    """In its pod the client reads its tokens where ``_CONDOR_SEC_TOKEN_DIRECTORY`` says, ``deploy.HTCONDOR_TOKENS``
    (``deploy._htcondor_client_env``); a directory of someone's own tokens elsewhere is not checked."""
    tokens = tmp_path / "tokens.d"
    tokens.mkdir()
    cm = ldf.batch.central_manager
    (tokens / "token").write_text(mint(f"enclave-broker@{cm}", trust_domain=cm) + "\n")  # the pool's key, not ENCLAVE
    monkeypatch.setenv("_CONDOR_SEC_TOKEN_DIRECTORY", str(tokens))
    with caplog.at_level(logging.ERROR):
        _say_what_htcondor_refuses(ldf)
    assert not caplog.records
    monkeypatch.setattr(deploy, "HTCONDOR_TOKENS", str(tokens))
    with caplog.at_level(logging.ERROR):
        _say_what_htcondor_refuses(ldf)
    refused = [(r.getMessage(), getattr(r, "fields", {}).get("problem", "")) for r in caplog.records]
    assert [m for m, _ in refused] == ["HTCondor token refused"] * 2
    assert "signed with key POOL, not ENCLAVE" in refused[0][1] and refused[1][1].startswith("missing")
