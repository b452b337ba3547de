"""Issue 16, item 1: `--as` is no longer a claim anyone can make (docs/accounts.md, "Who is acting").

- Every command is classified: through the API with a context (``API``), local mode on the server host only
  (``HOST``), or acting on nobody's state (``NOBODY``) — a new command fails here until it is put in one.
- Local mode acts only for the OS user who owns the database, only as accounts a sysadmin mapped to it; each
  refusal changes nothing.
- With a context, a command goes through a real HTTP server on loopback and is refused exactly as the API refuses
  the same token; with a permitted token it succeeds and the journal records the token's account.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from typer.testing import CliRunner, Result

from enclave.accounts.types import AccountKind
from enclave.api.app import create_app
from enclave.api.errors import error_body
from enclave.api.runner import BrokerRunner
from enclave.api.server import ThreadedServer
from enclave.api.service import Service
from enclave.client.config import load_config
from enclave.db import Database
from enclave.errors import EnclaveError, PermissionDenied, exit_code, http_status
from enclave.journal import query
from enclave.main import app
from enclave.services import local
from enclave.services.factory import Factory
from enclave.spec.defaults import DEFAULT_SPEC, EXAMPLES
from enclave.spec.load import load
from enclave.spec.models import Role
from tests.accounts.conftest import snapshot
from tests.api.conftest import ProjectedBackend
from tests.cli.test_output import commands
from tests.pg import _sqlite_template

SOON_TAI = time.time() + 600 + 37.0
"""A visit's startTime (TAI Unix seconds) ten minutes from now: a push is refused outside now − 1 day … + 7 days."""

SPEC = load(DEFAULT_SPEC)
ME = local.os_user()



def test_every_command_is_classified_once_and_api_commands_alone_take_the_api_path() -> None:
    from enclave.cli.options import API, HOST, NOBODY

    found = commands()
    assert not (API & HOST) and not (API & NOBODY) and not (HOST & NOBODY)
    assert set(found) == API | HOST | NOBODY, "classify each new command in enclave.cli.options"
    for name, cmd in found.items():
        source = inspect.getsource(cmd.callback)
        # An API command gets its services from options.enclave (API or local mode) — the BCS procedures through
        # broker._procedure, which asks it — and no other command does.
        assert ("with enclave(" in source or "with _procedure(" in source) == (name in API), name


# --- local mode ------------------------------------------------------------------------------------------------


@dataclass
class Local:
    db: Database
    path: Path


def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


