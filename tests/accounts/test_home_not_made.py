"""A home that cannot be made after the account committed (review: onboard_half.py).

docs/accounts.md, "Home provisioning": home provisioning runs after `onboard`, `onboard_many` and `demote` commit;
when the home cannot be made (a stray file where it goes, no right to chown, the cluster refusing the Job) the
account stays committed and journaled, and the call answers with the account and a ``notice``: that the home was
not made, why, and the commands that make it. The CLI prints the notice and succeeds (running the command again
would be refused: usernames are never reused). Nothing that stands at the home's path is removed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from enclave.accounts import lifecycle
from enclave.accounts.lifecycle import Allocation, NewAccount
from enclave.accounts.types import AccountKind, AccountStatus, AccountView
from enclave.db import Database
from enclave.errors import EnclaveError, ExternalError, exit_code
from enclave.journal import query
from enclave.services.accounts import AccountService
from enclave.spec import EnclaveSpec
from enclave.spec.defaults import DEFAULT_SPEC
from tests.local import map_me, use_database

STRAY = b"a file someone left where the home goes\n"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    made = tmp_path / "jhome"
    made.mkdir()
    return made


@pytest.fixture
def service(db: Database, spec: EnclaveSpec, admin: str, root: Path) -> AccountService:
    storage = spec.storage.model_copy(update={"home_root": str(root)})
    return AccountService(db, spec.model_copy(update={"storage": storage}))


def _journaled(db: Database, username: str) -> list[str]:
    with db.session() as s:
        return [e.action for e in query(s, target=f"account/{username}")]


def _says_how(notice: str | None, made: AccountView) -> None:
    """The notice says the home was not made, and the commands that make it (home and workspace, owned by the
    account's uid and gid, mode 0700)."""
    assert notice is not None and "home not made" in notice
    assert f"mkdir -p -m 700 {made.home} {made.workspace}" in notice
    assert f"chown {made.uid}:{made.gid} {made.home} {made.workspace}" in notice


def test_onboarding_stands_with_a_notice_when_a_file_blocks_the_home(service: AccountService, admin: str,
                                                                      db: Database, root: Path) -> None:
    (root / "carol").write_bytes(STRAY)
    made = service.onboard(admin, "carol", name="Carol", email="carol@example.org", kind=AccountKind.STAFF,
                           reason="new hire")
    assert made.username == "carol" and made.status == AccountStatus.ACTIVE
    _says_how(made.notice, made)
    assert "File exists" in (made.notice or "")
    # Committed and journaled, as the docs say: the account is there to show, and the retry is refused.
    assert service.show(admin, "carol").status == AccountStatus.ACTIVE
    assert _journaled(db, "carol") == ["accounts.onboard"]
    # Nothing a user owns is lost: the stray file is left as it was.
    assert (root / "carol").read_bytes() == STRAY


def test_a_refused_job_leaves_the_onboarding_committed_with_a_notice(db: Database, spec: EnclaveSpec, admin: str,
                                                                      tmp_path: Path) -> None:
    """Where homes are not mounted, the live cluster's Job makes them; the API refusing it is the same case."""
    storage = spec.storage.model_copy(update={"home_root": str(tmp_path / "not-mounted")})

    def refused(account: AccountView) -> None:
        raise ExternalError(f"creating Job enclave/enclave-home-{account.username} failed (403 Forbidden)",
                            where="enclave", fix="let enclave's service account create jobs in namespace enclave")

    service = AccountService(db, spec.model_copy(update={"storage": storage}), remote_homes=refused)
    made = service.onboard(admin, "gail", name="Gail", email="g@example.org", kind=AccountKind.SCIENCE,
                           reason="test", allocation=Allocation("P-5"))
    _says_how(made.notice, made)
    assert "403 Forbidden" in (made.notice or "") and "create jobs in namespace enclave" in (made.notice or "")
    assert _journaled(db, "gail") == ["accounts.onboard"]


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root (as on the storage host)")
def test_a_cohort_gets_every_other_home_and_one_notice(service: AccountService, admin: str, root: Path) -> None:
    (root / "blocked").write_bytes(STRAY)
    rows = [NewAccount(username=u, name=u.title(), email=f"{u}@example.org", kind=AccountKind.STAFF)
            for u in ("first", "blocked", "last")]
    made = {a.username: a for a in service.onboard_many(admin, rows, reason="cohort")}
    assert set(made) == {"first", "blocked", "last"}
    _says_how(made["blocked"].notice, made["blocked"])
    assert made["first"].notice is None and made["last"].notice is None
    assert Path(made["first"].workspace).is_dir() and Path(made["last"].workspace).is_dir()


def test_demotion_stands_with_a_notice_when_the_new_home_is_blocked(service: AccountService, admin: str,
                                                                     db: Database, spec: EnclaveSpec,
                                                                     root: Path) -> None:
    with db.session() as s:
        lifecycle.onboard(s, admin, spec, "dave", name="Dave", email="dave@example.org", kind=AccountKind.STAFF,
                          reason="test")
    (root / "dave-sci").write_bytes(STRAY)
    new = service.demote(admin, "dave", new_username="dave-sci", reason="now an affiliate")
    assert new.username == "dave-sci" and new.status == AccountStatus.ACTIVE
    _says_how(new.notice, new)
    assert service.show(admin, "dave").status == AccountStatus.DEPARTED
    assert (root / "dave-sci").read_bytes() == STRAY


def test_the_cli_prints_the_notice_and_succeeds(db: Database, admin: str, root: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    spec_file = tmp_path / "enclave.yaml"
    spec_file.write_text(DEFAULT_SPEC.read_text().replace("home_root: /jhome", f"home_root: {root}"))
    use_database(monkeypatch, db.url, tmp_path)
    map_me(db)
    (root / "erin").write_bytes(STRAY)
    from enclave.cli import app
    result = CliRunner().invoke(app, ["accounts", "onboard", "erin", "--as", admin, "--reason", "new hire",
                                      "--name", "Erin", "--email", "erin@example.org", "--kind", "staff",
                                      "--spec", str(spec_file)])
    code = exit_code(result.exception) if isinstance(result.exception, EnclaveError) else result.exit_code
    assert code == 0, (result.output, result.exception)
    output = " ".join(result.output.split())  # rich wraps long lines
    assert "onboarded erin" in output and "home not made" in output and "mkdir -p -m 700" in output
    assert (root / "erin").read_bytes() == STRAY
