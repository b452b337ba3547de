"""Journal tables: the entries and the single head row that anchors the end of the chain."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from enclave.db import Base


class JournalEntry(Base):
    __tablename__ = "journal_entries"

    seq: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    # Fixed-format UTC text, so the hashed value is byte-identical on SQLite and PostgreSQL.
    at: Mapped[str] = mapped_column(sa.String(32), index=True)
    actor: Mapped[str] = mapped_column(sa.String(64), index=True)
    action: Mapped[str] = mapped_column(sa.String(64), index=True)
    target: Mapped[str] = mapped_column(sa.String(255), index=True)
    reason: Mapped[str] = mapped_column(sa.Text)
    before: Mapped[str] = mapped_column(sa.Text)
    after: Mapped[str] = mapped_column(sa.Text)
    prev_hash: Mapped[str] = mapped_column(sa.String(64))
    hash: Mapped[str] = mapped_column(sa.String(64))


class JournalHead(Base):
    """One row: the last sequence number and hash. Without it, deleting the newest entries would go unseen."""

    __tablename__ = "journal_head"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(sa.Integer)
    hash: Mapped[str] = mapped_column(sa.String(64))
