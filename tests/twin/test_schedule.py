"""The scenario's schedule fields on hand-built timelines: an observing schedule with weather gaps, notebook
surges, node failures and repairs, the site's twilight. Expected values follow from the rules in
``enclave.twin.workloads`` and ``docs/twin.md``, never from a run's output."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from enclave.errors import InputError
from enclave.spec.models import EnclaveSpec
from enclave.twin.scenario import Site, parse
from enclave.twin.sim import DONE, RUNNING, Sim
from enclave.twin.workloads import build, twilight_h

from .conftest import make_sim

QUIET = """
name: schedule-rules
duration_hours: 2
drp: null
user_batch: null
notebooks: null
htcondor: {matching: instant}
"""

# A cadence of exactly 36 s (uniform(36, 36) is 36): readouts at 36 k s for k = 1..100 in a 1 h night from t = 0.
CADENCE = "prompt: {nights: 1, visits_per_night: 100, night_start_h: 0, night_hours: 1, visit_gap_s: [36, 36], " \
          "detectors: 4, runtime: {dist: fixed, mean: 20}%s}\n"


def _readouts(minimal: EnclaveSpec, extra: str = "") -> list[float]:
    loaded = parse(QUIET + CADENCE % extra, "s.yaml", spec=minimal)
    return build(loaded.scenario, loaded.spec).visit_readout


def test_the_cadence_without_gaps(minimal: EnclaveSpec) -> None:
    assert _readouts(minimal) == [36.0 * k for k in range(1, 101)]


def test_a_weather_gap_has_no_visits(minimal: EnclaveSpec) -> None:
    # A gap from 0.25 h (900 s) for 10 min (to 1500 s): readouts 36 k in [900, 1500) are k = 25..41 (17 visits).
    times = _readouts(minimal, ", visits: {gaps: [{at_h: 0.25, minutes: 10}]}")
    assert times == [36.0 * k for k in range(1, 101) if not 25 <= k <= 41]
    assert not [t for t in times if 900 <= t < 1500] and len(times) == 83


def test_no_prompt_job_is_submitted_in_a_gap(minimal: EnclaveSpec) -> None:
    loaded = parse(QUIET + CADENCE % ", visits: {gaps: [{at_h: 0.25, minutes: 10}]}", "s.yaml", spec=minimal)
    sim = make_sim(loaded)
    sim.run_until(1499.0)
    # 24 visits before the gap, 4 detector jobs each; none during it.
    assert sim.submitted["prompt"] == 24 * 4
    sim.run_until(1512.0)
    assert sim.submitted["prompt"] == 25 * 4


def test_explicit_visit_times_inline_and_from_a_file(minimal: EnclaveSpec, tmp_path: Path) -> None:
    inline = "prompt: {detectors: 2, visits: {times: [10, 50.5, 4000], gaps: [{at_h: 1, minutes: 30}]}}\n"
    loaded = parse(QUIET + inline, "s.yaml", spec=minimal)
    # 4000 s falls in the gap [3600, 5400): dropped.
    assert build(loaded.scenario, loaded.spec).visit_readout == [10.0, 50.5]
    (tmp_path / "visits.txt").write_text("# next_visit feed\n10\n\n50.5  # second\n8000\n", encoding="utf-8")
    from_file = parse(QUIET + "prompt: {detectors: 2, visits: {file: visits.txt}}\n", str(tmp_path / "s.yaml"),
                      base=tmp_path, spec=minimal)
    assert build(from_file.scenario, from_file.spec).visit_readout == [10.0, 50.5]  # 8000 s is past the 2 h (7200 s)


@pytest.mark.parametrize(("fragment", "where", "what"), [
    ("prompt: {visits: {times: [10, 5]}}", "prompt.visits", "times[1]: 5 is not after the one before (10)"),
    ("prompt: {visits: {times: [1], file: v.txt}}", "prompt.visits", "not both"),
    ("prompt: {visits: {gaps: [{at_h: 1, minutes: 0}]}}", "prompt.visits.gaps[0].minutes", "greater than 0"),
    ("prompt: {memory_use: {dist: triangular, low: 3, mode: 2, high: 4}}", "prompt.memory_use", "low <= mode"),
    ("prompt: {memory_use: {dist: lognormal}}", "prompt.memory_use", "mean > 0"),
    ("failures: {storms: [{at_h: 1, nodes: 2, fraction: 0.1}]}", "failures.storms[0]", "exactly one of"),
    ("failures: {storms: [{at_h: 1, names: [batch-009]}]}", "failures.storms[0].names", "batch-009"),
    ("site: {timezone: Mars/Olympus}", "site", "unknown time zone"),
    ("notebooks: {surges: [{at_h: 1, count: 0}]}", "notebooks.surges[0].count", "greater than or equal to 1"),
    ("memory: {multiplier: 0.5}", "memory.multiplier", "greater than or equal to 1"),
])
def test_bad_fields_name_their_path(minimal: EnclaveSpec, fragment: str, where: str, what: str) -> None:
    text = "name: bad\nduration_hours: 1\n" + fragment + "\n"
    with pytest.raises(InputError) as err:
        parse(text, "bad.yaml", spec=minimal)
    message = str(err.value)
    assert where in message and what in message


def test_a_visit_file_with_a_bad_line_names_it(minimal: EnclaveSpec, tmp_path: Path) -> None:
    (tmp_path / "v.txt").write_text("10\nsoon\n", encoding="utf-8")
    with pytest.raises(InputError) as err:
        parse("name: v\nprompt: {visits: {file: v.txt}}\n", "s.yaml", base=tmp_path, spec=minimal)
    assert f"{tmp_path / 'v.txt'}:2" in str(err.value) and "'soon'" in str(err.value)


@pytest.mark.parametrize(("text", "line", "what"), [("100\n200\nnan\n300\n", 3, "nan is not a time >= 0"),
                                                    ("100\n# a comment\n50\n", 3, "50 is not after the one before"),
                                                    ("-5\n", 1, "-5 is not a time >= 0")])
def test_a_visit_file_s_bad_time_is_named_by_its_line(minimal: EnclaveSpec, tmp_path: Path, text: str, line: int,
                                                     what: str) -> None:
    """Review, stop 48: a NaN or an out-of-order time was reported as pydantic's documentation URL, with no line."""
    (tmp_path / "v.txt").write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as err:
        parse("name: v\nprompt: {visits: {file: v.txt}}\n", "s.yaml", base=tmp_path, spec=minimal)
    [problem] = err.value.problems
    assert problem.where == f"{tmp_path / 'v.txt'}:{line}" and what in problem.what and "pydantic" not in problem.what


