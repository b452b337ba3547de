"""Pre-warm from an observing schedule: hand-computed timelines (docs/broker.md, "Observing schedule").

The test spec (``make_spec``) keeps the broker's defaults: cycle 60 s, cooldown 900 s, pod start 120 s; DRP vacates
with a 600 s grace and prompt's latency objective is 60 s. So, by the rule in ``enclave.broker.schedule``:
lead L = 60 + max(120, 600) = 660 s, hold H = 60 s, release R = 60 + 60 = 120 s, margin M = 900 s, and a gap is
released only when longer than L + R + M = 1,680 s.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from enclave.broker.decide import plan
from enclave.broker.layout import initial_state
from enclave.broker.schedule import Timing, prewarm_from_schedule
from enclave.domain.capacity import Observed, PoolDemand
from enclave.domain.night import night_at
from enclave.domain.schedule import TAI_MINUS_UTC_S, ObservingSchedule, Visit, parse
from enclave.errors import InputError
from enclave.spec import EnclaveSpec
from enclave.twin.backend import TwinBackend
from tests.broker import test_decide_properties as properties
from tests.broker.conftest import make_spec
from tests.broker.test_decide_properties import cases
from tests.broker.test_night import PACHON

T0 = datetime(2026, 4, 14, 1, tzinfo=UTC).timestamp()  # inside the night of 2026-04-13 at Cerro Pachón
DURATION = 33.0


def visits(*starts: float) -> tuple[Visit, ...]:
    """Visits starting at ``starts`` (Unix UTC); next_visit's startTime is TAI, 37 s ahead."""
    return tuple(Visit(groupId=f"v{i}", startTime=s + TAI_MINUS_UTC_S, duration=DURATION)
                 for i, s in enumerate(starts))


def schedule(*starts: float, since: float = T0 - 7200, until: float | None = None) -> ObservingSchedule:
    return ObservingSchedule(visits=visits(*starts), complete_from=since, complete_until=until)


TIMING = Timing.of(make_spec(), "prompt", lender=True)


def test_the_timing_the_spec_implies() -> None:
    assert (TIMING.lead, TIMING.hold, TIMING.release, TIMING.margin) == (660, 60, 120, 900)
    assert TIMING.worth_releasing == 1680
    # A pool that may not borrow pods and has no vacating donor needs only the cycle.
    assert Timing.of(make_spec(), "drp", lender=False).lead == 60
    # Nor does the user pool: DRP vacates with a 600 s grace, but DRP ranks above it and gives it no node.
    assert Timing.of(make_spec(), "user", lender=False).lead == 60


def test_without_complete_until_the_span_ends_at_the_latest_readout_plus_the_hold() -> None:
    # A 3,600 s calibration block listed before a 30 s visit 100 s later: complete up to the block's readout, not
    # the short visit's (review, stop 48: the pre-warm was handed to twilight 131 s into the block).
    block = Visit(groupId="cal", startTime=T0 + TAI_MINUS_UTC_S, duration=3600.0)
    short = Visit(groupId="sci", startTime=T0 + 100 + TAI_MINUS_UTC_S, duration=30.0)
    s = ObservingSchedule(visits=(short, block), complete_from=T0 - 7200)
    assert s.last_readout() == s.known_until() == T0 + 3600
    for now in (T0 + 131, T0 + 1800, T0 + 3600):
        assert prewarm_from_schedule(s, now, TIMING) is True
    # The last visit keeps its hold H = 60 s past the readout, then the schedule says no more.
    one = schedule(T0)
    assert prewarm_from_schedule(one, T0 + DURATION + 59, TIMING) is True
    assert prewarm_from_schedule(one, T0 + DURATION + 61, TIMING) is None


def test_ready_before_the_first_visit_kept_through_released_after_the_last() -> None:
    first = T0
    cadence = [first + 36 * i for i in range(10)]
    last_end = cadence[-1] + DURATION + 60  # readout + hold
    s = schedule(*cadence, until=last_end + 7200)
    at = lambda t: prewarm_from_schedule(s, t, TIMING)  # noqa: E731
    assert at(first - 661) is False  # a 2 h stretch before it: nothing to hold yet
    assert at(first - 660) is True  # L before the first visit: startds join by its start
    assert all(at(t) is True for t in (first, first + 18, cadence[5] + 20, last_end - 1))
    assert at(last_end) is False  # after the last visit (its jobs done), released at once
    assert at(last_end + 7200 - 660) is False
    # Less than L before the end of what the schedule speaks for, a visit it does not list yet could not be warmed
    # for in time: twilight decides, as it does past the end.
    assert at(last_end + 7200 - 659) is None
    assert at(last_end + 7201) is None


