"""The enclave database itself: bring its schema up to date, tell where it is and at which revision."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from enclave.db import Database
from enclave.db.core import default_url
from enclave.services.local import parse_url


@dataclass(frozen=True)
class DatabaseStatus:
    url: str
    """The URL with any password hidden."""
    revisions: tuple[str, ...]
    """Alembic heads the schema is at; empty when never migrated."""


def _status(db: Database) -> DatabaseStatus:
    return DatabaseStatus(db.safe_url, tuple(sorted(db.current_revisions())))


def _open(url: str | None) -> Database:
    """The database ``url`` names (default: $ENCLAVE_DB …); an unparsable URL is an InputError naming where it came
    from (``local.parse_url``). A database that does not answer, or a driver that is not installed, is refused by
    ``Database`` itself (ExternalError, InputError)."""
    url = url or default_url()
    parse_url(url)
    return Database(url)


def migrate(url: str | None = None) -> DatabaseStatus:
    db = _open(url)
    try:
        db.migrate()
        return _status(db)
    finally:
        db.dispose()


def status(url: str | None = None) -> DatabaseStatus:
    db = _open(url)
    try:
        return _status(db)
    finally:
        db.dispose()


READY_TIMEOUT_SECONDS = 1.0
"""How long the readiness check waits for the database: well inside the probe's own timeout (enclave.cluster.deploy
``API_PROBES``), so the kubelet reads a 503 that says why rather than a timeout that says nothing."""


def unready(db: Database, timeout: float = READY_TIMEOUT_SECONDS) -> str | None:
    """Why this replica cannot serve now, or None: a trivial query (``SELECT 1``) on its database within
    ``timeout`` seconds. Only the database: every request needs it, while HTCondor or the Kubernetes API being
    down is a degraded service the pod should still answer for (kubernetes.io, "Configure Liveness, Readiness and
    Startup Probes", "Define readiness probes": a pod not ready is taken out of its Service's endpoints — taking
    every replica out for an outside system would turn a partial outage into a total one).

    The query runs in a thread of its own, waited for at most ``timeout``: a database that hangs (a lost network
    path, a full connection pool) is reported as one, not waited out by the caller."""
    outcome: list[str | None] = []

    def query() -> None:
        try:
            db.ping()  # the SQL stays in enclave.db (tests/architecture/test_layers.py)
            outcome.append(None)
        except Exception as exc:  # any failure is the answer: the database cannot serve requests
            outcome.append(f"{type(exc).__name__}: {exc}".splitlines()[0])

    worker = threading.Thread(target=query, name="enclave-ready", daemon=True)
    worker.start()
    worker.join(timeout)
    if not outcome:
        return f"the database did not answer SELECT 1 within {timeout:g} s"
    return None if outcome[0] is None else f"the database did not answer SELECT 1: {outcome[0]}"
