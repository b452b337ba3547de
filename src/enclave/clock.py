"""The one clock of enclave: timezone-aware UTC, and one way to print a backend time."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def or_now(when: datetime | None) -> datetime:
    """``when`` if given (tests and replays pass one), else now."""
    return when or utcnow()


def stamp(seconds: float) -> str:
    """A backend clock reading (seconds since the epoch, simulated in the twin) as people read it; total: a
    reading no calendar date can show (a millisecond value read as seconds, ±inf) is printed as the number, so
    showing a bad value never fails where refusing it is the job of the one who reads it."""
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (ValueError, OverflowError, OSError):
        return f"{seconds:.6g} s since 1970 (no calendar date)"
