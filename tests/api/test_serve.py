"""`enclave serve` as a person runs it: a fresh database, a bootstrap admin token written 0600 to the
enclave home (its output is not a terminal), the API up on
loopback, the broker loop running against the twin."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from enclave.api.server import free_port


def test_enclave_serve_on_a_fresh_machine(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "ENCLAVE_HOME": str(tmp_path), "PYTHONUNBUFFERED": "1"}
    env.pop("ENCLAVE_DB", None)
    enclave = Path(sys.executable).parent / "enclave"
    proc = subprocess.Popen([str(enclave), "serve", "--port", str(port), "--twin", "one-night",
                             "--interval", "0.2", "--speed", "600"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        lines: list[str] = []
        token = None
        deadline = time.monotonic() + 90
        assert proc.stdout is not None
        while token is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            assert "enc_" not in line, "stdout is a pipe, not a terminal: the token is not printed"
            found = re.search(r"admin token for admin: written to (\S+)", line)
            token = Path(found.group(1)).read_text().strip() if found else None
        assert token, "".join(lines)
        assert any(f"http://127.0.0.1:{port}/" in x for x in lines)
        headers = {"Authorization": f"Bearer {token}"}
        base = f"http://127.0.0.1:{port}"
        while True:
            try:
                status = httpx.get(f"{base}/api/v1/broker/status", headers=headers, timeout=5).json()
            except httpx.TransportError:
                status = {}
            if status.get("cycles", 0) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert status["running"] is True and status["cycles"] >= 2, status
        assert status["backend"] == "twin (one-night)"
        assert (tmp_path / "enclave.db").exists()
        assert "enclave_pool_capacity_cores" in httpx.get(f"{base}/metrics", timeout=5).text
    finally:
        proc.terminate()
        proc.wait(20)
    assert not any("token=" in x for x in lines), "a token never travels in a URL"
    # A restart mints no new bootstrap token (issue 16: every start used to print a fresh 7-day '*' token).
    again = subprocess.Popen([str(enclave), "serve", "--port", str(free_port()), "--no-broker"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        assert again.stdout is not None
        second = []
        while not any("no token printed" in x for x in second) and time.monotonic() < deadline + 60:
            line = again.stdout.readline()
            if not line:
                break
            second.append(line)
    finally:
        again.terminate()
        again.wait(20)
    assert any("no token printed" in x for x in second), "".join(second)
    assert not any("enc_" in x for x in second), "".join(second)
