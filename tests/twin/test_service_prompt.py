"""Prompt as Knative service workers (issue 14 item 6), on hand-computed timelines.

The minimal spec's two commons workers have 8 − 2 = 6 cores free each for worker pods (1 CPU / 2 GiB). One visit
of D detectors, each taking exactly 30 s after readout R. With the defaults of ``enclave.twin.knative``:
next_visit comes 20 + 33 = 53 s before R; a worker takes a request, preloads 20 s, and processes from
max(R, taken + 20); a pod is bound 1 s after creation and ready 30 s later with its image on the node (a cold
10 GiB pull at 1 Gbit/s adds 80 s). Every expected time below follows from those rules.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from enclave.cli import app
from enclave.spec.models import EnclaveSpec
from enclave.twin.metrics import compute
from enclave.twin.run import simulate
from enclave.twin.scenario import parse
from enclave.twin.service_prompt import PromptService, shifted_spec
from enclave.twin.sim import Sim

from .conftest import make_sim

RT = 30.0
LEAD = 20.0 + 33.0
PRELOAD = 20.0


def _sim(minimal: EnclaveSpec, detectors: int, knative: str = "{}", cached: bool = True) -> Sim:
    text = f"""
name: service
duration_hours: 1
prompt: {{nights: 1, visits_per_night: 1, night_start_h: 0.1, night_hours: 0.5, detectors: {detectors},
          runtime: {{dist: fixed, mean: {RT}}}}}
drp: null
user_batch: null
notebooks: null
knative: {knative}
kubernetes: {{images_cached_at_start: {str(cached).lower()}}}
"""
    sim = make_sim(parse(text, "s.yaml", spec=minimal), policy="service")
    assert sim.wl.visit_readout[0] > LEAD
    return sim


def _latencies(sim: Sim) -> tuple[float, list[float]]:
    sim.run_until(3600)
    return sim.visit_latency[0], sorted(sim.prompt_latency)


def test_a_warm_worker_per_detector_processes_right_at_readout(minimal: EnclaveSpec) -> None:
    # 4 workers up since t = 31 take the 4 requests at R − 53, preload until R − 33: processing is R .. R + 30.
    visit, jobs = _latencies(_sim(minimal, 4, "{min_scale: 4, max_scale: 4}"))
    assert visit == pytest.approx(RT) and jobs == pytest.approx([RT] * 4)


def test_a_request_waits_for_a_worker_and_then_preloads(minimal: EnclaveSpec) -> None:
    # The 5th request waits in the buffer for the first worker to free at R + 30; it preloads until R + 50 and
    # ends at R + 80.
    sim = _sim(minimal, 5, "{min_scale: 4, max_scale: 4}")
    visit, jobs = _latencies(sim)
    assert jobs == pytest.approx([RT] * 4 + [30 + PRELOAD + RT])
    assert visit == pytest.approx(80.0)
    # 4 of the 5 detectors within the 60 s deadline; the visit is late.
    prompt = compute(sim)["prompt"]
    assert prompt["jobs_within_deadline"] == pytest.approx(4 / 5) and prompt["visits_within_deadline"] == 0.0


def test_scale_from_zero_sizes_by_the_buffer_and_scales_back_to_zero(minimal: EnclaveSpec) -> None:
    sim = _sim(minimal, 4)
    policy = sim.policy
    assert isinstance(policy, PromptService)
    r = sim.wl.visit_readout[0]
    sim.run_until(r - LEAD + 0.5)
    # ceil(4 requests / (containerConcurrency 1 × 70 %)) = 6 workers at once, none ready before R − 53 + 31.
    assert len(policy.workers) == math.ceil(4 / 0.7) == 6
    visit, jobs = _latencies(sim)
    assert visit == pytest.approx(RT)  # ready at R − 22, preloaded by R − 2: processing starts at R
    # The last worker goes only after a stable window (60 s) with no traffic; the traffic ended at R + 30.
    sim2 = _sim(minimal, 4)
    sim2.run_until(r + 30 + 60 - 1)
    assert len(sim2.policy.workers) >= 1  # type: ignore[attr-defined]
    sim2.run_until(r + 300)
    assert sim2.policy.workers == []  # type: ignore[attr-defined]
    assert sim2.nodes["worker-001"].svc_cpu == 2.0 and sim2.nodes["worker-002"].svc_cpu == 2.0  # all given back


def test_a_cold_image_pull_delays_the_first_workers(minimal: EnclaveSpec) -> None:
    # Created at R − 53, bound at R − 52, image pulled by R + 28 (80 s), ready at R + 58, preloaded by R + 78.
    visit, _ = _latencies(_sim(minimal, 4, cached=False))
    assert visit == pytest.approx(78 + RT)


def test_the_commons_bounds_the_workers(minimal: EnclaveSpec) -> None:
    # 12 pod slots in the commons (2 nodes × 6 cores): 20 detectors need 20 / 0.7 → 29 workers; 12 are placed,
    # the rest are reported unplaced, and the 8 requests left wait for a free worker.
    sim = _sim(minimal, 20)
    _, jobs = _latencies(sim)
    m = sim.policy.metrics(sim)["service"]  # type: ignore[attr-defined]
    assert m["workers_peak"] == 12 and m["unplaced_peak"] == math.ceil(20 / 0.7) - 12
    assert jobs[:12] == pytest.approx([RT] * 12) and jobs[12:] == pytest.approx([RT + PRELOAD + RT] * 8)


def test_prompts_htcondor_share_goes_to_drp(minimal: EnclaveSpec) -> None:
    shifted = shifted_spec(minimal)
    assert shifted.pools["prompt"].guaranteed_share == 0
    assert shifted.pools["drp"].guaranteed_share == minimal.pools["drp"].guaranteed_share + \
        minimal.pools["prompt"].guaranteed_share
    sim = _sim(minimal, 4)
    assert sim.cap["prompt"] == 0 and sim.cap["drp"] > 0


def test_twin_compare_runs_htcondor_prompt_and_service_prompt_on_the_same_load(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text("""
name: both
duration_hours: 0.5
prompt: {nights: 1, visits_per_night: 10, night_start_h: 0.05, night_hours: 0.2, detectors: 8}
drp: {backlog_jobs: 20, jobs_per_hour: 100}
user_batch: null
notebooks: null
""")
    r = CliRunner().invoke(app, ["twin", "compare", str(scenario), "-p", "static", "-p", "service",
                                 "--out-dir", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    _, static = simulate(str(scenario), "static")
    _, service = simulate(str(scenario), "service")
    assert static["prompt"]["visits"] == service["prompt"]["visits"] == 10
    assert service["service"]["workers_created"] > 0 and "service" not in static
