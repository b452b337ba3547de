"""The windowed need of a latency pool (issue 15): the recent peak plus headroom, so an overlap of visits does
not pull capacity in and push it back out every time."""

from __future__ import annotations

from dataclasses import replace

from enclave.broker.decide import current_night, pool_figure
from enclave.broker.window import NeedWindow, learned_need
from enclave.domain.capacity import Observed, PoolDemand
from enclave.domain.night import Night
from enclave.spec import EnclaveSpec
from tests.broker.conftest import NOW, make_spec


def _at(t: float, prompt_cores: int) -> Observed:
    return Observed(now=NOW + t, nodes=(), startds=(),
                    demand={"prompt": PoolDemand(idle_jobs=prompt_cores, idle_cores=prompt_cores)})


def test_window_keeps_the_peak_until_it_is_older_than_the_window() -> None:
    spec = make_spec(broker={"need_window_seconds": 600, "need_percentile": 1})
    w = NeedWindow(spec)
    assert w.feed(_at(0, 100)).demand["prompt"].peak_cores == 100
    assert w.feed(_at(60, 20)).demand["prompt"].peak_cores == 100   # the overlap is over; its peak stays
    assert w.feed(_at(600, 30)).demand["prompt"].peak_cores == 100  # exactly 600 s old: still in the window
    assert w.feed(_at(601, 10)).demand["prompt"].peak_cores == 30   # gone: the next largest within 600 s


def test_default_percentile_holds_overlaps_that_fill_over_two_fifths_of_the_window() -> None:
    """Jobs that outlast the readout interval: the need alternates between one visit (189) and two (378). By
    nearest rank the default 0.6 takes the ceil(0.6 · n)-th smallest need with work, so it holds the overlap
    level once overlaps are more than 2 of 5 samples; the median (0.5) only once they are more than half."""
    spec = make_spec(broker={"need_window_seconds": 600, "latency_headroom": 0})
    assert spec.broker.need_percentile == 0.6
    w = NeedWindow(spec)
    needs = [189, 378, 189, 378, 189, 378, 189, 189, 189, 378]
    for i, cores in enumerate(needs):
        learned = w.feed(_at(60 * i, cores)).demand["prompt"].peak_cores
    assert learned == 189  # 4 of 10 at 378: the 6th smallest is the last 189
    assert w.feed(_at(600, 378)).demand["prompt"].peak_cores == 378  # 5 of 11: the 7th smallest is 378
    assert learned_need([*needs, 378], 0.5) == 189  # the median: the 6th smallest


def test_no_window_leaves_the_observation_alone() -> None:
    o = _at(0, 100)
    assert NeedWindow(make_spec(broker={"need_window_seconds": 0})).feed(o) is o


def test_latency_pool_need_is_the_peak_plus_headroom_others_are_not() -> None:
    spec = make_spec(broker={"latency_headroom": 0.1})
    d = replace(PoolDemand(idle_jobs=20, idle_cores=20), peak_cores=100)
    # prompt has a latency objective: ceil(max(20, 100) · 1.1) = 110 (below its maximum, 6 of 10 nodes).
    assert pool_figure(spec, "prompt", d, base=240, prewarm=False).need == 110
    # drp has none: its need is what its jobs ask now.
    assert pool_figure(spec, "drp", d, base=240, prewarm=False).need == 20
    # Nothing needed now or recently: no headroom on nothing.
    assert pool_figure(spec, "prompt", PoolDemand(), base=240, prewarm=False).need == 0


