"""Small scenarios for fast twin tests: minutes of simulated night on the minimal and LDF specs."""

from __future__ import annotations

from pathlib import Path

import pytest

from enclave.spec.defaults import EXAMPLES
from enclave.spec.load import load
from enclave.spec.models import EnclaveSpec
from enclave.twin.policies import make
from enclave.twin.scenario import Loaded, parse
from enclave.twin.sim import Sim

SMALL = """
name: small
description: a short night on the LDF enclave
seed: 4
duration_hours: 3
prompt: {nights: 1, visits_per_night: 120, night_start_h: 0.5, night_hours: 2}
drp: {backlog_jobs: 3000, jobs_per_hour: 600}
user_batch: {bursts_per_day: 48, jobs_per_burst: 100}
notebooks: {peak_concurrent: 200, peak_hour: 1.5, session_mean_s: 1800}
timing: {sample_s: 120}
"""


def small_text(**extra: str) -> str:
    text = SMALL
    for key, value in extra.items():
        text += f"{key}: {value}\n"
    return text


@pytest.fixture(scope="session")
def ldf() -> EnclaveSpec:
    return load(EXAMPLES / "lsst-ldf.yaml")


@pytest.fixture(scope="session")
def minimal() -> EnclaveSpec:
    return load(EXAMPLES / "minimal.yaml")


@pytest.fixture()
def small(ldf: EnclaveSpec) -> Loaded:
    return parse(small_text(), "small.yaml", spec=ldf)


def make_sim(loaded: Loaded, policy: str = "static", audit: bool = False) -> Sim:
    return Sim(loaded, make(policy), audit=audit)


SCENARIO_DIR = Path(EXAMPLES) / "scenarios"


def with_shares(spec: EnclaveSpec, **shares: float) -> EnclaveSpec:
    """``spec`` with these pools' guaranteed shares (GROUP_QUOTA_DYNAMIC as rendered), the others' as they are."""
    pools = {name: p.model_copy(update={"guaranteed_share": shares[name]}) if name in shares else p
             for name, p in spec.pools.items()}
    return spec.model_copy(update={"pools": pools})
