"""Image vetting (seed §10): submit a digest, approve or reject it (security, not the submitter), list them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from enclave.db import Database
from enclave.ops import images
from enclave.ops.images import ApprovedImage, ImageStatus
from enclave.ops.storage import VettedImage
from enclave.spec.models import EnclaveSpec


class ImageView(BaseModel):
    model_config = ConfigDict(frozen=True)

    repository: str
    tag: str | None
    digest: str
    pinned: str
    status: ImageStatus
    submitted_by: str
    submitted_at: datetime
    submitted_delegated_by: str | None = None
    """Who issued the token the submitter acted with, on their behalf: they may not approve it either."""
    decided_by: str | None
    decided_at: datetime | None
    reason: str


def view(row: VettedImage) -> ImageView:
    return ImageView(repository=row.repository, tag=row.tag, digest=row.digest, pinned=row.pinned,
                     status=ImageStatus(row.status), submitted_by=row.submitted_by, submitted_at=row.submitted_at,
                     submitted_delegated_by=row.submitted_delegated_by,
                     decided_by=row.decided_by, decided_at=row.decided_at, reason=row.reason)


@dataclass
class ImageService:
    db: Database
    spec: EnclaveSpec

    def _one(self, fn: Callable[[Session], VettedImage]) -> ImageView:
        with self.db.session() as session:
            return view(fn(session))

    def submit(self, actor: str, image: str, *, reason: str = "") -> ImageView:
        return self._one(lambda s: images.submit(s, self.spec, actor, image, reason=reason))

    def approve(self, actor: str, image: str, *, reason: str) -> ImageView:
        """Refused through a token issued on ``actor``'s behalf (``enclave.services.tokens.acting_for``)."""
        return self._one(lambda s: images.approve(s, actor, image, reason=reason))

    def reject(self, actor: str, image: str, *, reason: str) -> ImageView:
        return self._one(lambda s: images.reject(s, actor, image, reason=reason))

    def listing(self, status: ImageStatus | None = None) -> list[ImageView]:
        """Every image and its vetting state (what the registry holds is no secret inside the enclave)."""
        with self.db.session() as session:
            return [view(r) for r in images.listing(session, status)]

    def approved(self, registry: str | None = None) -> list[ApprovedImage]:
        with self.db.session() as session:
            return images.approved(session, registry)

    def vetter(self) -> Callable[[str], bool]:
        """Is an image approved, from the spec's registry (the only one the admission policy admits)? Read at
        each check: an approval (or a withdrawal) counts from the next question on."""
        def vetted(image: str) -> bool:
            with self.db.session() as session:
                return images.vetter(session, self.spec.registry.host)(image)

        return vetted

    def pin(self, image: str) -> str:
        """The approved ``repository@digest`` an image reference stands for, from the spec's registry."""
        with self.db.session() as session:
            return images.pin(session, image, self.spec.registry.host)
