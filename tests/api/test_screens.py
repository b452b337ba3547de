"""Screenshots of every dashboard page by day and by night at the site, saved under test-output/api/ for people
to look at, with the facts an operator reads off them checked in the DOM: memory and dominant-resource figures,
the night shading, the objective line, the named clock.

The broker runner is stepped by hand here (not started), so the backend clock is exactly where each screenshot
needs it: a day at 14:00 UTC and the night of 2026-06-21, which at Cerro Pachon starts at evening twilight
(-12°) at 22:50 UTC (examples/scenarios/one-night.yaml).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from enclave.api.app import create_app
from enclave.api.server import ThreadedServer
from enclave.api.wiring import build_service
from enclave.broker.decide import current_night
from enclave.db import Database
from enclave.services.factory import Factory
from enclave.spec import EnclaveSpec
from tests.api.conftest import ADMIN, Browser, Live, World, with_sign_in_page
from tests.pg import copy_sqlite

PAGES = (("/", "overview"), ("/nodes", "nodes"), ("/notebooks", "notebooks"), ("/journal", "journal"))


@pytest.fixture(scope="module")
def still(tmp_path_factory: pytest.TempPathFactory, spec: EnclaveSpec,
          template_db: tuple[Path, dict[str, str]]) -> Iterator[Live]:
    path = tmp_path_factory.mktemp("still") / "enclave.db"
    copy_sqlite(template_db[0], path)
    db = Database(f"sqlite:///{path}")
    factory = Factory(spec, db)
    factory.ensure_accounts(ADMIN)
    service = build_service(factory, scenario="one-night", sim_seconds_per_cycle=600, wall_seconds_per_cycle=1)
    server = ThreadedServer(with_sign_in_page(create_app(service), dict(template_db[1]))).start()
    try:
        yield Live(World(spec=spec, db=db, service=service, client=TestClient(create_app(service)),
                         tokens=dict(template_db[1])), server)
    finally:
        server.stop()
        db.dispose()


def _step_until(live: Live, night: bool, at_least: int) -> float:
    runner = live.world.service.runner
    assert runner is not None
    spec = live.world.spec
    for i in range(200):
        now = runner.step().now
        n = current_night(spec, now)
        if i + 1 >= at_least and (n is not None and n.contains(now)) == night:
            return now
    raise AssertionError("the twin never reached the wanted time of day")


def _shoot(live: Live, browser: Browser, when: str) -> dict[str, str]:
    doms = {}
    for page, name in PAGES:
        url = live.login_url(page)
        path = browser.screenshot(url, f"dashboard-{name}-{when}", height=2000 if name == "overview" else 1300)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        doms[name] = browser.dom(url)
    return doms


def test_screenshots_by_day_and_by_night(still: Live, browser: Browser) -> None:
    _step_until(still, night=False, at_least=12)  # two simulated hours of history, still daylight
    day = _shoot(still, browser, "day")
    assert 'id="daylight">day<' in day["overview"]
    _step_until(still, night=True, at_least=30)  # on into the observing night
    for _ in range(12):  # two hours into it: visits processed, a p95 to draw
        still.world.service.runner.step()  # type: ignore[union-attr]
    night = _shoot(still, browser, "night")
    html = night["overview"]
    assert 'id="daylight">night<' in html
    # The clock every panel is on is named; the night is shaded; the prompt objective (60 s) is drawn.
    assert "twin clock (simulated), UTC" in html
    assert 'class="night"' in html and 'class="objective"' in html and "objective 60 s" in html
    assert "log scale" in html
    # Memory and the dominant-resource share sit beside cores for every pool.
    for pool in still.world.spec.pools:
        assert re.search(rf'data-dominant="{pool}"><b>(\d+%|—)</b>', html), pool
        assert re.search(rf'data-memory="{pool}">(\d+%|—)<', html), pool
    assert re.search(r'data-guarantee="prompt">(held|lent|short)<', html)
    assert "<rect data-node=" in night["nodes"]  # the heatmap
