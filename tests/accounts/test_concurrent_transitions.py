"""Two transitions of one person's accounts at once, on both back ends (review, stop 48).

docs/accounts.md ("Identity"): one active account per person, since roles belong to the person. The check and the
write of a transition must not interleave with another's: on PostgreSQL (READ COMMITTED) a renew and an onboard of
the same person could both pass the check and both commit, leaving a science account acting with the person's staff
roles. Here the renew pauses right after its check until the onboard has had every chance to run: the onboard must
wait for the renew's transaction (the journal's head lock, ``lifecycle._exclusive``), then see its result and be
refused."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from enclave.accounts import lifecycle, storage
from enclave.accounts.types import AccountKind, AccountStatus
from enclave.errors import Conflict
from enclave.spec import Role, load
from enclave.spec.defaults import EXAMPLES
from tests.pg import database, postgres_server  # noqa: F401

SPEC = load(EXAMPLES / "lsst-ldf.yaml")


def test_a_renew_and_an_onboard_of_one_person_leave_one_active_account(database: Any,  # noqa: F811
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    db = database
    with db.session() as s:
        lifecycle.bootstrap(s, SPEC, "root", name="Root", email="root@example.org")
        lifecycle.onboard(s, "root", SPEC, "carol", name="Carol", email="carol@example.org",
                          kind=AccountKind.SCIENCE, reason="P-1", allocation=lifecycle.Allocation("P-1"))
        lifecycle.expire(s, "root", "carol", reason="allocation ended")
    checked, go_on = threading.Event(), threading.Event()
    real = lifecycle._one_active_per_person

    def check_then_pause(account: Any, doing: str) -> None:
        real(account, doing)
        checked.set()
        go_on.wait(timeout=10)

    monkeypatch.setattr(lifecycle, "_one_active_per_person", check_then_pause)
    failures: list[BaseException] = []

    def renew() -> None:
        with db.session() as s:
            lifecycle.renew(s, "root", "carol", lifecycle.Allocation("P-9", expires=datetime.now(UTC)
                                                                     + timedelta(days=90)), reason="P-9", spec=SPEC)

    def onboard() -> None:
        try:
            with db.session() as s:
                lifecycle.onboard(s, "root", SPEC, "carol-staff", name="Carol", email="carol@example.org",
                                  kind=AccountKind.STAFF, reason="hired", roles=[Role.DEVELOPER, Role.SYSADMIN])
        except BaseException as exc:  # noqa: BLE001 - the refusal is the expected outcome, checked below
            failures.append(exc)

    first = threading.Thread(target=renew)
    first.start()
    assert checked.wait(timeout=10)
    second = threading.Thread(target=onboard)
    second.start()
    second.join(timeout=1.0)  # unserialized, the onboard commits meanwhile; serialized, it waits for the renew
    go_on.set()
    first.join(timeout=30)
    second.join(timeout=30)
    with db.session() as s:
        person = storage.person_by_email(s, "carol@example.org")
        assert person is not None
        active = [a.username for a in person.accounts if a.status == AccountStatus.ACTIVE]
    assert active == ["carol"]
    assert len(failures) == 1 and isinstance(failures[0], Conflict) and "already has the active account" in str(
        failures[0])
