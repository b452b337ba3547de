"""`serve --live` runs one broker cycle every ``broker.cycle_seconds`` of the spec (audit: every 5 s whatever the
spec said), exports that period, and the Lease it renews once per cycle is several cycles long (client-go: the
renewal comes well within leaseDurationSeconds)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from enclave.api.service import Service
from enclave.api.wiring import live_runner
from enclave.db import Database
from enclave.services.factory import LEASE_SECONDS, Factory, lease_seconds
from enclave.spec import EnclaveSpec
from tests.api.conftest import ADMIN, ProjectedBackend


def test_the_live_loop_runs_at_the_specs_cycle_and_exports_it(tmp_path: Path, spec: EnclaveSpec,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    db = Database(f"sqlite:///{tmp_path / 'e.db'}")
    db.migrate()
    period = 45.0
    spec = spec.model_copy(update={"broker": spec.broker.model_copy(update={"cycle_seconds": period})})
    factory = Factory(spec, db)
    factory.ensure_accounts(ADMIN)
    monkeypatch.setattr(Factory, "live_backend", lambda self, **_: ProjectedBackend(spec))
    service = Service(factory)
    runner = live_runner(service)
    assert runner.wall_seconds_per_cycle == period
    text = service.metrics.exposition().decode()
    assert re.search(r"^enclave_broker_cycle_seconds 45\.0$", text, re.M), text


def test_the_lease_outlasts_several_renewals() -> None:
    for cycle in (1.0, 5.0, 30.0, 60.0, 300.0, 3600.0):
        assert lease_seconds(cycle) >= 3 * cycle       # renewed once per cycle: three chances before it lapses
        assert lease_seconds(cycle) >= LEASE_SECONDS
    assert lease_seconds(60) == 180                   # the spec's default cycle
