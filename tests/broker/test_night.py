"""Twilight at the site and the predictive pre-warm of prompt processing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from enclave.broker.decide import plan
from enclave.broker.effects import project
from enclave.broker.layout import initial_state
from enclave.domain.capacity import DeployPods, Observed, PoolDemand, Relabel
from enclave.domain.night import (
    SEASONS,
    TROPICAL_YEAR_S,
    Night,
    SeasonBand,
    day_bands,
    local_day_second,
    night_at,
    season_edges,
    season_of,
)
from enclave.spec import EnclaveSpec
from enclave.spec.models import NodeRole, Site
from tests.broker.conftest import make_spec

PACHON = Site(latitude_deg=-30.2444, longitude_deg=-70.7494, elevation_m=2663)


def ts(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


def test_twilight_matches_a_real_night_summary() -> None:
    # USDF night summary 2026-04-13: evening 12° twilight 23:17Z, morning 12° twilight 10:09Z.
    n = night_at(PACHON, ts(2026, 4, 13, 18))
    assert n is not None
    assert abs(n.start - ts(2026, 4, 13, 23, 17)) < 120
    assert abs(n.end - ts(2026, 4, 14, 10, 9)) < 120
    assert night_at(PACHON, ts(2026, 4, 14, 3)) == n  # inside the night: the same night
    nxt = night_at(PACHON, ts(2026, 4, 14, 11))
    assert nxt is not None and nxt.start > n.end  # after it: the next one


def test_no_night_in_polar_summer() -> None:
    svalbard = Site(latitude_deg=78.2, longitude_deg=15.6)
    assert night_at(svalbard, ts(2026, 6, 21, 12)) is None


def test_in_polar_night_the_night_runs_from_local_noon() -> None:
    """Near the South Pole in June the sun stays below -12° all day (at 85° S its highest is 90 - 85 - 23.4 =
    -18.4°): the night that contains an evening hour began at the local noon before it, and lasts past the next
    one (``_nights_around``: below at noon, no crossing)."""
    pole = Site(latitude_deg=-85.0, longitude_deg=0.0)
    t = ts(2026, 6, 21, 18)
    n = night_at(pole, t)
    assert n is not None and n.start == ts(2026, 6, 21, 12) and n.end > ts(2026, 6, 22, 12)


def test_a_night_that_spans_greenwich_noon_starts_at_its_own_twilight() -> None:
    """At Siding Spring (149° E) a June night runs from roughly 08:00 to 20:00 UTC (sunset near 16:55 AEST, -12°
    about an hour later; dawn's -12° near 06:00 AEST), across 12:00 UTC: nights are cut at the site's own mean
    noon (02:04 UTC there), so the night is whole, from its evening twilight."""
    siding_spring = Site(latitude_deg=-31.27, longitude_deg=149.06, elevation_m=1165)
    n = night_at(siding_spring, ts(2026, 6, 21, 14))
    assert n is not None
    assert ts(2026, 6, 21, 7) < n.start < ts(2026, 6, 21, 9) and ts(2026, 6, 21, 19) < n.end < ts(2026, 6, 21, 21)


@pytest.fixture
def spec() -> EnclaveSpec:
    return make_spec(batch=10, guaranteed=(3, 4, 1, 0), maximum=(6, 10, 5, 5),
                     broker={"prewarm_lead_seconds": 3600, "cooldown_seconds": 0, "max_moves_per_cycle": 50})


def _prompt_cores(spec: EnclaveSpec, now: float, *, commons_full: bool = False,
                  by: str = "any") -> tuple[bool, int]:
    """Whether prompt is pre-warmed at ``now``, and the cores moved to it: relabelled batch nodes (``by=
    "relabel"``), worker pods borrowed from the commons (``"pods"``) or both."""
    o = initial_state(spec, now - 100_000)
    # Prompt holds nothing (it gave its nodes to DRP in the day); DRP has a backlog, no prompt job queued.
    nodes = tuple(replace(n, k8s_cores_requested=n.cores, k8s_memory_requested_mib=n.memory_mib)
                  if commons_full and n.role == NodeRole.WORKER else n for n in o.nodes)
    o = replace(o, now=now, nodes=nodes, startds=tuple(replace(s, pool="drp") for s in o.startds),
                demand={"drp": PoolDemand(idle_jobs=5000, idle_cores=5000)})
    p = plan(spec, o)
    relabelled = sum(24 for a in p.actions if isinstance(a, Relabel) and a.to_pool == "prompt")
    pods = sum(a.cores_per_pod * len(a.pods) for a in p.actions if isinstance(a, DeployPods) and a.pool == "prompt")
    return p.pools["prompt"].prewarm, {"any": relabelled + pods, "relabel": relabelled, "pods": pods}[by]


def test_prewarm_moves_capacity_before_the_first_visit(spec: EnclaveSpec) -> None:
    n = night_at(PACHON, ts(2026, 4, 13, 18))
    assert n is not None
    assert _prompt_cores(spec, n.start - 7200) == (False, 0)           # two hours before: nothing yet
    warm, cores = _prompt_cores(spec, n.start - 1800)                   # within the lead: its guarantee
    assert warm and cores == 72
    # From the idle commons (BCS 4), so the batch-only nodes keep running DRP through the night ...
    assert _prompt_cores(spec, n.start - 1800, by="pods") == (True, 72)
    assert _prompt_cores(spec, n.start - 1800, by="relabel") == (True, 0)
    # ... and from the batch nodes (BCS 1) when notebooks leave no room in the commons.
    assert _prompt_cores(spec, n.start - 1800, commons_full=True, by="relabel") == (True, 72)
    assert _prompt_cores(spec, n.start - 1800, commons_full=True, by="pods") == (True, 0)
    assert _prompt_cores(spec, n.end - 600)[0]                          # still night
    assert _prompt_cores(spec, n.end + 600) == (False, 0)               # after the last visit: given back


def test_no_site_no_prewarm() -> None:
    spec = make_spec()
    spec = spec.model_copy(update={"cluster": spec.cluster.model_copy(update={"site": None})})
    o = initial_state(spec, 0.0)
    p = plan(spec, replace(o, now=ts(2026, 4, 14, 3)))
    assert p.night is None and not p.pools["prompt"].prewarm


def test_prompt_gives_its_nodes_back_after_the_night(spec: EnclaveSpec) -> None:
    n = night_at(PACHON, ts(2026, 4, 13, 18))
    assert n is not None
    o = initial_state(spec, n.start - 100_000)  # prompt holds its 3 nodes from the static layout
    demand = {"drp": PoolDemand(idle_jobs=5000, idle_cores=5000)}
    # The commons is full (notebooks): through the night prompt keeps its batch nodes.
    full = tuple(replace(x, k8s_cores_requested=x.cores, k8s_memory_requested_mib=x.memory_mib)
                 if x.role == NodeRole.WORKER else x for x in o.nodes)
    during = plan(spec, replace(o, now=n.end - 600, demand=demand, nodes=full))
    assert not any(isinstance(a, Relabel) and a.from_pool == "prompt" for a in during.actions)
    # The commons is idle: prompt borrows worker pods for its guarantee, and its nodes go back to DRP once the
    # pods' startds have joined, not in the same cycle (make before break).
    idle = plan(spec, replace(o, now=n.end - 600, demand=demand))
    assert sum(a.cores_per_pod * len(a.pods) for a in idle.actions if isinstance(a, DeployPods)) == 72
    assert not any(isinstance(a, Relabel) and a.from_pool == "prompt" for a in idle.actions)
    started = project(replace(o, now=n.end - 600, demand=demand), idle.actions)
    joined = replace(started, now=n.end - 540, startds=tuple(replace(s, ready=True) for s in started.startds))
    assert sum(1 for a in plan(spec, joined).actions if isinstance(a, Relabel) and a.from_pool == "prompt") == 3
    after = plan(spec, replace(o, now=n.end + 600, demand=demand, nodes=full))
    assert sum(1 for a in after.actions if isinstance(a, Relabel) and a.from_pool == "prompt") == 3


def test_prewarm_ends_after_the_last_visit_and_returns_with_the_next(spec: EnclaveSpec) -> None:
    n = night_at(PACHON, ts(2026, 4, 13, 18))
    assert n is not None
    quiet = spec.broker.prewarm_quiet_seconds
    o = initial_state(spec, n.start - 100_000)
    drp = PoolDemand(idle_jobs=5000, idle_cores=5000)

    def warm(now: float, prompt: PoolDemand) -> bool:
        return plan(spec, replace(o, now=now, demand={"drp": drp, "prompt": prompt})).pools["prompt"].prewarm

    mid = n.start + 4 * 3600
    # Before the first visit nothing was submitted tonight: last night's jobs do not end tonight's pre-warm.
    assert warm(n.start - 600, PoolDemand(newest_submit=n.start - 86_400 + 3600))
    # Visits keep coming: pre-warmed, even in a gap shorter than the quiet period.
    assert warm(mid, PoolDemand(newest_submit=mid - quiet + 60))
    # The last visit was longer ago than the quiet period and nothing is queued or running: given back.
    assert not warm(mid, PoolDemand(newest_submit=mid - quiet - 60))
    # Jobs still queued or running keep it, however old the newest submission.
    assert warm(mid, PoolDemand(running_jobs=1, running_cores=1, newest_submit=mid - quiet - 60))
    # A backend that cannot tell when jobs were submitted keeps the pre-warm until morning twilight.
    assert warm(mid, PoolDemand())
    # A new visit (clouds clearing) pre-warms it again.
    assert warm(mid + 600, PoolDemand(idle_jobs=189, idle_cores=189, newest_submit=mid + 590))


def _prewarmed_in_pods(spec: EnclaveSpec) -> tuple[Night, Observed]:
    """An hour into a night, every batch node labelled DRP with a backlog: prompt's guarantee pre-warmed in pods."""
    n = night_at(PACHON, ts(2026, 4, 13, 18))
    assert n is not None
    o = initial_state(spec, n.start - 100_000)
    o = replace(o, now=n.start + 3600, startds=tuple(replace(s, pool="drp") for s in o.startds),
                demand={"drp": PoolDemand(idle_jobs=5000, idle_cores=5000)})
    return n, project(o, plan(spec, o).actions)


def test_after_the_last_visit_prompt_pods_go_back(spec: EnclaveSpec) -> None:
    from enclave.domain.capacity import DeletePods

    n, o = _prewarmed_in_pods(spec)
    lent = [s for s in o.startds if s.pool == "prompt"]
    assert sum(s.cores for s in lent) == 72
    later = n.start + 3 * 3600
    done = replace(o, now=later, demand={"drp": PoolDemand(idle_jobs=5000, idle_cores=5000),
                                         "prompt": PoolDemand(newest_submit=later - 1800)})
    p = plan(spec, done)
    assert not p.pools["prompt"].prewarm
    assert {name for a in p.actions if isinstance(a, DeletePods) for name in a.pods} == {s.name for s in lent}


def test_after_the_last_visit_the_learned_need_stays_in_the_pods(spec: EnclaveSpec) -> None:
    """The pre-warm has ended (the last visit was 30 minutes ago, nothing queued), but the need window still
    holds tonight's visits (``peak_cores`` 60: ``broker.window``). Through the night the commons cover that need
    (``prewarm_cover``): prompt keeps 60 of its 72 pod cores (one 8-core pod is surplus: 12 ≥ 1.5 · 8) and
    takes no batch node. Without the cover its promise would be its whole guarantee (72) in batch nodes,
    relabelled from DRP's backlog for the minutes until the window empties."""
    from enclave.domain.capacity import DeletePods

    n, o = _prewarmed_in_pods(spec)
    o = replace(o, startds=tuple(replace(s, ready=True) for s in o.startds))
    later = n.start + 3 * 3600
    done = replace(o, now=later, demand={"drp": PoolDemand(idle_jobs=5000, idle_cores=5000),
                                         "prompt": PoolDemand(newest_submit=later - 1800, peak_cores=60)})
    p = plan(spec, done)
    prompt = p.pools["prompt"]
    assert not prompt.prewarm and prompt.need == 60
    assert (prompt.target, prompt.lend) == (0, 60)
    assert not [a for a in p.actions if isinstance(a, Relabel) and a.to_pool == "prompt"]
    assert sum(len(a.pods) for a in p.actions if isinstance(a, DeletePods)) == 1
    # After morning twilight night lending is over (seed §7.1): what the window still holds is promised from
    # batch nodes, as by day.
    morning = plan(spec, replace(done, now=n.end + 600))
    assert morning.pools["prompt"].lend == 0


def test_failed_batch_nodes_do_not_shrink_the_prewarm(spec: EnclaveSpec) -> None:
    from enclave.domain.capacity import NodeState

    n = night_at(PACHON, ts(2026, 4, 13, 18))
    assert n is not None
    o = initial_state(spec, n.start - 100_000)
    # Half the batch nodes are down: every share shrinks, but the night's visits need as much as ever.
    down = {f"condor-{i:03d}" for i in range(1, 6)}
    nodes = tuple(replace(x, state=NodeState.DOWN) if x.name in down else x for x in o.nodes)
    p = plan(spec, replace(o, now=n.start + 3600, nodes=nodes,
                           demand={"drp": PoolDemand(idle_jobs=5000, idle_cores=5000)}))
    prompt = p.pools["prompt"]
    assert prompt.prewarm and prompt.guaranteed == 36  # 0.3 of the 120 cores still up
    assert prompt.need == 72                           # 0.3 of the spec's 240 batch cores


def test_a_job_before_twilight_does_not_end_the_prewarm(spec: EnclaveSpec) -> None:
    n = night_at(PACHON, ts(2026, 4, 13, 18))
    assert n is not None
    o = initial_state(spec, n.start - 100_000)
    quiet = spec.broker.prewarm_quiet_seconds
    # A check-out job inside the lead window, then quiet: the night's visits have not begun.
    early = PoolDemand(newest_submit=n.start - 1800)
    p = plan(spec, replace(o, now=n.start - 1800 + quiet + 60, demand={"prompt": early}))
    assert p.pools["prompt"].prewarm


def test_with_every_batch_node_down_prompt_keeps_its_borrowed_pods(spec: EnclaveSpec) -> None:
    from enclave.domain.capacity import DeletePods, DrainStartd, NodeState

    n, o = _prewarmed_in_pods(spec)
    assert sum(s.cores for s in o.startds if s.pool == "prompt") == 72
    # The batch-only nodes all go down (or the collector restarts and none has reported yet): shares of the
    # cores up are 0, but the night's visits are not, and the pods stay.
    down = tuple(replace(x, state=NodeState.DOWN) if x.role == NodeRole.BATCH_ONLY else x for x in o.nodes)
    p = plan(spec, replace(o, nodes=down, demand={"prompt": PoolDemand(running_jobs=60, running_cores=60)}))
    assert p.pools["prompt"].need == 72
    assert not any(isinstance(a, DeletePods | DrainStartd) for a in p.actions)


def test_a_surplus_pod_drained_at_night_does_not_shrink_what_the_pool_may_borrow() -> None:
    from enclave.broker.effects import project
    from enclave.domain.capacity import DrainStartd, Startd, StartdKind

    # Prompt's guarantee is one batch node (24 cores); it holds 32 cores of busy pods on two workers whose
    # notebooks leave just those 32 cores, and 8 of them must stay free for notebooks.
    spec = make_spec(workers=2, batch=10, guaranteed=(1, 4, 1, 0), maximum=(6, 10, 5, 5),
                     broker={"cooldown_seconds": 0, "max_moves_per_cycle": 50, "notebook_headroom_cores": 8})
    n = night_at(PACHON, ts(2026, 4, 13, 18))
    assert n is not None
    o = initial_state(spec, n.start - 100_000)
    nodes = tuple(replace(x, k8s_cores_requested=32.0, k8s_memory_requested_mib=32 * 1024)
                  if x.role == NodeRole.WORKER else x for x in o.nodes)
    pods = tuple(Startd(f"htcondor-{w}-{k}", w, StartdKind.POD, "prompt", 8, 8192, busy_cores=3,
                        since=n.start - 3600) for w in ("kub-001", "kub-002") for k in (1, 2))
    o = replace(o, now=n.start + 3600, nodes=nodes,
                startds=tuple(replace(s, pool="drp") for s in o.startds) + pods,
                demand={"drp": PoolDemand(idle_jobs=5000, idle_cores=5000),
                        "prompt": PoolDemand(running_jobs=12, running_cores=12, newest_submit=n.start + 3590)})
    first = plan(spec, o)
    # The commons can lend 24 of the 32 cores: one busy pod drains (its jobs finish first) ...
    assert [a.kind for a in first.actions] == ["DrainStartd"]
    assert isinstance(first.actions[0], DrainStartd)
    # ... and while it drains it still counts as the pool's: nothing is relabelled to make up for it.
    assert plan(spec, project(o, first.actions)).actions == []


def test_the_plan_names_the_night_in_iso_8601_utc(spec: EnclaveSpec) -> None:
    """Operator output prints times as ISO 8601 in UTC, never raw seconds since the epoch (audit of the
    operator's view: "night 1782082026–1782124970")."""
    n = night_at(PACHON, ts(2026, 4, 13, 18))
    assert n is not None
    o = replace(initial_state(spec, n.start + 600), now=n.start + 600)
    note = next(x for x in plan(spec, o).notes if x.startswith("night "))
    start = datetime.fromtimestamp(n.start, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    end = datetime.fromtimestamp(n.end, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert note.startswith(f"night {start} – {end} ")
    assert f"{n.start:.0f}" not in note


def test_each_seasons_band_is_day_on_every_day_of_the_season() -> None:
    """``day_bands``: per season of the year, the hours of local mean time in which none of its nights falls, the
    test a startd's clock can make (pools.<name>.day_claim_worklife). Checked against ``night_at``, which finds each
    night's twilights by refining the crossing (not the bands' bisection of sampled days): a night a fortnight
    apart across 2026 ends before the band of the season its morning is in starts and starts after the band of
    its evening's season ends, and each band reaches within 30 minutes of that night's edges (a season is some 15
    days, in which twilight moves up to 20 minutes; the edges are on a 5-minute grid, one step inside)."""
    bands = {b.since: b for b in day_bands(PACHON)}
    assert len(bands) == SEASONS  # at −30° every season has a day
    nights = [night_at(PACHON, ts(2026, 1, 1, 18) + d * 86_400.0) for d in range(0, 366, 14)]
    assert len(nights) == 27

    def band(t: float) -> SeasonBand:
        return bands[season_edges()[season_of(t)]]

    for n in nights:
        assert n is not None
        morning, evening = local_day_second(PACHON, n.end), local_day_second(PACHON, n.start)
        assert morning <= band(n.end).start <= morning + 1800
        assert evening - 1800 <= band(n.start).end <= evening
    # USDF's night summary for 2026-04-13 (above) puts evening twilight at 18:34 local mean time (23:17Z at
    # 70.75° W) and morning twilight at 05:26 (10:09Z): that night lies outside its seasons' bands.
    assert local_day_second(PACHON, ts(2026, 4, 14, 10, 9)) < band(ts(2026, 4, 14, 10, 9)).start
    assert band(ts(2026, 4, 13, 23, 17)).end < local_day_second(PACHON, ts(2026, 4, 13, 23, 17))
    # The seasons follow twilight: December's day is some four hours longer than June's.
    june, december = band(ts(2026, 6, 21, 16)), band(ts(2026, 12, 21, 16))
    assert (december.end - december.start) - (june.end - june.start) > 3 * 3600


def test_a_season_has_its_day_band_when_all_its_days_have_day() -> None:
    # At 80° N the sun stays below −12° around the winter solstice and above it around the summer one
    # (declination ±23.4°: noon at 90° − 80° − 23.4° < −12°, midnight at 23.4° − 10° > −12°).
    polar = Site(latitude_deg=80.0, longitude_deg=0.0)
    seasons = {b.since: b for b in day_bands(polar)}
    assert season_edges()[season_of(ts(2026, 12, 21, 12))] not in seasons
    june = seasons[season_edges()[season_of(ts(2026, 6, 21, 12))]]
    assert (june.start, june.end) == (300, 86_100)  # all day, one step inside each midnight
    assert len(day_bands(Site(latitude_deg=0.0, longitude_deg=0.0))) == SEASONS
    # The year's phase as a startd's clock reads it: the epoch in the first season, one tropical year later too.
    assert season_of(0) == season_of(TROPICAL_YEAR_S) == 0
    assert season_edges()[0] == 0 and season_edges()[-1] == TROPICAL_YEAR_S
    assert [season_of(edge + dt) for edge in season_edges()[1:3] for dt in (-1, 0)] == [0, 1, 1, 2]