def code(result: Result) -> int:
    return exit_code(result.exception) if isinstance(result.exception, EnclaveError) else result.exit_code


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Local]:
    """A database bootstrapped through the service with NO OS user mapped, and a science user."""
    path = tmp_path / "enclave.db"
    shutil.copyfile(_sqlite_template(), path)
    os.chmod(path, 0o600)
    monkeypatch.setenv("ENCLAVE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ENCLAVE_DB", f"sqlite:///{path}")
    for name in ("ENCLAVE_AS", "ENCLAVE_CONTEXT", "ENCLAVE_DB_FILE", "ENCLAVE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    db = Database(f"sqlite:///{path}")
    factory = Factory(SPEC, db)
    factory.accounts.bootstrap("root", name="Root", email="root@lsst.org")
    factory.accounts.onboard("root", "sci", name="Sci", email="sci@u.edu", kind=AccountKind.SCIENCE, reason="t")
    yield Local(db, path)
    db.dispose()


CHANGE = ("accounts", "expire", "sci", "--reason", "attack")


def test_unmapped_as_root_is_refused_and_nothing_changes(here: Local) -> None:
    before = snapshot(here.db)
    for attempt in (cli(*CHANGE, "--as", "root"), cli(*CHANGE, env={"ENCLAVE_AS": "root"}), cli(*CHANGE)):
        assert code(attempt) == 4 and isinstance(attempt.exception, PermissionDenied)  # enclave.errors: 4
        said = str(attempt.exception)
        assert f"OS user {ME.name!r}" in said and "enclave local map" in said and "enclave login" in said, said
    assert snapshot(here.db) == before


def test_a_mapped_os_user_acts_only_as_its_accounts_and_the_journal_names_it(here: Local) -> None:
    Factory(SPEC, here.db).accounts.map_local("root", ME.name, "root", reason="the host's admin")
    assert code(cli(*CHANGE)) == 0  # the one mapped account is the default actor
    with here.db.session() as s:
        entry = query(s, action="accounts.expire")[-1]
    assert entry.actor == "root" and entry.reason == f"attack [local mode, OS user {ME.name} (uid {ME.uid})]"
    # Still only the mapped account: a science user's name is refused, even for a read.
    refused = cli("accounts", "show", "sci", "--as", "sci")
    assert code(refused) == 4 and "may not act as 'sci'" in str(refused.exception)


def test_local_map_needs_a_sysadmin_and_is_journaled(here: Local) -> None:
    Factory(SPEC, here.db).accounts.map_local("root", ME.name, "root", reason="the host's admin")
    assert code(cli("local", "map", ME.name, "sci", "--as", "root", "--reason", "she needs it")) == 0
    with here.db.session() as s:
        entry = query(s, action="local.map")[-1]
    assert entry.target == f"os-user/{ME.name}" and entry.after == {"os_user": ME.name, "account": "sci"}
    before = snapshot(here.db)
    # sci (science-user) may not map anyone (accounts.manage): refused, nothing changes.
    refused = cli("local", "map", "someone", "sci", "--as", "sci", "--reason", "x")
    assert code(refused) == 4 and "accounts.manage" in str(refused.exception)
    assert snapshot(here.db) == before


@pytest.mark.skipif(os.geteuid() != 0, reason="giving the database to another OS user needs root (as in CI)")
def test_an_os_user_who_does_not_own_the_database_is_refused(here: Local) -> None:
    Factory(SPEC, here.db).accounts.map_local("root", ME.name, "root", reason="mapped, but not the owner")
    before = snapshot(here.db)
    os.chown(here.path, 65534, 65534)  # nobody:nogroup owns it now; the test's OS user (root) does not
    try:
        refused = cli(*CHANGE, "--as", "root")
        assert code(refused) == 4 and "local mode acts only for the OS user who owns it" in str(refused.exception)
    finally:
        os.chown(here.path, 0, 0)
    assert snapshot(here.db) == before


def test_a_database_others_may_write_proves_nothing(here: Local) -> None:
    Factory(SPEC, here.db).accounts.map_local("root", ME.name, "root", reason="mapped")
    before = snapshot(here.db)
    os.chmod(here.path, 0o662)
    refused = cli(*CHANGE, "--as", "root")
    os.chmod(here.path, 0o600)
    assert code(refused) == 4 and "chmod 600" in str(refused.exception)
    assert snapshot(here.db) == before


def test_no_database_here_is_not_created_by_a_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENCLAVE_DB", f"sqlite:///{tmp_path / 'none.db'}")
    monkeypatch.delenv("ENCLAVE_CONTEXT", raising=False)
    monkeypatch.setenv("ENCLAVE_CONFIG", str(tmp_path / "config.yaml"))
    refused = cli("accounts", "list", "--as", "root")
    assert code(refused) == 3 and "no enclave database" in str(refused.exception)
    assert not (tmp_path / "none.db").exists()


def test_a_postgresql_url_counts_only_from_a_private_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql+psycopg://enclave:secret@127.0.0.1:1/enclave"
    monkeypatch.setenv("ENCLAVE_DB", url)
    with pytest.raises(PermissionDenied, match="ENCLAVE_DB_FILE"):
        local.check_owner(None, ME)
    monkeypatch.delenv("ENCLAVE_DB")
    secret = tmp_path / "db-url"
    secret.write_text(url + "\n")
    monkeypatch.setenv("ENCLAVE_DB_FILE", str(secret))
    os.chmod(secret, 0o644)
    with pytest.raises(PermissionDenied, match="chmod 600"):
        local.check_owner(None, ME)
    os.chmod(secret, 0o600)
    local.check_owner(None, ME)  # the OS user holding the credential, alone
    with pytest.raises(PermissionDenied, match="ENCLAVE_DB_FILE"):
        local.check_owner(url.replace("secret", "other"), ME)  # --db with another URL proves nothing


def test_bootstrap_maps_the_os_user_who_ran_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENCLAVE_HOME", str(tmp_path))
    for name in ("ENCLAVE_DB", "ENCLAVE_DB_FILE", "ENCLAVE_CONTEXT", "ENCLAVE_AS"):
        monkeypatch.delenv(name, raising=False)
    done = cli("accounts", "bootstrap", "boss", "--name", "Boss", "--email", "boss@lsst.org")
    assert code(done) == 0 and f"OS user {ME.name} may act as boss" in done.output
    listed = json.loads(cli("local", "list", "-o", "json").stdout)
    assert listed == {"os_user": ME.name, "accounts": ["boss"]}
    assert (tmp_path / "enclave.db").stat().st_mode & 0o777 == 0o600


# --- through the API ------------------------------------------------------------------------------------------


@dataclass
class Remote:
    db: Database
    url: str
    tokens: dict[str, str]
    home: Path


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Remote]:
    """A real HTTP server on loopback over its own database; the CLI side has NO database of its own."""
    path = tmp_path / "server" / "enclave.db"
    path.parent.mkdir()
    shutil.copyfile(_sqlite_template(), path)
    db = Database(f"sqlite:///{path}")
    factory = Factory(SPEC, db)
    factory.accounts.bootstrap("root", name="Root", email="root@lsst.org")
    factory.accounts.onboard("root", "sci", name="Sci", email="sci@u.edu", kind=AccountKind.SCIENCE, reason="t")
    tokens = {"root": factory.tokens.issue("root", None, ["*"], 3600).token,
              "root-journal-only": factory.tokens.issue("root", None, ["journal.read"], 3600).token,
              "sci": factory.tokens.issue("sci", None, ["*"], 3600).token}
    home = tmp_path / "client"
    monkeypatch.setenv("ENCLAVE_HOME", str(home))
    monkeypatch.setenv("ENCLAVE_DB", f"sqlite:///{home / 'absent.db'}")  # local mode would find nothing here
    for name in ("ENCLAVE_AS", "ENCLAVE_CONTEXT", "ENCLAVE_DB_FILE", "ENCLAVE_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    service = Service(factory)
    # The server's broker acts on the broker's own model of the enclave (the api suite's test backend).
    service.runner = BrokerRunner(broker=factory.broker(ProjectedBackend(SPEC), "projected"),
                                  metrics=service.metrics, history=service.history, backend_name="projected")
    running = ThreadedServer(create_app(service)).start()
    try:
        yield Remote(db, running.url, tokens, home)
    finally:
        running.stop()
        db.dispose()


def login(remote: Remote, name: str, token: str) -> None:
    token_file = remote.home / f"{name}.token"
    token_file.parent.mkdir(exist_ok=True)
    token_file.write_text(token + "\n")
    done = cli("login", remote.url, "--context", name, "--token-file", str(token_file))
    assert code(done) == 0, (done.output, done.exception)


def test_a_contexts_default_spec_is_used_when_spec_is_not_given(server: Remote) -> None:
    token_file = server.home / "t"
    token_file.parent.mkdir(exist_ok=True)
    token_file.write_text(server.tokens["root"])
    minimal = str(EXAMPLES / "minimal.yaml")
    assert code(cli("login", server.url, "--context", "m", "--token-file", str(token_file), "--spec", minimal)) == 0
    def capacity(*spec: str) -> Any:
        return json.loads(cli("notebooks", "capacity", *spec, "-o", "json").stdout)

    assert capacity() == capacity("--spec", minimal) != capacity("--spec", str(EXAMPLES / "lsst-ldf.yaml"))


def test_login_checks_the_token_and_writes_a_private_config(server: Remote) -> None:
    login(server, "admin", server.tokens["root"])
    login(server, "sci", server.tokens["sci"])
    config = server.home / "config.yaml"
    assert config.stat().st_mode & 0o777 == 0o600
    assert load_config(config).current_context == "sci"
    for fmt in ("json", "yaml"):
        out = cli("config", "get-contexts", "-o", fmt).stdout
        rows = json.loads(out) if fmt == "json" else yaml.safe_load(out)
        assert {(r["name"], r["username"], r["current"]) for r in rows} == {("admin", "root", False),
                                                                            ("sci", "sci", True)}
        assert server.tokens["root"] not in out and server.tokens["sci"] not in out
        out = cli("config", "current-context", "-o", fmt).stdout
        assert (json.loads(out) if fmt == "json" else yaml.safe_load(out)) == {"current-context": "sci"}
    assert code(cli("config", "use-context", "admin")) == 0
    assert cli("config", "current-context").stdout.strip() == "admin"
    bad = server.home / "bad.token"
    bad.write_text("enc_nope_nope\n")
    refused = cli("login", server.url, "--context", "x", "--token-file", str(bad))
    assert code(refused) == 4 and "x" not in {c.name for c in load_config(config).contexts}
    os.chmod(config, 0o644)  # a config others can read leaks its tokens: refused, not used
    refused = cli("accounts", "list")
    assert code(refused) == 4 and "chmod 600" in str(refused.exception)


def _api_refusal(remote: Remote, token: str) -> tuple[int, dict[str, Any]]:
    r = httpx.post(f"{remote.url}/api/v1/accounts/sci/expire", json={"reason": "attack"},
                   headers={"Authorization": f"Bearer {token}"})
    return r.status_code, r.json()


@pytest.mark.parametrize("who", ["sci", "root-journal-only"])
def test_a_cli_command_with_a_context_is_refused_exactly_as_the_api_refuses(server: Remote, who: str) -> None:
    """Issue 16's Done-when: the science user's token lacks the role, the narrow token the scope."""
    login(server, who, server.tokens[who])
    before = snapshot(server.db)
    refused = cli("--context", who, "accounts", "expire", "sci", "--reason", "attack")
    assert snapshot(server.db) == before
    assert not (server.home / "absent.db").exists()  # it went through the API, not a local database
    status, body = _api_refusal(server, server.tokens[who])
    assert snapshot(server.db) == before
    assert isinstance(refused.exception, PermissionDenied) and status == 403
    assert http_status(refused.exception) == status and code(refused) == 4
    assert error_body(refused.exception) == body  # the same type, message and problems, field by field


def test_with_a_permitted_token_it_succeeds_and_the_journal_records_the_tokens_account(server: Remote) -> None:
    login(server, "admin", server.tokens["root"])
    done = cli("accounts", "onboard", "newbie", "--name", "New", "--email", "new@u.edu", "--reason", "via API")
    assert code(done) == 0, (done.output, done.exception)
    with server.db.session() as s:
        entry = query(s, action="accounts.onboard", target="account/newbie")[-1]
    assert entry.actor == "root" and entry.reason == "via API"  # the token's account; no local-mode OS user
    shown = json.loads(cli("accounts", "show", "newbie", "-o", "json").stdout)
    assert shown["username"] == "newbie" and shown["kind"] == "science"
    entries = json.loads(cli("journal", "show", "--limit", "1", "-o", "json").stdout)
    assert [e["target"] for e in entries] == ["account/newbie"]
    # --as cannot pick another account over the API: refused before anything is sent.
    before = snapshot(server.db)
    refused = cli("accounts", "depart", "newbie", "--reason", "x", "--as", "sci")
    assert code(refused) == 4 and "acts as 'root'" in str(refused.exception)
    assert snapshot(server.db) == before
    assert not (server.home / "absent.db").exists()


def test_a_bcs_procedure_with_a_context_is_applied_by_the_server_as_the_tokens_account(server: Remote) -> None:
    login(server, "admin", server.tokens["root"])
    move = ("batch", "move", "condor-001", "--to", "user", "--reason", "prompt caught up")
    # root is a sysadmin, not an HTCondor administrator: refused exactly as the API refuses the same token.
    before = snapshot(server.db)
    refused = cli(*move)
    r = httpx.post(f"{server.url}/api/v1/broker/actions", headers={"Authorization": f"Bearer {server.tokens['root']}"},
                   json={"kind": "relabel", "startd": "condor-001", "to_pool": "user", "reason": "prompt caught up"})
    assert snapshot(server.db) == before
    assert r.status_code == 403 and code(refused) == 4 and isinstance(refused.exception, EnclaveError)
    assert error_body(refused.exception) == r.json()
    Factory(SPEC, server.db).accounts.grant_role("root", "root", Role.HTCONDOR_ADMIN, reason="pool duty")
    done = cli(*move)
    assert code(done) == 0, (done.output, done.exception)
    said = " ".join(done.output.split())
    assert "Relabel startd/condor-001 done on http://127.0.0.1" in said and "SIMULATED" not in said
    with server.db.session() as s:
        entry = query(s, action="broker.*")[-1]
    assert entry.actor == "root" and entry.reason == "prompt caught up" and entry.target.endswith("condor-001")
    assert not (server.home / "absent.db").exists()


def test_a_schedule_push_with_a_context_goes_through_the_api_as_the_tokens_account(server: Remote) -> None:
    login(server, "admin", server.tokens["root"])
    night = server.home / "tonight.yaml"
    night.write_text(f"visits:\n  - {{groupId: v0, startTime: {SOON_TAI}, duration: 33, instrument: LSSTCam}}\n")
    push = ("broker", "schedule", "push", str(night), "--reason", "tonight")
    refused = cli(*push)  # root is a sysadmin: a schedule needs batch.relabel (HTCondor administrators)
    assert code(refused) == 4 and isinstance(refused.exception, PermissionDenied)
    Factory(SPEC, server.db).accounts.grant_role("root", "root", Role.HTCONDOR_ADMIN, reason="pool duty")
    done = cli(*push)
    assert code(done) == 0, (done.output, done.exception)
    with server.db.session() as s:
        entry = query(s, action="broker.schedule")[-1]
    assert entry.actor == "root" and entry.reason == "tonight"  # the token's account; no local-mode OS user
    shown = json.loads(cli("broker", "schedule", "show", "-o", "json").stdout)
    assert shown["schedule"]["visits"][0]["groupId"] == "v0" and shown["digest"] == entry.after["digest"]
    assert not (server.home / "absent.db").exists()
