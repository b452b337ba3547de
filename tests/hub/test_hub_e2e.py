"""End to end against a running JupyterHub (tests/hub/conftest.py): log in with an enclave token, see exactly
enclave's options, spawn; refusals carry enclave's message; departure, expiry and demotion reach the hub.

Expected options come from the spec and the vetting state the fixture sets up (examples/lsst-ldf.yaml: sizes small,
medium and large all within the bounds of 4 CPU / 8192 MiB, §13.2-13.3; of the two listed images only w_2018_25 is
approved by security, §10), never from the program's output.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from enclave.notebooks import webdav
from enclave.notebooks.profiles import LIFECYCLE_SERVICE, image_keys
from tests.api.conftest import CHROMIUM
from tests.hub.conftest import R16, W18, Hub, Session, options_in

pytestmark = pytest.mark.hub
OUTPUT = Path(__file__).resolve().parents[2] / "test-output" / "hub"
SIZES = ["small", "medium", "large"]  # examples/lsst-ldf.yaml notebooks.sizes, in the spec's order


def _logged_in(hub: Hub, user: str) -> Session:
    session = hub.session()
    response = session.login(user, hub.tokens[user])
    assert response.status_code == 302, (response.status_code, hub.log()[-3000:])
    return session


def _spawn(session: Session, user: str, size: str = "small") -> None:
    response = session.spawn_form({"profile": size, f"profile-option-{size}--image": image_keys([W18])[W18]})
    assert response.status_code == 302, response.text[-800:]
    session.wait_ready(user)


def _server_answers(session: Session, user: str) -> httpx.Response:
    """A request to the user's own server through the proxy (the hub's OAuth dance included)."""
    session.http.follow_redirects = True
    try:
        # A browser visit first: the single-user server sends it through the hub's OAuth and sets its cookie (an
        # API request without that cookie is refused rather than redirected).
        session.request("GET", f"/user/{user}/files/", headers={"Accept": "text/html"})
        return session.request("GET", f"/user/{user}/api/status")
    finally:
        session.http.follow_redirects = False


def _screenshot(hub: Hub, html: str, name: str, tmp: Path) -> Path:
    """The options page as the hub served it to the logged-in user, rendered by headless Chromium (the page's
    scripts and styles load from the hub: <base> points there)."""
    import subprocess

    OUTPUT.mkdir(parents=True, exist_ok=True)
    page = tmp / f"{name}.html"
    page.write_text(html.replace("<head>", f'<head><base href="{hub.url}/hub/spawn">', 1))
    path = OUTPUT / f"{name}.png"
    path.unlink(missing_ok=True)
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           "--disable-dev-shm-usage", f"--user-data-dir={tmp / 'chromium'}",
                           "--window-size=1200,1100", "--virtual-time-budget=3000", f"--screenshot={path}",
                           page.as_uri()], capture_output=True, text=True, timeout=90, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    return path


def test_active_user_sees_enclaves_options_and_spawns(hub: Hub, tmp_path: Path) -> None:
    alice = _logged_in(hub, "alice")
    page = alice.request("GET", "/hub/spawn")
    assert page.status_code == 200, page.text[-800:]
    sizes, images = options_in(page.text)
    assert sizes == SIZES
    vetted = image_keys([W18, R16])[W18]  # the key is per image, the same in every size
    assert images == {size: [vetted] for size in SIZES}
    assert R16 not in page.text  # listed in the spec, never vetted: not offered, not even shown
    _screenshot(hub, page.text, "options", tmp_path)

    _spawn(alice, "alice", "medium")
    status = _server_answers(alice, "alice")
    assert status.status_code == 200 and "started" in status.json(), status.text[:500]
    # The account's home is where the server runs (the hook's home mount, mapped to the host by the stand-in).
    home = Path(hub.factory.notebooks.lookup("alice").home_path)
    contents = alice.request("GET", "/user/alice/api/contents/")
    assert contents.status_code == 200, contents.text[:300]
    assert {c["name"] for c in contents.json()["content"]} >= {p.name for p in home.iterdir()
                                                               if not p.name.startswith(".")}
    stop = alice.request("DELETE", "/hub/api/users/alice/server")
    assert stop.status_code in (202, 204)


@pytest.mark.parametrize(("options", "message"), [
    ({"cpu": 16, "memory_mib": 4096}, "16 CPU is too big: a notebook may use at most 4"),
    ({"profile": "medium", "image": image_keys([W18, R16])[R16]}, f"image '{R16}' has not been vetted by security"),
])
def test_oversized_or_unvetted_choice_is_refused_with_enclaves_message(hub: Hub, options: dict[str, object],
                                                                        message: str) -> None:
    alice = _logged_in(hub, "alice")
    # The REST API never sees the form: the pre-spawn hook re-validates what is sent.
    response = alice.request("POST", "/hub/api/users/alice/server", json=options)
    assert response.status_code >= 400, response.text
    said = response.json()["message"]
    assert said.startswith("enclave refused this notebook: ") and message in said, said
    user = alice.request("GET", "/hub/api/users/alice").json()
    assert not user["servers"]


def test_departure_stops_the_server_and_refuses_the_next_request_and_login(hub: Hub) -> None:
    dave = _logged_in(hub, "dave")
    _spawn(dave, "dave")
    assert _server_answers(dave, "dave").status_code == 200
    # A second, named server (REST API, the same hook validates its options).
    named = dave.request("POST", "/hub/api/users/dave/servers/second",
                         json={"profile": "small", "image": image_keys([W18, R16])[W18]})
    assert named.status_code in (201, 202), named.text
    dave.wait_ready("dave", "second")
    hub_tokens = dave.request("GET", "/hub/api/users/dave/tokens").json()["api_tokens"]
    assert hub_tokens, "a running server holds an OAuth token for its user"

    view = hub.accounts.depart("root", "dave", reason="left the project")
    assert view.status == "departed"
    assert view.reach is not None
    hub_steps = {o.action: o for o in view.reach.outcomes if o.system == "jupyterhub"}
    assert hub_steps["stop servers"].status == "done" and hub_steps["stop servers"].count == 2, view.reach
    assert hub_steps["revoke tokens"].status == "done" and hub_steps["revoke tokens"].count >= 1, view.reach

    time.sleep(1.1)  # Authenticator.auth_refresh_age = 1 s: the hub asks enclave again on the next request
    home = dave.request("GET", "/hub/home")
    assert home.status_code == 302 and "/hub/login" in home.headers["location"], home.status_code
    # The same browser asking its server again ends on the hub's login page: no server answers, no session.
    direct = dave.request("GET", "/user/dave/api/status")
    assert direct.status_code != 200
    followed = _server_answers(dave, "dave")
    assert followed.url.path == "/hub/login", (followed.url, followed.status_code)
    again = hub.session().login("dave", hub.tokens["dave"])
    # 401: enclave's token check answers first (the account is departed; its tokens were revoked with it).
    assert again.status_code == 401 and "enclave refused this login" in again.text
    assert "account &#39;dave&#39; is departed" in again.text, again.text[-3000:]
    # The hub's side as its API shows it to the lifecycle service: no server, no token left.
    model = httpx.get(f"{hub.api}/users/dave", headers={"Authorization": f"token {hub_admin_token(hub)}"}).json()
    assert model["servers"] == {}
    listed = httpx.get(f"{hub.api}/users/dave/tokens",
                       headers={"Authorization": f"token {hub_admin_token(hub)}"}).json()["api_tokens"]
    assert listed == []


def hub_admin_token(hub: Hub) -> str:
    """The lifecycle service's token: what enclave itself sees of the hub."""
    return hub.admin.token


