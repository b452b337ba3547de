"""Twin runs through the API: a short run completes with the twin's metrics; names only, one at a time."""

from __future__ import annotations

import time

from tests.api.conftest import SCIENCE, World


def test_short_run_completes_with_metrics(world: World) -> None:
    headers = world.as_(SCIENCE)
    r = world.client.post("/api/v1/twin/runs", headers=headers,
                          json={"scenario": "one-night", "policy": "broker", "duration_hours": 1, "seed": 7})
    assert r.status_code == 202, r.text
    run_id = r.json()["id"]
    busy = world.client.post("/api/v1/twin/runs", headers=headers, json={"scenario": "one-night"})
    assert busy.status_code in (409, 202)  # 202 only if the first already finished
    deadline = time.monotonic() + 120
    while True:
        run = world.client.get(f"/api/v1/twin/runs/{run_id}", headers=headers).json()
        if run["status"] != "running" or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert run["status"] == "done", run
    assert run["metrics"]["policy"] == "broker" and run["metrics"]["simulated_hours"] == 1
    assert run["requested_by"] == SCIENCE and run["progress"] == 1.0


def test_scenarios_are_names_never_paths(world: World) -> None:
    headers = world.as_(SCIENCE)
    for bad in ("../../etc/passwd", "/etc/passwd", "One-Night", ""):
        r = world.client.post("/api/v1/twin/runs", headers=headers, json={"scenario": bad})
        assert r.status_code == 422, (bad, r.text)
    r = world.client.post("/api/v1/twin/runs", headers=headers, json={"scenario": "no-such-scenario"})
    assert r.status_code == 404 and "one-night" in r.json()["problems"][0]["fix"]
    r = world.client.post("/api/v1/twin/runs", headers=headers,
                          json={"scenario": "one-night", "duration_hours": 100})
    assert r.status_code == 422 and "longer than the scenario" in r.json()["message"]
    assert world.client.get("/api/v1/twin/runs/999", headers=headers).status_code == 404
