"""Request bodies. Every model forbids unknown keys and bounds its strings, so a malformed body is a 422
with the offending field named, never a 500 and never a half-applied change."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

Reason = Annotated[str, StringConstraints(min_length=1, max_length=500)]
Username = Annotated[str, StringConstraints(min_length=1, max_length=32)]
Short = Annotated[str, StringConstraints(min_length=1, max_length=200)]


def _within_utc(value: datetime) -> datetime:
    """Refuse an aware datetime that leaves Python's years 1–9999 once converted to UTC (``0001-01-01T00:00+01:00``
    is year 0 in UTC): enclave stores and journals every time in UTC, and the conversion would fail deep inside
    (an OverflowError, a 500) instead of a 422 naming the field. A naive one passes on to the check of its own."""
    if value.tzinfo is not None:
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise ValueError("the datetime must convert to UTC within years 1-9999") from None
    return value


When = Annotated[datetime, AfterValidator(_within_utc)]
"""A datetime in a request body or query: one that converts to UTC (``_within_utc``)."""


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AllocationBody(Body):
    proposal_id: Short
    quota_gib: float | None = Field(default=None, gt=0, le=1e9)
    expires: When | None = None


class Why(Body):
    reason: Reason = Field(description="Why the change is made; journaled (seed §8: every change documented).")