def test_expiry_refuses_login_while_webdav_still_reads(hub: Hub) -> None:
    carol = hub.factory.notebooks.lookup("carol")
    Path(carol.workspace_path, "result.csv").write_text("ra,dec\n")
    _logged_in(hub, "carol").close()

    view = hub.accounts.expire("root", "carol", reason="allocation ended")
    assert view.status == "expired"

    refused = hub.session().login("carol", hub.tokens["carol"])
    assert refused.status_code == 401 and "enclave refused this login" in refused.text
    assert "account &#39;carol&#39; is expired" in refused.text, refused.text[-3000:]
    authenticate = hub.factory.notebooks.authenticator()
    running = webdav.start(webdav.make_app(authenticate, anchor=Path(hub.spec.storage.home_root)))
    try:
        read = httpx.get(f"{running.url}/carol/result.csv", auth=("carol", hub.tokens["carol"]))
        assert read.status_code == 200 and read.text == "ra,dec\n"
    finally:
        running.stop()


def test_demotion_stops_the_staff_accounts_server(hub: Hub) -> None:
    erin = _logged_in(hub, "erin")
    _spawn(erin, "erin")
    view = hub.accounts.demote("root", "erin", new_username="erin-sci", reason="now a science user")
    assert view.username == "erin-sci" and view.reach is not None and view.reach.username == "erin"
    stopped = [o for o in view.reach.outcomes if o.action == "stop servers"]
    assert [(o.status, o.count) for o in stopped] == [("done", 1)], view.reach
    time.sleep(1.1)
    assert erin.request("GET", "/hub/home").status_code == 302


def test_the_lifecycle_service_holds_one_token_the_one_enclave_presents(hub: Hub) -> None:
    """Installed as documented (the values, and hub-token by --set-file: hub_config.py), the hub's database holds one
    API token for enclave-lifecycle — JupyterHub keeps every token it took from config (app.py _add_tokens, note
    "from config") — and it is the one enclave presents, though the file ends in a newline."""
    with sqlite3.connect(hub.dir / "jupyterhub.sqlite") as db:
        [(count,)] = db.execute("SELECT count(*) FROM api_tokens JOIN services ON api_tokens.service_id = services.id"
                                " WHERE services.name = ?", (LIFECYCLE_SERVICE,)).fetchall()
    assert count == 1
    assert hub.admin.client.get("/users/alice").status_code == 200
