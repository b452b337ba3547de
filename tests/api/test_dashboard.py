"""Dashboard pages: sign-in, content, live updates. Server-side checks through the app, then the real thing in
headless Chromium against a server on loopback with the broker driving the twin; screenshots are saved under
test-output/api/ (or $ENCLAVE_TEST_OUTPUT/api/)."""

from __future__ import annotations

import re

from httpx import Response

from enclave.spec import Role
from tests.api.conftest import ADMIN, SCIENCE, Browser, Live, World, role_user


def test_pages_redirect_to_login_without_a_token(world: World) -> None:
    for page in ("/", "/nodes", "/notebooks", "/journal"):
        r = world.client.get(page, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), page


SAME_SITE = {"Origin": "http://testserver"}
"""What a browser sends with the sign-in form it got from this server (TestClient's host is ``testserver``)."""


def _sign_in(world: World, token: str, target: str = "/", headers: dict[str, str] | None = None) -> Response:
    return world.client.post("/login", data={"token": token, "next": target}, follow_redirects=False,
                             headers=SAME_SITE if headers is None else headers)


def test_login_with_a_bad_token_says_why(world: World) -> None:
    r = _sign_in(world, "enc_nope")
    assert r.status_code == 401 and "malformed token" in r.text and "set-cookie" not in r.headers


def test_login_sets_an_httponly_cookie_and_refuses_open_redirects(world: World) -> None:
    token = world.tokens[ADMIN]
    for target, expected in (("/nodes", "/nodes"), ("//evil.example/x", "/"), ("https://evil.example", "/")):
        r = _sign_in(world, token, target)
        assert r.status_code == 303 and r.headers["location"] == expected
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")


def test_the_cookie_is_secure_except_over_http_to_loopback(world: World) -> None:
    """Audit finding 4: the cookie (the API token itself) went without Secure, so over plain http too. Only a
    server reached over http on a loopback address (``enclave serve``'s default 127.0.0.1, ``make demo``) sets it
    without: a browser would not send a Secure cookie back there."""
    token = world.tokens[ADMIN]
    for base, secure in (("http://testserver", True), ("https://enclave.example.org", True),
                         ("http://127.0.0.1:8000", False), ("http://localhost:8000", False),
                         ("http://[::1]:8000", False)):
        host = base.split("//", 1)[1]
        r = world.client.post(f"{base}/login", data={"token": token, "next": "/"}, follow_redirects=False,
                              headers={"Origin": base, "Host": host})
        assert r.status_code == 303, (base, r.text)
        assert ("; secure" in r.headers["set-cookie"].lower()) is secure, (base, r.headers["set-cookie"])


def test_the_login_form_posts_and_never_takes_a_token_from_the_url(world: World) -> None:
    """docs/api.md: "the form POSTs it; it is never printed inside a URL". A link with ?token= would sign a browser in
    as whoever made the link and leave the token in history and logs (audit finding 4)."""
    r = _sign_in(world, world.tokens[ADMIN], "/journal")
    assert r.status_code == 303 and r.headers["location"] == "/journal"
    r = world.client.get(f"/login?token={world.tokens[SCIENCE]}&next=/journal", follow_redirects=False)
    assert r.status_code == 400 and "set-cookie" not in r.headers and "never taken from a URL" in r.text
    form = world.client.get("/login?next=/journal").text
    assert '<form method="post" action="/login">' in form and 'value="/journal"' in form


def test_a_sign_in_form_from_another_site_is_refused(world: World) -> None:
    """Login CSRF (audit finding 4): a cross-site form POST signed the victim's browser in as the attacker. OWASP's
    CSRF Prevention Cheat Sheet: the Origin, else the Referer, must match the target; neither present: block."""
    token = world.tokens[SCIENCE]
    for headers in ({"Origin": "https://evil.example", "Referer": "https://evil.example/x"},
                    {"Origin": "null"}, {"Referer": "https://testserver.evil.example/login"}, {}):
        r = _sign_in(world, token, headers=headers)
        assert r.status_code == 403 and "set-cookie" not in r.headers, headers
    r = _sign_in(world, token, headers={"Referer": "http://testserver/login?next=/"})
    assert r.status_code == 303 and "enclave_token=" in r.headers["set-cookie"]


