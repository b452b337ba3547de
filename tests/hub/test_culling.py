"""The idle culler as the values render it (hub.services.idle-culler, with its least-scope role) stops an idle
server on a running hub. A spec with a 4-second idle timeout: jupyterhub-idle-culler stops a server whose last
activity is older than --timeout, looking every --cull-every seconds (here half the timeout, 2 s; README, "Usage")."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.hub.conftest import Hub, lsst_spec, running_hub
from tests.hub.test_hub_e2e import _logged_in, _spawn

pytestmark = pytest.mark.hub
IDLE = 4


@pytest.fixture(scope="module")
def culling_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    where = tmp_path_factory.mktemp("culling-hub")
    with running_hub(where, lsst_spec(where, idle_cull_seconds=IDLE, max_age_seconds=3600)) as running:
        yield running


def test_an_idle_server_is_culled(culling_hub: Hub) -> None:
    alice = _logged_in(culling_hub, "alice")
    _spawn(alice, "alice")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not alice.request("GET", "/hub/api/users/alice").json()["servers"]:
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"the idle server was not culled:\n{culling_hub.log()[-3000:]}")
    log = culling_hub.log()
    # Stopped by the culler (as the idle-culler service, with only its role's scopes), not by anyone else.
    assert "DELETE /hub/api/users/alice/server (idle-culler@127.0.0.1)" in log, log[-3000:]
