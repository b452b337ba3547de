"""The one clock of enclave: timezone-aware UTC, and one way to print a backend time."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def or_now(when: datetime | None) -> datetime:
    """``when`` if given (tests and replays pass one), else now."""
    return when or utcnow()


def stamp(seconds: float) -> str:
    """A backend clock reading (seconds since the epoch, simulated in the twin) as people read it."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
