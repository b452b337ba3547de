"""A pool that keeps its claims by day (pools.<name>.day_claim_worklife), from the spec to the startd and the twin.

CLAIM_WORKLIFE is an expression the startd evaluates against the slot ad each time a job ends on a claim
(HTCondor manual, startd configuration: "This expression specifies the number of seconds after which a claim will
stop accepting additional jobs"; Resource.cpp ``claimWorklifeExpired``, htcondor 7491a14), and ``time()`` is the
ClassAd language's clock. The expected values are the spec's: -1 (forever) by day, the pool's worklife (HTCondor's
1200, param_info.in) at night; day and night at Cerro Pachón as USDF's night summary for 2026-04-13 gives them
(evening twilight 23:17Z, morning 10:09Z, tests/broker/test_night.py).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path

import pytest
from classad2 import ExprTree

from enclave.batch import render
from enclave.domain.night import TROPICAL_YEAR_S, day_bands, local_day_second, night_at, season_edges
from enclave.errors import InputError, IntegrityError, SpecError
from enclave.spec.load import dump
from enclave.spec.load import parse as parse_spec
from enclave.spec.models import EnclaveSpec, Site
from enclave.twin.run import with_changes
from enclave.twin.scenario import FOREVER_S, load_scenario, parse
from enclave.twin.sim import Sim

from .conftest import make_sim
from .test_config import SCENARIO

PACHON = Site(latitude_deg=-30.2444, longitude_deg=-70.7494, elevation_m=2663)
DAY = datetime(2026, 4, 13, 16, tzinfo=UTC).timestamp()  # 11:17 local mean time
EVENING = datetime(2026, 4, 14, 1, tzinfo=UTC).timestamp()  # inside the night: 20:17
MORNING = datetime(2026, 4, 14, 9, tzinfo=UTC).timestamp()  # before morning twilight: 04:17
LEAD = datetime(2026, 4, 13, 22, 13, tzinfo=UTC).timestamp()  # 17:30: day, but within the pre-warm's hour before
# the season's earliest evening twilight (18:34 on April 13, earlier as the season goes on: test_night.py)


def _by_day(spec: EnclaveSpec, site: Site | None = PACHON, **pool: int) -> EnclaveSpec:
    pools = {**spec.pools, "drp": spec.pools["drp"].model_copy(update={"day_claim_worklife": -1, **pool})}
    cluster = spec.cluster.model_copy(update={"site": site})
    return EnclaveSpec.model_validate(spec.model_copy(update={"pools": pools, "cluster": cluster}).model_dump())


def _at(expression: str, t: float) -> object:
    return ExprTree(expression.replace("time()", str(int(t)))).eval()


def _drp_worklife(spec: EnclaveSpec, tmp_path: Path) -> str:
    """The text of DRP's worklife knob as HTCondor reads it from DRP's rendered execute config."""
    [drp] = render.write([render.execute_node(spec, "drp")], tmp_path)
    text = render.read_pool_worklife(drp, "drp")
    assert text is not None
    return text


def test_the_startd_keeps_the_pools_claims_by_day_only(minimal: EnclaveSpec, tmp_path: Path) -> None:
    spec = _by_day(minimal)
    render.write(render.render_all(spec), tmp_path)
    for name, env in ((tmp_path / "execute-drp.conf", {}),
                      (tmp_path / "worker-pod-whole.conf", {render.POD_POOL_ENV: "drp"})):
        text = render.read_pool_worklife(name, "drp", env=env)
        assert text is not None
        assert [_at(text, t) for t in (DAY, LEAD, EVENING, MORNING)] == [-1, 1200, 1200, 1200]
    # The other pools keep HTCondor's worklife day and night.
    assert render.read_back(tmp_path / "execute-user.conf", ["CLAIM_WORKLIFE"], subsystem="STARTD") == {
        "CLAIM_WORKLIFE": "1200"}


def test_a_pools_own_worklife_holds_at_night(minimal: EnclaveSpec, tmp_path: Path) -> None:
    spec = _by_day(minimal, claim_worklife=3600)
    assert [_at(_drp_worklife(spec, tmp_path), t) for t in (DAY, EVENING)] == [-1, 3600]


def test_check_reads_the_worklife_by_day_back(minimal: EnclaveSpec, tmp_path: Path) -> None:
    """``render.verify`` reads the expression the startd evaluates and refuses a file whose worklife by day or by
    night is not the spec's."""
    spec = _by_day(minimal)
    drp = render.execute_node(spec, "drp")
    [path] = render.write([drp], tmp_path)
    assert "CLAIM_WORKLIFE = " in render.verify(spec, drp, path)
    for edited in ("-1, 600)", "0, 1200)"):
        path.write_text(drp.text.replace("-1, 1200)", edited))
        with pytest.raises(IntegrityError, match="serving pool drp"):
            render.verify(spec, drp, path)
    # CLAIM_WORKLIFE set again after the pool knob: the startd no longer reads the expression at all.
    path.write_text(drp.text + "\nCLAIM_WORKLIFE = 5\n")
    with pytest.raises(IntegrityError, match="5 now, neither its worklife by day nor by night"):
        render.verify(spec, drp, path)