def test_a_latency_pool_bypasses_the_cooldown_only_while_its_jobs_wait() -> None:
    """Prompt (guarantee 3 nodes) holds nothing; drp's ten nodes were relabelled 100 s ago (inside the 900 s
    cooldown). By day, no commons: prompt's target is its guarantee either way."""
    from enclave.broker.decide import plan
    from enclave.domain.capacity import Node, Relabel, Startd, StartdKind
    from enclave.spec.models import NodeRole

    spec = make_spec(workers=0, batch=10, broker={"cooldown_seconds": 900})
    nodes = tuple(Node(f"condor-{i:03d}", "condor", NodeRole.BATCH_ONLY, 24, 128 * 1024) for i in range(1, 11))
    startds = tuple(Startd(f"condor-{i:03d}", f"condor-{i:03d}", StartdKind.STANDALONE, "drp", 24, 128 * 1024,
                           since=NOW - 100) for i in range(1, 11))
    drp = PoolDemand(idle_jobs=1000, idle_cores=1000)
    # Prompt ran a visit a few minutes ago (its window holds 20 cores) but nothing waits now: not at risk,
    # so the cooldown holds and nothing moves yet.
    calm = Observed(now=NOW, nodes=nodes, startds=startds,
                    demand={"drp": drp, "prompt": PoolDemand(peak_cores=20)})
    assert not [a for a in plan(spec, calm).actions if isinstance(a, Relabel)]
    # 20 prompt jobs wait and it runs none: the objective is at risk, the promise moves nodes at once.
    risk = replace(calm, demand={"drp": drp, "prompt": PoolDemand(idle_jobs=20, idle_cores=20, peak_cores=20)})
    moved = [a for a in plan(spec, risk).actions if isinstance(a, Relabel) and a.to_pool == "prompt"]
    assert len(moved) >= 1


def test_weighted_surplus_shares_by_guarantee_after_latency_needs() -> None:
    """120 cores: prompt (latency) guarantee 10, need 30; drp guarantee 40, need 200; user guarantee 20,
    need 100. Guarantees first (70 given, 50 left); prompt's need next (20 more, 30 left); then drp and
    user share 30 as 40:20 → 20 and 10. Under priority drp would take all 30."""
    from enclave.broker.decide import PoolState, assign_targets

    def pools() -> dict[str, PoolState]:
        return {p.name: p for p in (
            PoolState("prompt", 100, 10, 120, True, 30, 0, 0, latency=True),
            PoolState("drp", 50, 40, 120, True, 200, 0, 0),
            PoolState("user", 30, 20, 120, True, 100, 0, 0))}

    fair = pools()
    assign_targets(fair, base=120, cover={}, lenders=set(), weighted=True)
    assert {n: p.target for n, p in fair.items()} == {"prompt": 30, "drp": 60, "user": 30}
    strict = pools()
    assign_targets(strict, base=120, cover={}, lenders=set())
    assert {n: p.target for n, p in strict.items()} == {"prompt": 30, "drp": 70, "user": 20}


def test_learned_need_is_a_percentile_of_the_needs_with_work() -> None:
    needs = [0, 0, *range(10, 101, 10)]  # two samples without work, then 10, 20, ..., 100
    # Nearest rank over the ten with work: the 9th of 10 at 0.9, the 5th at 0.5, the largest at 1.
    assert learned_need(needs, 0.9) == 90
    assert learned_need(needs, 0.5) == 50
    assert learned_need(needs, 1.0) == 100
    assert learned_need([0, 0], 0.9) == 0 and learned_need([], 1.0) == 0


def test_window_writes_the_percentile_of_its_samples() -> None:
    spec = make_spec(broker={"need_window_seconds": 600, "need_percentile": 0.9})
    w = NeedWindow(spec)
    for i, cores in enumerate(range(10, 101, 10)):
        got = w.feed(_at(60 * i, cores)).demand["prompt"].peak_cores
    assert got == 90  # ten samples 10..100 within 540 s: the 9th
    # A gap (no prompt job) adds samples without work: the figure stays while the visits are in the window.
    assert w.feed(_at(600, 0)).demand["prompt"].peak_cores == 90


