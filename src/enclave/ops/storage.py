"""The vetted-images table and every SQL statement about it (the vetting rules are ``enclave.ops.images``)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column

from enclave.db import Base, UTCDateTime


class VettedImage(Base):
    __tablename__ = "ops_images"
    __table_args__ = (sa.UniqueConstraint("repository", "digest", name="uq_ops_images_repository_digest"),
                      sa.CheckConstraint("status IN ('submitted', 'approved', 'rejected')", name="status"),
                      sa.Index("ix_ops_images_status", "status"))

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    repository: Mapped[str] = mapped_column(sa.String(255))
    tag: Mapped[str | None] = mapped_column(sa.String(128), nullable=True)
    digest: Mapped[str] = mapped_column(sa.String(71))
    status: Mapped[str] = mapped_column(sa.String(16))
    submitted_by: Mapped[str] = mapped_column(sa.String(64))
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    submitted_delegated_by: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    """Who issued the token the submitter acted with, on the submitter's behalf: that submission was theirs too."""
    decided_by: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    reason: Mapped[str] = mapped_column(sa.Text, default="")

    @property
    def pinned(self) -> str:
        return f"{self.repository}@{self.digest}"

    def state(self) -> dict[str, object]:
        return {"repository": self.repository, "tag": self.tag, "digest": self.digest, "status": self.status,
                "submitted_by": self.submitted_by, "submitted_delegated_by": self.submitted_delegated_by,
                "decided_by": self.decided_by, "reason": self.reason}


def find(session: Session, repository: str, digest: str) -> VettedImage | None:
    return session.execute(sa.select(VettedImage).where(VettedImage.repository == repository,
                                                        VettedImage.digest == digest)).scalar_one_or_none()


def listing(session: Session, status: str | None = None) -> list[VettedImage]:
    q = sa.select(VettedImage).order_by(VettedImage.repository, VettedImage.submitted_at, VettedImage.id)
    if status is not None:
        q = q.where(VettedImage.status == status)
    return list(session.execute(q).scalars())


def add(session: Session, row: VettedImage) -> None:
    session.add(row)
