"""next_visit messages as the summit publishes them (audit of 2026-12, /tmp/audit-visit), checked against the
upstream definitions: lsst-ts/ts_xml ``python/lsst/ts/xml/data/sal_interfaces/ScriptQueue/ScriptQueue_Events.xml``
(nextVisit, nextVisitCanceled; commit a724e1ac), lsst-ts/ts_scriptqueue ``script_queue.py`` ``put_next_visit``
(commit 688c7ad), lsst-dm/prompt_processing ``python/activator`` (commit ee8e3a3), lsst-dm/next_visit_fan_out
``src/main.py`` (commit 4add312)."""

from __future__ import annotations

from typing import Any

import pytest

from enclave.broker.schedule import prewarm_from_schedule
from enclave.domain.schedule import parse
from enclave.errors import InputError
from tests.broker.test_schedule import T0, TIMING

TAI_MINUS_UTC = 37.0  # IERS Bulletin C: TAI − UTC = 37 s since 2017-01-01; astropy's unix_tai minus unix


def summit(*, start_tai: float, snd_tai: float, duration: float = 34.0, instrument: str = "LSSTCam",
           sal_index: int = 1, group: str = "2026-04-14T01:00:00.000", **more: Any) -> dict[str, Any]:
    """A nextVisit as MTQueue publishes it: every field of ts_xml's nextVisit plus SAL's private_* header."""
    return {"salIndex": sal_index, "scriptSalIndex": 100017, "groupId": group, "coordinateSystem": 2,
            "position": [150.113, 2.206], "startTime": start_tai, "rotationSystem": 2, "cameraAngle": 0.0,
            "filters": "r_57", "dome": 2, "duration": duration, "nimages": 1, "instrument": instrument,
            "survey": "BLOCK-365", "totalCheckpoints": 0, "private_efdStamp": snd_tai - TAI_MINUS_UTC,
            "private_kafkaStamp": snd_tai - TAI_MINUS_UTC, "private_identity": "MTQueue",
            "private_revCode": "c9aab3df", "private_origin": 4242, "private_seqNum": 17,
            "private_rcvStamp": snd_tai + 0.002, "private_sndStamp": snd_tai, **more}


def test_a_summit_message_without_start_time_is_estimated_from_its_send_time() -> None:
    # ts_scriptqueue 688c7ad put_next_visit never sets startTime: SAL's default for a double, 0.0 (ts_xml a724e1ac
    # field_info.py default_scalar_value = float()). Prompt processing takes private_sndStamp (TAI) as the start
    # (middleware_interface.py ~1119-1120) and waits 2 × duration for the images (activator.py ~625-628).
    message = summit(start_tai=0.0, snd_tai=T0 + TAI_MINUS_UTC)
    [visit] = parse([message], "summit_as_published.json").visits
    assert visit.estimated
    assert visit.start == T0  # sndStamp − (TAI − UTC)
    assert visit.readout == T0 + 2 * 34.0
    s = parse({"visits": [message], "complete_from": T0 - 7200, "complete_until": T0 + 7200}, "m.json")
    assert prewarm_from_schedule(s, T0 - TIMING.lead, TIMING) is True  # ready by the visit's earliest start


def test_a_message_with_neither_start_time_nor_send_time_is_refused_by_name() -> None:
    message = summit(start_tai=0.0, snd_tai=T0)
    del message["private_sndStamp"]
    with pytest.raises(InputError) as bad:
        parse([message], "m.json")
    assert "m.json: visits[0]" in str(bad.value) and "private_sndStamp" in str(bad.value)


def test_copies_are_dropped_and_visits_sorted_by_start() -> None:
    # Kafka delivers at least once; the fan-out sends one copy per detector (next_visit_fan_out 4add312), the
    # same groupId and content but its own "detector": a visit is its groupId, whatever the copies.
    a = summit(start_tai=T0 + TAI_MINUS_UTC, snd_tai=T0 - 600, group="2026-04-14T00:50:00.000")
    b = summit(start_tai=T0 + 40 + TAI_MINUS_UTC, snd_tai=T0 - 560, group="2026-04-14T00:50:40.000")
    assert [v.groupId for v in parse([a, a], "m.json").visits] == [a["groupId"]]
    assert [v.groupId for v in parse([b, a], "m.json").visits] == [a["groupId"], b["groupId"]]
    fanned = [{k: x for k, x in a.items() if not k.startswith("private_") or k == "private_sndStamp"}
              | {"detector": d} for d in range(189)]
    assert len(parse(fanned, "m.json").visits) == 1
    # The same groupId saying something else is two visits claiming one name: refused, by place.
    with pytest.raises(InputError) as bad:
        parse([a, {**a, "duration": 99.0}], "m.json")
    assert "m.json: visits: visits[1] has visits[0]'s groupId" in str(bad.value) and "duration" in str(bad.value)


def test_a_long_script_is_a_visit_not_a_refusal() -> None:
    # ts_xml a724e1ac nextVisit: duration is a double, nimages an int (32-bit IDL); a 90-minute block of 150
    # images is a valid announcement, and kept for its whole duration.
    [v] = parse([summit(start_tai=T0 + TAI_MINUS_UTC, snd_tai=T0 - 60, duration=5400.0, nimages=150)], "m").visits
    assert (v.readout, v.nimages) == (T0 + 5400.0, 150)


