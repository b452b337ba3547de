"""A real PostgreSQL server for tests: initdb in a temporary directory, started on 127.0.0.1 and a free
port, stopped at the end of the session. Reusable by any suite:

    from tests.pg import postgres_server      # session fixture -> PostgresServer
    server.create_database("name", template=None) -> URL

initdb refuses to run as root, so when the tests run as root the server runs as the `postgres` user.
Set ENCLAVE_TEST_PG_BIN to another PostgreSQL bin directory if 15 is not where Debian puts it.
"""

from __future__ import annotations

import atexit
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest


def _bin_dir() -> Path:
    env = os.environ.get("ENCLAVE_TEST_PG_BIN")
    if env:
        return Path(env)
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); "
                           "run `bash scripts/test-deps.sh` or set ENCLAVE_TEST_PG_BIN")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="enclave-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.user = "postgres"
        self._as: list[str] = []
        if os.geteuid() == 0:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self._run([str(self.bin / "initdb"), "-D", str(self.data), "-U", self.user, "--auth=trust",
                   "--encoding=UTF8", "--no-sync"])
        # fsync off: a test server never needs durability, and it keeps the suite fast.
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -F -c max_connections=200"
        self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.root / "log"),
                   "-w", "-t", "60", "start"])
        self.running = True
        self._wait()

    def _run(self, cmd: list[str]) -> None:
        result = subprocess.run(self._as + cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            log = self.root / "log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed ({result.returncode}): {result.stderr}{tail}")

    def _wait(self) -> None:
        deadline = time.monotonic() + 120  # a start-up bound only, generous for a loaded machine
        while True:
            try:
                with psycopg.connect(self.dsn("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user={self.user} dbname={database}"

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str, template: str | None = None) -> str:
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            # FILE_COPY: with fsync off this is ~10x faster than PostgreSQL 15's default WAL_LOG copy.
            copy = f' TEMPLATE "{template}" STRATEGY FILE_COPY' if template else ""
            conn.execute(f'CREATE DATABASE "{name}"{copy}')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def stop(self) -> None:
        if not self.running:
            return
        self.running = False
        try:
            self._run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"])
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


_server: PostgresServer | None = None


def shared_server() -> PostgresServer:
    """One server per test process, however many suites ask for it; stopped when the process ends."""
    global _server
    if _server is None or not _server.running:
        _server = PostgresServer()
        atexit.register(_server.stop)
    return _server


def stop_shared_server() -> None:
    if _server is not None:
        _server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    yield shared_server()
    stop_shared_server()


# Fresh, migrated databases per test, copied from a template migrated once per process: migrating
# every test would dominate the suite's run time.
_templates: dict[str, str] = {}
_counter = 0


def _sqlite_template() -> str:
    from enclave.db import Database

    if "sqlite" not in _templates:
        path = Path(tempfile.mkdtemp(prefix="enclave-sqlite-")) / "template.db"
        db = Database(f"sqlite:///{path}")
        db.migrate()
        db.dispose()  # closing the last connection checkpoints the WAL into the file we copy
        assert not path.with_name(path.name + "-wal").exists()
        _templates["sqlite"] = str(path)
    return _templates["sqlite"]


def _pg_template(server: PostgresServer) -> str:
    from enclave.db import Database

    key = f"pg:{server.port}"
    if key not in _templates:
        db = Database(server.create_database("enclave_template"))
        db.migrate()
        db.dispose()
        _templates[key] = "enclave_template"
    return _templates[key]


def private_copy(source: str | Path, target: Path) -> None:
    """Copy a SQLite database file private, as enclave creates one (0600): ``shutil.copyfile`` leaves it 0644 under
    the usual umask, which local mode and the servers refuse (enclave.services.local.PRIVATE)."""
    shutil.copyfile(source, target)
    os.chmod(target, 0o600)


def copy_sqlite(source: Path, target: Path) -> None:
    """Copy a SQLite enclave database with its journal key and anchor (enclave.journal.seal): the journal of
    a copy verifies only with the key and anchor it was written with."""
    private_copy(source, target)
    for suffix in (".journal-key", ".journal-anchor"):
        side = source.with_name(source.stem + suffix)
        if side.exists():
            shutil.copy2(side, target.with_name(target.stem + suffix))


def fresh_database(kind: str, tmp_path: Path, server: PostgresServer | None = None) -> Iterator[object]:
    """Yield a migrated enclave.db.Database of ``kind`` ('sqlite' or 'postgresql'), dropped afterwards."""
    from enclave.db import Database

    global _counter
    if kind == "sqlite":
        target = tmp_path / "enclave.db"
        private_copy(_sqlite_template(), target)
        db = Database(f"sqlite:///{target}")
        yield db
        db.dispose()
        return
    assert server is not None
    _counter += 1
    name = f"t{os.getpid()}_{_counter}"
    # The journal's key and anchor live outside the database: here in the test's own directory, named through
    # the environment too, so a CLI command the test runs on this database (ENCLAVE_DB) finds them.
    key, anchor = tmp_path / "pg.journal-key", tmp_path / "pg.journal-anchor"
    db = Database(server.create_database(name, template=_pg_template(server)), journal_key=key, journal_anchor=anchor)
    saved = {k: os.environ.get(k) for k in ("ENCLAVE_JOURNAL_KEY", "ENCLAVE_JOURNAL_ANCHOR")}
    os.environ.update(ENCLAVE_JOURNAL_KEY=str(key), ENCLAVE_JOURNAL_ANCHOR=str(anchor))
    try:
        yield db
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    db.dispose()
    server.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[object]:
    """A fresh migrated Database, once on SQLite and once on a real PostgreSQL server."""
    server = request.getfixturevalue("postgres_server") if request.param == "postgresql" else None
    yield from fresh_database(request.param, tmp_path, server)
