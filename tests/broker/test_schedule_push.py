"""The observing schedule's round trip: the service stores and journals a push (HTCondor administrators), the
broker loop reads it, the CLI pushes a file and shows it; refusals change nothing (docs/broker.md, "Observing
schedule")."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from enclave.broker.layout import initial_state
from enclave.cli import app, report
from enclave.clock import stamp
from enclave.db import Database
from enclave.domain.schedule import HORIZON_AHEAD_S, TAI_MINUS_UTC_S, ObservingSchedule, Visit, parse
from enclave.errors import EnclaveError, InputError, PermissionDenied
from enclave.journal import query
from enclave.services.broker import BrokerService
from enclave.services.schedule import ScheduleService
from tests.broker.conftest import CONDOR_ADMIN, K8S_ADMIN, MemoryBackend, make_spec
from tests.broker.test_schedule import T0
from tests.local import map_me

PUSHED_AT = datetime.fromtimestamp(T0 - 3600, UTC)  # an hour before tonight's first visit


def service(db: Database) -> ScheduleService:
    """The schedule service on a clock stopped at ``PUSHED_AT`` (pushes are refused outside a horizon around now)."""
    return ScheduleService(db, clock=lambda: PUSHED_AT)


NIGHT = ObservingSchedule(visits=tuple(
    Visit(groupId=f"2026-04-14T01:{i:02d}", startTime=T0 + 36 * i + TAI_MINUS_UTC_S, duration=33.0,
          instrument="LSSTCam") for i in range(3)), source="tonight.yaml")


def schedule_entries(db: Database) -> list[object]:
    with db.session() as s:
        return list(query(s, action="broker.schedule"))


def test_push_is_stored_journaled_and_read_by_the_broker_loop(db: Database) -> None:
    schedules = service(db)
    assert schedules.show(K8S_ADMIN) is None and schedules.current() is None
    done = schedules.push(CONDOR_ADMIN, NIGHT, reason="tonight's plan")
    assert done.journal_seq is not None and done.digest.startswith("sha256:")
    # Not said from when it is complete: from the push on.
    assert done.schedule.complete_from == done.pushed_at.timestamp()
    shown = schedules.show(K8S_ADMIN)  # journal.read: every staff role but developer
    assert shown is not None and shown.schedule == done.schedule and shown.pushed_by == CONDOR_ADMIN
    [entry] = schedule_entries(db)
    assert entry.after["digest"] == done.digest and entry.after["visits"] == 3 and entry.before is None  # type: ignore[attr-defined]
    # The broker loop attaches it to an observation that carries no schedule of its own.
    spec = make_spec()
    broker = BrokerService(spec, db, MemoryBackend(initial_state(spec, T0)), "memory", schedule=schedules.current)
    decided, observed = broker.plan()
    assert observed.schedule == done.schedule
    assert any(note.startswith("observing schedule (3 visits, tonight.yaml)") for note in decided.notes)


def test_push_without_the_role_is_refused_and_leaves_nothing(db: Database) -> None:
    with pytest.raises(PermissionDenied) as refused:
        service(db).push(K8S_ADMIN, NIGHT, reason="not mine to push")
    assert "batch.relabel" in str(refused.value) and "htcondor-admin" in str(refused.value)
    assert service(db).current() is None and schedule_entries(db) == []


def test_a_schedule_that_ends_before_the_push_is_refused_with_the_fix_and_leaves_nothing(db: Database) -> None:
    # Not said from when it is complete: from the push on; complete_until already past cannot follow it.
    past = NIGHT.model_copy(update={"complete_until": 1_000_000.0})
    with pytest.raises(InputError) as refused:
        service(db).push(CONDOR_ADMIN, past, reason="yesterday's plan")
    assert "complete_until" in str(refused.value) and "complete_from" in str(refused.value)
    assert service(db).current() is None and schedule_entries(db) == []


def test_a_schedule_read_out_before_the_push_is_refused_without_a_complete_until(db: Database) -> None:
    # Complete up to its latest readout, T0 + 2·36 + 33 s, while the push is an hour after T0 (review, stop 48:
    # stored, it replaced the schedule in force with one covering nothing, and the broker fell back to twilight).
    late = ScheduleService(db, clock=lambda: datetime.fromtimestamp(T0 + 3600, UTC))
    with pytest.raises(InputError) as refused:
        late.push(CONDOR_ADMIN, NIGHT, reason="last night's plan, late")
    assert f"complete only up to {stamp(T0 + 72 + 33)}" in str(refused.value)
    assert "visits: []" in str(refused.value)  # the way to hand the pre-warm back
    assert late.current() is None and schedule_entries(db) == []
    # The empty schedule is that hand-back: accepted whatever its span.
    assert late.push(CONDOR_ADMIN, ObservingSchedule(visits=()), reason="clouded out").schedule.visits == ()


def test_pushes_are_not_broker_moves_in_the_churn(db: Database) -> None:
    schedules = service(db)
    schedules.push(CONDOR_ADMIN, NIGHT, reason="tonight's plan")
    schedules.push(CONDOR_ADMIN, NIGHT, reason="again")
    broker = BrokerService(make_spec(), db, MemoryBackend(initial_state(make_spec(), T0)), "memory")
    assert broker.churn(K8S_ADMIN).nights() == []


def enclave(*args: str) -> tuple[int, str]:
    try:
        r = CliRunner().invoke(app, list(args), catch_exceptions=False)
        return r.exit_code, r.output
    except EnclaveError as err:
        return report(err), str(err)


def test_cli_push_and_show_and_their_refusals(db: Database, tmp_path: Path) -> None:
    map_me(db, CONDOR_ADMIN, K8S_ADMIN)
    good = tmp_path / "tonight.yaml"
    first = time.time() + 600 + TAI_MINUS_UTC_S  # the CLI pushes on the real clock: ten minutes from now
    good.write_text("instrument: LSSTCam\ndetectors: 189\nvisits:\n"
                    + "".join(f"  - {{groupId: v{i}, startTime: {first + 36 * i}, duration: 33}}\n"
                              for i in range(2)))
    code, out = enclave("broker", "schedule", "push", str(good), "--as", CONDOR_ADMIN, "--reason", "tonight",
                        "--db", db.url)
    assert code == 0, out
    assert "2 visits" in out and "journal entry" in out
    code, out = enclave("broker", "schedule", "show", "--as", K8S_ADMIN, "--db", db.url, "-o", "json")
    assert code == 0, out
    data = json.loads(out)
    assert [v["groupId"] for v in data["schedule"]["visits"]] == ["v0", "v1"]
    assert data["schedule"]["visits"][0]["instrument"] == "LSSTCam" and data["pushed_by"] == CONDOR_ADMIN
    # A bad file: named with its field, non-zero exit, nothing stored.
    bad = tmp_path / "bad.yaml"
    bad.write_text("visits:\n  - {groupId: v0, startTime: 10, duration: -1}\n")
    code, out = enclave("broker", "schedule", "push", str(bad), "--as", CONDOR_ADMIN, "--reason", "x", "--db", db.url)
    assert code != 0 and f"{bad}: visits[0].duration" in out
    code, out = enclave("broker", "schedule", "push", str(tmp_path / "missing.yaml"), "--as", CONDOR_ADMIN,
                        "--reason", "x", "--db", db.url)
    assert code != 0 and "cannot read" in out
    # The wrong role: refused (exit 4, as every permission refusal), nothing stored.
    code, out = enclave("broker", "schedule", "push", str(good), "--as", K8S_ADMIN, "--reason", "x", "--db", db.url)
    assert code == 4 and "htcondor-admin" in out
    assert len(schedule_entries(db)) == 1


def test_a_start_time_in_milliseconds_is_refused_by_name_and_stores_nothing(db: Database) -> None:
    # Kafka's own timestamps are milliseconds; next_visit's startTime is seconds (ts_xml a724e1ac
    # ScriptQueue_Events.xml nextVisit.startTime, <Units>second</Units>). A thousandfold value is the year ~58,000.
    slip = parse([{"groupId": "v0", "startTime": (T0 + TAI_MINUS_UTC_S) * 1000, "duration": 33.0}], "ms.json")
    with pytest.raises(InputError) as refused:
        service(db).push(CONDOR_ADMIN, slip, reason="a unit slip")
    assert "visits[groupId='v0'].startTime" in str(refused.value) and "milliseconds" in str(refused.value)
    assert service(db).current() is None and schedule_entries(db) == []
    # The horizon's edge: 7 days ahead is taken, a second more is not.
    edge = PUSHED_AT.timestamp() + HORIZON_AHEAD_S
    service(db).push(CONDOR_ADMIN, ObservingSchedule(complete_until=edge), reason="a week ahead")
    with pytest.raises(InputError) as refused:
        service(db).push(CONDOR_ADMIN, ObservingSchedule(complete_until=edge + 1), reason="too far")
    assert "observing schedule: complete_until" in str(refused.value) and len(schedule_entries(db)) == 1


def test_a_visit_out_of_the_horizon_is_named_by_its_group_id_not_its_place_once_sorted(db: Database) -> None:
    """Review, stop 53: visits are sorted by start when read, so the horizon check named a file's first entry,
    sent out of order, `visits[1]`. Its groupId names it in the file and in an API request alike."""
    slip = parse([{"groupId": "ms-slip", "startTime": (T0 + 3600 + TAI_MINUS_UTC_S) * 1000, "duration": 33.0},
                  {"groupId": "fine", "startTime": T0 + 3600 + TAI_MINUS_UTC_S, "duration": 33.0}], "two.json")
    assert [v.groupId for v in slip.visits] == ["fine", "ms-slip"]  # the slip starts later, so it is second
    with pytest.raises(InputError) as refused:
        service(db).push(CONDOR_ADMIN, slip, reason="a unit slip")
    assert [p.where for p in refused.value.problems] == ["observing schedule: visits[groupId='ms-slip'].startTime"]
    assert schedule_entries(db) == []


def test_cli_refuses_a_millisecond_start_time_and_nothing_it_shows_can_crash(db: Database, tmp_path: Path) -> None:
    map_me(db, CONDOR_ADMIN, K8S_ADMIN)
    ms = tmp_path / "ms.json"
    ms.write_text(json.dumps([{"groupId": "v0", "startTime": (time.time() + 600 + TAI_MINUS_UTC_S) * 1000,
                               "duration": 33.0}]))
    code, out = enclave("broker", "schedule", "push", str(ms), "--as", CONDOR_ADMIN, "--reason", "x", "--db", db.url)
    assert code != 0 and "visits[groupId='v0'].startTime" in out and "outside the horizon" in out
    assert schedule_entries(db) == []
    code, out = enclave("broker", "schedule", "show", "--as", K8S_ADMIN, "--db", db.url)
    assert code == 0 and "no observing schedule was pushed" in out
    # Printing a time never fails, even one no calendar holds (what `show` printed before the horizon existed).
    assert stamp(1.8e12) == "1.8e+12 s since 1970 (no calendar date)"


def test_visits_of_another_instrument_or_none_are_dropped_and_counted_and_twilight_decides(db: Database) -> None:
    # AuxTel's queue (salIndex 2, ts_xml a724e1ac enums/ScriptQueue.py SalIndex.AUX_TEL) announces LATISS visits;
    # a script taking no images leaves instrument blank, which the fan-out drops as "not an observation"
    # (next_visit_fan_out 4add312 src/main.py ~179-181). Neither brings LSSTCam's detector jobs.
    latiss = Visit(groupId="aux", startTime=T0 + TAI_MINUS_UTC_S, duration=30.0, instrument="LATISS")
    blank = Visit(groupId="cal", startTime=T0 + 60 + TAI_MINUS_UTC_S, duration=300.0, nimages=0, instrument="")
    done = service(db).push(CONDOR_ADMIN, ObservingSchedule(visits=(latiss, blank)), reason="auxtel night")
    assert done.dropped == {"LATISS": 1, "": 1} and done.schedule.visits == ()
    [entry] = schedule_entries(db)
    assert entry.after["dropped"] == {"LATISS": 1, "": 1} and entry.after["visits"] == 0  # type: ignore[attr-defined]
    spec = make_spec()
    broker = BrokerService(spec, db, MemoryBackend(initial_state(spec, T0)), "memory",
                           schedule=service(db).current)
    decided, _ = broker.plan()
    assert any("observing schedule (0 visits" in note for note in decided.notes)
    alone = BrokerService(spec, db, MemoryBackend(initial_state(spec, T0)), "memory")
    assert decided.pools["prompt"].prewarm == alone.plan()[0].pools["prompt"].prewarm  # twilight's verdict
    # The pool's instrument comes from the spec (broker.prewarm_instrument).
    aux = ScheduleService(db, clock=lambda: PUSHED_AT, instrument="LATISS")
    assert aux.push(CONDOR_ADMIN, ObservingSchedule(visits=(latiss, blank)), reason="x").dropped == {"": 1}
