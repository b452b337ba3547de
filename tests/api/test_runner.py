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
    # One try per call (urllib3 would retry 3 times, each up to the read timeout: past the 90 s Lease).
    retries = runner.backend.kube.api.rest_client.pool_manager.connection_pool_kw["retries"]  # type: ignore[attr-defined]
    assert retries.total == 0


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
    # No per-process "this night" gauges: they restarted at 0 with each process (per night: increase() over the
    # counters, prometheus.io/docs/practices/instrumentation, "Counter vs. gauge").
    text = service.metrics.exposition().decode()
    assert "enclave_broker_night_" not in text
    with runner.broker.db.session() as s:
        recorded = sum(lost_core_s(e.after) for e in query(s, action="broker.*"))
    counted = service.metrics.registry.get_sample_value("enclave_broker_evicted_core_seconds_total")
    assert counted == pytest.approx(recorded)
    service.factory.close()


def _twin_runner(fresh_db: Database, spec: EnclaveSpec):  # type: ignore[no-untyped-def]
    assert Factory(spec, fresh_db).ensure_accounts(ADMIN) is not None
    service = build_service(Factory(spec, fresh_db), scenario="one-night", sim_seconds_per_cycle=600)
    assert service.runner is not None
    return service, service.runner


def test_a_lease_that_cannot_be_read_stands_the_loop_by_and_it_goes_on(fresh_db: Database, spec: EnclaveSpec) -> None:
    """The Lease check failing (an API server down; RBAC refusing the Lease) is reported and counted, the replica
    stands by, and the loop asks again: it does not end (review: the thread died, silently)."""
    service, runner = _twin_runner(fresh_db, spec)
    asked = []

    def leader() -> bool:
        asked.append(1)
        if len(asked) < 3:
            raise ExternalError("Kubernetes API: the Lease htcondor/enclave-broker is refused (403)")
        runner._stop.set()  # asked a third time: the loop went on; the test is done
        return False

    runner.leader, runner.wall_seconds_per_cycle = leader, 0.01
    runner.start()
    assert runner._thread is not None
    runner._thread.join(10)
    assert len(asked) == 3 and not runner.running
    assert runner.last_error is not None and "403" in runner.last_error
    assert runner.leading is False  # what /metrics shows as enclave_broker_leader 0
    service.factory.close()


def test_a_failing_progress_does_not_stop_the_cycle(fresh_db: Database, spec: EnclaveSpec,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """One eviction the API server keeps refusing with a 500 (a pod under two PodDisruptionBudgets) fails
    ``progress`` every cycle: it is reported, and the cycle still decides and acts (review: it did neither)."""
    service, runner = _twin_runner(fresh_db, spec)

    def refused(node: str | None = None) -> int:
        raise ExternalError("Kubernetes API: evicting pod jupyter-lsst/nb-x failed (500 Internal Server Error)")

    monkeypatch.setattr(runner.backend, "progress", refused)
    for _ in range(3):
        runner.step()
    assert runner.actions_total > 0
    assert runner.last_error is not None and "evicting pod" in runner.last_error
    service.factory.close()


def test_actions_applied_before_an_unforeseen_failure_are_kept(fresh_db: Database, spec: EnclaveSpec,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """An action failing with an error no adapter names (a bug, a library's own exception) stops the cycle, but
    what was applied before it stays counted and shown, as the journal has it (review: all of it vanished)."""
    service, runner = _twin_runner(fresh_db, spec)
    backend = runner.backend
    real = backend.apply
    applied: list[object] = []

    def second_fails(action):  # type: ignore[no-untyped-def]
        if len(applied) == 1:
            raise KeyError("surprise")
        applied.append(action)
        return real(action)

    monkeypatch.setattr(backend, "apply", second_fails)
    for _ in range(6):
        if applied:
            break
        runner.step()
    assert len(applied) == 1 and runner.actions_total == 1 == len(runner.recent)
    assert runner.last_error is not None and "KeyError" in runner.last_error and "not applied" in runner.last_error
    with runner.broker.db.session() as s:
        assert len(query(s, action="broker.*")) == 1
    service.factory.close()