FAILING = """
name: repairs
duration_hours: 1
prompt: null
user_batch: null
notebooks: null
htcondor: {matching: instant}
drp: {backlog_jobs: 8, jobs_per_hour: 0,
      mix: [{name: t, weight: 1, memory_gib: 1, runtime: {dist: fixed, mean: 1000}}]}
failures: {storms: [{at_h: 0.1, names: [batch-002], repair_h: 0.05}]}
"""


def test_a_failed_node_requeues_its_jobs_and_takes_work_again_after_its_repair(minimal: EnclaveSpec) -> None:
    sim = make_sim(parse(FAILING, "f.yaml", spec=minimal))
    assert sim.nodes["batch-002"].startd is not None and sim.nodes["batch-002"].startd.pool == "drp"
    # The 8 jobs start at 0 on DRP's only slot; the node fails at 0.1 h = 360 s: all 8 requeued, same ids.
    sim.run_until(359.0)
    assert sim.state.count(RUNNING) == 8
    sim.run_until(361.0)
    assert sim.state.count(RUNNING) == 0 and sim.idle["drp"] == 8
    assert sim.counters.evicted_jobs == 8 and sim.counters.wasted_core_s == pytest.approx(8 * 360)
    # Repaired 0.05 h = 180 s later, at 540; its standalone startd joins with its label htcondor_start_s (60 s by
    # default) after that, at 600, and takes the 8 jobs.
    assert sim.sc.timing.htcondor_start_s == 60.0
    sim.run_until(599.0)
    assert sim.state.count(RUNNING) == 0
    sim.run_until(601.0)
    assert sim.state.count(RUNNING) == 8 and _each_start(sim) == [0.0] * 8 + [600.0] * 8
    sim.run_until(1599.0)
    assert sim.state.count(DONE) == 0
    sim.run_until(1601.0)
    assert sim.state.count(DONE) == 8 and sim.counters.failed_node_s == pytest.approx(180)
    sim.check()


def test_a_storm_by_fraction_takes_the_ceiling(minimal: EnclaveSpec) -> None:
    # 0.3 of the 2 batch nodes: ceil(0.6) = 1 node; 0.6 of them: ceil(1.2) = 2.
    for fraction, k in ((0.3, 1), (0.6, 2)):
        text = FAILING.replace("names: [batch-002]", f"fraction: {fraction}, group: batch")
        loaded = parse(text, "f.yaml", spec=minimal)
        failures = build(loaded.scenario, loaded.spec).failures
        assert len(failures) == k and {f.t for f in failures} == {360.0} and {f.repair_s for f in failures} == {180.0}