def test_a_long_gap_is_released_and_rewarmed_a_short_one_kept() -> None:
    a_end = T0 + DURATION + 60
    long_next = a_end + 1681  # a gap of 1,681 s > 1,680 s
    s = schedule(T0, long_next, until=long_next + 3600)
    assert prewarm_from_schedule(s, a_end + 1, TIMING) is False
    assert prewarm_from_schedule(s, long_next - 661, TIMING) is False
    assert prewarm_from_schedule(s, long_next - 660, TIMING) is True  # re-warmed L ahead
    short_next = a_end + 1680  # exactly the threshold: not worth it
    s = schedule(T0, short_next, until=short_next + 3600)
    assert all(prewarm_from_schedule(s, t, TIMING) is True for t in (a_end, a_end + 900, short_next - 661))


def test_twilight_decides_where_no_schedule_covers() -> None:
    s = schedule(T0, since=T0 - 600)
    assert prewarm_from_schedule(None, T0, TIMING) is None
    assert prewarm_from_schedule(s, T0 - 601, TIMING) is None  # before it was complete (pushed)
    assert prewarm_from_schedule(ObservingSchedule(), T0, TIMING) is None  # no visit, no span
    # An empty `visits: []` hands the pre-warm back to twilight (docs/broker.md), whatever span it claims.
    assert prewarm_from_schedule(ObservingSchedule(complete_from=T0 - 3600, complete_until=T0 + 86_400), T0,
                                 TIMING) is None


def test_a_feed_announcing_visits_only_seconds_ahead_cannot_release_a_gap() -> None:
    # A next_visit feed with a 53 s lead: complete up to now + 53 s. In a gap the broker cannot know how long it
    # lasts, nor warm up in 53 s for the visit it would announce next, so twilight keeps deciding.
    now = T0 + 3600
    s = schedule(T0, since=T0 - 7200, until=now + 53)
    assert prewarm_from_schedule(s, now, TIMING) is None


def test_the_broker_follows_the_schedule_and_falls_back_to_twilight() -> None:
    spec = make_spec(broker={"prewarm_lead_seconds": 3600})
    n = night_at(PACHON, T0)
    assert n is not None and n.contains(T0)
    o = initial_state(spec, T0 - 100_000)
    o = replace(o, now=T0, demand={"drp": PoolDemand(idle_jobs=5000, idle_cores=5000)})
    assert plan(spec, o).pools["prompt"].prewarm  # twilight: the middle of the night
    gap = replace(o, schedule=schedule(T0 - 7200, T0 + 7200, since=T0 - 9000, until=T0 + 9000))
    p = plan(spec, gap)
    assert not p.pools["prompt"].prewarm  # a 4 h gap in the schedule: released
    assert any("observing schedule (2 visits): pre-warm off" in note for note in p.notes)
    # Nor does the need window hold prompt's recent peak through a gap the schedule says is long.
    peaked = replace(gap, demand={**gap.demand, "prompt": PoolDemand(peak_cores=200)})
    assert plan(spec, peaked).pools["prompt"].need == 0
    assert plan(spec, replace(peaked, schedule=None)).pools["prompt"].need > 0
    # The same schedule seen after its span: twilight again.
    late = replace(gap, now=T0 + 9001)
    assert plan(spec, late).pools["prompt"].prewarm == plan(spec, replace(late, schedule=None)).pools["prompt"].prewarm


def test_a_next_visit_message_is_accepted_as_is_and_bad_input_is_named() -> None:
    # LSSTCam's visits come from the Main Telescope's queue: salIndex 1 (lsst-ts/ts_xml
    # python/lsst/ts/xml/enums/ScriptQueue.py SalIndex.MAIN_TEL = 1, AUX_TEL = 2; commit a724e1ac).
    message = {"salIndex": 1, "scriptSalIndex": 42, "groupId": "2026-04-14T01:00:00.000", "coordinateSystem": 2,
               "position": [150.3, 2.26], "startTime": T0 + 37, "rotationSystem": 2, "cameraAngle": 270.0,
               "filters": "r_57", "dome": 2, "duration": 33.0, "nimages": 1, "instrument": "LSSTCam",
               "survey": "BLOCK-365", "totalCheckpoints": 0, "private_sndStamp": T0 - 3}
    s = parse([message], "night.yaml")
    assert s.visits[0].start == T0 and s.visits[0].readout == T0 + 33 and s.visits[0].detectors == 189
    with pytest.raises(InputError) as bad:
        parse({"visits": [{"groupId": "a", "startTime": 10.0, "duration": 30, "exposure": 30}]}, "night.yaml")
    assert "night.yaml: visits[0].exposure" in str(bad.value) and "not a field" in str(bad.value)
    with pytest.raises(InputError) as bad:
        parse({"visits": [{"groupId": "a", "duration": 30}]}, "n.json")
    assert "n.json: visits[0]: startTime is 0 or missing" in str(bad.value)  # and no private_sndStamp
    with pytest.raises(InputError):
        parse("tonight", "n.json")


