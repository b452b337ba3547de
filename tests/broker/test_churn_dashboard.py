"""The dashboard's churn per night shows whole nights (review, stop 48)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

import enclave.api.dashboard as dashboard
from enclave.broker.churn import night_of
from enclave.broker.layout import initial_state
from enclave.db import Database
from enclave.domain.capacity import Relabel
from enclave.services.broker import BrokerService
from tests.broker.conftest import CONDOR_ADMIN, NOW, MemoryBackend, make_spec


def test_the_oldest_night_shown_is_whole(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """Ten relabels an hour apart in one night (local noon to noon at the site), the dashboard opened 8 days and
    4.5 hours after the first. The journal was cut at "8 days ago", inside that night, which then showed the 5
    actions after the cut. The journal is now read from a day earlier, and a night the cut falls in is left out."""
    spec = make_spec(broker={"cooldown_seconds": 0})
    state = replace(initial_state(spec, NOW - 100_000), now=NOW)
    times = [NOW + 4 * 3600 + i * 3600 for i in range(10)]
    assert len({night_of(t, spec.cluster.site) for t in times}) == 1
    clock = {"t": NOW}
    backend = MemoryBackend(state)
    broker = BrokerService(spec, db, backend, "memory", clock=lambda: datetime.fromtimestamp(clock["t"], UTC))
    pools = {s.name: s.pool for s in state.startds}
    for t, startd in zip(times, sorted(pools), strict=False):
        backend.state = replace(backend.state, now=t)
        clock["t"] = t
        to = "user" if pools[startd] != "user" else "drp"
        assert broker.apply(Relabel(actor=CONDOR_ADMIN, reason="r", startd=startd, from_pool=pools[startd],
                                    to_pool=to)).applied
    service: Any = SimpleNamespace(runner=SimpleNamespace(broker=broker))
    admin: Any = SimpleNamespace(username="root", allows=lambda _: True)
    # 8 days 4.5 h on, the night is read whole (it began over a day before the cut): 10, not the 5 after "8 days
    # ago"; 9 days 4.5 h on, the cut falls in it, and a part of it is not shown as the night.
    for days, shown in ((8 + 4.5 / 24, [10]), (9 + 4.5 / 24, [])):
        monkeypatch.setattr(dashboard, "utcnow", lambda d=days: datetime.fromtimestamp(times[0] + d * 86400, UTC))
        assert [n.actions for n in dashboard.churn_context(service, admin)["churn"]] == shown
