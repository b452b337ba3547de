"""`enclave accounts|roles|tokens|journal|db` against both databases (ENCLAVE_DB points at the test one)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from enclave.db import Database
from enclave.errors import EnclaveError, exit_code
from enclave.services.local import os_user
from tests.local import database_env, use_database


@pytest.fixture
def cli(db: Database, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    use_database(monkeypatch, db.url, tmp_path)
    return CliRunner()


def run(cli: CliRunner, *args: str) -> Result:
    from enclave.cli import app
    return cli.invoke(app, list(args))


def code(result: Result) -> int:
    """The exit code `enclave` gives: typer's own, or the one main() maps an EnclaveError to."""
    if isinstance(result.exception, EnclaveError):
        return exit_code(result.exception)
    return result.exit_code


def ok(cli: CliRunner, *args: str) -> str:
    result = run(cli, *args)
    assert code(result) == 0, (args, result.output, result.exception)
    return result.output


def test_accounts_roles_journal_end_to_end(cli: CliRunner) -> None:
    assert "bootstrapped root" in ok(cli, "accounts", "bootstrap", "root", "--name", "Root", "--email", "r@lsst.org")
    assert code(run(cli, "accounts", "bootstrap", "x", "--name", "X", "--email", "x@lsst.org")) == 5
    me = ("--as", "root")
    ok(cli, "accounts", "onboard", "ann", *me, "--reason", "proposal P-7", "--name", "Ann", "--email", "ann@u.edu",
       "--proposal", "P-7", "--quota", "300", "--expires", "2099-01-31")
    ok(cli, "accounts", "onboard", "ben", *me, "--reason", "hired", "--name", "Ben", "--email", "ben@lsst.org",
       "--kind", "staff", "--namespace", "firefly", "--role", "developer", "--role", "security")
    for who in ("ann", "ben"):  # the test's OS user acts as these too (local mode), each mapping journaled
        ok(cli, "local", "map", os_user().name, who, *me, "--reason", f"the test acts as {who} too")
    shown = json.loads(ok(cli, "accounts", "show", "ann", "--as", "ann", "-o", "json"))
    assert shown["quota_gib"] == 300 and shown["allocation_id"] == "P-7" and shown["roles"] == ["science-user"]
    assert shown["allocation_expires"].startswith("2099-01-31")
    ok(cli, "accounts", "grow-quota", "ann", *me, "--reason", "bigger", "--quota", "800")
    ok(cli, "roles", "grant", "ben", "htcondor-admin", *me, "--reason", "pool duty")
    assert json.loads(ok(cli, "roles", "list", "ben", "--as", "root", "-o", "json")) == {
        "ben": ["developer", "htcondor-admin", "security"]}
    ok(cli, "roles", "revoke", "ben", "security", *me, "--reason", "rotation")
    ok(cli, "accounts", "expire", "ann", *me, "--reason", "ended")
    ok(cli, "accounts", "renew", "ann", *me, "--reason", "new proposal", "--proposal", "P-8", "--expires", "2099-06-01")
    ok(cli, "accounts", "promote", "ann", *me, "--reason", "hired")
    ok(cli, "accounts", "demote", "ben", *me, "--reason", "now an affiliate", "--new-username", "ben2")
    ok(cli, "accounts", "depart", "ann", *me, "--reason", "left")
    listed = {a["username"]: a["status"] for a in json.loads(ok(cli, "accounts", "list", *me, "-o", "json"))}
    assert listed == {"root": "active", "ann": "departed", "ben": "departed", "ben2": "active"}
    active = json.loads(ok(cli, "accounts", "list", *me, "--status", "active", "-o", "json"))
    assert [a["username"] for a in active] == ["ben2", "root"]

    ok(cli, "local", "map", os_user().name, "ben2", *me, "--reason", "the test acts as ben2 too")
    token = ok(cli, "tokens", "issue", "--as", "ben2", "--scope", "data.read", "--ttl", "600").strip()
    assert token.startswith("enc_")
    assert "data.read" in ok(cli, "tokens", "list", "--as", "ben2")
    assert "data.read" in ok(cli, "tokens", "list", "ben2", *me)  # an account manager lists anyone's
    assert code(run(cli, "tokens", "list", "root", "--as", "ben2")) == 4  # nobody else's without accounts.manage

    # 13 changes, the roles.grant of ben's security (beyond a staff account's default developer) made with his
    # onboarding, the bootstrap's mapping of the OS user to root and the three mappings above.
    assert "intact: 18 entries" in ok(cli, "journal", "verify", *me)
    assert code(run(cli, "journal", "verify", "--as", "ben2")) == 4  # verifying reads the journal: journal.read
    entries = json.loads(ok(cli, "journal", "show", "--as", "root", "--action", "accounts.*", "-o", "json"))
    assert [e["action"] for e in entries][-3:] == ["accounts.demote", "accounts.onboard", "accounts.depart"]
    # Local mode: each entry also names the OS user who acted (enclave.services.local).
    assert entries[-1]["reason"] == f"left [local mode, OS user {os_user().name} (uid {os_user().uid})]"
    assert entries[-1]["actor"] == "root"
    assert json.loads(ok(cli, "journal", "show", "--as", "root", "--target", "account/ben2", "-o", "json"))[0][
        "reason"].startswith("replaces staff account ben")
    assert code(run(cli, "journal", "show", "--as", "ben2")) == 4  # a science user may not read the journal
    assert "may notebooks.spawn" in ok(cli, "access", "check", "ben2", "notebooks.spawn")
    assert code(run(cli, "access", "check", "ben2", "logs.read")) == 4
    assert "cluster.system" in ok(cli, "access", "matrix")
    assert code(run(cli, "accounts", "show", "root", "--as", "ben2")) == 4  # others' accounts need accounts.manage
    assert code(run(cli, "accounts", "list", "--as", "ben2")) == 4
    assert code(run(cli, "accounts", "show", "ben", "--as", "ben")) == 4  # departed: no access at all
    assert json.loads(ok(cli, "roles", "list", "--as", "root", "-o", "json")) == {
        "ben2": ["science-user"], "root": ["developer", "sysadmin"]}


