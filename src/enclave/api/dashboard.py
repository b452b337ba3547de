"""Server-rendered dashboard pages (jinja2, no build step).

Each page is a template body rendered from the service's history, broker runner and database. The same body
is served alone under ``/fragments/<page>``; a few lines of inline JavaScript re-fetch it every couple of
seconds, so the page updates live while the broker runs, with a single rendering code path.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from enclave.access.permissions import Permission
from enclave.accounts.types import AccountStatus
from enclave.api.auth import COOKIE, Principal, verify_token
from enclave.api.charts import line_chart
from enclave.api.service import Service, get_service
from enclave.errors import EnclaveError, Unauthenticated
from enclave.spec.summary import notebook_users, pool_capacity

TEMPLATES = Path(__file__).parent / "templates"
env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))

PAGES: dict[str, tuple[str, str]] = {
    "overview": ("/", "Overview"),
    "nodes": ("/nodes", "Nodes"),
    "notebooks": ("/notebooks", "Notebooks"),
    "journal": ("/journal", "Journal"),
}
NAV = [(href, label) for href, label in PAGES.values()]
REFRESH_MS = 2000

router = APIRouter(include_in_schema=False)


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M UTC")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def overview(service: Service, principal: Principal) -> dict[str, Any]:
    snap = service.history.latest()
    runner = service.runner
    limits = {p.name: p for p in pool_capacity(service.spec)}
    pools = []
    for name in service.spec.pools:
        view = snap.pools.get(name) if snap else None
        pools.append({
            "name": name, "capacity_cores": view.capacity_cores if view else 0,
            "busy_cores": view.busy_cores if view else 0, "startds": view.startds if view else 0,
            "idle_jobs": view.idle_jobs if view else 0, "idle_cores": view.idle_cores if view else 0,
            "running_jobs": view.running_jobs if view else 0,
            "oldest_idle": duration(view.oldest_idle_seconds) if view else "—",
            "guaranteed": limits[name].guaranteed_cores, "max": limits[name].max_cores,
        })
    series = service.history.series()
    ok = snap.prompt_within_objective if snap else None
    return {
        "clock": clock(snap.now if snap else None),
        "backend": runner.backend_name if runner else "none",
        "cycles": runner.cycles if runner else 0,
        "actions_total": runner.actions_total if runner else 0,
        "runner_error": runner.last_error if runner else None,
        "prompt_p95": duration(snap.prompt_latency_p95) if snap else "—",
        "prompt_ok": f"{ok:.1%}" if ok is not None else "—",
        "pools": pools,
        "capacity_chart": line_chart("Capacity per pool (cores)", series["t"], series["capacity"]),
        "queue_chart": line_chart("Queue depth (idle jobs)", series["t"], series["idle_jobs"]),
        "latency_chart": line_chart("Prompt: oldest waiting job and p95 visit latency (s)", series["t"],
                                    {"oldest idle": series["oldest_idle"].get("prompt", []),
                                     "p95 latency": series["prompt_p95"]}),
        "recent_actions": [{"when": clock(a.at), "kind": a.kind, "target": a.target, "reason": a.reason}
                           for a in list(runner.recent)[:15]] if runner else [],
        **journal_context(service, principal, 10),
    }


def journal_context(service: Service, principal: Principal, limit: int) -> dict[str, Any]:
    if not principal.allows(Permission.JOURNAL_READ):
        return {"journal": [], "journal_note": "Your roles (or this token's scopes) do not include journal.read.",
                "journal_status": "not shown"}
    rows = [e.__dict__ for e in service.factory.journal.entries(principal.username, limit=limit)]
    return {"journal": rows, "journal_note": None, "journal_status": "newest first"}


def nodes(service: Service, principal: Principal) -> dict[str, Any]:
    snap = service.history.latest()
    return {"nodes": list(snap.nodes) if snap else [], "node_states": snap.node_states if snap else {}}


def notebooks(service: Service, principal: Principal) -> dict[str, Any]:
    snap = service.history.latest()
    spec = service.spec
    fits = notebook_users(spec)
    sizes = [{"name": n, "default": n == spec.notebooks.default_size, "cpu": f"{s.cpu_request:g}/{s.cpu_limit:g}",
              "mem": f"{s.memory_request_mib}/{s.memory_limit_mib}", "fit": fits[n], "description": s.description}
             for n, s in spec.notebooks.sizes.items()]
    if principal.allows(Permission.ACCOUNTS_MANAGE):
        rows = service.factory.accounts.list_accounts(principal.username, status=AccountStatus.ACTIVE)[:500]
        listed = [{"username": a.username, "kind": a.kind.value, "status": a.status.value,
                   "roles": ", ".join(a.roles), "workspace": a.workspace} for a in rows]
        note = None
    else:
        listed, note = [], "Listing accounts needs accounts.manage."
    return {
        "notebook_running": snap.notebook_users if snap and snap.notebook_users is not None else "—",
        "notebook_pending": f"{snap.notebook_pending_cores:g}" if snap else "—",
        "sizes": sizes, "accounts": listed, "accounts_note": note,
    }


def journal(service: Service, principal: Principal) -> dict[str, Any]:
    return journal_context(service, principal, 100)


BUILDERS = {"overview": overview, "nodes": nodes, "notebooks": notebooks, "journal": journal}


def _principal(request: Request, service: Service) -> Principal | None:
    token = request.cookies.get(COOKIE)
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        token = header[7:].strip()
    if not token:
        return None
    try:
        return verify_token(service, token)
    except Unauthenticated:
        return None


def _render(service: Service, principal: Principal, page: str, *, fragment: bool) -> str:
    href, label = PAGES[page]
    context = BUILDERS[page](service, principal)
    template = env.get_template(f"{page}.html" if fragment else "page.html")
    return template.render(title=service.title, page_title=label, nav=NAV, here=href, principal=principal,
                           fragment_url=f"/fragments/{page}", refresh_ms=REFRESH_MS, body_template=f"{page}.html",
                           **context)


def _page(page: str) -> Any:
    def handler(request: Request, service: Service = Depends(get_service)) -> Response:  # noqa: B008
        principal = _principal(request, service)
        if principal is None:
            return RedirectResponse(f"/login?next={quote(PAGES[page][0])}", status_code=303)
        return HTMLResponse(_render(service, principal, page, fragment=False))

    handler.__name__ = f"page_{page}"
    return handler


for _name, (_href, _label) in PAGES.items():
    router.add_api_route(_href, _page(_name), methods=["GET"], response_class=HTMLResponse)


@router.get("/fragments/{page}", response_class=HTMLResponse)
def fragment(page: str, request: Request, service: Service = Depends(get_service)) -> Response:  # noqa: B008
    principal = _principal(request, service)
    if principal is None:
        return HTMLResponse("<p>Signed out: <a href='/login'>sign in again</a>.</p>", status_code=401)
    if page not in PAGES:
        return HTMLResponse("<p>No such page.</p>", status_code=404)
    return HTMLResponse(_render(service, principal, page, fragment=True))


def _safe_next(target: str) -> str:
    # Only same-site paths: "/x" but never "//evil.example" or "https://…" (an open redirect).
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


def _login_result(service: Service, token: str, target: str) -> Response:
    try:
        verify_token(service, token)
    except EnclaveError as error:
        return HTMLResponse(env.get_template("login.html").render(title=service.title, next=target,
                                                                  error=str(error)), status_code=401)
    response = RedirectResponse(_safe_next(target), status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/")
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, token: str | None = None, next: str = "/",  # noqa: A002
               service: Service = Depends(get_service)) -> Response:  # noqa: B008
    if token:
        return _login_result(service, token, next)
    return HTMLResponse(env.get_template("login.html").render(title=service.title, next=_safe_next(next),
                                                              error=None))


@router.post("/login", response_class=HTMLResponse)
async def login_post(request: Request, service: Service = Depends(get_service)) -> Response:  # noqa: B008
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    token = (form.get("token") or [""])[0]
    target = (form.get("next") or ["/"])[0]
    return await run_in_threadpool(_login_result, service, token, target)


@router.get("/logout")
def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response
