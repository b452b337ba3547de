"""Churn per night (``enclave.broker.churn``): nights from local noon to noon at the site, actions and evicted
work as the journal entries record them. Expected nights are worked out by hand from the site's longitude."""

from __future__ import annotations

from datetime import UTC, datetime

from enclave.broker.churn import Churn, NightChurn, from_entries, lost_core_s, night_of
from enclave.spec.models import Site

PACHON = Site(latitude_deg=-30.2444, longitude_deg=-70.7494)  # local noon: 12:00 + 70.7494/15 h = 16:43 UTC


def _t(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_a_night_runs_from_local_noon_to_local_noon() -> None:
    # 16:42 UTC on 21 June is 11:59 local mean time at Cerro Pachón: still the night of 20 June; 16:44, 21 June.
    assert night_of(_t("2026-06-21T16:42:00"), PACHON) == "2026-06-20"
    assert night_of(_t("2026-06-21T16:44:00"), PACHON) == "2026-06-21"
    # The observing night (about 23:00 to 10:00 UTC) falls in one: 23:30 on the 21st and 09:30 on the 22nd.
    assert night_of(_t("2026-06-21T23:30:00"), PACHON) == night_of(_t("2026-06-22T09:30:00"), PACHON)
    # Without a site: UTC noon.
    assert night_of(_t("2026-06-21T11:59:00"), None) == "2026-06-20"
    assert night_of(_t("2026-06-21T12:00:00"), None) == "2026-06-21"


def test_churn_counts_actions_and_evicted_core_hours_per_night() -> None:
    c = Churn(site=None)
    c.add(_t("2026-06-21T13:00:00"), 1800.0)
    c.add(_t("2026-06-22T02:00:00"), 5400.0)
    c.add(_t("2026-06-22T13:00:00"))
    assert c.nights() == [NightChurn("2026-06-21", 2, 2.0), NightChurn("2026-06-22", 1, 0.0)]
    assert c.of(_t("2026-06-22T03:00:00")) == NightChurn("2026-06-21", 2, 2.0)
    assert c.of(_t("2026-06-25T03:00:00")) == NightChurn("2026-06-24", 0, 0.0)


def test_from_entries_prefers_the_backend_clock() -> None:
    # A twin's entry is written at wall-clock time but decided at the simulated clock it records.
    sim, wall = _t("2026-06-21T13:00:00"), _t("2030-01-01T13:00:00")
    entries = [({"clock": sim, "evicts": {"at_stake_core_s": 7200.0, "lost_core_s": 3600.0}}, wall),
               ({"clock": sim + 60}, wall), ({}, wall)]  # the last recorded no clock (written before this)
    assert from_entries(entries, None).nights() == [NightChurn("2026-06-21", 2, 1.0),
                                                   NightChurn("2030-01-01", 1, 0.0)]
    assert lost_core_s({"evicts": None}) == 0.0 and lost_core_s({}) == 0.0