def test_sign_out_is_a_post_from_the_page(world: World) -> None:
    page = world.client.get("/", headers=world.as_(ADMIN)).text
    assert '<form method="post" action="/logout"' in page
    assert world.client.get("/logout", follow_redirects=False).status_code == 405  # no link signs anyone out
    assert world.client.post("/logout", headers={"Origin": "https://evil.example"},
                             follow_redirects=False).status_code == 403
    r = world.client.post("/logout", headers=SAME_SITE, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"
    assert r.headers["set-cookie"].startswith('enclave_token="";')


def test_cookie_does_not_authenticate_the_api(world: World) -> None:
    """The cookie is for read-only pages; the API wants the header, so a cross-site form cannot act."""
    world.client.cookies.set("enclave_token", world.tokens[ADMIN])
    r = world.client.post("/api/v1/accounts/victim/depart", json={"reason": "csrf"})
    assert r.status_code == 401
    world.client.cookies.clear()


def test_overview_shows_every_pool_and_the_journal(world: World) -> None:
    html = world.client.get("/", headers=world.as_(ADMIN)).text
    for pool in world.spec.pools:
        assert f'data-pool="{pool}"' in html
    assert "Capacity per pool" in html and "<svg" in html
    assert "tokens.issue" in html  # the journal section, newest entries


def test_journal_hidden_without_journal_read(world: World) -> None:
    html = world.client.get("/journal", headers=world.as_(SCIENCE)).text
    assert "do not include journal.read" in html and "accounts.bootstrap" not in html


def test_nodes_page_lists_nodes_and_what_they_run(world: World) -> None:
    html = world.client.get("/nodes", headers=world.as_(ADMIN)).text
    assert 'data-node="condor-001"' in html and 'data-node="kub-017"' in html
    assert re.search(r'data-node="condor-001".*?(prompt|drp|user|general) startd', html, re.S)


def test_fragment_requires_sign_in(world: World) -> None:
    assert world.client.get("/fragments/overview").status_code == 401
    assert world.client.get("/fragments/nope", headers=world.as_(ADMIN)).status_code == 404


def test_chromium_overview_updates_live(live: Live, browser: Browser) -> None:
    runner = live.world.service.runner
    assert runner is not None
    before = runner.cycles
    dom = browser.dom(live.login_url("/"), budget_ms=6000)
    assert "signed in as" in dom and ADMIN in dom
    for pool in live.world.spec.pools:
        assert f'data-pool="{pool}"' in dom
    # The polling script swapped in a fresh server-rendered body, and the broker had moved on by then.
    assert re.search(r'id="live"[^>]*data-updated="\d+"', dom), "the live update never ran"
    cycles = int(re.search(r'id="cycles">(\d+)<', dom).group(1))  # type: ignore[union-attr]
    assert cycles > before
    assert "<polyline" in dom  # the charts have data


def test_chromium_says_when_its_figures_stop_updating(live: Live, browser: Browser) -> None:
    """A refresh answered 401 (the sign-in lapsed) or not at all leaves the figures as they were: the page says so
    and how old they are, instead of showing them as current."""
    fresh = browser.dom(live.login_url("/"), budget_ms=4000)
    assert re.search(r'<div id="stale" role="alert" hidden="">', fresh), "a page that updates shows no banner"
    dom = browser.dom(live.login_url("/", signed_out_later=True), budget_ms=4000)
    banner = re.search(r'<div id="stale" role="alert">([^<]*)</div>', dom)
    assert banner is not None, "the banner never showed"
    assert re.fullmatch(r"Signed out: these figures stopped updating \d+ s ago\. Sign in again to see current ones\.",
                        banner.group(1)), banner.group(1)


def test_chromium_nodes_notebooks_journal(live: Live, browser: Browser) -> None:
    nodes = browser.dom(live.login_url("/nodes"))
    assert 'data-node="condor-040"' in nodes and 'data-node="kub-001"' in nodes
    notebooks = browser.dom(live.login_url("/notebooks"))
    assert "Sizes offered" in notebooks and "medium (default)" in notebooks
    assert 'id="accounts"' in notebooks  # the admin may list accounts
    journal = browser.dom(live.login_url("/journal"))
    assert "accounts.bootstrap" in journal and "tokens.issue" in journal


def test_chromium_sign_in_refused(live: Live, browser: Browser) -> None:
    dom = browser.dom(live.login_url("/", user="nobody"))
    assert 'id="login-error"' in dom and "unknown token" in dom


def test_chromium_screenshots(live: Live, browser: Browser) -> None:
    for page, name in (("/", "overview"), ("/nodes", "nodes"), ("/notebooks", "notebooks"),
                       ("/journal", "journal")):
        path = browser.screenshot(live.login_url(page), f"dashboard-{name}")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_notebooks_page_lists_accounts_only_for_account_managers(world: World) -> None:
    html = world.client.get("/notebooks", headers=world.as_(ADMIN)).text
    assert 'id="accounts"' in html and "victim" in html and "medium (default)" in html
    html = world.client.get("/notebooks", headers=world.as_(SCIENCE)).text
    assert 'id="accounts"' not in html and "needs accounts.manage" in html


def test_overview_shows_churn_per_night_from_the_journal(world: World) -> None:
    """Actions per night and evicted core-hours (issue 15 item 7), read from the broker's journal entries."""
    runner = world.service.runner
    assert runner is not None
    # A person's relabel (BCS 1/2) is a node move as much as the broker's: it counts, as journaled.
    condor = role_user(Role.HTCONDOR_ADMIN)
    for startd, pool in (("condor-001", "user"), ("condor-002", "general")):
        outcome = runner.manual(lambda b, s=startd, p=pool: b.move(condor, s, p, reason="churn test"))
        assert outcome.applied
    assert runner.actions_total == 2
    html = world.client.get("/", headers=world.as_(ADMIN)).text
    nights = runner.broker.churn(ADMIN).nights()
    assert 'id="churn"' in html and "Churn per night" in html
    for n in nights:
        assert f"<td class=\"l\">{n.night}</td><td>{n.actions}</td>" in html
    assert sum(n.actions for n in nights) == runner.actions_total
    hidden = world.client.get("/", headers=world.as_(SCIENCE)).text
    assert 'id="churn"' not in hidden and "do not include journal.read" in hidden
