"""Inline SVG time charts, rendered on the server so the dashboard needs no JavaScript build or chart library.

Why hand-drawn rather than a charting library (issue 19 compared them): matplotlib draws all of this (log axes,
date ticks, shaded spans, stacked areas), but on a full 720-snapshot history of 4 series it took 130–180 ms and
89 kB per chart here (plus 2 s to import) against 19 ms and 34 kB for these; with five charts per page re-rendered
every 2 s that is most of one of the box's 2 cores per viewer. plotly and Vega-Lite render in the browser from a
3–5 MB script that would have to be vendored and served locally (no CDN) and need a JSON endpoint per chart;
uPlot and Chart.js come from npm, which the build does not use. These charts carry <title> tooltips for screen
readers and are tested as XML.

``value_chart`` draws the same lines over a parameter's values instead of time (the twin's sensitivity sweeps).
Every time chart has an absolute time axis on one named clock, optional shaded bands (observing nights), an optional
objective line and strips marking intervals (a guarantee lent out), a linear or log scale, lines or stacked
areas.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

# Colour-blind-safe palette (Okabe–Ito), one colour per series in order.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
# Tick steps for the time axis, seconds: the first that gives at most 7 ticks is used.
_TIME_STEPS = (600, 1800, 3600, 2 * 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400)


def nice_ceiling(v: float) -> float:
    """The smallest 1, 2 or 5 × 10^k at or above ``v``: axis labels a person can read at a glance."""
    if v <= 0:
        return 1.0
    scale = 10.0 ** math.floor(math.log10(v))
    return next(float(m * scale) for m in (1, 2, 5, 10) if m * scale >= v - 1e-12)


def _fmt(v: float) -> str:
    if v >= 10_000:
        return f"{v / 1000:.0f}k"
    return f"{v:.1f}".rstrip("0").rstrip(".")


@dataclass(frozen=True)
class Span:
    """An interval on the time axis: a shaded band (a night) or a marked strip (a lent guarantee)."""

    start: float
    end: float
    label: str


@dataclass(frozen=True)
class _Frame:
    """Where the plot area is and how values map onto it."""

    left: float
    top: float
    w: float
    h: float
    t0: float
    span: float
    vmax: float
    log: bool

    def x(self, t: float) -> float:
        return self.left + min(max((t - self.t0) / self.span, 0.0), 1.0) * self.w

    def y(self, v: float) -> float:
        frac = math.log10(1 + max(v, 0.0)) / math.log10(1 + self.vmax) if self.log else v / self.vmax
        return self.top + self.h - min(max(frac, 0.0), 1.0) * self.h


def time_ticks(t0: float, t1: float) -> list[tuple[float, str]]:
    """Round clock times across [t0, t1], labelled HH:MM (with the date at midnight or when a step is a day)."""
    span = max(t1 - t0, 1.0)
    step = next((s for s in _TIME_STEPS if span / s <= 7), _TIME_STEPS[-1])
    first = math.ceil(t0 / step) * step
    out = []
    t = float(first)
    while t <= t1:
        d = datetime.fromtimestamp(t, UTC)
        out.append((t, d.strftime("%m-%d") if step >= 86400 or (d.hour == 0 and d.minute == 0)
                    else d.strftime("%H:%M")))
        t += step
    return out


def _value_ticks(vmax: float, log: bool) -> list[float]:
    if not log:
        return [0.0, vmax / 2, vmax]
    return [0.0, *(10.0 ** k for k in range(0, int(round(math.log10(vmax))) + 1))]


def _axes(f: _Frame, t1: float, unit: str, clock: str, height: int) -> list[str]:
    out = [f'<rect x="{f.left}" y="{f.top}" width="{f.w}" height="{f.h}" fill="none" stroke="#bbb"/>']
    for v in _value_ticks(f.vmax, f.log):
        y = f.y(v)
        out.append(f'<line x1="{f.left}" x2="{f.left + f.w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{f.left - 4}" y="{y + 4:.1f}" text-anchor="end" class="tick">'
                   f'{_fmt(v)}{escape(unit)}</text>')
    for t, label in time_ticks(f.t0, t1):
        x = f.x(t)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{f.top + f.h}" y2="{f.top + f.h + 4}" stroke="#888"/>')
        out.append(f'<text x="{x:.1f}" y="{f.top + f.h + 15}" text-anchor="middle" class="tick">{label}</text>')
    scale = ", log scale" if f.log else ""
    out.append(f'<text x="{f.left + f.w}" y="{height - 3}" text-anchor="end" class="tick axis-clock">'
               f"{escape(clock)}{scale}</text>")
    return out


def _spans(f: _Frame, spans: Sequence[Span], t1: float, *, cls: str, y: float, height: float, min_width: float,
           fill: str, opacity: float) -> list[str]:
    """One rectangle per span inside the chart's time range, its label as the tooltip."""
    out = []
    for sp in spans:
        if sp.end <= f.t0 or sp.start >= t1:
            continue
        x0, x1 = f.x(sp.start), f.x(sp.end)
        out.append(f'<rect class="{cls}" x="{x0:.1f}" y="{y}" width="{max(x1 - x0, min_width):.1f}" '
                   f'height="{height}" fill="{fill}" fill-opacity="{opacity}"><title>{escape(sp.label)}</title>'
                   "</rect>")
    return out


