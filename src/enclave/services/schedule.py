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
from enclave.spec.models import BrokerPolicy

DEFAULT_INSTRUMENT: str = BrokerPolicy.model_fields["prewarm_instrument"].default
"""The spec's default: a service built without a spec (tests) keeps what an LDF enclave keeps."""


class ScheduleView(BaseModel):
    model_config = ConfigDict(frozen=True)

    pushed_by: str
    pushed_at: datetime
    reason: str
    digest: str
    journal_seq: int | None = None
    """The journal entry of the push (on the push's answer; None when read back)."""
    schedule: ObservingSchedule
    dropped: dict[str, int] = {}
    """On the push's answer: the visits not stored because they were of another instrument ("" when blank), by
    instrument (``ObservingSchedule.for_instrument``)."""


def view(row: ScheduleRow, seq: int | None = None, dropped: dict[str, int] | None = None) -> ScheduleView:
    return ScheduleView(pushed_by=row.pushed_by, pushed_at=row.pushed_at, reason=row.reason, digest=row.digest,
                        journal_seq=seq, schedule=schedules.schedule_of(row), dropped=dropped or {})


@dataclass
class ScheduleService:
    db: Database
    clock: Callable[[], datetime] = utcnow
    instrument: str = DEFAULT_INSTRUMENT
    """The pre-warmed pool's instrument (``broker.prewarm_instrument``): visits of others are dropped at a push."""

    def push(self, actor: str, schedule: ObservingSchedule, *, reason: str) -> ScheduleView:
        """Make ``schedule``'s visits of the pre-warmed instrument the schedule in force (HTCondor administrators),
        journaled; the answer counts those dropped. An empty schedule hands the decision back to twilight."""
        with self.db.session() as session:
            row, entry, dropped = schedules.push(session, actor, schedule, reason=reason, at=self.clock(),
                                                 instrument=self.instrument)
            return view(row, entry.seq, dropped)

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
