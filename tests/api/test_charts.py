"""The inline SVG charts and the pure snapshot summary behind them."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from enclave.api.charts import line_chart, nice_ceiling
from enclave.api.snapshot import History, summarise
from enclave.broker.layout import initial_state
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