def test_the_prewarm_default_gives_way_to_the_measured_need() -> None:
    """Prompt's guarantee on the whole batch capacity is 72 cores (3 of 10 nodes of 24)."""
    spec = make_spec(broker={"latency_headroom": 0})
    # Before tonight's first visit nothing is measured: the pre-warm holds the guarantee.
    assert pool_figure(spec, "prompt", PoolDemand(), base=240, prewarm=True).need == 72
    # Visits measured at 50 cores: that is what it needs.
    assert pool_figure(spec, "prompt", PoolDemand(peak_cores=50), base=240, prewarm=True).need == 50
    # An operator's prewarm_cores stays a floor.
    set_ = make_spec(broker={"latency_headroom": 0, "prewarm_cores": 100})
    assert pool_figure(set_, "prompt", PoolDemand(peak_cores=50), base=240, prewarm=True).need == 100


def test_a_covered_pool_is_promised_its_need_up_to_its_guarantee() -> None:
    """Prompt: guarantee 72, need 50, of which the commons covers 48 tonight. Its standalone target is the 2
    cores left of its need, and it borrows the 48: not the guarantee's 72 - 48 = 24 standalone cores on top of
    the pods. Without cover the guarantee stands (the hypothesis invariants)."""
    from enclave.broker.decide import PoolState, assign_targets

    def pools() -> dict[str, PoolState]:
        return {p.name: p for p in (PoolState("prompt", 100, 72, 144, True, 50, 0, 0, latency=True),
                                    PoolState("drp", 50, 96, 240, True, 500, 0, 0))}

    covered = pools()
    assign_targets(covered, base=240, cover={"prompt": 48}, lenders={"prompt"})
    assert (covered["prompt"].target, covered["prompt"].lend, covered["drp"].target) == (2, 48, 238)
    plain = pools()
    assign_targets(plain, base=240, cover={}, lenders={"prompt"})
    assert (plain["prompt"].target, plain["prompt"].lend, plain["drp"].target) == (72, 0, 168)


def _nights(spec: EnclaveSpec, count: int) -> list[Night]:
    """The site's next ``count`` nights from NOW (daytime at Cerro Pachón), as the broker's twilight tells them."""
    nights = []
    t = NOW
    for _ in range(count):
        night = current_night(spec, t)
        assert night is not None
        nights.append(night)
        t = night.end + 3600  # the next day: the next night follows
    return nights


def _seen(w: NeedWindow, t: float, prompt_cores: int) -> PoolDemand:
    return w.feed(replace(_at(0, prompt_cores), now=t)).demand["prompt"]


def _night_of(w: NeedWindow, night: Night, *cores: int) -> None:
    """A night the loop sees whole: an observation in the afternoon (2 h before evening twilight, before the
    pre-warm's 1 h lead), then one sample a minute from an hour after twilight."""
    _seen(w, night.start - 7200, 0)
    for i, c in enumerate(cores):
        _seen(w, night.start + 3600 + 60 * i, c)


def test_recent_nights_stand_in_for_the_window_until_tonight_fills_one() -> None:
    """Window 600 s at the median. Night 1's prompt needs are 100, 140 and 120: its figure is their median, 120.
    Prompt's guarantee on the whole batch capacity (the pre-warm's default) is 72 cores (3 of 10 nodes of 24)."""
    spec = make_spec(broker={"need_window_seconds": 600, "need_percentile": 0.5, "latency_headroom": 0})
    first, second = _nights(spec, 2)
    w = NeedWindow(spec)
    _seen(w, first.start - 7200, 0)
    for i, cores in enumerate((100, 140, 120)):
        assert _seen(w, first.start + 3600 + 60 * i, cores).nights_cores is None  # no night learned yet
    # By day nothing stands in (the first observation after morning twilight learned night 1).
    assert _seen(w, second.start - 7200, 0).nights_cores is None
    # In the next night's lead, before its first visit: night 1's figure, not the guarantee.
    before = _seen(w, second.start - 60, 0)
    assert before.nights_cores == 120
    assert pool_figure(spec, "prompt", before, base=240, prewarm=True).need == 120
    # Tonight's first visit needs 50: the window has it, the recent nights hold until it fills a window (600 s).
    t0 = second.start + 60
    first_visit = _seen(w, t0, 50)
    assert (first_visit.peak_cores, first_visit.nights_cores) == (50, 120)
    assert pool_figure(spec, "prompt", first_visit, base=240, prewarm=True).need == 120
    assert _seen(w, t0 + 599, 50).nights_cores == 120
    filled = _seen(w, t0 + 600, 50)
    assert filled.nights_cores is None
    assert pool_figure(spec, "prompt", filled, base=240, prewarm=True).need == 50
    # A weather gap longer than the window: it holds no visit, the recent nights stand in again.
    gap = _seen(w, t0 + 600 + 601, 0)
    assert (gap.peak_cores, gap.nights_cores) == (0, 120)
    # By day the recent nights do not count: no pre-warm, no need.
    assert pool_figure(spec, "prompt", before, base=240, prewarm=False).need == 0


