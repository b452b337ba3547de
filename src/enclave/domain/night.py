"""The observing night at the site: when the sun crosses the twilight altitude.

The telescope observes between evening and morning twilight (−12° by default, PSTN-051), so prompt
processing needs its capacity from a little before evening twilight until the last visit is processed.
The sun's altitude comes from astropy (``get_sun`` + ``AltAz``); crossings are found on a coarse grid and
refined by bisection, and each (site, day) is computed once and cached, so ``decide()`` stays fast.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from enclave.spec.models import Site

_DAY = 86_400.0
_GRID = 600.0  # a 10-minute grid cannot skip a twilight crossing: the sun takes > 1 h between −18° and 0°


@dataclass(frozen=True)
class Night:
    """One observing night: the sun is below ``altitude_deg`` from ``start`` to ``end`` (Unix seconds)."""

    start: float
    end: float

    def contains(self, t: float, lead: float = 0.0) -> bool:
        return self.start - lead <= t < self.end


def sun_altitude_deg(site: Site, times: np.ndarray) -> np.ndarray:
    """Apparent altitude of the sun's centre, degrees, at Unix times ``times``."""
    import astropy.units as u
    from astropy.coordinates import AltAz, EarthLocation, get_sun
    from astropy.time import Time

    location = EarthLocation.from_geodetic(lon=site.longitude_deg * u.deg, lat=site.latitude_deg * u.deg,
                                           height=site.elevation_m * u.m)
    from astropy.utils import iers
    from astropy.utils.exceptions import AstropyWarning
    from erfa import ErfaWarning  # type: ignore[import-untyped]

    # Offline and far-future safe: Earth-orientation tables matter at the milliarcsecond level, while a
    # twilight time needs the sun to ~0.01°. Never download them and accept the bundled ones' range.
    with iers.conf.set_temp("auto_download", False), iers.conf.set_temp("auto_max_age", None), \
            iers.conf.set_temp("iers_degraded_accuracy", "ignore"), warnings.catch_warnings():
        # Leap seconds and polar motion are unknown for future years ("dubious year", "after IERS data"):
        # a second of time or an arcsecond of pointing does not move twilight.
        warnings.simplefilter("ignore", ErfaWarning)
        warnings.simplefilter("ignore", AstropyWarning)
        t = Time(times, format="unix")
        altaz = get_sun(t).transform_to(AltAz(obstime=t, location=location))
        return np.asarray(altaz.alt.deg, dtype=float)


def _key(site: Site) -> tuple[float, float, float]:
    return (site.latitude_deg, site.longitude_deg, site.elevation_m)


@lru_cache(maxsize=64)
def _nights_around(key: tuple[float, float, float], local_noon: float, altitude_deg: float) -> tuple[Night, ...]:
    """The nights that start within the 24 h after ``local_noon`` (zero or one; none in polar summer)."""
    site = Site(latitude_deg=key[0], longitude_deg=key[1], elevation_m=key[2])
    grid = local_noon + np.arange(0.0, 2 * _DAY + _GRID, _GRID)
    below = sun_altitude_deg(site, grid) < altitude_deg
    crossings = np.flatnonzero(below[1:] != below[:-1])
    edges: list[tuple[float, bool]] = []
    for i in crossings:
        edges.append((_refine(site, float(grid[i]), float(grid[i + 1]), altitude_deg), bool(below[i + 1])))
    nights: list[Night] = []
    start: float | None = local_noon if below[0] else None
    for t, goes_below in edges:
        if goes_below:
            start = t
        elif start is not None:
            nights.append(Night(start, t))
            start = None
    if start is not None:
        nights.append(Night(start, float(grid[-1])))
    return tuple(n for n in nights if local_noon <= n.start < local_noon + _DAY)


def _refine(site: Site, lo: float, hi: float, altitude_deg: float) -> float:
    """Locate the crossing on a 10 s grid, then interpolate linearly: the sun moves ~0.04° in 10 s, so the
    altitude is linear there to well under a second of time."""
    ts = np.linspace(lo, hi, int((hi - lo) / 10.0) + 1)
    alt = sun_altitude_deg(site, ts) - altitude_deg
    i = int(np.flatnonzero(np.sign(alt[1:]) != np.sign(alt[:-1]))[0])
    a, b = float(alt[i]), float(alt[i + 1])
    return float(ts[i] + (ts[i + 1] - ts[i]) * a / (a - b))