def test_the_twin_reads_the_expression_and_evaluates_it_by_its_clock(minimal: EnclaveSpec) -> None:
    spec = _by_day(minimal)
    loaded = parse(SCENARIO, "c.yaml", spec=spec)
    h = loaded.scenario.htcondor
    assert set(h.pool_claim_worklife_by_clock) == {"drp"} and "drp" not in h.pool_claim_worklife_s
    sim = make_sim(loaded)
    epoch = loaded.scenario.start_epoch
    assert [sim.worklife_at("drp", t - epoch) for t in (DAY, LEAD, EVENING, MORNING)] == [FOREVER_S, 1200, 1200,
                                                                                            1200]
    assert sim.worklife_at("user", DAY - epoch) == 1200
    # A scenario's own worklife for the pool replaces the spec's by the clock.
    h = parse(SCENARIO + "htcondor: {pool_claim_worklife_s: {drp: 600}}\n", "c.yaml", spec=spec).scenario.htcondor
    assert h.pool_claim_worklife_by_clock == {} and h.pool_claim_worklife_s == {"drp": 600}


def test_a_worklife_by_day_needs_the_site(minimal: EnclaveSpec) -> None:
    data = dump(_by_day(minimal, site=None))
    with pytest.raises(SpecError) as err:
        parse_spec(data)
    [problem] = [p for p in err.value.problems if p.where.endswith(": pools.drp.day_claim_worklife")]
    assert "needs the site" in problem.what and "cluster.site" in problem.fix


def test_a_season_of_polar_night_keeps_no_claim_by_day(minimal: EnclaveSpec, tmp_path: Path) -> None:
    # At 80° N the sun stays below −12° around the winter solstice and above it around the summer one
    # (tests/broker/test_night.py): the startd hands claims back all day in December and keeps them in June.
    spec = _by_day(minimal, site=Site(latitude_deg=80.0, longitude_deg=0.0))
    text = _drp_worklife(spec, tmp_path)
    december = datetime(2026, 12, 21, tzinfo=UTC).timestamp()
    assert {_at(text, december + h * 3600) for h in range(24)} == {1200}
    assert _at(text, datetime(2026, 6, 21, 12, tzinfo=UTC).timestamp()) == -1


def test_no_worklife_by_day_where_the_lead_takes_every_seasons_day(minimal: EnclaveSpec) -> None:
    longest = max(b.end - b.start for b in day_bands(PACHON))  # December's, about 04:10 to 19:50 at Cerro Pachón
    for lead_s in (float(longest), 24 * 3600.0):
        spec = _by_day(minimal).model_copy(update={"broker": minimal.broker.model_copy(
            update={"prewarm_lead_seconds": lead_s})})
        with pytest.raises(InputError, match="before the pre-warm's lead in any season") as err:
            render.execute_node(spec, "drp")
        assert [p.where for p in err.value.problems] == ["pools.drp.day_claim_worklife"]