def test_recent_nights_are_the_median_of_the_last_need_nights() -> None:
    """need_nights 3: nights needing 10, 100, 300 and 800 (one sample each) leave the last three, 100, 300 and
    800, whose median is 300 (the last night's figure is 800, the first three's median, or all four's by nearest
    rank, 100, the mean of the last three 400); a night without work adds no figure. (With nights of 100, 300, 50
    and 200 the last night's 200 was the median too: a mutant taking the last night passed every test, stop 56.)"""
    spec = make_spec(broker={"need_window_seconds": 600, "need_nights": 3})
    nights = _nights(spec, 6)
    w = NeedWindow(spec)
    for night, cores in zip(nights[:4], (10, 100, 300, 800), strict=True):
        _night_of(w, night, cores)
    _night_of(w, nights[4], 0)  # a night of clouds
    assert _seen(w, nights[5].start - 60, 0).nights_cores == 300


def test_a_night_seen_from_its_middle_teaches_nothing() -> None:
    """A broker started mid-night sees that night's tail: no figure from it."""
    spec = make_spec(broker={"need_window_seconds": 600})
    first, second = _nights(spec, 2)
    w = NeedWindow(spec)
    _seen(w, first.start + 3600, 100)  # the first observation, an hour into the night
    assert _seen(w, second.start - 60, 0).nights_cores is None


def test_recent_nights_get_the_latency_headroom() -> None:
    """Night 1 needed 100; with a 20 % margin the pre-warm holds ceil(100 · 1.2) = 120, as the window's figure
    would get (prompt's maximum is 6 nodes of 24, 144 cores)."""
    spec = make_spec(broker={"need_window_seconds": 600, "latency_headroom": 0.2})
    first, second = _nights(spec, 2)
    w = NeedWindow(spec)
    _night_of(w, first, 100)
    before = _seen(w, second.start - 60, 0)
    assert pool_figure(spec, "prompt", before, base=240, prewarm=True).need == 120


def test_without_recent_nights_the_pre_warm_holds_the_guarantee_until_the_first_visit() -> None:
    spec = make_spec(broker={"need_window_seconds": 600, "need_nights": 0, "latency_headroom": 0})
    first, second = _nights(spec, 2)
    w = NeedWindow(spec)
    _night_of(w, first, 100)
    before = _seen(w, second.start - 60, 0)
    assert before.nights_cores is None
    assert pool_figure(spec, "prompt", before, base=240, prewarm=True).need == 72


def test_a_broker_restarted_mid_night_holds_the_pre_warm_default_until_it_measures_a_visit() -> None:
    """The window and the recent nights live in the loop's memory (``BrokerService.window``), so a restarted broker
    (or a standby replica taking the lead) starts with neither. Between two visits its first observation sees no
    prompt job: what it learned is 0, which must not read as "prompt needs nothing" (its pods would go back at
    once, being out of their cooldown), but as nothing measured: the pre-warm's default, the guarantee on the
    whole batch capacity (72 cores: 3 of 10 nodes of 24). Its first visit then sets the need."""
    spec = make_spec(broker={"need_window_seconds": 600, "latency_headroom": 0})
    [night] = _nights(spec, 1)
    w = NeedWindow(spec)
    gap = _seen(w, night.start + 3 * 3600, 0)
    assert (gap.peak_cores, gap.nights_cores) == (0, None)
    assert pool_figure(spec, "prompt", gap, base=240, prewarm=True).need == 72
    visit = _seen(w, night.start + 3 * 3600 + 40, 50)
    assert pool_figure(spec, "prompt", visit, base=240, prewarm=True).need == 50


