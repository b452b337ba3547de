"""`enclave serve` logs as an operator's log collector reads them: JSON lines on stdout, from a real process —
start-up, each request (method, path without its query, status, duration, caller's account), each broker
action applied or refused with actor and reason — and never a token (issue 16 item 5)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from enclave.api.server import free_port
from enclave.db import Database
from enclave.journal import query, verify
from enclave.logs import configure, settings


def _serve(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], Path]:
    env = {**os.environ, "ENCLAVE_HOME": str(tmp_path), "PYTHONUNBUFFERED": "1", "ENCLAVE_LOG_FORMAT": "json"}
    env.pop("ENCLAVE_DB", None)
    env.pop("ENCLAVE_LOG_LEVEL", None)
    out = tmp_path / "stdout.log"
    enclave = Path(sys.executable).parent / "enclave"
    proc = subprocess.Popen([str(enclave), "serve", *args], stdout=out.open("w"), stderr=subprocess.PIPE,
                            text=True, env=env)
    return proc, out


def _token(proc: subprocess.Popen[str], seconds: float = 90) -> str:
    """The bootstrap token from the file the banner names: stderr is a pipe here, not a terminal, so the token
    is written 0600 in the enclave home rather than printed (a log collector keeps both streams)."""
    assert proc.stderr is not None
    deadline = time.monotonic() + seconds
    seen = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        assert "enc_" not in line, line
        found = re.search(r"admin token for admin: written to (\S+)", line)
        if found:
            return Path(found.group(1)).read_text().strip()
    raise AssertionError("".join(seen))


def _events(out: Path) -> list[dict[str, Any]]:
    lines = [x for x in out.read_text().splitlines() if x.strip()]
    return [json.loads(x) for x in lines]  # every line is one JSON object: a non-JSON line fails here


def test_serve_writes_json_logs_and_never_a_token(tmp_path: Path) -> None:
    port = free_port()
    proc, out = _serve(tmp_path, "--port", str(port), "--twin", "one-night", "--interval", "0.2", "--speed", "600")
    base = f"http://127.0.0.1:{port}"
    try:
        token = _token(proc)
        auth = {"Authorization": f"Bearer {token}"}
        deadline = time.monotonic() + 90
        status: dict[str, Any] = {}
        while time.monotonic() < deadline and status.get("actions_total", 0) < 1:
            with contextlib.suppress(httpx.TransportError):
                # A secret in the query string must not reach the log (the path is logged without it).
                status = httpx.get(f"{base}/api/v1/broker/status?access_token={token}", headers=auth,
                                   timeout=5).json()
            time.sleep(0.3)
        assert status.get("actions_total", 0) >= 1, status
        assert httpx.get(f"{base}/api/v1/accounts", timeout=5).status_code == 401
        forged = "enc_" + "A" * 16 + "_" + "B" * 43
        assert httpx.get(f"{base}/api/v1/accounts", headers={"Authorization": f"Bearer {forged}"},
                         timeout=5).status_code == 401
        # The bootstrap admin holds neither HTCondor role: the manual relabel is refused, and logged so.
        refused = httpx.post(f"{base}/api/v1/broker/actions", headers=auth, timeout=5,
                             json={"kind": "relabel", "startd": "condor-001", "to_pool": "general", "reason": "try"})
        assert refused.status_code == 403, refused.text
        time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(20)
    text = out.read_text()
    assert token not in text and forged not in text and "enc_" not in text
    # The twin's moves went to its own scratch store: the served database's journal has none (issue 16).
    db = Database(f"sqlite:///{tmp_path / 'enclave.db'}")
    with db.session() as session:
        assert query(session, action="broker.*") == [] and verify(session) > 0
    db.dispose()
    events = _events(out)
    start = next(e for e in events if e["message"] == "enclave serve starting")
    assert start["database"] == "sqlite" and start["broker"] == "twin (one-night)" and start["version"]
    assert start["level"] == "info" and start["logger"] == "enclave.serve"
    requests = [e for e in events if e["logger"] == "enclave.api.access"]
    ok = [e for e in requests if e["path"] == "/api/v1/broker/status" and e["status"] == 200]
    assert ok and all(e["account"] == "admin" and e["method"] == "GET" and e["duration_ms"] >= 0 for e in ok)
    anonymous = [e for e in requests if e["path"] == "/api/v1/accounts"]
    assert [e["status"] for e in anonymous] == [401, 401] and all(e["account"] is None for e in anonymous)
    applied = [e for e in events if e["message"] == "broker action applied"]
    assert len(applied) >= status["actions_total"] > 0
    assert all(e["actor"] == "enclave-broker" and e["reason"] and e["kind"] and e["target"] for e in applied)
    assert all(e["where"] == "twin (one-night)" for e in applied)
    no = [e for e in events if e["message"] == "broker action refused"]
    assert any(e["actor"] == "admin" and e["kind"] == "Relabel" and e["error"] == "PermissionDenied"
               and "batch.relabel" in e["cause"] and e["reason"] == "try" for e in no), no
    assert any(e["message"] == "broker loop leads" for e in events)
    why = [e for e in events if e["message"] == "request refused"]
    assert any(e["path"] == "/api/v1/broker/actions" and e["status"] == 403 and e["account"] == "admin"
               and "batch.relabel" in e["cause"] for e in why), why
    assert sum(e["path"] == "/api/v1/accounts" and e["status"] == 401 for e in why) == 2


def test_serve_refuses_to_pick_the_twin_for_you(tmp_path: Path) -> None:
    """Without --live, the broker loop needs --twin SCENARIO named (or --no-broker): nothing is created."""
    from enclave.errors import InputError
    from enclave.main import app

    env = {"ENCLAVE_HOME": str(tmp_path), "ENCLAVE_DB": ""}
    result = CliRunner().invoke(app, ["serve", "--port", str(free_port())], env=env)
    assert isinstance(result.exception, InputError)
    assert "--twin one-week" in str(result.exception) and "--no-broker" in str(result.exception)
    assert not (tmp_path / "enclave.db").exists()
    both = CliRunner().invoke(app, ["serve", "--live", "--twin", "one-night"], env=env)
    assert isinstance(both.exception, InputError) and "name one target" in str(both.exception)


@pytest.mark.parametrize(("level", "fmt", "where"), [("loud", None, "--log-level"), (None, "xml", "--log-format")])
def test_bad_log_options_are_refused(level: str | None, fmt: str | None, where: str) -> None:
    from enclave.errors import InputError

    with pytest.raises(InputError) as err:
        settings(level, fmt)
    assert err.value.problems[0].where == where


def test_environment_chooses_level_and_format(monkeypatch: pytest.MonkeyPatch) -> None:
    import io
    import logging

    from enclave.logs import event, logger

    monkeypatch.setenv("ENCLAVE_LOG_LEVEL", "warning")
    monkeypatch.setenv("ENCLAVE_LOG_FORMAT", "text")
    buf = io.StringIO()
    configure(stream=buf)
    try:
        log = logger("test")
        event(log, logging.INFO, "quiet", n=1)
        event(log, logging.WARNING, "heard", who="a b", secret="enc_" + "x" * 20)
    finally:
        configure(stream=io.StringIO(), level="info")
    lines = buf.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert " warning " in lines[0] and "enclave.test: heard" in lines[0] and 'who="a b"' in lines[0]
    assert "x" * 20 not in lines[0] and "enc_[redacted]" in lines[0]
