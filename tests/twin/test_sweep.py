"""`enclave twin sweep`: the grid, its files, and clear errors for a bad parameter or value (issue 14 item 7)."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest

import enclave
from enclave.errors import InputError
from enclave.spec.models import EnclaveSpec
from enclave.twin import sweep
from enclave.twin.run import simulate
from enclave.twin.scenario import Loaded, parse

TINY = """
name: tiny
duration_hours: 0.5
prompt: {nights: 1, visits_per_night: 20, night_start_h: 0.05, night_hours: 0.3, detectors: 8}
drp: {backlog_jobs: 50, jobs_per_hour: 100}
user_batch: null
notebooks: null
"""


@pytest.fixture()
def tiny(minimal: EnclaveSpec) -> Loaded:
    return parse(TINY, "tiny.yaml", spec=minimal)


def test_the_grid_is_every_combination_under_every_policy(tiny: Loaded, tmp_path: Path) -> None:
    result = sweep.run(tiny, ["negotiator_interval=10,60", "claim_worklife=0,1200"], ["static", "quotas"], tmp_path)
    assert len(result.rows) == 2 * 2 * 2
    assert [(r["negotiator_interval"], r["claim_worklife"], r["policy"]) for r in result.rows[:4]] == [
        ("10", "0", "static"), ("10", "0", "quotas"), ("10", "1200", "static"), ("10", "1200", "quotas")]
    # Each row is the run of that scenario with those settings: the same figures as one run on its own.
    changed = sweep.apply(tiny, [(sweep.parse_params(["negotiator_interval=60"])[0], 0),
                                 (sweep.parse_params(["claim_worklife=0"])[0], 0)])
    assert changed.scenario.htcondor.negotiator_interval_s == 60 and changed.scenario.htcondor.claim_worklife_s == 0
    _, metrics = simulate(changed, "quotas")
    row = next(r for r in result.rows if (r["negotiator_interval"], r["claim_worklife"], r["policy"])
               == ("60", "0", "quotas"))
    assert row["visits_within_deadline"] == metrics["prompt"]["visits_within_deadline"]
    assert row["drp_jobs_per_hour"] == metrics["drp"]["jobs_per_hour"]
    # The files: a table a person reads, two for programs, and a plot.
    with (tmp_path / "sweep.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == 8
    assert json.loads((tmp_path / "sweep.json").read_text())["params"] == ["negotiator_interval", "claim_worklife"]
    assert (tmp_path / "sweep.md").read_text().count("\n| 10 |") == 4
    svg = ElementTree.fromstring((tmp_path / "sweep.svg").read_text())
    lines = [e for e in svg.iter() if e.tag.endswith("polyline")]
    assert len(lines) == 4  # policy × the other parameter's values, over the first parameter


def test_the_consumption_policy_is_a_sweep_axis(tiny: Loaded) -> None:
    """The rendered CONSUMPTION_POLICY (true by default, ``twin.config``) can be switched off for a run, and a
    value that is not a boolean is refused by the scenario's own validation."""
    assert tiny.scenario.htcondor.consumption_policy is True
    axis = sweep.parse_params(["consumption_policy=false,true"])[0]
    assert [sweep.apply(tiny, [(axis, i)]).scenario.htcondor.consumption_policy for i in (0, 1)] == [False, True]
    with pytest.raises(InputError):
        sweep.apply(tiny, [(sweep.parse_params(["consumption_policy=maybe"])[0], 0)])
    # Review, stop 48: a point a scenario file would be refused for (no such pool) ran, checked by its fields alone.
    with pytest.raises(InputError, match="dedicated_schedds=nosuch"):
        sweep.apply(tiny, [(sweep.parse_params(["dedicated_schedds=nosuch"])[0], 0)])


