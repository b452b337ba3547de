"""Twin runs: simulate a shipped scenario under a policy on the served enclave's spec, in the background
(``enclave.services.twin``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import Field, StringConstraints

from enclave.api.deps import Caller, TwinRuns
from enclave.api.routes.bodies import Body
from enclave.services.twin import PolicyName, TwinRunView

router = APIRouter(prefix="/twin", tags=["twin"])

ScenarioName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")]


class RunBody(Body):
    scenario: ScenarioName = "one-night"
    policy: PolicyName = "broker"
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    duration_hours: float | None = Field(default=None, gt=0, le=24 * 31,
                                         description="Cut the scenario short (never longer than it is).")


@router.get("/scenarios", summary="Scenarios shipped with enclave")
def scenarios(caller: Caller, runs: TwinRuns) -> list[str]:
    return runs.scenarios()


@router.post("/runs", status_code=202, summary="Start a twin run in the background (one at a time)")
def start(body: RunBody, caller: Caller, runs: TwinRuns) -> TwinRunView:
    return runs.start(caller.username, body.scenario, body.policy, seed=body.seed, duration_hours=body.duration_hours)


@router.get("/runs", summary="Twin runs of this service, newest first")
def list_runs(caller: Caller, runs: TwinRuns) -> list[TwinRunView]:
    return runs.runs()


@router.get("/runs/{run_id}", summary="One twin run, with its metrics once done")
def get_run(run_id: int, caller: Caller, runs: TwinRuns) -> TwinRunView:
    return runs.get(run_id)