SURGE = """
name: surge
duration_hours: 2
prompt: null
drp: null
user_batch: null
notebooks: {{peak_concurrent: 0, spawn_s: 20, spawn_timeout_s: 300,
             surges: [{{at_h: 0.5, count: {count}, cpu: 1, memory_gib: 1, session_h: 1}}]}}
"""


def test_a_surge_places_its_notebooks_at_its_time(minimal: EnclaveSpec) -> None:
    # Two 8-core workers keep 2 cores for services: 6 free each, so 12 one-core labs fit; 10 are all placed.
    sim = make_sim(parse(SURGE.format(count=10), "n.yaml", spec=minimal))
    sim.run_until(1799.0)
    assert sim.counters.nb_requested == 0
    sim.run_until(1800.0)
    assert sim.counters.nb_placed == 10 and len(sim.nb_node) == 10
    # LeastAllocated spreads them: 5 per worker.
    assert sorted(len(n.notebooks) for n in sim.nodes.values() if n.role.value == "worker") == [5, 5]
    # Each ends spawn_s + 1 h later.
    sim.run_until(1800 + 20 + 3600 - 1)
    assert len(sim.nb_node) == 10
    sim.run_until(1800 + 20 + 3600 + 1)
    assert len(sim.nb_node) == 0


def test_a_surge_larger_than_the_room_is_refused_after_the_timeout(minimal: EnclaveSpec) -> None:
    sim = make_sim(parse(SURGE.format(count=15), "n.yaml", spec=minimal))
    sim.run_until(1800.0)
    assert sim.counters.nb_placed == 12 and len(sim.nb_pending) == 3
    sim.run_until(1800 + 300 + 1)
    assert sim.counters.nb_refused == 3 and not sim.nb_pending


def test_twilight_at_the_site() -> None:
    # At the equinox on the equator at longitude 0 the Sun sets at 18:00 local solar time and, moving straight
    # down at 15°/h, reaches -12° 48 min later; local solar noon is 12:00 UTC minus the equation of time
    # (-7.5 min on 20 March): 18:48 + 7.5 min = 6.925 h after 12:00 UTC.
    equator = Site(name="x", timezone="UTC", latitude=0.0, longitude=0.0)
    noon = dt.datetime(2026, 3, 20, 12, tzinfo=dt.UTC).timestamp()
    assert twilight_h(equator, noon) == pytest.approx(6.0 + 12 / 15 + 7.5 / 60, abs=0.03)
    # Moving the site 15° west delays every solar event by exactly one hour.
    west = Site(name="x", timezone="UTC", latitude=0.0, longitude=-15.0)
    assert twilight_h(west, noon) - twilight_h(equator, noon) == pytest.approx(1.0, abs=1e-9)


def test_twilight_at_cerro_pachon_on_the_default_night() -> None:
    # 2026-06-21 (declination 23.44°), latitude -30.2446°: cos H = (sin -12° - sin lat sin dec) / (cos lat cos dec)
    # = -0.0095, H = 90.54° = 6.036 h after solar noon; noon is 12:00 + 70.7494° / 15 h + 1.7 min (equation of
    # time) = 16:44.7 UTC, so twilight is 22:46.9 UTC = 10.782 h after t = 0 (12:00 UTC). The shipped night starts
    # at 10.85 h (22:50 UTC, docs/twin.md), within 4 min of it.
    pachon = Site()
    start = dt.datetime(2026, 6, 21, 12, tzinfo=dt.UTC).timestamp()
    assert twilight_h(pachon, start) == pytest.approx(10.782, abs=0.02)


def test_night_start_twilight_moves_the_first_readout(minimal: EnclaveSpec) -> None:
    text = QUIET.replace("duration_hours: 2", "duration_hours: 24") + (
        "prompt: {night_start_h: twilight, night_hours: 1, visits_per_night: 3, visit_gap_s: [36, 36], "
        "detectors: 1}\n")
    loaded = parse(text, "t.yaml", spec=minimal)
    start = twilight_h(loaded.scenario.site, loaded.scenario.start_epoch) * 3600.0
    assert build(loaded.scenario, loaded.spec).visit_readout == pytest.approx([start + 36, start + 72, start + 108])


def _each_start(sim: Sim) -> list[float]:
    """Submit-to-start of every start of DRP's jobs, restarts included (``Sim.waits`` has each job's first only)."""
    return sorted(sim.waits["drp"] + sim.restart_waits["drp"])
