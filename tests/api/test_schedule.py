"""`POST|GET /broker/schedule`: the same ScheduleService call the CLI makes, role-checked, journaled, and a
malformed body refused with the field named (docs/broker.md, "Observing schedule")."""

from __future__ import annotations

import time

from enclave.spec import Role
from tests.api.conftest import ADMIN, World, role_user

SOON_TAI = time.time() + 600 + 37.0
"""A visit's startTime (TAI Unix seconds) ten minutes from now: a push is refused outside now − 1 day … + 7 days."""

CONDOR = role_user(Role.HTCONDOR_ADMIN)
VISIT = {"groupId": "2026-04-14T01:00:00", "startTime": SOON_TAI, "duration": 33.0, "nimages": 1,
         "instrument": "LSSTCam", "detectors": 189, "salIndex": 1, "private_sndStamp": SOON_TAI - 40}


def test_push_then_show_and_the_refusals(world: World) -> None:
    c = world.client
    assert c.get("/api/v1/broker/schedule", headers=world.as_(ADMIN)).json() is None
    body = {"schedule": {"visits": [VISIT], "source": "api test"}, "reason": "tonight's plan"}
    r = c.post("/api/v1/broker/schedule", json=body, headers=world.as_(CONDOR))
    assert r.status_code == 201, r.text
    pushed = r.json()
    assert pushed["journal_seq"] and pushed["pushed_by"] == CONDOR
    # next_visit's other fields (salIndex) are accepted and dropped; private_sndStamp is kept (the start when
    # startTime is 0).
    assert pushed["schedule"]["visits"][0] == {k: VISIT[k] for k in ("groupId", "startTime", "duration", "nimages",
                                                                       "instrument", "detectors", "private_sndStamp")}
    shown = c.get("/api/v1/broker/schedule", headers=world.as_(ADMIN)).json()  # a sysadmin reads the journal
    assert shown["digest"] == pushed["digest"] and shown["schedule"] == pushed["schedule"]
    # The broker's plan on this server now reads it.
    assert any(n.startswith("observing schedule (1 visits, api test)")
               for n in c.get("/api/v1/broker/plan", headers=world.as_(ADMIN)).json()["notes"])
    refused = c.post("/api/v1/broker/schedule", json=body, headers=world.as_(role_user(Role.K8S_SERVICE_ADMIN)))
    assert refused.status_code == 403 and "htcondor-admin" in refused.text
    bad = {"schedule": {"visits": [{**VISIT, "duration": -1}]}, "reason": "x"}
    r = c.post("/api/v1/broker/schedule", json=bad, headers=world.as_(CONDOR))
    assert r.status_code == 422 and "duration" in r.text
    assert c.get("/api/v1/broker/schedule", headers=world.as_(ADMIN)).json()["digest"] == pushed["digest"]
