"""What an operator reads in /metrics and on the overview (audit of the operator's view). The expected values
come from the Prometheus instrumentation practices each test cites, not from the program's own output."""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from pathlib import Path

import pytest

from enclave.accounts import tokens
from enclave.api.auth import Principal, verify_token
from enclave.api.dashboard import clock, overview
from enclave.api.runner import BrokerRunner
from enclave.api.service import Service
from enclave.api.wiring import build_service
from enclave.db import Database
from enclave.domain.capacity import Action
from enclave.errors import ExternalError
from enclave.services.factory import Factory
from enclave.spec import EnclaveSpec
from tests.api.conftest import ADMIN, ProjectedBackend

ACTION_KINDS = {"Relabel", "DeployPods", "DeletePods", "DrainNode", "StartHTCondor", "ReturnNode", "DrainStartd"}
"""The BCS procedures of seed §7.1 as action types (enclave.domain.capacity), written out: the bounded label set."""


@pytest.fixture
def fresh_db(tmp_path: Path) -> Database:
    db = Database(f"sqlite:///{tmp_path / 'e.db'}")
    db.migrate()
    return db


def samples(service: Service, name: str) -> dict[str, float]:
    """``name``'s series in the exposition: the label set as written (``""`` without labels) → value."""
    text = service.metrics.exposition().decode()
    return {m.group(1) or "": float(m.group(2))
            for m in re.finditer(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", text, re.M)}


def principal(service: Service) -> Principal:
    with service.factory.db.session() as s:
        token = tokens.issue(s, ADMIN, ADMIN, ["*"], 3600)
    return verify_token(service, token)


def projected(spec: EnclaveSpec, db: Database) -> tuple[Service, BrokerRunner, ProjectedBackend]:
    factory = Factory(spec, db)
    factory.ensure_accounts(ADMIN)
    service = Service(factory)
    backend = ProjectedBackend(spec)
    service.runner = BrokerRunner(broker=factory.broker(backend, "live-like"), metrics=service.metrics,
                                  history=service.history, simulate=False, backend_name="live")
    return service, service.runner, backend


def test_known_label_values_are_exported_at_zero_before_any_event(fresh_db: Database, spec: EnclaveSpec) -> None:
    """prometheus.io/docs/practices/instrumentation, "Avoid missing metrics": series whose label values are known
    in advance are exported at 0 from the start, so rate() and alerts see 0 rather than nothing."""
    service = Service(Factory(spec, fresh_db))
    assert samples(service, "enclave_broker_actions_total") == {f'{{kind="{k}"}}': 0.0 for k in ACTION_KINDS}
    assert samples(service, "enclave_broker_cycles_total") == {'{outcome="ok"}': 0.0, '{outcome="failed"}': 0.0}


def test_a_failed_cycle_counts_once_as_failed_and_only_a_success_moves_the_last_success_time(
        fresh_db: Database, spec: EnclaveSpec) -> None:
    """prometheus.io/docs/practices/instrumentation, "Failures" (count failures beside total attempts) and "Batch
    jobs" (the time of the last success): one cycle is one count, under its outcome; the last-success time moves
    only when a cycle succeeds, and is the wall clock that PromQL's time() reads."""
    service, runner, backend = projected(spec, fresh_db)
    real_progress, real_cycle = backend.progress, runner.broker.cycle

    def progress(node: str | None = None) -> None:
        raise ExternalError("condor_collector did not answer", where="collector")

    def cycle(*args: object, **kwargs: object) -> object:
        raise RuntimeError("kube API 503")

    backend.progress = progress  # type: ignore[method-assign]
    runner.broker.cycle = cycle  # type: ignore[method-assign]
    runner.step()
    assert samples(service, "enclave_broker_cycles_total") == {'{outcome="ok"}': 0.0, '{outcome="failed"}': 1.0}
    assert samples(service, "enclave_broker_errors_total") == {}  # the failure ratio is failed / (ok + failed)
    assert samples(service, "enclave_broker_last_success_timestamp_seconds") == {"": 0.0}
    backend.progress, runner.broker.cycle = real_progress, real_cycle  # type: ignore[method-assign]
    before = time.time()
    runner.step()
    after = time.time()
    assert samples(service, "enclave_broker_cycles_total") == {'{outcome="ok"}': 1.0, '{outcome="failed"}': 1.0}
    assert before <= samples(service, "enclave_broker_last_success_timestamp_seconds")[""] <= after


def test_a_standby_exports_its_leadership_and_no_frozen_backend_figures(fresh_db: Database,
                                                                         spec: EnclaveSpec) -> None:
    """A replica that loses the lock or Lease takes no more snapshots: the pool, node and clock series it last set
    would stay exported, frozen, beside the leader's. It exports enclave_broker_leader 0 and none of them; the
    overview says it stands by and how old its figures are."""
    service, runner, backend = projected(spec, fresh_db)
    lead = {"now": True}
    runner.leader, runner.wall_seconds_per_cycle = (lambda: lead["now"]), 0.01
    runner.step()
    assert samples(service, "enclave_broker_leader") == {"": 1.0}
    assert samples(service, "enclave_backend_clock_seconds") == {"": backend.observe().now}
    assert set(samples(service, "enclave_pool_capacity_cores")) == {f'{{pool="{p}"}}' for p in spec.pools}
    as_of = backend.observe().now
    lead["now"] = False  # the other replica takes the lock
    runner.start()
    deadline = time.monotonic() + 10
    while runner.leading and time.monotonic() < deadline:
        time.sleep(0.01)
    runner.stop()
    assert samples(service, "enclave_broker_leader") == {"": 0.0}
    for name in ("enclave_backend_clock_seconds", "enclave_pool_capacity_cores", "enclave_pool_busy_cores",
                 "enclave_pool_utilization_ratio", "enclave_nodes"):
        assert samples(service, name) == {}, name
    ctx = overview(service, principal(service))
    assert ctx["leading"] == "standby"
    assert ctx["standby_note"] is not None and clock(as_of) in ctx["standby_note"]
    lead["now"] = True  # it leads again: its next snapshot exports the figures once more
    runner._lead(runner._leads())
    runner.step()
    assert samples(service, "enclave_broker_leader") == {"": 1.0}
    assert samples(service, "enclave_backend_clock_seconds") == {"": backend.observe().now}
    assert overview(service, principal(service))["leading"] == "leading"


def test_an_action_the_backend_fails_is_an_error_counted_by_kind_and_listed_until_it_ages_out(
        fresh_db: Database, spec: EnclaveSpec, caplog: pytest.LogCaptureFixture) -> None:
    """A backend failure is not a refusal: logged at ERROR as "broker action failed" (a refusal stays a WARNING),
    counted per kind (prometheus.io/docs/practices/instrumentation, "Failures"), and listed on the overview from its
    journal entry (broker.<kind>.failed), which outlasts the next cycle's error line."""
    factory = Factory(spec, fresh_db)
    factory.ensure_accounts(ADMIN)
    service = build_service(factory, scenario="one-night", sim_seconds_per_cycle=600)
    runner = service.runner
    assert runner is not None
    twin = runner.backend
    real_apply = twin.apply
    failing = {"on": True}

    def apply(action: Action) -> bool:
        real_apply(action)  # part of the work done, as a create that fails on the fourth of five pods
        if failing["on"]:
            raise ExternalError("Kubernetes API answered 500", where="pods")
        return True

    twin.apply = apply  # type: ignore[method-assign]
    caplog.set_level(logging.DEBUG, logger="enclave")
    runner.step()
    failed = [r for r in caplog.records if "answered 500" in str(getattr(r, "fields", {}))]
    assert failed and {(r.levelname, r.getMessage()) for r in failed} == {("ERROR", "broker action failed")}
    kinds = Counter(r.fields["kind"] for r in failed)  # type: ignore[attr-defined]
    counted = samples(service, "enclave_broker_action_failures_total")
    assert counted == {f'{{kind="{k}"}}': float(kinds[k]) for k in ACTION_KINDS}
    failing["on"] = False
    runner.step()
    listed = overview(service, principal(service))["failures"]
    assert len(listed) == min(10, sum(kinds.values()))  # the ten newest
    assert all("Kubernetes API answered 500" in f["error"] for f in listed)
    assert {f["action"] for f in listed} == {f"broker.{k}.failed" for k in kinds}
    service.factory.close()


def test_the_broker_exports_its_word_of_calm(fresh_db: Database, spec: EnclaveSpec) -> None:
    """lsst-ldf's DRP reads the word (calm_claim_worklife): each cycle's word is advertised and exported. Prompt
    submits nothing in the projection, so it does not observe and the word is not calm."""
    service, runner, backend = projected(spec, fresh_db)
    runner.step()
    assert backend.calm is False
    assert samples(service, "enclave_broker_calm") == {"": 0.0}
    runner.broker.calm.feed = lambda *args: True  # type: ignore[method-assign]
    runner.step()
    assert backend.calm is True
    assert samples(service, "enclave_broker_calm") == {"": 1.0}
    assert runner.status().calm is True
    assert overview(service, principal(service))["calm"] == "calm"
