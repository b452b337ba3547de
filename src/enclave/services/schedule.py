"""The observing schedule the broker pre-warms for: push one (a file, or over the API), show it, and the broker
loop's read of it (``BrokerService`` attaches it to each observation that carries none of its own)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from enclave.clock import utcnow
from enclave.db import Database
from enclave.domain.schedule import ObservingSchedule
from enclave.observing import schedules
from enclave.observing.storage import ScheduleRow


class ScheduleView(BaseModel):
    model_config = ConfigDict(frozen=True)

    pushed_by: str
    pushed_at: datetime
    reason: str
    digest: str
    journal_seq: int | None = None
    """The journal entry of the push (on the push's answer; None when read back)."""
    schedule: ObservingSchedule


def view(row: ScheduleRow, seq: int | None = None) -> ScheduleView:
    return ScheduleView(pushed_by=row.pushed_by, pushed_at=row.pushed_at, reason=row.reason, digest=row.digest,
                        journal_seq=seq, schedule=schedules.schedule_of(row))


@dataclass
class ScheduleService:
    db: Database
    clock: Callable[[], datetime] = utcnow

    def push(self, actor: str, schedule: ObservingSchedule, *, reason: str) -> ScheduleView:
        """Make ``schedule`` the one in force (HTCondor administrators), journaled. An empty schedule hands the
        decision back to twilight."""
        with self.db.session() as session:
            row, entry = schedules.push(session, actor, schedule, reason=reason, at=self.clock())
            return view(row, entry.seq)

    def show(self, actor: str) -> ScheduleView | None:
        """The schedule in force, or None when none was ever pushed (journal readers)."""
        with self.db.session() as session:
            row = schedules.newest(session, actor)
            return view(row) if row is not None else None

    def current(self) -> ObservingSchedule | None:
        """The schedule in force, for the broker loop (no actor: the loop reads what people pushed)."""
        with self.db.session() as session:
            row = schedules.newest(session, None)
            return schedules.schedule_of(row) if row is not None else None
