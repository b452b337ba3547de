"""The API docs page renders with no internet (issue 18, "Offline docs").

Swagger UI and ReDoc come from the assets of the fastapi-offline wheel, served by enclave itself. Chromium runs
with every host name but the loopback address unresolvable and every other connection sent to a dead proxy
(Chromium switches --host-resolver-rules and --proxy-server:
https://www.chromium.org/developers/design-documents/network-stack/socks-proxy/ and
https://chromium.googlesource.com/chromium/src/+/HEAD/net/docs/proxy.md), so a page that reached for a CDN
would stay blank.
"""

from __future__ import annotations

import re

from .conftest import Browser, Live

OFFLINE = ("--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
           "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=127.0.0.1")


def _offline_dom(browser: Browser, url: str) -> str:
    return browser._run(url, "--dump-dom", *OFFLINE, budget_ms=8000)


def test_docs_pages_load_nothing_from_outside(live: Live) -> None:
    for page in ("/api/v1/docs", "/api/v1/redoc"):
        html = live.world.client.get(page).text
        external = [u for u in re.findall(r'(?:src|href)="([^"]+)"', html) if "://" in u]
        assert not external, f"{page} loads {external}"
        assert "/api/v1/docs-assets/" in html


def test_swagger_ui_renders_without_network(live: Live, browser: Browser) -> None:
    dom = _offline_dom(browser, f"{live.server.url}/api/v1/docs")
    # Swagger UI draws one "opblock" per operation once it has fetched and parsed openapi.json.
    assert 'class="swagger-ui"' in dom and "opblock" in dom, dom[-3000:]
    spec = live.world.client.get("/api/v1/openapi.json").json()
    some_path = sorted(spec["paths"])[0]
    assert some_path in dom


def test_redoc_renders_without_network(live: Live, browser: Browser) -> None:
    dom = _offline_dom(browser, f"{live.server.url}/api/v1/redoc")
    spec = live.world.client.get("/api/v1/openapi.json").json()
    assert spec["info"]["title"] in dom and "api-content" in dom, dom[-3000:]