# --- invariants over random schedules (hypothesis; small counts, as the shared machine asks) -------------------

SMALL = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def timelines(draw: st.DrawFn) -> tuple[ObservingSchedule, float]:
    """A schedule of up to 12 visits whose gaps range from back-to-back to hours, and a time to ask about."""
    gaps = draw(st.lists(st.floats(0, 3 * TIMING.worth_releasing), min_size=1, max_size=12))
    starts, t = [], T0
    for g in gaps:
        t += DURATION + g
        starts.append(t)
    s = ObservingSchedule(visits=visits(*starts), complete_from=T0 - 7200, complete_until=starts[-1] + 7200)
    return s, draw(st.floats(T0 - 7200, starts[-1] + 7200 - TIMING.lead))


@SMALL
@given(timelines())
def test_ready_for_every_visit_and_never_held_through_a_long_gap(case: tuple[ObservingSchedule, float]) -> None:
    s, now = case
    verdict = prewarm_from_schedule(s, now, TIMING)
    windows = [(v.start - TIMING.lead, v.readout + TIMING.hold) for v in s.visits]
    if any(lo <= now < hi for lo, hi in windows):
        assert verdict is True  # ready (startds joined) by each visit's start, held until its jobs are done
        return
    before = [hi for lo, hi in windows if hi <= now]
    after = [v.start for (lo, _), v in zip(windows, s.visits, strict=True) if lo > now]
    gap_start = max(before) if before else T0 - 7200
    gap_end = min(after) if after else None
    if gap_end is None:
        assert verdict is (False if s.known_until() - gap_start > TIMING.worth_releasing else None)  # type: ignore[operator]
    else:
        assert verdict is (gap_end - gap_start <= TIMING.worth_releasing)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.lists(st.floats(-4 * 3600, 4 * 3600), min_size=0, max_size=6))
def test_decide_invariants_still_hold_with_a_schedule(case: tuple[EnclaveSpec, Observed], offsets: list[float]) -> None:
    spec, o = case
    starts = sorted(o.now + x for x in offsets)
    starts = [s for i, s in enumerate(starts) if i == 0 or s - starts[i - 1] >= 1]
    o = replace(o, schedule=ObservingSchedule(visits=visits(*starts), complete_from=o.now - 5 * 3600,
                                              complete_until=o.now + 5 * 3600))
    properties._guarantees_kept(spec, o)
    properties._maxima_kept(spec, o)
    properties._changes_nothing(spec, o)
    # It takes cases of its own kinds (handovers, prewarms, after_prewarms) too: none here.
    properties.test_make_before_break_a_latency_pool_keeps_running_what_it_needs.hypothesis.inner_test(  # type: ignore[attr-defined]
        (spec, o), None, None, None)


TINY = Path(__file__).parent / "data" / "tiny.yaml"


@pytest.mark.parametrize("lead", [20.0, None])
def test_the_twin_feeds_its_visits_as_next_visit_announces_them(tmp_path: Path, lead: float | None) -> None:
    scenario = yaml.safe_load(TINY.read_text())
    scenario["prompt"]["visits"] = {"feed": {"lead_s": lead}}
    path = tmp_path / "tiny-feed.yaml"
    path.write_text(yaml.safe_dump(scenario))
    twin = TwinBackend.from_scenario(str(path))
    epoch, readouts = twin.sim.sc.start_epoch, twin.sim.wl.visit_readout
    twin.advance(readouts[5] - 40)  # the 6th visit starts 33 s before its readout: 7 s from now
    s = twin.observe().schedule
    assert s is not None and s.complete_from == epoch
    if lead is None:  # the night plan: every visit, complete to the scenario's end
        assert len(s.visits) == len(readouts) and s.complete_until == epoch + twin.sim.horizon
    else:  # announced 20 s before the start: the 6th (7 s away) and any other starting within 20 s
        assert s.complete_until == twin.observe().now + 20
        assert [v.readout for v in s.visits] == pytest.approx([epoch + r for r in readouts
                                                              if epoch + r - 33 <= s.complete_until])
        assert len(s.visits) >= 6
    v = s.visits[5]
    assert v.startTime == epoch + readouts[5] - 33 + TAI_MINUS_UTC_S and v.duration == 33 and v.detectors == 4
