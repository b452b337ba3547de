"""The observing-schedule table and every SQL statement about it (the rules are ``enclave.observing.schedules``).

Each push is a row; the newest row is the schedule in force. Earlier rows stay (with the journal entry that
records each push) so what the broker pre-warmed for can be read back."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column

from enclave.db import Base, UTCDateTime


class ScheduleRow(Base):
    __tablename__ = "observing_schedules"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    pushed_by: Mapped[str] = mapped_column(sa.String(64))
    pushed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(sa.Text)
    document: Mapped[str] = mapped_column(sa.Text)
    """The schedule as JSON (``ObservingSchedule.model_dump_json``)."""
    digest: Mapped[str] = mapped_column(sa.String(71))
    """sha256:<hex> of ``document``: what the journal entry names."""


def newest(session: Session) -> ScheduleRow | None:
    return session.execute(sa.select(ScheduleRow).order_by(ScheduleRow.id.desc()).limit(1)).scalar_one_or_none()


def add(session: Session, row: ScheduleRow) -> None:
    session.add(row)
    session.flush()
