"""The broker's word of calm (``enclave.broker.calm``): the latency pools observe, none is short now, and each
was short in under ``broker.calm_short_share`` of the cycles of the last ``broker.calm_window_seconds``."""

from __future__ import annotations

from dataclasses import replace

import pytest

from enclave.batch.render import calm_pools
from enclave.broker.calm import Calm
from enclave.broker.decide import PoolState
from enclave.broker.layout import initial_state
from enclave.db import Database
from enclave.domain.capacity import PoolDemand
from enclave.errors import ExternalError, SpecError
from enclave.services.broker import BrokerService
from enclave.spec import EnclaveSpec
from enclave.spec.load import dump
from enclave.spec.load import parse as parse_spec
from tests.broker.conftest import BROKER, NOW, MemoryBackend, make_spec


def _prompt(held: int, need: int) -> dict[str, PoolState]:
    """Prompt (a latency pool) holding ``held`` cores ready, its jobs needing ``need`` now; DRP beside it."""
    return {"prompt": PoolState("prompt", 100, 72, 144, True, need, 72, 0, standalone=held, latency=True,
                                now_need=need),
            "drp": PoolState("drp", 50, 96, 216, True, 500, 96, 0, standalone=96)}


def _observing(at: float) -> dict[str, PoolDemand]:
    """Prompt's newest job submitted ``at``."""
    return {"prompt": PoolDemand(running_jobs=1, running_cores=1, newest_submit=at)}


def _spec() -> EnclaveSpec:
    return make_spec(broker={"calm_window_seconds": 600, "calm_short_share": 0.3})


def test_calm_while_observing_and_never_short() -> None:
    calm = Calm(_spec())
    assert calm.feed(NOW, _prompt(held=48, need=40), _observing(NOW - 30))


def test_not_calm_while_short_now() -> None:
    """Its jobs need more than it holds ready: they overflow, and the other pools' claims must turn over."""
    calm = Calm(_spec())
    assert not calm.feed(NOW, _prompt(held=48, need=49), _observing(NOW - 30))


def test_not_calm_once_quiet_for_the_prewarm_quiet() -> None:
    """Before a night's first visit and through a weather gap the claims turn over, ready for the next visit."""
    spec = _spec()
    quiet = spec.broker.prewarm_quiet_seconds
    assert Calm(spec).feed(NOW, _prompt(48, 0), _observing(NOW - quiet + 1))
    assert not Calm(spec).feed(NOW, _prompt(48, 0), _observing(NOW - quiet))
    assert not Calm(spec).feed(NOW, _prompt(48, 0), {"prompt": PoolDemand()})  # nothing ever submitted


def test_not_calm_when_often_short_over_the_window() -> None:
    """A cycle every 60 s, short in the first four (held 48, needed 60): the window of 600 s holds 11 cycles, both
    ends in. At 600 s, 4 of 11 short (0.36, not under 0.35): not calm; at 660 s the first has left, 3 of 11 (0.27):
    calm."""
    calm = Calm(make_spec(broker={"calm_window_seconds": 600, "calm_short_share": 0.35}))
    verdicts = [calm.feed(NOW + 60 * i, _prompt(48, 60 if i < 4 else 40), _observing(NOW + 60 * i))
                for i in range(12)]
    assert verdicts == [False] * 11 + [True]


def test_short_in_exactly_the_share_is_not_calm() -> None:
    """Calm needs a share of short cycles under calm_short_share: 3 of 10 at 0.3 is not."""
    calm = Calm(_spec())
    verdicts = [calm.feed(NOW + 60 * i, _prompt(48, 60 if i < 3 else 40), _observing(NOW + 60 * i))
                for i in range(10)]
    assert verdicts[-1] is False


def test_seldom_short_is_calm() -> None:
    calm = Calm(_spec())
    for i in range(10):
        verdict = calm.feed(NOW + 60 * i, _prompt(48, 60 if i == 0 else 40), _observing(NOW + 60 * i))
    assert verdict  # 1 of 10 cycles short


def test_no_latency_pool_is_never_calm() -> None:
    pools = _prompt(48, 0)
    del pools["prompt"]
    assert not Calm(_spec()).feed(NOW, pools, _observing(NOW))


def test_the_pools_that_read_the_word() -> None:
    assert calm_pools(_spec()) == []
    assert calm_pools(_reads_calm(_spec())) == ["drp"]


def _reads_calm(spec: EnclaveSpec) -> EnclaveSpec:
    drp = spec.pools["drp"].model_copy(update={"calm_claim_worklife": -1})
    return EnclaveSpec.model_validate(spec.model_copy(update={"pools": {**spec.pools, "drp": drp}}).model_dump())


def _busy(spec: EnclaveSpec) -> MemoryBackend:
    """Prompt observing (a job submitted 30 s ago, running on its own slots), DRP with a backlog."""
    o = initial_state(spec, NOW - 100_000)
    return MemoryBackend(replace(o, now=NOW, demand={
        "prompt": PoolDemand(running_jobs=1, running_cores=1, newest_submit=NOW - 30),
        "drp": PoolDemand(idle_jobs=500, idle_cores=500)}))


def test_the_service_advertises_its_word_each_cycle(db: Database) -> None:
    spec = _reads_calm(make_spec())
    backend = _busy(spec)
    service = BrokerService(spec, db, backend, "memory")
    assert service.cycle(BROKER).calm is True
    assert backend.words == [True]
    # A replica that has lost the Lease says nothing: the new leader's word is the one the startds read.
    assert service.cycle(BROKER, leading=lambda: False).calm is None and backend.words == [True]
    # A spec in which no pool reads it: nothing advertised.
    plain = _busy(make_spec())
    assert BrokerService(make_spec(), db, plain, "memory").cycle(BROKER).calm is None and plain.words == []


def test_a_word_the_collector_does_not_take_is_reported_and_the_cycle_goes_on(db: Database) -> None:
    spec = _reads_calm(make_spec())
    backend = _busy(spec)
    backend.advertise_error = ExternalError("advertising the broker's ad to collector cm failed", where="HTCondor")
    report = BrokerService(spec, db, backend, "memory").cycle(BROKER)
    assert [r for r in report.refused if r.startswith("advertise calm: ")]
    assert report.plan.actions and backend.applied == report.plan.actions


def test_a_worklife_while_calm_needs_a_latency_pool() -> None:
    spec = _reads_calm(make_spec())
    pools = {n: p.model_copy(update={"latency_objective": None}) for n, p in spec.pools.items()}
    with pytest.raises(SpecError) as err:
        parse_spec(dump(spec.model_copy(update={"pools": pools})))
    [problem] = [p for p in err.value.problems if p.where.endswith("pools.drp.calm_claim_worklife")]
    assert "latency objective" in problem.what and "latency_objective" in problem.fix
