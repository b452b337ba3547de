"""`enclave batch drain-node --timeout`: wait for the evictions as kubectl drain does (polling every second,
kubectl pkg/drain/drain.go waitForDelete), and give up with a clear error when pods remain — the drain itself
stays applied and journaled, the node cordoned, as kubectl leaves it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from enclave.errors import EnclaveError, exit_code
from enclave.journal import query
from enclave.services.broker import DRAIN_POLL_SECONDS, BrokerService, DrainOverrides, DrainTimedOut
from enclave.services.factory import Factory
from enclave.spec.defaults import default_spec_path
from enclave.spec.load import load


class Pending:
    """A twin whose evictions take a while: ``progress()`` reports these counts in turn, then the last one."""

    def __init__(self, twin: object, left: list[int]) -> None:
        self.twin, self.left = twin, left
        self.asked = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.twin, name)

    def progress(self) -> int:
        self.asked += 1
        return self.left[min(self.asked - 1, len(self.left) - 1)]


@pytest.fixture
def factory() -> Iterator[Factory]:
    with Factory.scratch(load(default_spec_path())) as made:
        yield made


def _broker(factory: Factory, left: list[int]) -> tuple[BrokerService, Pending, list[float]]:
    backend = Pending(factory.twin_backend("one-night"), left)
    broker = factory.broker(backend, "twin (test)")  # type: ignore[arg-type]
    slept: list[float] = []
    broker.sleep = slept.append
    return broker, backend, slept


def test_timeout_zero_waits_until_the_node_is_empty(factory: Factory) -> None:
    broker, backend, slept = _broker(factory, [3, 1, 0])
    outcome = broker.drain_node("enclave-broker", "kub-001", reason="BCS 5", flags=DrainOverrides(timeout_seconds=0))
    assert outcome.applied and backend.asked == 3
    assert slept == [DRAIN_POLL_SECONDS, DRAIN_POLL_SECONDS]


def test_without_timeout_it_does_not_wait(factory: Factory) -> None:
    broker, backend, slept = _broker(factory, [3])
    assert broker.drain_node("enclave-broker", "kub-001", reason="BCS 5").applied
    assert backend.asked == 0 and slept == []


def test_a_timeout_with_pods_left_is_an_error_and_the_drain_stays_journaled(factory: Factory) -> None:
    broker, _backend, _slept = _broker(factory, [2])
    with pytest.raises(DrainTimedOut) as err:
        broker.drain_node("enclave-broker", "kub-001", reason="BCS 5", flags=DrainOverrides(timeout_seconds=0.01))
    assert "2 pod(s) still to evict after 0.01 s" in str(err.value) and "journal entry" in str(err.value)
    assert isinstance(err.value, EnclaveError) and exit_code(err.value) != 0
    assert any(n.name == "kub-001" and n.state.value == "draining" for n in broker.observe().nodes)
    with factory.db.session() as s:
        assert [e.action for e in query(s, action="broker.*")] == ["broker.DrainNode"]
