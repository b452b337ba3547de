"""Request bodies. Every model forbids unknown keys and bounds its strings, so a malformed body is a 422
with the offending field named, never a 500 and never a half-applied change."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Reason = Annotated[str, StringConstraints(min_length=1, max_length=500)]
Username = Annotated[str, StringConstraints(min_length=1, max_length=32)]
Short = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AllocationBody(Body):
    proposal_id: Short
    quota_gib: float | None = Field(default=None, gt=0, le=1e9)
    expires: datetime | None = None


class Why(Body):
    reason: Reason = Field(description="Why the change is made; journaled (seed §8: every change documented).")
