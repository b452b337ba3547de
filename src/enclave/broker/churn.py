"""Churn per night: how many actions the broker applied and how much running work they evicted.

Pure. Each applied action's journal entry records the backend clock it was decided at (``clock``) and, when it
may evict running jobs, the work it was expected to lose (``evicts.lost_core_s``, ``enclave.broker.victims``);
``from_entries`` folds those entries night by night, and ``Churn.add`` does the same for a running broker loop
(the metrics). A night runs from local noon to local noon at the spec's site (its longitude; UTC noon without
a site), so a whole observing night falls in one, and is named by the date it starts on. ``twin compare`` counts
the same figures from the simulator ("node moves per night", "evicted core-hours").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from enclave.domain.night import mean_time_offset
from enclave.spec.models import Site

_DAY = 86_400.0
_NOON = 43_200.0


@dataclass(frozen=True)
class NightChurn:
    night: str
    """The date (YYYY-MM-DD) of the local noon the night starts at."""
    actions: int
    evicted_core_hours: float


def night_of(t: float, site: Site | None) -> str:
    """The night ``t`` (seconds since the epoch) belongs to: the date of the local noon before it. Local time is
    mean solar time at the site's longitude (``night.mean_time_offset``)."""
    offset = mean_time_offset(site) if site is not None else 0.0
    return datetime.fromtimestamp(t + offset - _NOON, UTC).date().isoformat()


@dataclass
class Churn:
    """Actions and evicted core-seconds per night, in the order nights were first seen."""

    site: Site | None = None
    actions: dict[str, int] = field(default_factory=dict)
    evicted_core_s: dict[str, float] = field(default_factory=dict)

    def add(self, at: float, lost_core_s: float = 0.0) -> None:
        """One applied action at backend clock ``at`` that was expected to lose ``lost_core_s``."""
        night = night_of(at, self.site)
        self.actions[night] = self.actions.get(night, 0) + 1
        self.evicted_core_s[night] = self.evicted_core_s.get(night, 0.0) + lost_core_s

    def nights(self) -> list[NightChurn]:
        return [NightChurn(night=n, actions=k, evicted_core_hours=round(self.evicted_core_s[n] / 3600.0, 2))
                for n, k in sorted(self.actions.items())]

    def of(self, t: float) -> NightChurn:
        """The night ``t`` falls in, with nothing counted if no action was applied in it yet."""
        night = night_of(t, self.site)
        return NightChurn(night=night, actions=self.actions.get(night, 0),
                          evicted_core_hours=round(self.evicted_core_s.get(night, 0.0) / 3600.0, 2))


def lost_core_s(after: Mapping[str, Any]) -> float:
    """The work an action's journal entry says it was expected to evict (0 when it recorded none)."""
    evicts = after.get("evicts")
    return float(evicts.get("lost_core_s", 0.0)) if isinstance(evicts, Mapping) else 0.0


def from_entries(entries: Iterable[tuple[Mapping[str, Any], float]], site: Site | None,
                 since: float | None = None) -> Churn:
    """Churn from broker journal entries: each given as (its ``after`` detail, its wall-clock time as a
    fallback for entries that recorded no backend ``clock``). ``since``: the wall-clock time the entries were read
    from; an entry of the night that instant falls in (on the entry's own clock, the twin's or the live one) is
    left out, since that night's earlier entries were not read: its figure would be part of a night."""
    churn = Churn(site=site)
    for after, wall in entries:
        clock = after.get("clock")
        at = float(clock) if isinstance(clock, int | float) else wall
        if since is not None and night_of(at, site) <= night_of(since + at - wall, site):
            continue
        churn.add(at, lost_core_s(after))
    return churn