def test_december_keeps_claims_in_the_hours_june_has_night(minimal: EnclaveSpec, tmp_path: Path) -> None:
    """The band follows the season: on 2026-12-21 at Cerro Pachón morning twilight comes before 04:00 local mean
    time and evening twilight after 20:00 (``night_at``), so DRP keeps its claims at 04:30 and 18:30, which are
    night in June (twilight about 06:05 and 17:55), and the minimal spec's hour of pre-warm lead ends its day by
    19:00."""
    spec = _by_day(minimal)
    text = _drp_worklife(spec, tmp_path)
    night = night_at(PACHON, datetime(2026, 12, 21, 18, tzinfo=UTC).timestamp())
    assert night is not None and local_day_second(PACHON, night.start) > 20 * 3600
    assert local_day_second(PACHON, night.end) < 4 * 3600

    def local(day: int, hour: float) -> float:  # hours of local mean time (UTC − 4 h 43 min)
        return datetime(2026, 12, day, tzinfo=UTC).timestamp() + hour * 3600 + 16_980

    assert [_at(text, local(22, 4.5)), _at(text, local(21, 18.5)), _at(text, local(21, 19.25))] == [-1, -1, 1200]
    june = datetime(2026, 6, 21, tzinfo=UTC).timestamp() + 16_980
    assert [_at(text, june + 4.5 * 3600), _at(text, june + 18.5 * 3600)] == [1200, 1200]


def test_the_december_week_keeps_drps_claims_in_hours_that_are_night_in_june() -> None:
    """The shipped one-week-december runs lsst-ldf's rendered worklife by the twin's clock: DRP keeps its claims
    at 19:00 local mean time on 2026-12-21 (evening twilight 20:02, less the 15 minutes' pre-warm lead and the
    band's step of margin) and at 04:30 the next morning (twilight 03:54), and hands them back at 21:00; in
    one-week, from 2026-06-21, 19:00 is night (twilight about 17:55)."""
    december = make_sim(with_changes(load_scenario("one-week-december"), duration_hours=0.25))
    june = make_sim(with_changes(load_scenario("one-week"), duration_hours=0.25))

    def local(sim: Sim, hours: float) -> float:  # twin time of that many hours of local mean time after t = 0's
        return hours * 3600 - local_day_second(PACHON, sim.sc.start_epoch)  # local midnight, UTC − 4 h 43 min

    assert [december.worklife_at("drp", local(december, h)) for h in (19, 21, 24 + 4.5)] == [FOREVER_S, 1200,
                                                                                             FOREVER_S]
    assert [june.worklife_at("drp", local(june, h)) for h in (19, 24 + 4.5)] == [1200, 1200]


def test_the_rendered_day_is_each_seasons_band_by_the_startds_clock(minimal: EnclaveSpec, tmp_path: Path) -> None:
    """The startd tells the season as ``night.season_of`` does: just after each of 2026's season edges, at a local
    time where the band before the edge and the band after it disagree, the rendered expression gives the later
    band's answer. The first instant at that local time after the edge is within a day of it."""
    spec = _by_day(minimal)
    text = _drp_worklife(spec, tmp_path)
    lead = round(spec.broker.prewarm_lead_seconds)
    bands = {b.since: b for b in day_bands(PACHON)}
    year = 56 * TROPICAL_YEAR_S  # where 2026's first season begins: 2025-12-31 13:30 UTC
    checked = 0
    for before, after in itertools.pairwise(season_edges()[:-1]):
        old, new = bands[before], bands[after]
        for local_s in ((old.start + new.start) / 2, (old.end + new.end) / 2 - lead):
            if old.start == new.start and local_s < 43_200 or old.end == new.end and local_s >= 43_200:
                continue
            edge = year + after
            t = edge + (local_s - local_day_second(PACHON, edge)) % 86_400
            day = new.start <= local_day_second(PACHON, t) < new.end - lead
            assert _at(text, t) == (-1 if day else 1200), (after, local_s)
            checked += 1
    assert checked >= 24
