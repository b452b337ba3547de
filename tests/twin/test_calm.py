"""The twin's startds read the broker's word of calm (pools.<name>.calm_claim_worklife) as the rendered
CLAIM_WORKLIFE gives it, and its broker advertises that word each cycle as the broker service does.

Expected values are the LDF spec's: DRP keeps its claims (-1, the twin's forever) by day, and at night while the
broker says calm; HTCondor's 1200 s (param_info.in) at night otherwise."""

from __future__ import annotations

from datetime import UTC, datetime

from enclave.spec.load import load
from enclave.spec.models import EnclaveSpec
from enclave.twin.policies import make
from enclave.twin.scenario import FOREVER_S, parse
from enclave.twin.sim import Sim
from enclave.twin.worklife import clock_worklife

from .conftest import SCENARIO_DIR
from .test_config import SCENARIO

LDF = SCENARIO_DIR.parent / "lsst-ldf.yaml"
DAY = datetime(2026, 4, 13, 16, tzinfo=UTC).timestamp()  # 11:17 local mean time at Cerro Pachón
EVENING = datetime(2026, 4, 14, 1, tzinfo=UTC).timestamp()  # 20:17, inside the night (test_claims_by_day.py)
NIGHT = """
name: calm
duration_hours: 13
prompt: {nights: 1, visits_per_night: 200, detectors: 189, night_start_h: 10.85, night_hours: 2}
drp: {backlog_jobs: 2000, jobs_per_hour: 1500}
user_batch: null
notebooks: null
"""
"""Two hours of visits from 10.85 h (the default night's start), on a DRP backlog."""


def _ldf() -> EnclaveSpec:
    return load(LDF)


def test_the_startds_read_the_word_at_night_only() -> None:
    loaded = parse(SCENARIO, "c.yaml", spec=_ldf())
    sim = Sim(loaded, make("static"))
    epoch = loaded.scenario.start_epoch
    assert [sim.worklife_at("drp", t - epoch) for t in (DAY, EVENING)] == [FOREVER_S, 1200]
    sim.advertise_calm(True)
    assert [sim.worklife_at("drp", t - epoch) for t in (DAY, EVENING)] == [FOREVER_S, FOREVER_S]
    assert sim.worklife_at("user", EVENING - epoch) == 1200  # no other pool reads it
    sim.advertise_calm(False)
    assert sim.worklife_at("drp", EVENING - epoch) == 1200


def test_the_longest_worklife_counts_calm() -> None:
    """The timing bound takes the longest worklife a pool's expression gives: -1 while calm, though never by the
    clock alone."""
    expression = "ifThenElse(((EnclaveCalmUntil > time()) =?= true), -1, 1200)"
    worklife = clock_worklife(expression, FOREVER_S)
    assert worklife.most() == FOREVER_S
    assert (worklife.at(EVENING), worklife.at(EVENING, calm=True)) == (1200, FOREVER_S)


def test_the_broker_advertises_calm_while_prompt_observes_and_is_not_short() -> None:
    loaded = parse(NIGHT, "c.yaml", spec=_ldf())
    policy = make("broker")
    sim = Sim(loaded, policy)
    words: list[tuple[float, bool]] = []
    advertise = sim.advertise_calm

    def spy(calm: bool) -> None:
        words.append((sim.now, calm))
        advertise(calm)

    sim.advertise_calm = spy  # type: ignore[method-assign]
    sim.run()
    assert len(words) == policy.cycles  # once a cycle
    calm = [t for t, word in words if word]
    first_visit = 10.85 * 3600
    assert calm and first_visit < calm[0] < first_visit + 600  # once prompt observes, not before
    quiet = sim.spec.broker.prewarm_quiet_seconds
    assert calm[-1] < first_visit + 2 * 3600 + quiet  # and no longer once the visits have been over that long


def test_no_word_where_no_pool_reads_it() -> None:
    spec = _ldf()
    pools = {**spec.pools, "drp": spec.pools["drp"].model_copy(update={"calm_claim_worklife": None})}
    spec = EnclaveSpec.model_validate(spec.model_copy(update={"pools": pools}).model_dump())
    sim = Sim(parse(NIGHT, "c.yaml", spec=spec), make("broker"))
    words: list[bool] = []
    sim.advertise_calm = words.append  # type: ignore[method-assign]
    sim.run_until(11 * 3600)
    assert words == []