def test_a_test_job_in_the_lead_is_not_the_nights_first_visit() -> None:
    """Review, stop 48: a 1-core job half an hour before evening twilight (in the pre-warm's 1 h lead) replaced the
    guarantee with its own core until it left the 600 s window, 72 → 1 → 72 cores. As ``observing_done`` has it, a
    job submitted before twilight is not tonight's visit: the guarantee (3 of 10 nodes of 24 cores) holds until one
    is, and with recent nights the job does not start tonight's window either."""
    for need_nights in (0, 3):
        spec = make_spec(broker={"need_window_seconds": 600, "need_nights": need_nights, "latency_headroom": 0})
        first, second = _nights(spec, 2)
        w = NeedWindow(spec)
        _night_of(w, first, 100)
        job = replace(_seen(w, second.start - 1800, 1), newest_submit=second.start - 1800)
        assert job.peak_cores == 1
        assert pool_figure(spec, "prompt", job, base=240, prewarm=True, tonight_since=second.start).need == \
            (72 if need_nights == 0 else 100)
        visit = replace(_seen(w, second.start + 60, 50), newest_submit=second.start + 60)
        assert pool_figure(spec, "prompt", visit, base=240, prewarm=True, tonight_since=second.start).need == \
            (50 if need_nights == 0 else 100)  # with recent nights: their figure until tonight fills a window
        if need_nights:  # tonight's window runs from the first visit (+60 s), not from the job (−1,800 s)
            assert _seen(w, second.start + 60 + 599, 50).nights_cores == 100
            assert _seen(w, second.start + 60 + 600, 50).nights_cores is None


def test_a_clock_stepping_back_does_not_hold_a_peak_seen_later() -> None:
    """Review, stop 48: a sample 1 h ahead (a clock stepped back after it) stayed at the window's head, blocking
    its trimming, so a 600 s window held its peak of 200 for 70 minutes. What was seen "later" than now is gone."""
    spec = make_spec(broker={"need_window_seconds": 600, "need_percentile": 1})
    w = NeedWindow(spec)
    assert w.feed(_at(3600, 200)).demand["prompt"].peak_cores == 200
    assert w.feed(_at(0, 10)).demand["prompt"].peak_cores == 10
    assert w.feed(_at(601, 5)).demand["prompt"].peak_cores == 5


def test_nights_seen_from_exactly_twilight_count_and_a_step_back_files_no_night() -> None:
    """Review, stop 48: a loop whose first observation came exactly at evening twilight saw the night from its
    start (``Night.contains`` and ``observing_done`` take the boundary in), yet learned nothing from it; and a clock
    stepping back into the last night filed tonight's needs so far as a night, then took tonight as seen from its
    middle, so tonight's own figure was lost. One night kept, each night's figure its peak (percentile 1)."""
    spec = make_spec(broker={"need_window_seconds": 600, "need_percentile": 1, "need_nights": 1,
                             "latency_headroom": 0})
    first, second, third = _nights(spec, 3)
    w = NeedWindow(spec)
    _seen(w, first.start, 0)
    for i, c in enumerate((100, 140, 120)):
        _seen(w, first.start + 3600 + 60 * i, c)
    assert _seen(w, second.start - 60, 0).nights_cores == 140
    _seen(w, second.start + 3600, 500)
    _seen(w, first.end - 60, 0)  # the clock steps back into the first night, then forward again
    _seen(w, second.start + 7200, 700)
    _seen(w, second.end + 60, 0)
    assert _seen(w, third.start - 60, 0).nights_cores == 700  # the second night whole: 500 then 700