@pytest.mark.parametrize("args,exit_status,message", [
    (["accounts", "depart", "root", "--as", "root", "--reason", "x"], 5, "last active sysadmin"),
    (["accounts", "depart", "nobody", "--as", "root", "--reason", "x"], 3, "no account named 'nobody'"),
    (["accounts", "depart", "root", "--as", "nobody", "--reason", "x"], 4, "may not act as 'nobody' in local mode"),
    (["accounts", "onboard", "x", "--as", "root", "--reason", "r", "--name", "X", "--email", "bad"], 1,
     "not an email"),
    (["accounts", "onboard", "x", "--as", "root", "--reason", "r", "--name", "X", "--email", "x@y.org",
      "--expires", "someday", "--proposal", "P"], 1, "is not a date"),
    (["accounts", "grow-quota", "root", "--as", "root", "--reason", " ", "--quota", "500"], 1, "--reason"),
])
def test_errors_are_typed_and_clear(cli: CliRunner, args: list[str], exit_status: int, message: str) -> None:
    ok(cli, "accounts", "bootstrap", "root", "--name", "Root", "--email", "r@lsst.org")
    result = run(cli, *args)
    assert code(result) == exit_status and message in str(result.exception), (result.output, result.exception)


def test_real_command_reports_without_traceback(db: Database, tmp_path: Path) -> None:
    env = {**os.environ, **database_env(db.url, tmp_path)}
    env.pop("ENCLAVE_DB", None) if not db.url.startswith("sqlite") else None
    enclave = Path(sys.executable).parent / "enclave"
    done = subprocess.run([str(enclave), "accounts", "depart", "ghost", "--as", "ghost", "--reason", "x"],
                          env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 4  # PermissionDenied: nobody maps this OS user to 'ghost' (enclave.errors)
    assert "error:" in done.stderr and "may not act as 'ghost'" in done.stderr and "Traceback" not in done.stderr
