"""A CLAIM_WORKLIFE that follows the startd's clock (pools.<name>.day_claim_worklife, ``render.daytime``) or the
broker's word of calm (pools.<name>.calm_claim_worklife, ``render.calm_cron``).

The startd evaluates CLAIM_WORKLIFE against the slot ad each time a job ends on a claim (Resource.cpp
``claimWorklifeExpired``, htcondor 7491a14), so an expression of ``time()`` holds one worklife by day and another
by night, and one of the slot ad's ``EnclaveCalmUntil`` another while the broker says calm. The twin evaluates the
text HTCondor reads with classad2 at the instant: ``time()`` becomes an attribute the twin sets to it, so the text
is parsed once; while calm, the slot ad's word holds a second beyond it.
"""

from __future__ import annotations

from functools import lru_cache

import classad2

from enclave.batch.render import CALM_UNTIL_ATTR
from enclave.domain.night import season_edges

_MINUTE = 60
"""The twin evaluates the expression once a minute. Its edges are ``night.day_bands``' five-minute grid shifted
by the site's offset in whole seconds: on whole minutes where the offset is (Cerro Pachón's, 16,980 s), else
read up to a minute late, well inside the bands' own step of margin."""
_NOW = "EnclaveTwinNow"
"""The attribute that stands for ``time()``."""
_SAMPLE = 300
"""``most`` reads the expression every five minutes: each rendered band lasts whole five-minute steps, so every
band has a sample."""


class ClockWorklife:
    """One pool's worklife expression; ``at`` gives it in seconds at a Unix time, -1 as the caller's forever."""

    def __init__(self, expression: str, forever_s: float) -> None:
        self.expression = expression
        self.forever_s = forever_s
        self._cache: dict[tuple[int, bool], float] = {}
        try:
            self._tree = classad2.ExprTree(expression.replace("time()", _NOW))
        except classad2.ClassAdException as err:
            raise ValueError(f"CLAIM_WORKLIFE {expression!r} is no ClassAd expression: {err}") from None
        self.most()  # refuses now an expression that is no worklife at some time of the year

    def at(self, unix_s: float, calm: bool = False) -> float:
        """The worklife at ``unix_s``, on a slot whose ad holds the broker's word of calm or not (``calm``)."""
        key = (int(unix_s // _MINUTE), calm)
        value = self._cache.get(key)
        if value is None:
            value = self._cache[key] = self._eval(key[0] * _MINUTE, calm)
        return value

    def most(self) -> float:
        """The longest worklife it gives over a year: over one day of each season (``night.SEASONS``, whose bands
        differ), every five minutes, calm or not: the first day of each season since the epoch."""
        return max(self._eval(day + s, calm) for day in season_edges()[:-1] for s in range(0, 86_400, _SAMPLE)
                   for calm in (False, True))

    def _eval(self, unix_s: int, calm: bool) -> float:
        ad = {_NOW: unix_s, CALM_UNTIL_ATTR: unix_s + 1} if calm else {_NOW: unix_s}
        value = self._tree.eval(classad2.ClassAd(ad))
        if isinstance(value, bool) or not isinstance(value, int) or value < -1:
            raise ValueError(f"CLAIM_WORKLIFE {self.expression!r} gives {value!r} at {unix_s}, not seconds >= 0 "
                             "or -1 (forever)")
        return self.forever_s if value == -1 else float(value)


@lru_cache(maxsize=64)
def clock_worklife(expression: str, forever_s: float) -> ClockWorklife:
    """One ``ClockWorklife`` per expression, shared by the scenario's check, the run and the timing bound: each
    would otherwise evaluate the same expression over a year again."""
    return ClockWorklife(expression, forever_s)
