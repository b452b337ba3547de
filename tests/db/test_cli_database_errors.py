"""A database given wrongly, or one that does not answer, through the CLI: `enclave.cli.run` promises that an
enclave error becomes its message and exit code, "never a traceback" — one `error:` line and a non-zero exit.
Run as the program itself, as the review did (tests/cli/test_no_empty_database.py does the same)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.pg import PostgresServer

COMMANDS = (("accounts", "list"), ("db", "status"), ("journal", "verify"))


def enclave(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ENCLAVE_")}
    return subprocess.run([sys.executable, "-c", "from enclave.main import main; main()", *args],
                          env=clean | {"ENCLAVE_HOME": str(home), **env}, capture_output=True, text=True,
                          timeout=120, check=False)


def said(done: subprocess.CompletedProcess[str]) -> str:
    return done.stdout + done.stderr


def assert_one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    out = said(done)
    assert done.returncode != 0, out
    assert "Traceback" not in out, out
    assert out.lstrip().startswith("error:"), out
    return " ".join(out.split())


def url_file(home: Path, url: str) -> Path:
    """A PostgreSQL URL is taken in local mode only from a 0600 file of the OS user's (docs/accounts.md)."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "database-url"
    path.write_text(url + "\n")
    path.chmod(0o600)
    return path


@pytest.mark.parametrize("args", [*COMMANDS, ("serve", "--no-broker", "--port", "1")])
def test_a_value_that_is_no_url_names_where_it_came_from_and_the_forms_taken(tmp_path: Path,
                                                                            args: tuple[str, ...]) -> None:
    out = assert_one_error_line(enclave(tmp_path / "home", *args, ENCLAVE_DB="notaurl"))
    assert "$ENCLAVE_DB" in out and "sqlite:///" in out and "postgresql+psycopg://" in out


@pytest.mark.parametrize("args", COMMANDS)
def test_an_unreachable_server_is_one_error_line(tmp_path: Path, args: tuple[str, ...]) -> None:
    home = tmp_path / "home"
    path = url_file(home, "postgresql+psycopg://postgres@127.0.0.1:1/enclave")  # nothing listens on port 1
    out = assert_one_error_line(enclave(home, *args, ENCLAVE_DB_FILE=str(path)))
    assert "127.0.0.1:1" in out


@pytest.mark.parametrize("args", COMMANDS)
def test_a_database_the_server_does_not_have_is_one_error_line(tmp_path: Path, args: tuple[str, ...],
                                                              postgres_server: PostgresServer) -> None:
    home = tmp_path / "home"
    path = url_file(home, postgres_server.url("no_such_database"))
    out = assert_one_error_line(enclave(home, *args, ENCLAVE_DB_FILE=str(path)))
    assert "no_such_database" in out


@pytest.mark.parametrize("args", COMMANDS)
def test_a_driver_that_is_not_installed_names_the_package_to_install(tmp_path: Path, args: tuple[str, ...]) -> None:
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("asyncpg is installed here")
    home = tmp_path / "home"
    path = url_file(home, "postgresql+asyncpg://postgres@127.0.0.1:5432/enclave")
    out = assert_one_error_line(enclave(home, *args, ENCLAVE_DB_FILE=str(path)))
    assert "asyncpg" in out and "install" in out


def newer_database(tmp_path: Path) -> tuple[Path, str]:
    """A SQLite database migrated by a newer enclave: at a schema revision this one does not know."""
    home = tmp_path / "home"
    db = tmp_path / "newer.db"
    url = f"sqlite:///{db}"
    assert enclave(home, "db", "migrate", ENCLAVE_DB=url).returncode == 0
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9999_from_a_newer_enclave'")
    return home, url


@pytest.mark.parametrize("args", [("db", "migrate"), ("accounts", "list"), ("serve", "--no-broker", "--port", "1")])
def test_a_database_of_a_newer_enclave_says_upgrade_enclave_not_migrate(tmp_path: Path, args: tuple[str, ...]) -> None:
    home, url = newer_database(tmp_path)
    out = assert_one_error_line(enclave(home, *args, ENCLAVE_DB=url))
    assert "9999_from_a_newer_enclave" in out
    assert "upgrade enclave" in out
    # This enclave's `db migrate` cannot bring a database back to an older schema: never advised as the fix.
    assert "fix: on the server host, as the database's owner: `enclave db migrate`" not in out
