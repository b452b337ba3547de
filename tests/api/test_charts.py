"""The inline SVG charts and the pure snapshot summary behind them."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import replace

import pytest

from enclave.api.dashboard import per_night_p95
from enclave.api.snapshot import History, summarise
from enclave.broker.effects import apply_one
from enclave.broker.layout import initial_state
from enclave.charts import Span, heatmap, line_chart, nice_ceiling, time_ticks
from enclave.domain.capacity import DeployPods, NodeState, Observed, PoolDemand, Startd, StartdKind
from enclave.spec import EnclaveSpec


@pytest.mark.parametrize(("v", "top"), [(0, 1), (0.3, 0.5), (1, 1), (1.01, 2), (950.4, 1000), (18541, 20000)])
def test_nice_ceiling(v: float, top: float) -> None:
    assert nice_ceiling(v) == pytest.approx(top)


def test_chart_is_well_formed_svg_and_escapes_names() -> None:
    svg = line_chart("Cap <cores>", [0, 3600, 7200], {"a&b": [1, 2, 3], "none": [None, None, None]})
    root = ET.fromstring(svg)
    assert root.tag.endswith("svg")
    assert "a&amp;b" in svg and "Cap &lt;cores&gt;" in svg
    lines = [e for e in root.iter() if e.tag.endswith("polyline")]
    assert len(lines) == 1 and len(lines[0].get("points", "").split()) == 3


def test_empty_chart_says_so() -> None:
    assert "no data yet" in line_chart("x", [], {})


def test_summary_counts_every_core_once(spec: EnclaveSpec) -> None:
    observed = initial_state(spec, now=1000.0)
    snap = summarise(spec, observed)
    assert set(snap.pools) == set(spec.pools)
    assert sum(p.capacity_cores for p in snap.pools.values()) == sum(s.cores for s in observed.startds)
    assert snap.node_states["ready"] == len(observed.nodes)
    history = History(size=2)
    for _ in range(3):
        history.append(snap)
    series = history.series()
    assert len(series["t"]) == 2 and set(series["capacity"]) == set(spec.pools)


# --- memory and dominant-resource figures -------------------------------------------------------------------

def _observed_with(spec: EnclaveSpec, pool: str, busy_cores: int, busy_mib: int) -> Observed:
    """The initial layout with every startd of ``pool`` holding the given claims."""
    observed = initial_state(spec, now=1000.0)
    startds = tuple(replace(s, busy_cores=busy_cores, busy_memory_mib=busy_mib) if s.pool == pool else s
                    for s in observed.startds)
    return replace(observed, startds=startds)


def test_dominant_share_counts_a_memory_full_slot_as_used(spec: EnclaveSpec) -> None:
    """A 24-core 128 GiB slot running 6 one-core jobs of 20 GiB (DRP-like) has 25 % of its cores but 94 % of its
    memory claimed: HTCondor matches nothing more once memory is gone, so the dominant share is 94 %."""
    observed = _observed_with(spec, "drp", busy_cores=6, busy_mib=6 * 20 * 1024)
    snap = summarise(spec, observed)
    drp = snap.pools["drp"]
    slots = [s for s in observed.startds if s.pool == "drp"]
    assert slots and all(s.cores == 24 and s.memory_mib == 128 * 1024 for s in slots)
    assert drp.memory_mib == len(slots) * 128 * 1024 and drp.busy_memory_mib == len(slots) * 120 * 1024
    assert drp.core_utilization == pytest.approx(6 / 24, abs=1e-4)
    assert drp.memory_utilization == pytest.approx(120 / 128, abs=1e-4)
    assert drp.dominant_utilization == pytest.approx(120 / 128, abs=1e-4)
    assert drp.standalone_cores == drp.capacity_cores and drp.borrowed_pod_cores == 0


def test_dominant_share_is_the_core_share_when_cores_bind(spec: EnclaveSpec) -> None:
    snap = summarise(spec, _observed_with(spec, "drp", busy_cores=18, busy_mib=18 * 1024))
    assert snap.pools["drp"].dominant_utilization == pytest.approx(18 / 24, abs=1e-4)


def test_guarantee_lent_without_work_and_short_with_work(spec: EnclaveSpec) -> None:
    """The broker promises a guarantee only to a pool with work (broker/decide.py, step 1): below it without
    work the cores are lent by design; below it with jobs waiting the pool is short."""
    pool = "prompt"
    observed = initial_state(spec, now=1000.0)
    observed = replace(observed, startds=tuple(replace(s, pool="drp") if s.pool == pool else s
                                               for s in observed.startds))
    assert summarise(spec, observed).pools[pool].guaranteed_cores > 0
    assert summarise(spec, observed).pools[pool].guarantee == "lent"
    waiting = replace(observed, demand={pool: PoolDemand(idle_jobs=3, idle_cores=3)})
    assert summarise(spec, waiting).pools[pool].guarantee == "short"


def test_pod_capacity_counts_as_borrowed(spec: EnclaveSpec) -> None:
    observed = apply_one(initial_state(spec, now=1000.0),
                         DeployPods(actor="t", reason="t", node="kub-003", pool="prompt", pods=("p1", "p2"),
                                    cores_per_pod=8, memory_mib_per_pod=16384))
    prompt = summarise(spec, observed).pools["prompt"]
    assert prompt.borrowed_pod_cores == 16 and prompt.capacity_cores == prompt.standalone_cores + 16


def test_node_in_use_is_the_dominant_of_kubernetes_requests_and_claims(spec: EnclaveSpec) -> None:
    observed = initial_state(spec, now=1000.0)
    worker = next(n for n in observed.nodes if n.name == "kub-001")
    loaded = replace(worker, k8s_cores_requested=12.0, k8s_memory_requested_mib=worker.memory_mib // 2)
    observed = replace(observed, nodes=tuple(loaded if n.name == "kub-001" else n for n in observed.nodes))
    view = next(n for n in summarise(spec, observed).nodes if n.name == "kub-001")
    assert view.in_use == pytest.approx(max(12 / worker.cores, 0.5), abs=1e-4)
    # Lent whole and busy: its startd claims every core, and its DaemonSet pods still request 2: full, not 104 %.
    lent = replace(worker, state=NodeState.HTCONDOR, k8s_cores_requested=2.0, k8s_cores_daemons=2.0)
    startd = Startd("kub-001", "kub-001", StartdKind.NODE, "drp", worker.cores, worker.memory_mib,
                    busy_cores=worker.cores)
    observed = replace(observed, nodes=tuple(lent if n.name == "kub-001" else n for n in observed.nodes),
                       startds=(*observed.startds, startd))
    assert next(n for n in summarise(spec, observed).nodes if n.name == "kub-001").in_use == 1.0


# --- charts an operator reads at a glance --------------------------------------------------------------------

T0 = 1_782_043_200.0  # 2026-06-21 12:00 UTC


def test_time_axis_is_absolute_and_names_its_clock() -> None:
    svg = line_chart("x", [T0, T0 + 6 * 3600], {"a": [1, 2]}, clock="twin clock (simulated), UTC")
    labels = [e.text for e in ET.fromstring(svg).iter() if e.tag.endswith("text")]
    assert "12:00" in labels and "18:00" in labels and "twin clock (simulated), UTC" in labels


def test_time_ticks_show_the_date_at_midnight() -> None:
    assert ("06-22" in [label for _, label in time_ticks(T0, T0 + 24 * 3600)])


def test_log_scale_keeps_small_series_visible() -> None:
    """On a log axis 10 idle jobs sit a third of the way up beside 10,000, not flattened onto zero."""
    svg = line_chart("q", [T0, T0 + 60], {"big": [10_000, 10_000], "small": [9, 9]}, log=True)
    lines = {e.find("{http://www.w3.org/2000/svg}title").text: e for e in ET.fromstring(svg).iter()  # type: ignore[union-attr]
             if e.tag.endswith("polyline")}
    top, bottom = 22, 22 + 230 - 22 - 34
    y_small = float(lines["small"].get("points", "").split()[0].split(",")[1])
    # log10(1 + 9) / log10(1 + 10,000) ≈ 0.25 of the height above the floor
    assert (bottom - y_small) / (bottom - top) == pytest.approx(math.log10(10) / math.log10(10_001), abs=0.01)
    assert "log scale" in svg


def test_objective_line_sits_at_its_value() -> None:
    svg = line_chart("p", [T0, T0 + 60], {"p95": [30, 45]}, objective=(60.0, "objective 60 s"))
    line = next(e for e in ET.fromstring(svg).iter() if e.get("class") == "objective")
    top, h = 22, 230 - 22 - 34
    vmax = nice_ceiling(60 * 1.2)  # the axis leaves room above the objective
    assert float(line.get("y1", "0")) == pytest.approx(top + h - 60 / vmax * h, abs=0.1)


def test_night_band_covers_its_span() -> None:
    svg = line_chart("c", [T0, T0 + 24 * 3600], {"a": [1, 1]},
                     bands=[Span(T0 + 6 * 3600, T0 + 12 * 3600, "night")])
    band = next(e for e in ET.fromstring(svg).iter() if e.get("class") == "night")
    w = 640 - 48 - 170
    assert float(band.get("x", "0")) == pytest.approx(48 + w / 4, abs=0.1)
    assert float(band.get("width", "0")) == pytest.approx(w / 4, abs=0.1)


def test_missing_values_break_the_line() -> None:
    svg = line_chart("u", [T0, T0 + 1, T0 + 2, T0 + 3], {"a": [1, None, None, 1]})
    assert svg.count("<polyline") == 2


def test_stacked_areas_add_up() -> None:
    svg = line_chart("s", [T0, T0 + 60], {"standalone": [100, 100], "pods": [50, 50]}, stacked=True)
    polys = [e for e in ET.fromstring(svg).iter() if e.tag.endswith("polygon")]
    assert len(polys) == 2
    top, h = 22, 230 - 22 - 34
    upper = float(polys[1].get("points", "").split()[0].split(",")[1])
    assert upper == pytest.approx(top + h - 150 / nice_ceiling(150) * h, abs=0.1)


def test_per_night_p95_resets_at_evening_twilight() -> None:
    nights = [Span(T0 + 10 * 3600, T0 + 20 * 3600, "n1"), Span(T0 + 34 * 3600, T0 + 44 * 3600, "n2")]
    t = [T0 + 11 * 3600, T0 + 12 * 3600, T0 + 35 * 3600]
    lat = [tuple(float(v) for v in range(1, 21)), (100.0,), (5.0,)]
    out = per_night_p95(t, lat, nights)
    # nearest rank: the ceil(0.95 n)-th smallest of the night's visits so far
    assert out == [19.0, 20.0, 5.0]


def test_heatmap_has_one_cell_per_node() -> None:
    svg = heatmap("h", [("a", 0.0, ""), ("b", 1.0, ""), ("c", None, "down")], columns=2)
    cells = [e for e in ET.fromstring(svg).iter() if e.get("data-node")]
    assert [c.get("fill") for c in cells] == ["#ffffff", "#08306b", "#ccc"]
