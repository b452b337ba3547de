"""The CLI client under review (contexts and the API client; docs/accounts.md, "Who is acting", and docs/api.md,
"The client"): one test per reviewed defect, each expectation taken from those docs or from RFC 6750.

1. The contexts file's directory is private whatever the umask, even when an older version made it open to others
   (made 0700, said once), the file is written through an unpredictable temporary file, and a file or directory
   another OS user owns is refused; the journal key's directory is private too.
2. A bearer token never travels over plain http to a host that is not loopback (RFC 6750 §5.3).
3. A pod log read without --follow has a read timeout.
4. $ENCLAVE_CONTEXT overriding a switch of the current context is said, not silent.
5. A HOST command never takes the context's default spec.
6. A server that answers 200 but is not enclave is an ExternalError, not a traceback.
7. Corrupt input (config, token, server URL) is an InputError naming the file or field, and never quoting the
   config (it holds tokens).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner, Result

import enclave.cli.contexts as contexts_cli
from enclave.client.config import ClientConfig, Context, load_config, save_config
from enclave.client.http import TIMEOUT_S, Api
from enclave.client.remote import Remote, RemoteLogs
from enclave.db import Database
from enclave.domain.logs import LogRequest
from enclave.errors import EnclaveError, ExternalError, InputError, exit_code
from enclave.main import app
from enclave.services.factory import Factory
from enclave.spec.defaults import DEFAULT_SPEC, EXAMPLES
from enclave.spec.load import load
from tests.pg import _sqlite_template

TOKEN = "enclave_k3y_s3cret"
"""A token as `enclave tokens issue` prints it: printable ASCII."""
NOT_LOOPBACK = ("http://192.0.2.1:8000", "http://enclave.example.org", "http://[2001:db8::1]:8000/")
"""Plain http to hosts that are not loopback (RFC 5737 and RFC 3849 documentation addresses)."""
LOOPBACK = ("http://127.0.0.1:8000", "http://127.8.9.10", "http://localhost:8000", "http://[::1]:8000")
"""Loopback: localhost, 127.0.0.0/8 and ::1."""


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def code(result: Result) -> int:
    return exit_code(result.exception) if isinstance(result.exception, EnclaveError) else result.exit_code


def context(name: str = "c", server: str = "https://enclave.example.org", token: str = TOKEN) -> Context:
    return Context(name=name, server=server, token=token, username="alice")


@pytest.fixture
def client_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "client"
    monkeypatch.setenv("ENCLAVE_HOME", str(home))
    for name in ("ENCLAVE_CONTEXT", "ENCLAVE_CONFIG", "ENCLAVE_AS", "ENCLAVE_DB_FILE", "ENCLAVE_SPEC", "ENCLAVE_DB"):
        monkeypatch.delenv(name, raising=False)
    return home


class FakeEnclave:
    """Answers ``GET /api/v1/whoami`` as the enclave API does; records every request (none leaves the process)."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(200, json={"username": "alice", "roles": ["sysadmin"], "permissions": []})


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeEnclave:
    """`enclave login` talks to a FakeEnclave instead of the network."""
    server = FakeEnclave()
    transport = httpx.MockTransport(server.handler)
    monkeypatch.setattr(contexts_cli, "Api", lambda ctx: Api(ctx, transport=transport))
    return server


def token_file(tmp_path: Path, data: bytes = TOKEN.encode() + b"\n") -> str:
    path = tmp_path / "token"
    path.write_bytes(data)
    return str(path)


# --- 1. private files ------------------------------------------------------------------------------------------


