"""Two observing-schedule pushes at once, on both back ends (review of the database layer: race_schedule_push).

``schedules.push`` reads the schedule in force (its entry's "before") and stores its own. Unserialized on PostgreSQL
(READ COMMITTED), push A could take its row id first and journal second: the newest ``broker.schedule`` entry then
named A while B (the higher id) was in force, and both entries said nothing was in force before them. The push now
takes the journal's head lock before it reads: B waits for A and journals A as its "before"."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from enclave.accounts import lifecycle
from enclave.db import Database
from enclave.domain.schedule import ObservingSchedule
from enclave.journal import query
from enclave.observing import schedules, storage
from enclave.spec.models import Role
from tests.accounts.conftest import ADMIN
from tests.races import race


def test_the_newest_push_journaled_is_the_schedule_in_force(db: Database, admin: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    with db.session() as s:
        lifecycle.grant_role(s, ADMIN, ADMIN, Role.HTCONDOR_ADMIN, reason="pushes schedules")
    at = datetime.now(UTC)

    def push(source: str) -> Any:
        def go() -> Any:
            with db.session() as s:
                row, _, _ = schedules.push(s, ADMIN, ObservingSchedule(source=source), reason=f"push {source}",
                                           at=at, instrument="LSSTCam")
                return row.digest
        return go

    out = race(monkeypatch, storage, "add", push("A"), push("B"))
    assert all(isinstance(v, str) for v in out.values()), out
    with db.session() as s:
        in_force = schedules.newest(s, None)
        entries = query(s, action=schedules.SCHEDULE_ACTION)
    assert in_force is not None and in_force.digest == out["second"]
    assert [e.after["digest"] for e in entries] == [out["first"], out["second"]]
    assert entries[0].before is None and entries[1].before is not None
    assert entries[1].before["digest"] == out["first"]
