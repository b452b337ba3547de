"""API tokens: only a hash of the secret is stored."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from enclave.db import Base, UTCDateTime


class Token(Base):
    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(sa.String(64))
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("accounts.id"), index=True)
    scopes: Mapped[str] = mapped_column(sa.Text)
    issued_by: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
