"""Pushing an observing schedule (``enclave broker schedule push``, ``POST /broker/schedule``) and reading it.

Pushing steers where the broker moves capacity, so it needs what a relabel needs (``batch.relabel``: HTCondor
administrators); reading it needs ``journal.read``, as every staff role but developer has. Each push is journaled
in the transaction that stores it, naming the document's digest and its span; the previous schedule's summary is
the entry's "before"."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from enclave import journal
from enclave.access.permissions import Permission
from enclave.accounts.authorize import require
from enclave.clock import stamp
from enclave.domain.schedule import ObservingSchedule, check_horizon
from enclave.errors import InputError, Problem
from enclave.journal import Entry
from enclave.observing import storage
from enclave.observing.storage import ScheduleRow

TARGET = "observing-schedule"
SCHEDULE_ACTION = "broker.schedule"


def push(session: Session, actor: str, schedule: ObservingSchedule, *, reason: str, at: datetime,
         instrument: str) -> tuple[ScheduleRow, Entry, dict[str, int]]:
    """Store ``schedule``'s visits of ``instrument`` as the schedule in force, journaled; the third value counts
    the visits dropped, by instrument (``ObservingSchedule.for_instrument``). A schedule that does not say from
    when it is complete is complete from now: it lists every visit from the push on. Times outside the horizon
    are refused (``check_horizon``) before anything is stored."""
    require(session, actor, Permission.BATCH_RELABEL)
    if schedule.complete_from is None:
        schedule = complete_from_now(schedule, at)
    check_horizon(schedule, at.timestamp())  # every visit, the dropped ones too: a unit slip is refused, not hidden
    check_ends_ahead(schedule, at)
    schedule, dropped = schedule.for_instrument(instrument)
    document = schedule.model_dump_json()
    # The journal's head lock before reading the schedule in force: on PostgreSQL (READ COMMITTED) two pushes
    # could otherwise both read the same "before" and journal in the other order than their rows' ids, the newest
    # entry then naming a schedule that is not in force. SQLite's BEGIN IMMEDIATE serializes them already.
    journal.lock(session)
    before = storage.newest(session)
    row = ScheduleRow(pushed_by=actor, pushed_at=at, reason=reason, document=document,
                      digest="sha256:" + hashlib.sha256(document.encode()).hexdigest())
    storage.add(session, row)
    entry = journal.record(session, actor=actor, action=SCHEDULE_ACTION, target=TARGET, reason=reason,
                           before=summary(before), after={**(summary(row) or {}), "dropped": dropped}, at=at)
    return row, entry, dropped


def complete_from_now(schedule: ObservingSchedule, at: datetime) -> ObservingSchedule:
    """``schedule`` complete from ``at``, validated again (model_copy does not validate): a complete_until before
    the push is refused with the model's own message, not stored (without one, ``check_ends_ahead`` refuses)."""
    try:
        return ObservingSchedule.model_validate({**schedule.model_dump(), "complete_from": at.timestamp()})
    except ValidationError as e:
        raise InputError([Problem("observing schedule", "; ".join(err["msg"] for err in e.errors()),
                                 "push a schedule whose complete_until is after now, or give complete_from")]) from e


def check_ends_ahead(schedule: ObservingSchedule, at: datetime) -> None:
    """Refuse a schedule with visits that is complete only up to before ``at``: stored, it would replace the one in
    force with one that covers nothing ahead, and the broker would fall back to twilight without a word. An empty
    schedule stays accepted whatever its span: that is how the pre-warm is handed back to twilight."""
    until = schedule.known_until()
    if schedule.visits and until is not None and until < at.timestamp():
        raise InputError([Problem("observing schedule", f"is complete only up to {stamp(until)}, before the push "
                                  f"at {stamp(at.timestamp())}: it says nothing of what comes",
                                  "push the visits still to come, or a complete_until after now; "
                                  "push `visits: []` to hand the pre-warm back to twilight")])


def newest(session: Session, actor: str | None) -> ScheduleRow | None:
    """The schedule in force; ``actor`` is checked for ``journal.read`` (None: the broker loop's own read)."""
    if actor is not None:
        require(session, actor, Permission.JOURNAL_READ)
    return storage.newest(session)


def schedule_of(row: ScheduleRow) -> ObservingSchedule:
    return ObservingSchedule.model_validate_json(row.document)


def summary(row: ScheduleRow | None) -> dict[str, Any] | None:
    """What the journal keeps of a schedule: its digest, size and span (the document itself is in the table)."""
    if row is None:
        return None
    s = schedule_of(row)
    return {"digest": row.digest, "visits": len(s.visits), "source": s.source,
            "first_start": s.visits[0].start if s.visits else None,
            "last_readout": s.last_readout(),
            "complete_from": s.complete_from, "complete_until": s.known_until()}
