"""The observing night at the site: when the sun crosses the twilight altitude.

The telescope observes between evening and morning twilight (−12° by default, PSTN-051), so prompt
processing needs its capacity from a little before evening twilight until the last visit is processed.
The sun's altitude comes from astropy (``get_sun`` + ``AltAz``); crossings are found on a coarse grid and
refined by bisection, and each (site, day) is computed once and cached, so ``decide()`` stays fast.
"""

from __future__ import annotations

import bisect
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
"""A season's day band has its edges on a five-minute grid of local time, one step inside the edges its sampled days
give (``day_bands``)."""
TROPICAL_YEAR_S = 31_556_925
"""The mean tropical year, 365.24219 days (the Astronomical Almanac's), in whole seconds: the period of the sun's
declination, and so of twilight's local time. A startd's clock tells the season by ``time() % TROPICAL_YEAR_S``:
since the epoch the year's phase has drifted from the calendar's by less than a day, and the equation of time's by
about one (perihelion moves a day in some 58 years), a few seconds of twilight, far inside a band's step of margin."""
SEASONS = 24
"""The year is cut into this many seasons of equal length (about 15.2 days), each with its own band: twilight's local
time moves at most some 20 minutes in one (near the equinoxes), where one band for the whole year is four hours
shorter than December's day at Cerro Pachón (docs/batch.md, "Claims by day")."""
_BAND_SAMPLE_DAYS = 3
"""Days between the sampled days: between two samples a twilight's local time moves one way (except near its
extremes, where it barely moves), so a season's edges are among the samples around it."""
_BAND_YEAR = 1_767_225_600.0
"""2026-01-01 00:00 UTC: the year whose days are sampled (any year gives the same bands to well under a step)."""
_BISECTIONS = 11
"""Halvings of a half day to find a day's crossing: 43,200 s / 2^11 ≈ 21 s, far inside the grid's step."""


@dataclass(frozen=True)
class SeasonBand:
    """The hours that are day on every day of one season: ``[start, end)`` in seconds of local mean time
    (``local_day_second``) while the year's phase (``time() % TROPICAL_YEAR_S``) is in ``[since, until)``."""

    since: int
    until: int
    start: int
    end: int


_SEASON_EDGES = tuple(round(i * TROPICAL_YEAR_S / SEASONS) for i in range(SEASONS + 1))


def season_edges() -> tuple[int, ...]:
    """Where each season begins in the year's phase (seconds of ``TROPICAL_YEAR_S``), and the year's end last."""
    return _SEASON_EDGES


def season_of(t: float) -> int:
    """The season (0 to ``SEASONS`` − 1) that Unix time ``t`` falls in, as a startd's clock tells it."""
    return bisect.bisect_right(_SEASON_EDGES, int(t) % TROPICAL_YEAR_S) - 1


def local_day_second(site: Site, t: float) -> float:
    """Seconds since local mean midnight at the site (``mean_time_offset``)."""
    return (t + mean_time_offset(site)) % _DAY


def _crossings(site: Site, altitude_deg: float, lo: np.ndarray, hi: np.ndarray, *, morning: bool) -> np.ndarray:
    """Per day, where the sun crosses ``altitude_deg`` between ``lo`` and ``hi`` (bisection, all days at once;
    the sun's altitude rises to noon and falls after it, so each half day crosses at most once). A half day with
    no crossing gives the band all of it when it is day throughout (a morning from midnight, an evening to
    midnight) and none of it when it is night throughout (both edges at noon)."""
    at_lo = sun_altitude_deg(site, lo) > altitude_deg
    at_hi = sun_altitude_deg(site, hi) > altitude_deg
    a, b = lo.copy(), hi.copy()
    for _ in range(_BISECTIONS):
        mid = (a + b) / 2
        same = (sun_altitude_deg(site, mid) > altitude_deg) == at_lo
        a, b = np.where(same, mid, a), np.where(same, b, mid)
    none = at_lo == at_hi
    day_edge, night_edge = (lo, hi) if morning else (hi, lo)
    return np.where(none & at_lo, day_edge, np.where(none, night_edge, (a + b) / 2))


@lru_cache(maxsize=16)
def _bands(key: tuple[float, float, float], altitude_deg: float) -> tuple[SeasonBand, ...]:
    site = Site(latitude_deg=key[0], longitude_deg=key[1], elevation_m=key[2])
    # A little over a year of local mean midnights, so that every season has samples on both sides of it.
    count = math.ceil((TROPICAL_YEAR_S / _DAY + 4) / _BAND_SAMPLE_DAYS) + 1
    midnights = (_BAND_YEAR - 2 * _DAY + np.arange(count) * _BAND_SAMPLE_DAYS * _DAY) - mean_time_offset(site)
    noons = midnights + _DAY / 2
    mornings = _crossings(site, altitude_deg, midnights, noons, morning=True) - midnights
    evenings = _crossings(site, altitude_deg, noons, midnights + _DAY, morning=False) - midnights
    latest = [0.0] * SEASONS
    earliest = [_DAY] * SEASONS
    for k in range(count - 1):
        # The days from this sample to the next lie in at most two seasons; their edges lie between the two samples'.
        for season in {season_of(float(midnights[k])), season_of(float(midnights[k + 1]) + _DAY - 1)}:
            latest[season] = max(latest[season], float(mornings[k]), float(mornings[k + 1]))
            earliest[season] = min(earliest[season], float(evenings[k]), float(evenings[k + 1]))
    bands = []
    for season in range(SEASONS):
        start = (math.ceil(latest[season] / _BAND_STEP) + 1) * _BAND_STEP
        end = (math.floor(earliest[season] / _BAND_STEP) - 1) * _BAND_STEP
        if start < end:
            bands.append(SeasonBand(_SEASON_EDGES[season], _SEASON_EDGES[season + 1], start, end))
    return tuple(bands)


def day_bands(site: Site, altitude_deg: float = -12.0) -> tuple[SeasonBand, ...]:
    """Per season of the year, the hours of local mean time that are day on each of its days at the site, the sun
    above ``altitude_deg`` throughout, around local noon; a season with a day that has no such hours (a polar night)
    has none. A rule a startd can evaluate with its clock alone (``time()``), which no night reaches into."""
    return _bands(_key(site), altitude_deg)