def _bands(f: _Frame, bands: Sequence[Span], t1: float) -> list[str]:
    """Night shading over the whole plot height."""
    return _spans(f, bands, t1, cls="night", y=f.top, height=f.h, min_width=0.5, fill="#1d2951", opacity=0.12)


def _marks(f: _Frame, marks: Sequence[Span], t1: float) -> list[str]:
    """A strip along the bottom (a lent guarantee)."""
    return _spans(f, marks, t1, cls="mark", y=f.top + f.h - 6, height=6, min_width=1.0, fill="#999", opacity=0.8)


def _objective(f: _Frame, value: float, label: str) -> list[str]:
    y = f.y(value)
    return [f'<line class="objective" x1="{f.left}" x2="{f.left + f.w}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#D55E00" stroke-dasharray="5 3" stroke-width="1.5"/>',
            f'<text x="{f.left + 4}" y="{y - 3:.1f}" class="tick" fill="#D55E00">{escape(label)}</text>']


def _lines(f: _Frame, t: Sequence[float], series: Mapping[str, Sequence[float | None]]) -> list[str]:
    out = []
    for i, (name, ys) in enumerate(series.items()):
        # A missing value (a pool with no capacity has no utilization) breaks the line rather than bridging it.
        runs: list[list[str]] = [[]]
        for tx, y in zip(t, ys, strict=False):
            if y is None:
                runs.append([])
            else:
                runs[-1].append(f"{f.x(tx):.1f},{f.y(y):.1f}")
        for pts in (r for r in runs if r):
            if len(pts) == 1:
                pts.append(pts[0])
            out.append(f'<polyline fill="none" stroke="{PALETTE[i % len(PALETTE)]}" stroke-width="2" '
                       f'points="{" ".join(pts)}"><title>{escape(name)}</title></polyline>')
    return out


def _stacked(f: _Frame, t: Sequence[float], series: Mapping[str, Sequence[float | None]]) -> list[str]:
    out = []
    base = [0.0] * len(t)
    for i, (name, ys) in enumerate(series.items()):
        top = [b + (y or 0.0) for b, y in zip(base, ys, strict=False)]
        upper = [f"{f.x(tx):.1f},{f.y(v):.1f}" for tx, v in zip(t, top, strict=False)]
        lower = [f"{f.x(tx):.1f},{f.y(v):.1f}" for tx, v in reversed(list(zip(t, base, strict=False)))]
        colour = PALETTE[i % len(PALETTE)]
        out.append(f'<polygon fill="{colour}" fill-opacity="0.55" stroke="{colour}" '
                   f'points="{" ".join(upper + lower)}"><title>{escape(name)}</title></polygon>')
        base = top
    return out


def _legend(f: _Frame, names: Sequence[str], extra: Sequence[tuple[str, str]]) -> list[str]:
    out = []
    items = [(PALETTE[i % len(PALETTE)], n) for i, n in enumerate(names)] + list(extra)
    for i, (colour, name) in enumerate(items):
        y = f.top + 4 + i * 16
        out.append(f'<rect x="{f.left + f.w + 10}" y="{y}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{f.left + f.w + 24}" y="{y + 9}" class="legend">{escape(name)}</text>')
    return out


def _top(series: Mapping[str, Sequence[float | None]], stacked: bool, objective: float | None, log: bool) -> float:
    if stacked:
        cols = zip(*series.values(), strict=False)
        peak = max((sum(v or 0.0 for v in col) for col in cols), default=0.0)
    else:
        peak = max((v for s in series.values() for v in s if v is not None), default=0.0)
    peak = max(peak, objective * 1.2 if objective else 0.0)
    if log:
        return 10.0 ** max(1, math.ceil(math.log10(max(peak, 1.0))))
    return nice_ceiling(peak)


def line_chart(title: str, t: Sequence[float], series: Mapping[str, Sequence[float | None]], *,
               unit: str = "", clock: str = "UTC", log: bool = False, stacked: bool = False,
               objective: tuple[float, str] | None = None, bands: Sequence[Span] = (),
               marks: Sequence[Span] = (), mark_label: str = "", width: int = 640, height: int = 230) -> str:
    """An SVG chart of several series over one absolute time axis on the named ``clock``."""
    pad_l, pad_r, pad_t, pad_b = 48, 170, 22, 34
    t0 = t[0] if t else 0.0
    t1 = t[-1] if len(t) > 1 else t0 + 1.0
    f = _Frame(pad_l, pad_t, width - pad_l - pad_r, height - pad_t - pad_b, t0, (t1 - t0) or 1.0,
               _top(series, stacked, objective[0] if objective else None, log), log)
    out = [f'<svg class="chart" role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg" '
           f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
           f'<text x="{pad_l}" y="14" class="chart-title">{escape(title)}</text>']
    out += _bands(f, bands, t1)
    out += _axes(f, t1, unit, clock, height)
    out += (_stacked if stacked else _lines)(f, t, series)
    out += _marks(f, marks, t1)
    if objective is not None:
        out += _objective(f, *objective)
    extra = [("#1d2951", "night (shaded)")] if bands else []
    extra += [("#999", mark_label)] if marks and mark_label else []
    out += _legend(f, list(series), extra)
    if not t:
        out.append(f'<text x="{pad_l + f.w / 2}" y="{pad_t + f.h / 2}" text-anchor="middle" class="tick">'
                   "no data yet</text>")
    out.append("</svg>")
    return "".join(out)