def test_a_broker_setting_is_a_sweep_axis(tiny: Loaded, tmp_path: Path) -> None:
    """``spec.broker.<field>`` changes the spec a point runs on, not the scenario: the row is the run of the scenario
    on a spec with that setting, and a spec file's checks still hold (``spec.checks._broker``)."""
    axis = sweep.parse_params(["spec.broker.need_percentile=0.2,1"])[0]
    points = [sweep.apply(tiny, [(axis, i)]) for i in (0, 1)]
    assert [p.spec.broker.need_percentile for p in points] == [0.2, 1.0]
    assert all(p.scenario == tiny.scenario for p in points)
    assert tiny.spec.broker.need_percentile == 0.6  # the loaded spec itself is left as it was
    result = sweep.run(tiny, ["spec.broker.need_percentile=1"], ["broker"], tmp_path)
    changed = tiny.spec.model_copy(update={"broker": tiny.spec.broker.model_copy(update={"need_percentile": 1.0})})
    _, metrics = simulate(Loaded(scenario=tiny.scenario, spec=changed, source=tiny.source), "broker")
    row = result.rows[0]
    assert row["spec.broker.need_percentile"] == "1"
    assert (row["moves"], row["moves_per_night"]) == (metrics["moves"]["total"], metrics["moves"]["per_night"])
    assert row["evicted_core_hours"] == metrics["moves"]["wasted_core_hours"]
    assert row["batch_dominant_util"] == metrics["utilization"]["batch_dominant"]
    # An optional setting can be unset again, as a spec file leaves it out.
    unset = sweep.parse_params(["spec.broker.prewarm_cores=none,64"])[0]
    assert [sweep.apply(tiny, [(unset, i)]).spec.broker.prewarm_cores for i in (0, 1)] == [None, 64]
    # The spec's own cross-field check (start timeout past pod start) holds at every point.
    with pytest.raises(InputError, match="start_timeout_seconds"):
        sweep.apply(tiny, [(sweep.parse_params(["spec.broker.pod_start_seconds=900"])[0], 0)])


@pytest.mark.parametrize(("param", "where", "what"), [
    ("negotiatorinterval=5", "--param negotiatorinterval", "unknown parameter"),
    ("negotiator_interval", "--param negotiator_interval", "not NAME=VALUE"),
    ("negotiator_interval=5,abc", "--param negotiator_interval=abc", "valid number"),
    ("negotiator_interval=0", "--param negotiator_interval=0", "greater than 0"),
    ("reschedule_on_submit=sometimes", "--param reschedule_on_submit=sometimes", "schedd-idle"),
    ("user_batch.jobs_per_burst=5", "--param user_batch.jobs_per_burst", "switched off"),
    ("spec.broker.need_percentile=0", "--param spec.broker.need_percentile=0", "greater than 0"),
    ("spec.broker.need_percentil=0.5", "--param spec.broker.need_percentil", "no setting 'need_percentil'"),
    ("spec.pools.prompt.max_share=0.5", "--param spec.pools.prompt.max_share", "only the broker's settings"),
])
def test_a_bad_parameter_or_value_is_refused_before_anything_runs(tiny: Loaded, tmp_path: Path, param: str,
                                                                   where: str, what: str) -> None:
    with pytest.raises(InputError) as err:
        sweep.run(tiny, [param], ["static"], tmp_path / "out")
    problem = err.value.problems[0]
    assert problem.where == where and what in problem.what, problem
    assert not (tmp_path / "out").exists()


def test_the_cli_exits_non_zero_with_the_problem(tmp_path: Path) -> None:
    """The program as a user runs it: the error's where/what/fix on stderr, a non-zero exit, nothing written."""
    env = {**os.environ, "ENCLAVE_DB": f"sqlite:///{tmp_path / 'e.db'}", "ENCLAVE_HOME": str(tmp_path / "home"),
           "PYTHONPATH": str(Path(enclave.__file__).parents[1])}
    r = subprocess.run([sys.executable, "-c", "from enclave.main import main; main()", "twin", "sweep", "one-night",
                        "--param", "negotiator_intervl=5,10", "-p", "static", "--out-dir", str(tmp_path / "out")],
                       capture_output=True, text=True, env=env, timeout=120, check=False)
    assert r.returncode != 0
    assert "negotiator_intervl" in r.stderr and "unknown parameter" in r.stderr and "negotiator_interval" in r.stderr
    assert not (tmp_path / "out").exists()