def test_the_contexts_directory_is_0700_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "made" / "here" / "config.yaml"
    old = os.umask(0)
    try:
        save_config(ClientConfig(contexts=[context()]), path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_the_contexts_file_is_never_written_through_a_file_planted_beside_it(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    planted = tmp_path / f".config.yaml.{os.getpid()}.tmp"  # the name the old writer used
    planted.write_text("")
    inode = planted.stat().st_ino
    save_config(ClientConfig(contexts=[context()]), path)
    assert path.stat().st_ino != inode
    assert planted.read_text() == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([path.name, planted.name])  # no temp file left


def test_a_contexts_file_another_user_owns_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_config(ClientConfig(contexts=[context()]), tmp_path / "config.yaml")
    monkeypatch.setattr(os, "geteuid", lambda: path.stat().st_uid + 1)
    with pytest.raises(InputError) as refused:
        load_config(path)
    assert str(path) in str(refused.value) and "enclave login" in refused.value.problem.fix


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="chown to another uid needs root")
def test_a_contexts_file_chowned_to_another_uid_is_refused(tmp_path: Path) -> None:
    path = save_config(ClientConfig(contexts=[context()]), tmp_path / "config.yaml")
    os.chown(path, 1002, 1002)
    with pytest.raises(InputError) as refused:
        load_config(path)
    assert str(path) in str(refused.value)


def test_an_existing_enclave_directory_others_may_enter_is_made_0700_and_said_once(
        client_home: Path, fake: FakeEnclave, tmp_path: Path) -> None:
    client_home.mkdir()
    os.chmod(client_home, 0o777)  # as an older version made it under umask 000
    logged_in = cli("login", "https://enclave.example.org", "--context", "c", "--token-file", token_file(tmp_path))
    assert code(logged_in) == 0, logged_in.output
    assert stat.S_IMODE(client_home.stat().st_mode) == 0o700
    assert logged_in.stderr.count("warning:") == 1 and f"{client_home} had mode drwxrwxrwx" in logged_in.stderr

    os.chmod(client_home, 0o755)  # group and others may read: the names of the files, the database's beside them
    switched = cli("config", "use-context", "c")  # reads the config, then writes it: one warning, not two
    assert code(switched) == 0, switched.output
    assert stat.S_IMODE(client_home.stat().st_mode) == 0o700
    assert switched.stderr.count("warning:") == 1 and str(client_home) in switched.stderr
    assert "warning" not in cli("config", "get-contexts").stderr


def test_a_directory_enclave_did_not_choose_is_left_as_it_is(client_home: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    chosen = tmp_path / "chosen"
    chosen.mkdir()
    os.chmod(chosen, 0o755)
    monkeypatch.setenv("ENCLAVE_CONFIG", str(chosen / "config.yaml"))
    load_config(save_config(ClientConfig(contexts=[context()])))
    assert stat.S_IMODE(chosen.stat().st_mode) == 0o755
    monkeypatch.delenv("ENCLAVE_CONFIG")
    monkeypatch.setenv("HOME", str(chosen))
    monkeypatch.setenv("ENCLAVE_HOME", str(chosen))  # even so: $HOME is never chmod-ed
    load_config(save_config(ClientConfig(contexts=[context()])))
    assert stat.S_IMODE(chosen.stat().st_mode) == 0o755


def test_an_enclave_directory_another_user_owns_is_refused(client_home: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_config(ClientConfig(contexts=[context()]), client_home / "config.yaml")
    os.chmod(client_home, 0o777)
    uid = client_home.stat().st_uid
    monkeypatch.setattr(os, "geteuid", lambda: uid + 1)
    for attempt in (lambda: load_config(path), lambda: save_config(ClientConfig(), path)):
        with pytest.raises(InputError) as refused:
            attempt()
        assert refused.value.problem.where == str(client_home) and f"owned by uid {uid}" in str(refused.value)
        assert "enclave login" in refused.value.problem.fix
    assert stat.S_IMODE(client_home.stat().st_mode) == 0o777  # not chmod-ed: not the caller's
    assert ClientConfig.model_validate(yaml.safe_load(path.read_text())).contexts == [context()]  # not rewritten


def test_the_journal_key_and_anchor_directories_are_0700_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "enclave.db"
    shutil.copyfile(_sqlite_template(), path)
    os.chmod(path, 0o600)
    key, anchor = tmp_path / "keys" / "enclave.key", tmp_path / "anchors" / "enclave.anchor"
    db = Database(f"sqlite:///{path}", journal_key=key, journal_anchor=anchor)
    old = os.umask(0)
    try:
        Factory(load(DEFAULT_SPEC), db).accounts.bootstrap("root", name="Root", email="root@lsst.org")
    finally:
        os.umask(old)
        db.dispose()
    assert key.exists() and anchor.exists()
    assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(anchor.parent.stat().st_mode) == 0o700


def test_the_directory_made_for_a_sqlite_database_is_0700_whatever_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "made" / "enclave.db"
    old = os.umask(0)
    try:
        Database(f"sqlite:///{path}").dispose()
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# --- 2. no bearer token over plain http but to loopback (RFC 6750 §5.3) -----------------------------------------


@pytest.mark.parametrize("server", NOT_LOOPBACK)
def test_plain_http_to_a_host_that_is_not_loopback_is_refused(client_home: Path, fake: FakeEnclave, tmp_path: Path,
                                                              server: str) -> None:
    refused = cli("login", server, "--context", "c", "--token-file", token_file(tmp_path))
    assert code(refused) == 1 and isinstance(refused.exception, InputError)
    assert "https" in refused.exception.problem.fix
    assert fake.requests == [] and not (client_home / "config.yaml").exists()
    with pytest.raises(InputError, match="https"):  # a hand-edited context: refused before any request
        Api(context(server=server), transport=httpx.MockTransport(fake.handler))
    assert fake.requests == []


@pytest.mark.parametrize("server", LOOPBACK)
def test_plain_http_to_loopback_is_allowed(client_home: Path, fake: FakeEnclave, tmp_path: Path, server: str) -> None:
    done = cli("login", server, "--context", "c", "--token-file", token_file(tmp_path))
    assert code(done) == 0, done.output
    assert [r.headers["Authorization"] for r in fake.requests] == [f"Bearer {TOKEN}"]


# --- 3. a log read without --follow times out ---------------------------------------------------------------------


def test_a_log_read_without_follow_has_a_read_timeout() -> None:
    timeouts: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        timeouts.append(request.extensions["timeout"])
        return httpx.Response(200, text="one\ntwo\n")

    logs = RemoteLogs(Api(context(), transport=httpx.MockTransport(handler)))
    assert list(logs.read("alice", LogRequest("firefly", "pod-1"))) == ["one", "two"]
    assert list(logs.read("alice", LogRequest("firefly", "pod-1", follow=True))) == ["one", "two"]
    assert timeouts[0]["read"] == TIMEOUT_S
    assert timeouts[1]["read"] is None


# --- 4. $ENCLAVE_CONTEXT -----------------------------------------------------------------------------------------


def test_enclave_context_overriding_a_switch_is_said(client_home: Path, fake: FakeEnclave, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    save_config(ClientConfig(current_context="old", contexts=[context("old"), context("new")]),
                client_home / "config.yaml")
    monkeypatch.setenv("ENCLAVE_CONTEXT", "old")
    switched = cli("config", "use-context", "new")
    assert code(switched) == 0 and "ENCLAVE_CONTEXT" in switched.stderr
    current = cli("config", "current-context")
    assert current.stdout.strip() == "old" and "ENCLAVE_CONTEXT" in current.stderr
    assert json.loads(cli("config", "current-context", "-o", "json").stdout)["current-context"] == "old"
    logged_in = cli("login", "https://other.example.org", "--context", "other", "--token-file", token_file(tmp_path))
    assert code(logged_in) == 0 and "ENCLAVE_CONTEXT" in logged_in.stderr


# --- 5. HOST commands and the context's spec ----------------------------------------------------------------------


def test_a_host_command_never_takes_the_contexts_spec(client_home: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    save_config(ClientConfig(current_context="remote", contexts=[
        Context(name="remote", server="https://enclave.example.org", token=TOKEN, username="alice",
                spec=str(tmp_path / "absent" / "remote-enclave.yaml"))]), client_home / "config.yaml")
    monkeypatch.setenv("ENCLAVE_DB", f"sqlite:///{tmp_path / 'host' / 'enclave.db'}")
    monkeypatch.setenv("ENCLAVE_SPEC", str(EXAMPLES / "minimal.yaml"))
    done = cli("accounts", "bootstrap", "root", "--name", "Root", "--email", "root@lsst.org")
    assert code(done) == 0, (done.output, done.exception)


# --- 6. a server that is not enclave ---------------------------------------------------------------------------


@pytest.mark.parametrize("reply", [httpx.Response(200, html="<html><body>Sign in</body></html>"),
                                   httpx.Response(200, json={"status": "ok"})])
def test_a_server_that_is_not_enclave_is_an_external_error(reply: httpx.Response) -> None:
    api = Api(context(), transport=httpx.MockTransport(lambda request: reply))
    with pytest.raises(ExternalError) as failed:
        Remote(api).whoami()
    assert "check that the context's server is enclave" in str(failed.value)


# --- 7. corrupt input --------------------------------------------------------------------------------------------


def test_corrupt_input_is_an_input_error_naming_the_file_or_field(client_home: Path, fake: FakeEnclave,
                                                                  tmp_path: Path) -> None:
    config = client_home / "config.yaml"
    config.parent.mkdir(mode=0o700)
    for text in (b"current-context: \xe9t\xe9\ncontexts: []\n",  # Latin-1, not UTF-8
                 b'contexts: [{name: a, server: "https://e.example.org", token: "t\xc3\xa9", username: u}]\n',
                 b'contexts: [{name: a, server: "http://[::1", token: t, username: u}]\n'):
        config.write_bytes(text)
        os.chmod(config, 0o600)
        with pytest.raises(InputError) as refused:
            load_config(config)
        assert str(config) in str(refused.value) and "t\xe9" not in str(refused.value)
    config.unlink()
    with pytest.raises(ValidationError):
        context(token="t\xe9")
    with pytest.raises(ValidationError):
        context(server="http://127.0.0.1:80a")

    bom = cli("login", "https://enclave.example.org", "--token-file",
              token_file(tmp_path, b"\xef\xbb\xbf" + TOKEN.encode() + b"\r\n"))
    assert code(bom) == 0 and fake.requests[-1].headers["Authorization"] == f"Bearer {TOKEN}"
    latin1 = cli("login", "https://enclave.example.org", "--token-file", token_file(tmp_path, b"s\xe9cret\n"))
    assert code(latin1) == 1 and isinstance(latin1.exception, InputError)
    assert latin1.exception.problem.where == "--token-file"
    bad_url = cli("login", "http://127.0.0.1:80a", "--token-file", token_file(tmp_path))
    assert code(bad_url) == 1 and isinstance(bad_url.exception, InputError)
    assert bad_url.exception.problem.where == "SERVER"



@pytest.mark.parametrize(("text", "at"), [
    (f"contexts:\n- name: a\n  server: https://e.example.org\n  token: {TOKEN}: x\n", "line 4, column 28"),
    (f"contexts:\n- name: a\n  token: {TOKEN}\n  server: *{TOKEN}\n", "line 4, column 11"),  # an alias
    (f'contexts:\n- name: a\n  token: "{TOKEN}\x07"\n', "line 3, column 29"),  # a character YAML refuses
    (f"current-context: a\n{TOKEN}: pasted\n", None),  # valid YAML; the token is a key that is not a field
])
def test_a_config_error_never_quotes_the_file(client_home: Path, text: str, at: str | None) -> None:
    config = client_home / "config.yaml"
    client_home.mkdir(mode=0o700)
    config.write_text(text)
    os.chmod(config, 0o600)
    with pytest.raises(InputError) as refused:
        load_config(config)
    assert TOKEN not in str(refused.value) and refused.value.problem.where == str(config)
    assert refused.value.__cause__ is None  # a traceback showing the cause would print yaml's or pydantic's quote
    if at is not None:
        assert f"not valid YAML at {at}" in str(refused.value)
    listed = cli("config", "get-contexts")
    assert code(listed) == 1 and TOKEN not in listed.output and TOKEN not in str(listed.exception)
