"""The broker's action types: built by ``_filled_at_once``'s ``__init__``, they stay what ``@dataclass(frozen=True)``
makes of their fields (``enclave.domain.capacity``)."""

from __future__ import annotations

import dataclasses
import inspect
import pickle
from dataclasses import dataclass, field

import pytest

from enclave.domain.capacity import Action, DeletePods, DeployPods, DrainStartd, Relabel, ReturnNode, _filled_at_once

BUILT_AT_ONCE = (Relabel, DeployPods, DeletePods, DrainStartd, ReturnNode)


@pytest.mark.parametrize("cls", BUILT_AT_ONCE)
def test_the_init_takes_the_fields_in_order_with_their_defaults(cls: type[Action]) -> None:
    params = list(inspect.signature(cls).parameters.values())
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    assert [p.name for p in params] == [f.name for f in fields]
    assert [p.default for p in params] == [inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default
                                           for f in fields]


def test_an_action_is_frozen_compares_hashes_copies_and_pickles_as_a_dataclass() -> None:
    a = DeployPods("broker", "BCS 4", "kub-001", "prompt", ("htcondor-kub-001-1",), 8, 32768)
    assert a == DeployPods("broker", "BCS 4", "kub-001", "prompt", ("htcondor-kub-001-1",), 8, 32768)
    assert hash(a) == hash(DeployPods(actor="broker", reason="BCS 4", node="kub-001", pool="prompt",
                                      pods=("htcondor-kub-001-1",), cores_per_pod=8, memory_mib_per_pod=32768))
    assert repr(a) == ("DeployPods(actor='broker', reason='BCS 4', node='kub-001', pool='prompt', "
                       "pods=('htcondor-kub-001-1',), cores_per_pod=8, memory_mib_per_pod=32768)")
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.node = "kub-002"  # type: ignore[misc]
    assert dataclasses.replace(a, node="kub-002").node == "kub-002"
    assert pickle.loads(pickle.dumps(a)) == a
    assert dataclasses.asdict(DrainStartd("broker", "why", "s1")) == {
        "actor": "broker", "reason": "why", "startd": "s1", "vacate_after_seconds": None}
    assert Relabel("broker", "why", "s1", "drp", "prompt").vacate_after_seconds is None


def test_a_missing_or_unknown_field_is_refused_as_by_the_dataclass() -> None:
    with pytest.raises(TypeError):
        DrainStartd("broker", "why")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        DrainStartd("broker", "why", "s1", grace=3)  # type: ignore[call-arg]


def test_a_dataclass_it_cannot_fill_is_refused() -> None:
    @dataclass(frozen=True)
    class WithFactory:
        items: list[str] = field(default_factory=list)

    @dataclass(frozen=True)
    class WithPostInit:
        x: int

        def __post_init__(self) -> None: ...

    @dataclass(frozen=True)
    class NotInInit:
        x: int = field(default=0, init=False)

    for cls in (WithFactory, WithPostInit, NotInInit):
        with pytest.raises(TypeError, match="cannot fill"):
            _filled_at_once(cls)

    @_filled_at_once
    @dataclass(frozen=True)
    class Plain:
        d: str  # a field named like a local of the generated __init__ is still its own
        values: int = 3

    assert (Plain("x").d, Plain("x").values, Plain("x", 4).values) == ("x", 3, 4)
    assert Plain.__init__.__module__ == __name__
