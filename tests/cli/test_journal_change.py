"""`enclave journal show`'s change column prints a backend clock reading as a UTC date and time
(``enclave.clock.stamp``), never as raw seconds since the epoch (audit: `clock: None → 1782043200.0`)."""

from __future__ import annotations

from enclave.cli.journal import _change


def test_a_clock_change_is_a_utc_date() -> None:
    text = _change({"clock": None, "pool": "general"}, {"clock": 1782043200.0, "pool": "drp"})
    # 1782043200 s after 1970-01-01T00:00:00Z is 2026-06-21 12:00:00 UTC (20625 days and 12 hours).
    assert "clock: None → 2026-06-21 12:00:00 UTC" in text
    assert "1782043200" not in text
    assert "pool: general → drp" in text