def heatmap(title: str, cells: Sequence[tuple[str, float | None, str]], *, columns: int = 20,
            size: int = 18) -> str:
    """One square per node, coloured by a share in [0, 1] (white→dark blue; hatched grey when None)."""
    rows = max(1, math.ceil(len(cells) / columns))
    width, height = columns * (size + 2) + 130, rows * (size + 2) + 24
    out = [f'<svg class="chart heatmap" role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg" '
           f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
           f'<text x="0" y="14" class="chart-title">{escape(title)}</text>']
    for i, (name, share, note) in enumerate(cells):
        x, y = (i % columns) * (size + 2), 20 + (i // columns) * (size + 2)
        fill = "#ccc" if share is None else _blue(share)
        label = f"{name}: {'—' if share is None else f'{share:.0%}'} {note}".strip()
        out.append(f'<rect data-node="{escape(name)}" x="{x}" y="{y}" width="{size}" height="{size}" '
                   f'fill="{fill}" stroke="#fff"><title>{escape(label)}</title></rect>')
    lx = columns * (size + 2) + 10
    for j, share in enumerate((0.0, 0.5, 1.0)):
        out.append(f'<rect x="{lx}" y="{20 + j * 16}" width="10" height="10" fill="{_blue(share)}" stroke="#999"/>'
                   f'<text x="{lx + 14}" y="{29 + j * 16}" class="legend">{share:.0%}</text>')
    out.append(f'<rect x="{lx}" y="{68}" width="10" height="10" fill="#ccc"/>'
               f'<text x="{lx + 14}" y="{77}" class="legend">down</text>')
    out.append("</svg>")
    return "".join(out)


def _blue(share: float) -> str:
    s = min(max(share, 0.0), 1.0)
    r, g, b = (round(255 + (c - 255) * s) for c in (0x08, 0x30, 0x6B))
    return f"#{r:02x}{g:02x}{b:02x}"


def _x_axis(f: _Frame, ticks: Sequence[tuple[float, str]], unit: str, x_label: str, height: int) -> list[str]:
    out = [f'<rect x="{f.left}" y="{f.top}" width="{f.w}" height="{f.h}" fill="none" stroke="#bbb"/>']
    for v in _value_ticks(f.vmax, f.log):
        y = f.y(v)
        out.append(f'<line x1="{f.left}" x2="{f.left + f.w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{f.left - 4}" y="{y + 4:.1f}" text-anchor="end" class="tick">'
                   f"{_fmt(v)}{escape(unit)}</text>")
    for x, label in ticks:
        px = f.x(x)
        out.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{f.top + f.h}" y2="{f.top + f.h + 4}" stroke="#888"/>')
        out.append(f'<text x="{px:.1f}" y="{f.top + f.h + 15}" text-anchor="middle" class="tick">'
                   f"{escape(label)}</text>")
    out.append(f'<text x="{f.left + f.w}" y="{height - 3}" text-anchor="end" class="tick axis-clock">'
               f"{escape(x_label)}</text>")
    return out


def value_chart(title: str, x: Sequence[float], series: Mapping[str, Sequence[float | None]], *,
                x_label: str, x_ticks: Sequence[str] | None = None, unit: str = "",
                objective: tuple[float, str] | None = None, top: float | None = None, width: int = 640,
                height: int = 230) -> str:
    """An SVG chart of several series over the values ``x`` of one parameter (ticks at each value, labelled
    ``x_ticks`` or the value itself); ``top`` fixes the value axis (e.g. 100 for a share in %)."""
    pad_l, pad_r, pad_t, pad_b = 48, 170, 22, 34
    x0 = min(x) if x else 0.0
    x1 = max(x) if x else 1.0
    f = _Frame(pad_l + 8, pad_t, width - pad_l - pad_r - 16, height - pad_t - pad_b, x0, (x1 - x0) or 1.0,
               top if top is not None else _top(series, False, objective[0] if objective else None, False), False)
    labels = list(x_ticks) if x_ticks is not None else [_fmt(v) for v in x]
    out = [f'<svg class="chart" role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg" '
           f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
           f'<text x="{pad_l}" y="14" class="chart-title">{escape(title)}</text>']
    out += _x_axis(f, list(zip(x, labels, strict=True)), unit, x_label, height)
    out += _lines(f, x, series)
    if objective is not None:
        out += _objective(f, *objective)
    out += _legend(f, list(series), [])
    out.append("</svg>")
    return "".join(out)
