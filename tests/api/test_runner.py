"""The broker loop inside the service: against the twin (the embedded default) and wired to a live cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from enclave.api.service import Service
from enclave.api.wiring import build_service, live_runner
from enclave.broker.churn import lost_core_s
from enclave.broker.decide import BROKER_ACTOR
from enclave.db import Database
from enclave.errors import ExternalError
from enclave.journal import query, verify
from enclave.services.factory import Factory
from enclave.spec import EnclaveSpec
from tests.api.conftest import ADMIN


@pytest.fixture
def fresh_db(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'e.db'}")
    db.migrate()
    return db


def test_broker_actions_in_the_twin_are_role_checked_and_journaled_apart(fresh_db: Database,
                                                                         spec: EnclaveSpec) -> None:
    """The twin's moves are journaled in the twin's own scratch store, never in the database the service
    serves (issue 16: `enclave serve` without --live used to journal simulated moves there)."""
    assert Factory(spec, fresh_db).ensure_accounts(ADMIN) is not None
    with fresh_db.session() as s:
        served_before = verify(s)
    service = build_service(Factory(spec, fresh_db), scenario="one-night", sim_seconds_per_cycle=600)
    runner = service.runner
    assert runner is not None
    for _ in range(4):
        runner.step()
    assert runner.cycles == 4 and runner.actions_total > 0, runner.last_error
    with runner.broker.db.session() as s:  # the twin's scratch store
        entries = query(s, actor=BROKER_ACTOR)
        assert len(entries) == runner.actions_total
        assert all(e.action.startswith("broker.") and e.reason for e in entries)
        verify(s)
    assert runner.broker.db.url != fresh_db.url
    with fresh_db.session() as s:
        assert query(s, action="broker.*") == []
        assert verify(s) == served_before, "a simulated move entered the served journal"
    service.factory.close()
    text = service.metrics.exposition().decode()
    assert 'enclave_broker_actions_total{kind="Relabel"}' in text
    assert 'enclave_pool_capacity_cores{pool="prompt"}' in text
    # Capacity per pool over time, what the dashboard draws.
    series = service.history.series()
    assert len(series["t"]) == 5 and set(series["capacity"]) == set(spec.pools)


def test_broker_without_its_roles_changes_nothing(fresh_db: Database, spec: EnclaveSpec) -> None:
    """No broker account (no bootstrap ran): every action is refused and neither twin nor journal moves."""
    service = build_service(Factory(spec, fresh_db), scenario="one-night", sim_seconds_per_cycle=600)
    runner = service.runner
    assert runner is not None
    before = [(s.name, s.pool) for s in runner.observe().startds]
    errors = []
    for _ in range(4):
        runner.step()
        errors.append(runner.last_error)
    assert runner.actions_total == 0
    assert any(e and "no account named 'enclave-broker'" in e for e in errors), errors
    assert [(s.name, s.pool) for s in runner.observe().startds] == before
    with fresh_db.session() as s:
        assert verify(s) == 0


def test_live_runner_reports_an_unreachable_cluster(fresh_db: Database, spec: EnclaveSpec, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("""apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
""")
    runner = live_runner(Service(Factory(spec, fresh_db)), kubeconfig=kubeconfig, collector="127.0.0.1:9")
    assert not runner.simulate and runner.backend_name == "live"
    with pytest.raises(ExternalError):
        runner.observe()


def test_live_runner_refuses_a_missing_kubeconfig(fresh_db: Database, spec: EnclaveSpec, tmp_path: Path) -> None:
    with pytest.raises(ExternalError, match="kubeconfig"):
        live_runner(Service(Factory(spec, fresh_db)), kubeconfig=tmp_path / "nope")


def test_churn_per_night_in_the_metrics_and_from_the_journal(fresh_db: Database, spec: EnclaveSpec) -> None:
    """Actions per night and evicted core-hours (issue 15): the loop counts what it applied, as the journal
    records it; the journal read back night by night gives the same figures."""
    assert Factory(spec, fresh_db).ensure_accounts(ADMIN) is not None
    service = build_service(Factory(spec, fresh_db), scenario="one-night", sim_seconds_per_cycle=600)
    runner = service.runner
    assert runner is not None
    for _ in range(4):
        runner.step()
    assert runner.actions_total > 0 and runner.churn is not None, runner.last_error
    journaled = runner.broker.churn(ADMIN).nights()
    assert journaled == runner.churn.nights()
    assert sum(n.actions for n in journaled) == runner.actions_total
    tonight = runner.churn.of(runner.observe().now)
    text = service.metrics.exposition().decode()
    assert f"enclave_broker_night_actions {float(tonight.actions)}" in text
    assert f"enclave_broker_night_evicted_core_hours {float(tonight.evicted_core_hours)}" in text
    with runner.broker.db.session() as s:
        recorded = sum(lost_core_s(e.after) for e in query(s, action="broker.*"))
    counted = service.metrics.registry.get_sample_value("enclave_broker_evicted_core_seconds_total")
    assert counted == pytest.approx(recorded)
    service.factory.close()
