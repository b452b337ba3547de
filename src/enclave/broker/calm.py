"""``Calm``: whether the latency pools are calm, which the broker loop learns and publishes each cycle.

A latency pool holds about one visit's capacity (``window.learned_need``); an overlap of two visits overflows
onto the slots the other pools free (``enclave.batch.policy.overflow_pools``). DRP frees slots only where its
claims end (CLAIM_WORKLIFE, 1,200 s by HTCondor's default), and each ending claim waits for a negotiation cycle:
one-week's DRP held some 36 cores idle all night for that. Where a pool sets ``calm_claim_worklife``, its startds
keep their claims longer while the broker says the latency pools are calm, and hand them back once it says they
are not (docs/batch.md, "Claims while calm").

Calm means, for every latency pool:

- **observing**: it has had a job submitted within ``broker.prewarm_quiet_seconds`` (the quiet after which the
  pre-warm ends, ``decide.observing_done``). Through a weather gap and before the night's first visit its
  overflow must find the other pools' claims turning over when the visits come (one-night-weather: 99.05 % of
  visits within 60 s with calm through the gaps, 99.76 % without);
- **not short now**: its jobs need no more than it holds ready (``PoolState.urgent``);
- **seldom short**: short in under ``broker.calm_short_share`` of the cycles of the last
  ``broker.calm_window_seconds``. A night of slow prompt jobs is short in a third of its cycles and lives on the
  overflow; one-week's nights are short in a fifth, at the overlaps, which the claims that end on their own meet.

Not calm when the spec has no latency pool: there is nothing to be calm about, and the pools' own worklives hold.
Pure but for the cycles it remembers; the loop that decides (the broker service, the twin's broker policy)
feeds it each plan.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from enclave.broker.decide import PoolState
from enclave.domain.capacity import PoolDemand
from enclave.spec.models import EnclaveSpec


def observing(spec: EnclaveSpec, d: PoolDemand, now: float) -> bool:
    """Whether the pool had a job submitted within ``broker.prewarm_quiet_seconds`` of ``now``."""
    return d.newest_submit is not None and now - d.newest_submit < spec.broker.prewarm_quiet_seconds


@dataclass
class Calm:
    """The latency pools' recent cycles, and the verdict on them (``feed``)."""

    spec: EnclaveSpec
    cycles: dict[str, deque[tuple[float, bool]]] = field(default_factory=dict)
    """Per latency pool, (when, short) of each cycle within ``broker.calm_window_seconds``, oldest first."""

    def feed(self, now: float, pools: dict[str, PoolState], demand: dict[str, PoolDemand]) -> bool:
        """Take one cycle's plan (its pools, ``decide.plan``) and the demand it saw; return whether the latency
        pools are calm now."""
        b = self.spec.broker
        latency = [ps for ps in pools.values() if ps.latency]
        calm = bool(latency)
        for ps in latency:
            short = ps.urgent()
            seen = self.cycles.setdefault(ps.name, deque())
            seen.append((now, short))
            while seen[0][0] < now - b.calm_window_seconds:
                seen.popleft()
            share = sum(s for _, s in seen) / len(seen)
            calm = calm and observing(self.spec, demand.get(ps.name, PoolDemand()), now) and not short \
                and share < b.calm_short_share
        return calm
