"""Twin runs: simulate a shipped scenario under a policy on the served enclave's spec, in the background.

A run changes nothing in the enclave, so any signed-in account may start one; one run at a time per service,
because a simulation takes a core for seconds to minutes. Scenarios are named, never paths: a remote caller
must not make the server open files of its choosing.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import Field, StringConstraints

from enclave.api.auth import Principal, api_principal
from enclave.api.routes.bodies import Body
from enclave.api.service import Service, get_service
from enclave.errors import Conflict, EnclaveError, InputError, NotFound, Problem
from enclave.twin.scenario import SCENARIOS, load_scenario

router = APIRouter(prefix="/twin", tags=["twin"])

ScenarioName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]


class RunBody(Body):
    scenario: ScenarioName = "one-night"
    policy: Literal["static", "quotas", "broker"] = "broker"
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    duration_hours: float | None = Field(default=None, gt=0, le=24 * 31,
                                         description="Cut the scenario short (never longer than it is).")


@dataclass
class TwinRun:
    id: int
    scenario: str
    policy: str
    requested_by: str
    status: str = "running"
    progress: float = 0.0
    started: float = field(default_factory=time.time)
    wall_seconds: float | None = None
    metrics: dict[str, Any] | None = None
    error: str | None = None

    def view(self, *, full: bool = True) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if full or k != "metrics"}
        return out


class TwinRuns:
    def __init__(self) -> None:
        self.runs: dict[int, TwinRun] = {}
        self.ids = itertools.count(1)
        self.lock = threading.Lock()

    def busy(self) -> TwinRun | None:
        return next((r for r in self.runs.values() if r.status == "running"), None)


def _runs(service: Service) -> TwinRuns:
    runs = service.state.setdefault("twin_runs", TwinRuns())
    assert isinstance(runs, TwinRuns)
    return runs


def _scenarios() -> list[str]:
    return sorted(p.stem for p in SCENARIOS.glob("*.yaml"))


@router.get("/scenarios", summary="Scenarios shipped with enclave")
def scenarios(principal: Principal = Depends(api_principal)) -> list[str]:  # noqa: B008
    return _scenarios()


@router.post("/runs", status_code=202, summary="Start a twin run in the background (one at a time)")
def start(body: RunBody, principal: Principal = Depends(api_principal),  # noqa: B008
          service: Service = Depends(get_service)) -> dict[str, Any]:  # noqa: B008
    from enclave.twin.run import simulate, with_changes

    if body.scenario not in _scenarios():
        raise NotFound(f"no scenario named {body.scenario!r}", where="scenario",
                       fix=f"use one of {', '.join(_scenarios())}")
    loaded = load_scenario(body.scenario, spec=service.spec)
    if body.duration_hours is not None:
        if body.duration_hours > loaded.scenario.duration_hours:
            raise InputError([Problem("duration_hours", f"{body.duration_hours:g} h is longer than the scenario "
                                      f"({loaded.scenario.duration_hours:g} h)", "give a shorter duration")])
        loaded = with_changes(loaded, duration_hours=body.duration_hours)
    runs = _runs(service)
    with runs.lock:
        busy = runs.busy()
        if busy is not None:
            raise Conflict(f"twin run {busy.id} ({busy.scenario}) is still running", where="twin",
                           fix=f"wait for it: GET /api/v1/twin/runs/{busy.id}")
        run = TwinRun(id=next(runs.ids), scenario=body.scenario, policy=body.policy,
                      requested_by=principal.username)
        runs.runs[run.id] = run
    horizon = loaded.scenario.duration_s

    def work() -> None:
        started = time.perf_counter()
        try:
            def progress(t: float) -> None:
                run.progress = min(1.0, t / horizon) if horizon else 1.0

            _, metrics = simulate(loaded, body.policy, seed=body.seed, progress=progress)
            run.metrics, run.status, run.progress = metrics, "done", 1.0
        except EnclaveError as error:
            run.status, run.error = "failed", str(error)
        except Exception as exc:  # a bug in a run must not take the service down; report it on the run
            run.status, run.error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            run.wall_seconds = time.perf_counter() - started

    threading.Thread(target=work, name=f"twin-run-{run.id}", daemon=True).start()
    return run.view(full=False)


@router.get("/runs", summary="Twin runs of this service, newest first")
def list_runs(principal: Principal = Depends(api_principal),  # noqa: B008
              service: Service = Depends(get_service)) -> list[dict[str, Any]]:  # noqa: B008
    return [r.view(full=False) for r in sorted(_runs(service).runs.values(), key=lambda r: -r.id)]


@router.get("/runs/{run_id}", summary="One twin run, with its metrics once done")
def get_run(run_id: int, principal: Principal = Depends(api_principal),  # noqa: B008
            service: Service = Depends(get_service)) -> dict[str, Any]:  # noqa: B008
    run = _runs(service).runs.get(run_id)
    if run is None:
        raise NotFound(f"no twin run {run_id}", where="run", fix="GET /api/v1/twin/runs lists them")
    return run.view()
