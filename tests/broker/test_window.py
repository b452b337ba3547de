"""The windowed need of a latency pool (issue 15): the recent peak plus headroom, so an overlap of visits does
not pull capacity in and push it back out every time."""

from __future__ import annotations

from dataclasses import replace

from enclave.broker.decide import pool_figure
from enclave.broker.window import NeedWindow
from enclave.domain.capacity import Observed, PoolDemand
from tests.broker.conftest import NOW, make_spec


def _at(t: float, prompt_cores: int) -> Observed:
    return Observed(now=NOW + t, nodes=(), startds=(),
                    demand={"prompt": PoolDemand(idle_jobs=prompt_cores, idle_cores=prompt_cores)})


def test_window_keeps_the_peak_until_it_is_older_than_the_window() -> None:
    spec = make_spec(broker={"need_window_seconds": 600})
    w = NeedWindow(spec)
    assert w.feed(_at(0, 100)).demand["prompt"].peak_cores == 100
    assert w.feed(_at(60, 20)).demand["prompt"].peak_cores == 100   # the overlap is over; its peak stays
    assert w.feed(_at(600, 30)).demand["prompt"].peak_cores == 100  # exactly 600 s old: still in the window
    assert w.feed(_at(601, 10)).demand["prompt"].peak_cores == 30   # gone: the next largest within 600 s


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
