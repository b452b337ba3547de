"""Two `enclave serve` replicas starting together on one empty PostgreSQL database — the rendered Deployment runs
two (docs/deploy.md, `api.yaml`: "Two replicas: both serve the API"). Both must come up: one migrates the schema and
bootstraps the administrator, the other waits and finds it done; and the one that created the administrator holds
its bootstrap token (docs/deploy.md step 8: "on an empty database the replica that created it writes the bootstrap
token").

Each replica is a thread with its own engine (as a pod has its own). The interleaving the review found is forced,
not hoped for: the first replica stops just before it commits, or just before it onboards the broker's account,
until the second is either done or waiting on a PostgreSQL lock (pg_stat_activity), whichever comes first. No
assertion is about time.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import event

from enclave.accounts import lifecycle
from enclave.db import Database
from enclave.errors import ExternalError
from enclave.services.factory import BROKER_ACTOR, Factory
from enclave.spec.defaults import DEFAULT_SPEC
from enclave.spec.load import load
from tests.pg import PostgresServer

SPEC = load(DEFAULT_SPEC)
BOUND = 120.0
"""How long a step may take before the test gives up (a bound for a loaded machine, never an assertion)."""


@pytest.fixture
def empty(postgres_server: PostgresServer) -> Iterator[str]:
    name = f"replicas_{uuid.uuid4().hex[:10]}"
    url = postgres_server.create_database(name)
    yield url
    postgres_server.drop_database(name)


def replica(url: str, name: str, tmp_path: Path) -> Database:
    """One replica's engine, named in pg_stat_activity; the replicas share the journal key, as their pods would."""
    return Database(f"{url}?application_name={name}", journal_key=tmp_path / "journal-key",
                    journal_anchor=tmp_path / f"{name}.anchor")


def done_or_waiting_on_a_lock(server: PostgresServer, name: str, thread: threading.Thread) -> None:
    """Return once ``thread`` (replica ``name``) has finished or its connection waits on a lock."""
    finished = threading.Event()
    while not finished.wait(0.05):
        if not thread.is_alive():
            return
        with psycopg.connect(server.dsn("postgres"), autocommit=True) as conn:
            waits = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                                 "AND wait_event_type = 'Lock'", (name,)).fetchone()
        if waits and waits[0]:
            return


def run(*targets: tuple[str, Callable[[], Any]]) -> tuple[dict[str, Any], dict[str, threading.Thread]]:
    out: dict[str, Any] = {}

    def wrap(name: str, fn: Callable[[], Any]) -> None:
        try:
            out[name] = fn()
        except Exception as exc:  # noqa: BLE001 - reported by the assertions
            out[name] = exc

    threads = {name: threading.Thread(target=wrap, args=(name, fn), name=name, daemon=True) for name, fn in targets}
    return out, threads


def test_two_replicas_migrating_one_empty_database_one_migrates_and_the_other_finds_it_done(
        postgres_server: PostgresServer, empty: str, tmp_path: Path) -> None:
    a, b = replica(empty, "replica-a", tmp_path), replica(empty, "replica-b", tmp_path)
    at_commit, go_on = threading.Event(), threading.Event()

    @event.listens_for(a.engine, "commit")
    def hold(_connection: Any) -> None:  # replica A has migrated; its transaction is not committed yet
        at_commit.set()
        assert go_on.wait(BOUND)

    out, threads = run(("A", a.migrate), ("B", b.migrate))
    threads["A"].start()
    assert at_commit.wait(BOUND), out
    threads["B"].start()
    done_or_waiting_on_a_lock(postgres_server, "replica-b", threads["B"])
    go_on.set()
    for thread in threads.values():
        thread.join(BOUND)
    assert out == {"A": None, "B": None}
    head = ScriptDirectory.from_config(a.alembic_config()).get_current_head()
    assert a.current_revisions() == b.current_revisions() == {head}
    a.dispose()
    b.dispose()


def test_two_replicas_bootstrapping_one_database_both_come_up_and_one_holds_the_token(
        postgres_server: PostgresServer, empty: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Database(empty, journal_key=tmp_path / "journal-key", journal_anchor=tmp_path / "migrate.anchor").migrate()
    a, b = Factory(SPEC, replica(empty, "replica-a", tmp_path)), Factory(SPEC, replica(empty, "replica-b", tmp_path))
    reached, go_on = threading.Event(), threading.Event()
    onboard = lifecycle.onboard

    def paused_onboard(*args: Any, **kwargs: Any) -> Any:  # A: about to onboard the broker's account
        if threading.current_thread().name == "A":
            reached.set()
            assert go_on.wait(BOUND)
        return onboard(*args, **kwargs)

    monkeypatch.setattr(lifecycle, "onboard", paused_onboard)
    out, threads = run(("A", lambda: a.ensure_accounts("admin")), ("B", lambda: b.ensure_accounts("admin")))
    threads["A"].start()
    assert reached.wait(BOUND), out
    threads["B"].start()
    done_or_waiting_on_a_lock(postgres_server, "replica-b", threads["B"])
    go_on.set()
    for thread in threads.values():
        thread.join(BOUND)
    assert not [v for v in out.values() if isinstance(v, Exception)], out
    tokens = [v for v in out.values() if v is not None]
    assert len(tokens) == 1 and tokens[0].startswith("enc_"), out
    assert b.tokens.authenticate(tokens[0]).username == "admin"
    assert len(a.tokens.listing("admin", "admin")) == 1
    assert BROKER_ACTOR in [acc.username for acc in a.accounts.list_accounts("admin")]
    a.db.dispose()
    b.db.dispose()


def test_a_start_that_fails_after_making_the_admin_leaves_no_admin_without_its_token(
        database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """The replica that creates the administrator is the one that writes its token (docs/deploy.md step 8): a start
    that fails in between (here the broker's onboarding: a lost connection, a rival) must not leave an administrator
    for whom no token will ever be written — the next start bootstraps and writes it."""
    factory = Factory(SPEC, database)
    onboard = lifecycle.onboard
    calls = []

    def failing_once(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        if len(calls) == 1:
            raise ExternalError("the database went away")
        return onboard(*args, **kwargs)

    monkeypatch.setattr(lifecycle, "onboard", failing_once)
    with pytest.raises(ExternalError):
        factory.ensure_accounts("admin")
    token = factory.ensure_accounts("admin")  # the restart
    assert token is not None and factory.tokens.authenticate(token).username == "admin"
    assert factory.ensure_accounts("admin") is None  # a later restart mints nothing
