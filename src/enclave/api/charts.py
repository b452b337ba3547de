"""Inline SVG line charts, rendered on the server so the dashboard needs no JavaScript build or chart library."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

# Colour-blind-safe palette (Okabe–Ito), one colour per series in order.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")


def nice_ceiling(v: float) -> float:
    """The smallest 1, 2 or 5 × 10^k at or above ``v``: axis labels a person can read at a glance."""
    if v <= 0:
        return 1.0
    scale = 10.0 ** math.floor(math.log10(v))
    return next(float(m * scale) for m in (1, 2, 5, 10) if m * scale >= v - 1e-12)


def _fmt(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


def line_chart(title: str, t: Sequence[float], series: Mapping[str, Sequence[float | None]], *,
               unit: str = "", width: int = 560, height: int = 200) -> str:
    """An SVG polyline chart of several series over a shared time axis (hours since the first point)."""
    pad_l, pad_r, pad_t, pad_b = 48, 110, 22, 26
    w, h = width - pad_l - pad_r, height - pad_t - pad_b
    values = [v for s in series.values() for v in s if v is not None]
    top = nice_ceiling(max(values, default=0.0))
    t0 = t[0] if t else 0.0
    span = (t[-1] - t0) if len(t) > 1 else 1.0
    span = span or 1.0
    out = [f'<svg class="chart" role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg" '
           f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
           f'<text x="{pad_l}" y="14" class="chart-title">{escape(title)}</text>',
           f'<rect x="{pad_l}" y="{pad_t}" width="{w}" height="{h}" fill="none" stroke="#bbb"/>']
    for frac in (0.0, 0.5, 1.0):
        y = pad_t + h - frac * h
        out.append(f'<text x="{pad_l - 4}" y="{y + 4:.1f}" text-anchor="end" class="tick">'
                   f'{_fmt(top * frac)}{escape(unit)}</text>')
    out.append(f'<text x="{pad_l}" y="{height - 6}" class="tick">0 h</text>')
    out.append(f'<text x="{pad_l + w}" y="{height - 6}" text-anchor="end" class="tick">{_fmt(span / 3600)} h</text>')
    for i, (name, ys) in enumerate(series.items()):
        colour = PALETTE[i % len(PALETTE)]
        pts = [f"{pad_l + (tx - t0) / span * w:.1f},{pad_t + h - (y / top) * h:.1f}"
               for tx, y in zip(t, ys, strict=False) if y is not None]
        if len(pts) == 1:
            pts.append(pts[0])
        if pts:
            out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(pts)}">'
                       f"<title>{escape(name)}</title></polyline>")
        out.append(f'<rect x="{pad_l + w + 10}" y="{pad_t + 4 + i * 16}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{pad_l + w + 24}" y="{pad_t + 13 + i * 16}" class="legend">{escape(name)}</text>')
    if not t:
        out.append(f'<text x="{pad_l + w / 2}" y="{pad_t + h / 2}" text-anchor="middle" class="tick">'
                   "no data yet</text>")
    out.append("</svg>")
    return "".join(out)
