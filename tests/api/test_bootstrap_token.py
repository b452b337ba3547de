"""The bootstrap token never reaches a log: a server whose stderr is not a terminal (a container: the kubelet
keeps stdout and stderr alike, kubernetes.io/docs/concepts/cluster-administration/logging/) writes it to a file of
the enclave home readable by its owner only and says only where (enclave.logs: "Secrets never reach a log")."""

from __future__ import annotations

import io
import logging
import stat
import sys
from pathlib import Path

import pytest

from enclave.api import launch

TOKEN = "enc_" + "a" * 16 + "_" + "b" * 43


class _Pipe(io.StringIO):
    def isatty(self) -> bool:
        return False


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _announce(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, err: io.StringIO,
              demo: dict[str, str] | None = None) -> tuple[str, str]:
    out = io.StringIO()
    monkeypatch.setenv("ENCLAVE_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    monkeypatch.setattr(launch.console, "file", err)  # JSON mode: the banner goes to stderr
    launch._announce_tokens("http://127.0.0.1:8000", "admin", TOKEN, demo or {})
    return out.getvalue(), err.getvalue()


def test_non_tty_stderr_gets_no_token_and_a_0600_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="enclave")
    out, err = _announce(monkeypatch, tmp_path, _Pipe(), {"alice": "enc_" + "c" * 40})
    assert "enc_" not in out and "enc_" not in err
    assert not any("enc_" in r.getMessage() or "enc_" in str(getattr(r, "fields", "")) for r in caplog.records)
    path = tmp_path / "home" / launch.TOKEN_FILE
    assert path.read_text().strip() == TOKEN
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert str(path) in err                                     # says where, and only that
    demo = tmp_path / "home" / launch.DEMO_TOKEN_FILE
    assert stat.S_IMODE(demo.stat().st_mode) == 0o600


def test_an_existing_file_is_made_owner_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / launch.TOKEN_FILE).write_text("old")
    (home / launch.TOKEN_FILE).chmod(0o644)
    _announce(monkeypatch, tmp_path, _Pipe())
    assert stat.S_IMODE((home / launch.TOKEN_FILE).stat().st_mode) == 0o600


def test_a_person_at_a_terminal_sees_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _out, err = _announce(monkeypatch, tmp_path, _Tty())
    assert TOKEN in err
    assert not (tmp_path / "home" / launch.TOKEN_FILE).exists()
