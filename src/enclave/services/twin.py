"""Twin runs: simulate a shipped scenario under a policy on the served enclave's spec, in the background.

A run changes nothing in the enclave, so any signed-in account may start one; one run at a time per service,
because a simulation takes a core for seconds to minutes. Scenarios are named, never paths: a remote caller
must not make the server open files of its choosing.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from enclave.errors import Conflict, EnclaveError, InputError, NotFound, Problem
from enclave.spec.models import EnclaveSpec
from enclave.twin import sweep as sweeps
from enclave.twin.run import simulate, with_changes
from enclave.twin.scenario import SCENARIOS, load_scenario

PolicyName = Literal["static", "quotas", "broker", "service"]


class TwinRunView(BaseModel):
    id: int
    scenario: str
    policy: str
    requested_by: str
    status: Literal["running", "done", "failed"]
    progress: float
    started: float
    """Wall-clock start, seconds since the epoch."""
    wall_seconds: float | None
    error: str | None
    metrics: dict[str, Any] | None = None


@dataclass
class _Run:
    id: int
    scenario: str
    policy: str
    requested_by: str
    status: Literal["running", "done", "failed"] = "running"
    progress: float = 0.0
    started: float = field(default_factory=time.time)
    wall_seconds: float | None = None
    metrics: dict[str, Any] | None = None
    error: str | None = None

    def view(self, *, full: bool = True) -> TwinRunView:
        return TwinRunView(id=self.id, scenario=self.scenario, policy=self.policy, requested_by=self.requested_by,
                           status=self.status, progress=self.progress, started=self.started,
                           wall_seconds=self.wall_seconds, error=self.error, metrics=self.metrics if full else None)


def scenario_names() -> list[str]:
    return sorted(p.stem for p in SCENARIOS.glob("*.yaml"))


@dataclass
class TwinRunService:
    spec: EnclaveSpec
    _runs: dict[int, _Run] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def scenarios(self) -> list[str]:
        return scenario_names()

    def start(self, actor: str, scenario: str, policy: PolicyName, *, seed: int | None = None,
              duration_hours: float | None = None) -> TwinRunView:
        if scenario not in scenario_names():
            raise NotFound(f"no scenario named {scenario!r}", where="scenario",
                           fix=f"use one of {', '.join(scenario_names())}")
        loaded = load_scenario(scenario, spec=self.spec)
        if duration_hours is not None:
            if duration_hours > loaded.scenario.duration_hours:
                raise InputError([Problem("duration_hours", f"{duration_hours:g} h is longer than the scenario "
                                          f"({loaded.scenario.duration_hours:g} h)", "give a shorter duration")])
            loaded = with_changes(loaded, duration_hours=duration_hours)
        with self._lock:
            busy = next((r for r in self._runs.values() if r.status == "running"), None)
            if busy is not None:
                raise Conflict(f"twin run {busy.id} ({busy.scenario}) is still running", where="twin",
                               fix=f"wait for it: GET /api/v1/twin/runs/{busy.id}")
            run = _Run(id=next(self._ids), scenario=scenario, policy=policy, requested_by=actor)
            self._runs[run.id] = run
        horizon = loaded.scenario.duration_s

        def work() -> None:
            started = time.perf_counter()
            try:
                def progress(t: float) -> None:
                    run.progress = min(1.0, t / horizon) if horizon else 1.0

                _, metrics = simulate(loaded, policy, seed=seed, progress=progress)
                run.metrics, run.status, run.progress = metrics, "done", 1.0
            except EnclaveError as error:
                run.status, run.error = "failed", str(error)
            except Exception as exc:  # a bug in a run must not take the service down; report it on the run
                run.status, run.error = "failed", f"{type(exc).__name__}: {exc}"
            finally:
                run.wall_seconds = time.perf_counter() - started

        threading.Thread(target=work, name=f"twin-run-{run.id}", daemon=True).start()
        return run.view(full=False)

    def sweep(self, scenario: str, params: list[str], policies: list[str], out_dir: Path, *,
              use_spec: bool = False, seed: int | None = None, jobs: int = 1,
              progress: Callable[[int, int], None] | None = None) -> sweeps.SweepResult:
        """Run ``scenario`` over the grid of ``params`` (``name=v1,v2``) under each policy, in the foreground, and
        write the table and plot to ``out_dir`` (``enclave.twin.sweep``). For local front ends (the CLI): a
        scenario may be a file and files are written, which a remote caller must not choose. ``use_spec``: run on
        this service's spec rather than the one the scenario names."""
        return sweeps.run(scenario, params, policies, out_dir, spec=self.spec if use_spec else None, seed=seed,
                          jobs=jobs, progress=progress)

    def runs(self) -> list[TwinRunView]:
        """Runs of this service, newest first."""
        return [r.view(full=False) for r in sorted(self._runs.values(), key=lambda r: -r.id)]

    def get(self, run_id: int) -> TwinRunView:
        run = self._runs.get(run_id)
        if run is None:
            raise NotFound(f"no twin run {run_id}", where="run", fix="GET /api/v1/twin/runs lists them")
        return run.view()
