"""`twin compare` reports the broker's churn (issue 15): actions per night, evicted core-hours, users' wait."""

from __future__ import annotations

from enclave.twin import report


def test_compare_table_has_the_churn_rows() -> None:
    run = {"moves": {"total": 140, "per_night": 20.0, "wasted_core_hours": 12.5},
           "pools": {"user": {"wait_s": {"p50": 30.0}}}}
    shown = {label: report.fmt(report.get(run, path), unit) for label, path, unit in report.ROWS}
    assert shown["node moves per night"] == "20.0"
    assert shown["evicted core-hours"] == "12.5"
    assert shown["user wait p50 s"] == "30.0"
