"""Run a scenario under a policy: the one entry point the CLI, the bench and the tests share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from enclave.errors import InputError, Problem
from enclave.spec.models import EnclaveSpec
from enclave.twin.metrics import compute
from enclave.twin.policies import make
from enclave.twin.scenario import Loaded, Scenario, load_scenario
from enclave.twin.sim import Sim


def with_changes(loaded: Loaded, **changes: Any) -> Loaded:
    """The same scenario with top-level fields replaced (``seed=…``, ``duration_hours=…``), re-validated."""
    data = loaded.scenario.model_dump()
    data.update(changes)
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as err:
        raise InputError([Problem(f"{loaded.source}: {'.'.join(str(x) for x in e['loc'])}", e["msg"],
                                  "give a value the scenario reference allows (docs/twin.md)")
                          for e in err.errors()]) from None
    return Loaded(scenario=scenario, spec=loaded.spec, source=loaded.source)


def simulate(scenario: str | Loaded, policy: str = "static", *, spec: EnclaveSpec | None = None,
             seed: int | None = None, audit: bool = False,
             progress: Callable[[float], None] | None = None) -> tuple[Sim, dict[str, Any]]:
    """Run one scenario (name, path or loaded) under one policy; return the simulator and its metrics."""
    loaded = load_scenario(scenario, spec=spec) if isinstance(scenario, str) else scenario
    if seed is not None:
        loaded = with_changes(loaded, seed=seed)
    sim = Sim(loaded, make(policy), audit=audit)
    sim.run(progress)
    return sim, compute(sim)
