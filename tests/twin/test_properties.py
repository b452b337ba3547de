"""Property tests: whatever the seed, failures and policy, no job is lost or run twice and no core is
double-booked (Sim.check after every non-job-end event)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enclave.spec.defaults import EXAMPLES
from enclave.spec.load import load
from enclave.twin.metrics import compute
from enclave.twin.scenario import parse

from .conftest import make_sim

MINIMAL = load(EXAMPLES / "minimal.yaml")

TEXT = """
name: prop
seed: {seed}
duration_hours: 1.5
prompt: {{nights: 1, visits_per_night: 60, night_start_h: 0.2, night_hours: 1, detectors: 6,
         runtime: {{dist: triangular, low: 20, mode: 28, high: 45}},
         memory_use: {{dist: uniform, low: 0.5, high: {peak}}}}}
drp: {{backlog_jobs: {backlog}, jobs_per_hour: 120}}
user_batch: {{bursts_per_day: 48, jobs_per_burst: 10, memory_use: {{dist: lognormal, mean: 3, sigma: 0.6}}}}
memory: {{retries: {retries}, periodic_expr_interval_s: 30}}
notebooks: {{peak_concurrent: {notebooks}, peak_hour: 0.5, session_mean_s: 900}}
failures: {{node_mtbf_days: {mtbf}, repair_mean_h: 0.2}}
layout: {{batch: {layout}, pod_cores: 4, pod_batch_share: 0.5}}
"""


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), backlog=st.integers(0, 400), notebooks=st.integers(0, 30),
       mtbf=st.sampled_from([0, 0.05, 0.2]), layout=st.sampled_from(["standalone", "pods"]),
       policy=st.sampled_from(["static", "quotas", "quotas-preempt-mem", "cohorts", "broker"]),
       peak=st.sampled_from([1.5, 3.0, 9.0]),
       retries=st.sampled_from([0, 2]))
def test_invariants_hold_for_any_seed_and_failures(seed: int, backlog: int, notebooks: int, mtbf: float,
                                                   layout: str, policy: str, peak: float, retries: int) -> None:
    text = TEXT.format(seed=seed, backlog=backlog, notebooks=notebooks, mtbf=mtbf, layout=layout, peak=peak,
                       retries=retries)
    sim = make_sim(parse(text, "prop.yaml", spec=MINIMAL), policy, audit=True)
    sim.run()
    sim.check()
    jobs = compute(sim)["jobs"]
    assert jobs["submitted"] == jobs["finished"] + jobs["running"] + jobs["queued"] + jobs["held"]


def test_an_enclave_with_no_load_runs_and_reports() -> None:
    text = "name: idle\nduration_hours: 1\nprompt: null\ndrp: null\nuser_batch: null\nnotebooks: null\n"
    sim = make_sim(parse(text, "idle.yaml", spec=MINIMAL), audit=True)
    sim.run()
    m = compute(sim)
    assert m["jobs"] == {"submitted": 0, "finished": 0, "running": 0, "queued": 0, "held": 0, "ended": 0}
    assert m["prompt"]["visits"] == 0 and m["utilization"]["batch"] == 0.0