def canceled(group: str) -> dict[str, Any]:
    """nextVisitCanceled as MTQueue publishes it: ts_xml a724e1ac ScriptQueue_Events.xml's two fields (scriptSalIndex,
    groupId) plus SAL's salIndex and private_* header."""
    return {"salIndex": 1, "scriptSalIndex": 100017, "groupId": group, "private_sndStamp": T0,
            "private_identity": "MTQueue", "private_seqNum": 18}


def test_a_cancel_takes_back_the_visits_of_its_group_announced_before_it() -> None:
    # ts_scriptqueue 688c7ad queue_model.py clear_group_id sends nextVisitCanceled when an announced script leaves
    # the top of the queue; when it comes back it gets a new groupId and a new nextVisit.
    a = summit(start_tai=T0 + TAI_MINUS_UTC, snd_tai=T0 - 600, group="2026-04-14T00:50:00.000")
    b = summit(start_tai=T0 + 40 + TAI_MINUS_UTC, snd_tai=T0 - 560, group="2026-04-14T00:50:40.000")
    again = summit(start_tai=T0 + 80 + TAI_MINUS_UTC, snd_tai=T0 - 500, group="2026-04-14T00:51:40.000")
    assert [v.groupId for v in parse([a, b, canceled(a["groupId"])], "m.json").visits] == [b["groupId"]]
    assert [v.groupId for v in parse([a, canceled(a["groupId"]), b, again], "m.json").visits] == [
        b["groupId"], again["groupId"]]
    # a cancel before its announcement, or of a group not announced here, takes back nothing
    assert [v.groupId for v in parse([canceled(a["groupId"]), a], "m.json").visits] == [a["groupId"]]
    assert [v.groupId for v in parse([b, canceled("2026-04-13T23:00:00.000")], "m.json").visits] == [b["groupId"]]


def test_a_bad_default_is_reported_once_where_it_is_written() -> None:
    """Review, stop 53: the top level's ``detectors`` and ``instrument`` are copied into each visit that does not set
    its own before checking, so `detectors: 0` was reported at `visits[0].detectors`, `visits[1].detectors`, …"""
    a = summit(start_tai=T0 + TAI_MINUS_UTC, snd_tai=T0 - 600, group="a")
    b = summit(start_tai=T0 + 40 + TAI_MINUS_UTC, snd_tai=T0 - 560, group="b")
    with pytest.raises(InputError) as refused:
        parse({"detectors": 0, "visits": [a, b, {**b, "groupId": "c", "detectors": -1}]}, "m.yaml")
    assert [p.where for p in refused.value.problems] == ["m.yaml: detectors", "m.yaml: visits[2].detectors"]


def test_a_yaml_boolean_is_no_number_in_a_schedule() -> None:
    """Review, stop 53: `duration: yes` was read as a 1-second visit (pydantic's lax mode), where the spec and the
    scenarios refuse a boolean for a number (``spec.models.refuse_bool_as_number``)."""
    a = summit(start_tai=T0 + TAI_MINUS_UTC, snd_tai=T0 - 600, group="a", duration=True, nimages=True)
    with pytest.raises(InputError) as refused:
        parse({"visits": [a], "complete_until": True}, "m.yaml")
    assert sorted(p.where for p in refused.value.problems) == [
        "m.yaml: complete_until", "m.yaml: visits[0].duration", "m.yaml: visits[0].nimages"]
    assert all("a boolean where a number is wanted" in p.what for p in refused.value.problems)


def test_errors_number_the_visits_as_sent_and_a_schedule_key_is_no_visit_field() -> None:
    """Review, stop 48: the cancel's filtering renumbered the visits, so the fourth entry's bad duration was reported
    as `visits[1]`; and an unknown top-level key was told to be "no field of a scheduled visit"."""
    a = summit(start_tai=T0 + TAI_MINUS_UTC, snd_tai=T0 - 600, group="2026-04-14T00:50:00.000")
    b = summit(start_tai=T0 + 40 + TAI_MINUS_UTC, snd_tai=T0 - 560, group="2026-04-14T00:50:40.000")
    bad = summit(start_tai=T0 + 80 + TAI_MINUS_UTC, snd_tai=T0 - 500, group="2026-04-14T00:51:40.000", duration=-5)
    with pytest.raises(InputError) as refused:
        parse([a, canceled(a["groupId"]), b, bad], "m.json")
    assert [p.where for p in refused.value.problems] == ["m.json: visits[3].duration"]
    # Review, stop 53: a groupId sent twice was numbered, in the message, among the visits the cancel left.
    again = {**bad, "duration": 34.0, "startTime": T0 + 120 + TAI_MINUS_UTC}
    with pytest.raises(InputError) as refused:
        parse([a, canceled(a["groupId"]), b, again, {**again, "duration": 68.0}], "m.json")
    [problem] = refused.value.problems
    assert problem.what.startswith(f"visits[4] has visits[3]'s groupId {again['groupId']!r} but a different duration")
    with pytest.raises(InputError) as refused:
        parse({"visits": [b], "complet_from": T0}, "m.yaml")
    [problem] = refused.value.problems
    assert (problem.where, problem.what) == ("m.yaml: complet_from", "is not a field of a schedule")
    assert "complete_from" in problem.fix
