"""The benchmark runs and agrees with naive evaluation (at a small size, so the suite stays fast)."""

from __future__ import annotations

import sys

import pytest
from bench import batch_match


def test_bench_small(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["batch_match", "--jobs", "400", "--slots", "60", "--sample", "400"])
    batch_match.main()
    out = capsys.readouterr().out
    assert "sample of 400 pairs: 0 disagreement(s) with naive evaluation" in out
    assert "jobs 400  slots 60  pairs 24,000" in out
