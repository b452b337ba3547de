"""Whether a pool gets its capacity, from Prometheus and the overview: per pool the guarantee, the need and the
target of the plan the broker just made (labels bounded by the spec's pools)."""

from __future__ import annotations

import re
from pathlib import Path

from enclave.accounts import tokens
from enclave.api.auth import verify_token
from enclave.api.dashboard import overview
from enclave.api.runner import BrokerRunner
from enclave.api.service import Service
from enclave.db import Database
from enclave.services.factory import Factory
from enclave.spec import EnclaveSpec
from tests.api.conftest import ADMIN, ProjectedBackend


def _samples(service: Service, name: str) -> dict[str, float]:
    text = service.metrics.exposition().decode()
    return {m.group(1): float(m.group(2))
            for m in re.finditer(rf'^{name}\{{pool="([^"]+)"\}} (\S+)$', text, re.M)}


def test_each_pools_guarantee_need_and_target_are_exported_and_shown(tmp_path: Path, spec: EnclaveSpec) -> None:
    db = Database(f"sqlite:///{tmp_path / 'e.db'}")
    db.migrate()
    factory = Factory(spec, db)
    factory.ensure_accounts(ADMIN)
    service = Service(factory)
    runner = BrokerRunner(broker=factory.broker(ProjectedBackend(spec), "p"), metrics=service.metrics,
                          history=service.history, simulate=False, backend_name="live")
    service.runner = runner
    runner.step()
    plan, _ = runner.broker.plan()              # the same observation, decided again (pure)
    guaranteed = _samples(service, "enclave_pool_guaranteed_cores")
    target = _samples(service, "enclave_pool_target_cores")
    need = _samples(service, "enclave_pool_need_cores")
    assert set(guaranteed) == set(target) == set(need) == set(spec.pools)
    for name, p in plan.pools.items():
        assert need[name] == p.need
        assert target[name] == p.target + p.lend   # standalone cores to hold plus Kubernetes cores to borrow
        assert guaranteed[name] == p.guaranteed
    with db.session() as s:
        token = tokens.issue(s, ADMIN, ADMIN, ["*"], 3600)
    principal = verify_token(service, token)
    rows = {r["name"]: r for r in overview(service, principal)["pools"]}
    for name in spec.pools:
        assert (rows[name]["need"], rows[name]["target"]) == (need[name], target[name])
    runner.metrics.lead(False)                      # a standby exports none of them
    assert _samples(service, "enclave_pool_need_cores") == {}