def mean_time_offset(site: Site) -> float:
    """Seconds local mean time runs ahead of UTC at the site: 15° of longitude an hour, east positive."""
    return site.longitude_deg / 360.0 * _DAY


def _local_noon_before(site: Site, t: float) -> float:
    """Mean local noon (by longitude) at or before ``t``: nights never straddle it."""
    offset = mean_time_offset(site)
    return math.floor((t + offset - _DAY / 2) / _DAY) * _DAY + _DAY / 2 - offset


def night_at(site: Site, t: float, altitude_deg: float = -12.0) -> Night | None:
    """The night that contains ``t``, or the next one if ``t`` is in daytime (None if no night soon)."""
    noon = _local_noon_before(site, t)
    for n in _nights_around(_key(site), noon, altitude_deg) + _nights_around(_key(site), noon + _DAY,
                                                                             altitude_deg):
        if t < n.end:
            return n
    return None


_BAND_STEP = 300
"""The day band's edges fall on a five-minute grid of local time, one step inside each edge the sampled days give
(``day_band``)."""
_BAND_DAYS = 53
"""Days sampled across a year, a week apart: twilight's local time changes by minutes a week, least near its
extremes (the solstices), so the week between samples moves an edge by less than the step the band is narrowed by."""
_BAND_YEAR = 1_767_225_600.0
"""2026-01-01 00:00 UTC: any year gives the same band to well under a step."""
_BISECTIONS = 13
"""Halvings of a half day to find a day's crossing: 43,200 s / 2^13 ≈ 5 s, far inside the grid's step."""


def local_day_second(site: Site, t: float) -> float:
    """Seconds since local mean midnight at the site (``mean_time_offset``)."""
    return (t + mean_time_offset(site)) % _DAY


def _crossings(site: Site, altitude_deg: float, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Per day, where the sun crosses ``altitude_deg`` between ``lo`` and ``hi`` (bisection, all days at once;
    the sun's altitude rises to noon and falls after it, so each half day crosses at most once). A half day with
    no crossing keeps ``lo`` when it is day at both ends (a morning wholly above: the band may start at midnight),
    else ``hi``."""
    at_lo = sun_altitude_deg(site, lo) > altitude_deg
    at_hi = sun_altitude_deg(site, hi) > altitude_deg
    a, b = lo.copy(), hi.copy()
    for _ in range(_BISECTIONS):
        mid = (a + b) / 2
        same = (sun_altitude_deg(site, mid) > altitude_deg) == at_lo
        a, b = np.where(same, mid, a), np.where(same, b, mid)
    none = at_lo == at_hi
    return np.where(none & at_lo, lo, np.where(none, hi, (a + b) / 2))


@lru_cache(maxsize=16)
def _band(key: tuple[float, float, float], altitude_deg: float) -> tuple[int, int] | None:
    site = Site(latitude_deg=key[0], longitude_deg=key[1], elevation_m=key[2])
    midnights = _BAND_YEAR + np.arange(_BAND_DAYS) * 7 * _DAY - mean_time_offset(site)
    noons = midnights + _DAY / 2
    if not np.all(sun_altitude_deg(site, noons) > altitude_deg):
        return None  # a polar night: some noon of the year is not day
    # The latest morning and the earliest evening of the sampled days, in seconds of local mean time.
    morning = float(np.max(_crossings(site, altitude_deg, midnights, noons) - midnights))
    evening = float(np.min(_crossings(site, altitude_deg, noons, midnights + _DAY) - midnights))
    start = (math.ceil(morning / _BAND_STEP) + 1) * _BAND_STEP
    end = (math.floor(evening / _BAND_STEP) - 1) * _BAND_STEP
    return (start, end) if start < end else None


def day_band(site: Site, altitude_deg: float = -12.0) -> tuple[int, int] | None:
    """The hours that are day on every day of the year at the site: ``[start, end)`` in seconds of local mean
    time (``local_day_second``), the sun above ``altitude_deg`` throughout, around local noon; None where some
    day of the year has no such hours around noon (a polar night). A rule a startd can evaluate with its clock
    alone (``time()``), which no night of the year reaches into."""
    return _band(_key(site), altitude_deg)
