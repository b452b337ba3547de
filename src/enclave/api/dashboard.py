"""Server-rendered dashboard pages (jinja2, no build step).

Each page is a template body rendered from the service's history, broker runner and database. The same body
is served alone under ``/fragments/<page>``; a few lines of inline JavaScript re-fetch it every couple of
seconds, so the page updates live while the broker runs, with a single rendering code path.
"""

from __future__ import annotations

import ipaddress
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from enclave.access.permissions import Permission
from enclave.accounts.types import AccountStatus
from enclave.api.auth import COOKIE, Principal, verify_token
from enclave.api.service import Service, get_service
from enclave.api.snapshot import PoolView
from enclave.charts import Span, heatmap, line_chart
from enclave.clock import utcnow
from enclave.domain.night import night_at
from enclave.errors import EnclaveError, Unauthenticated
from enclave.spec.models import EnclaveSpec
from enclave.spec.summary import notebook_users, pool_capacity

TEMPLATES = Path(__file__).parent / "templates"
env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]))


def _iso(value: Any) -> str:
    """Any time the templates show, as ISO 8601 UTC: datetimes from the database, floats from a backend clock."""
    if isinstance(value, datetime):  # SQLite hands back naive datetimes; the journal stores UTC
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    if isinstance(value, str):
        try:
            return _iso(datetime.fromisoformat(value))
        except ValueError:
            return value
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return str(value)


env.filters["iso"] = _iso

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
    """ISO 8601 in UTC to the minute: one format for every time the dashboard shows."""
    if seconds is None:
        return "—"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%MZ")


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def percent(share: float | None) -> str:
    return "—" if share is None else f"{share:.0%}"


def gib(mib: int) -> str:
    return f"{mib / 1024:,.0f}"


def clock_name(service: Service) -> str:
    """Which clock a panel's times are on: the twin's simulated one or the wall clock of a live backend."""
    runner = service.runner
    return "twin clock (simulated), UTC" if runner is not None and runner.simulate else "wall clock, UTC"


def nights(spec: EnclaveSpec, t0: float, t1: float) -> list[Span]:
    """Observing nights overlapping [t0, t1] at the spec's site (sun below the broker's twilight altitude,
    domain/night.py); none without a site."""
    site = spec.cluster.site
    out: list[Span] = []
    t = t0 - 86400.0  # the night in progress at t0 started up to a day before
    while site is not None and t < t1:
        n = night_at(site, t, spec.broker.twilight_altitude_deg)
        if n is None or n.start >= t1:
            break
        if n.end > t0:
            start = datetime.fromtimestamp(n.start, UTC).strftime("%H:%MZ")
            end = datetime.fromtimestamp(n.end, UTC).strftime("%H:%MZ")
            out.append(Span(n.start, n.end, f"night {start}–{end} (sun below {spec.broker.twilight_altitude_deg:g}°)"))
        t = n.end + 1.0
    return out


def p95(values: list[float]) -> float | None:
    """The nearest-rank 95th percentile (as the twin's running figure, api/wiring.py)."""
    if not values:
        return None
    done = sorted(values)
    return done[min(len(done) - 1, math.ceil(0.95 * len(done)) - 1)]


def per_night_p95(t: list[float], latencies: list[tuple[float, ...]], spans: list[Span]) -> list[float | None]:
    """The p95 of the visits completed so far in the current night, reset at each evening twilight; visits
    finishing after morning twilight still count for the night that ended (the backlog of its last visits)."""
    out: list[float | None] = []
    key: float | None = None
    acc: list[float] = []
    for now, new in zip(t, latencies, strict=True):
        k = max((sp.start for sp in spans if sp.start <= now), default=None)
        if k != key:
            key, acc = k, []
        acc.extend(new)
        out.append(p95(acc))
    return out


def lent_spans(t: list[float], states: list[str], pool: str) -> list[Span]:
    out: list[Span] = []
    for i, state in enumerate(states):
        if state != "lent":
            continue
        end = t[i + 1] if i + 1 < len(t) else t[i]
        if out and out[-1].end == t[i]:
            out[-1] = Span(out[-1].start, end, out[-1].label)
        else:
            out.append(Span(t[i], end, f"{pool} guarantee lent: no {pool} work, its cores serve other pools"))
    return out


def _pool_rows(service: Service) -> list[dict[str, Any]]:
    snap = service.history.latest()
    limits = {p.name: p for p in pool_capacity(service.spec)}
    plan = service.runner.plan if service.runner else {}
    rows = []
    for name in service.spec.pools:
        v = (snap.pools.get(name) if snap else None) or PoolView()
        rows.append({
            "name": name, "capacity_cores": v.capacity_cores, "busy_cores": v.busy_cores,
            "standalone": v.standalone_cores, "borrowed": v.borrowed_node_cores + v.borrowed_pod_cores,
            "memory": f"{gib(v.busy_memory_mib)} / {gib(v.memory_mib)}",
            "cores_pct": percent(v.core_utilization), "memory_pct": percent(v.memory_utilization),
            "dominant_pct": percent(v.dominant_utilization), "startds": v.startds,
            "idle_jobs": v.idle_jobs, "idle_cores": v.idle_cores, "running_jobs": v.running_jobs,
            "oldest_idle": duration(v.oldest_idle_seconds) if snap else "—",
            "guaranteed": limits[name].guaranteed_cores, "guarantee": v.guarantee, "max": limits[name].max_cores,
            # The broker's last plan: what the pool needs and what it is given (enclave_pool_need_cores,
            # enclave_pool_target_cores); "—" before its first cycle.
            "need": plan[name].need if name in plan else "—",
            "target": plan[name].target + plan[name].lend if name in plan else "—",
        })
    return rows


def _charts(service: Service) -> dict[str, str]:
    spec = service.spec
    series = service.history.series()
    t = series["t"]
    spans = nights(spec, t[0], t[-1]) if t else []
    when = clock_name(service)
    warm = spec.prewarmed_pool()
    objective = spec.pools[warm].latency_objective if warm else None
    lent = lent_spans(t, series["guarantee"].get(warm, []), warm) if warm else []
    prompt: dict[str, list[float | None]] = {"p95 this night": per_night_p95(
        t, series["prompt_latencies"], spans)}
    if warm:
        prompt[f"oldest waiting {warm}"] = list(series["oldest_idle"].get(warm, []))
    dominant = {p: [None if v is None else v * 100 for v in vs] for p, vs in series["dominant_utilization"].items()}
    return {
        "source_chart": line_chart("Batch capacity by source (cores)", t, series["by_source"], clock=when,
                                   stacked=True, bands=spans),
        "capacity_chart": line_chart("Capacity per pool (cores)", t, series["capacity"], clock=when, bands=spans,
                                     marks=lent, mark_label=f"{warm} guarantee lent" if warm else ""),
        "dominant_chart": line_chart("Dominant-resource utilization per pool (%)", t, dominant, clock=when,
                                     bands=spans),
        "queue_chart": line_chart("Queue depth (idle jobs)", t, series["idle_jobs"], clock=when, log=True,
                                  bands=spans),
        "latency_chart": line_chart(f"Prompt latency (s), objective {objective.fraction:.0%} within "
                                    f"{objective.seconds:g} s" if objective else "Prompt latency (s)", t, prompt,
                                    clock=when, log=True, bands=spans,
                                    objective=(objective.seconds, f"objective {objective.seconds:g} s")
                                    if objective else None),
    }


def overview(service: Service, principal: Principal) -> dict[str, Any]:
    snap = service.history.latest()
    runner = service.runner
    ok = snap.prompt_within_objective if snap else None
    spans = nights(service.spec, snap.now, snap.now + 1) if snap else []
    return {
        "clock": clock(snap.now if snap else None),
        "clock_name": clock_name(service),
        "daylight": "night" if spans and spans[0].start <= snap.now else "day",  # type: ignore[union-attr]
        "backend": runner.backend_name if runner else "none",
        **leadership(runner.leading if runner else None, snap.now if snap else None),
        "cycles": runner.cycles if runner else 0,
        "actions_total": runner.actions_total if runner else 0,
        "runner_error": runner.last_error if runner else None,
        "calm": None if runner is None or runner.calm is None else "calm" if runner.calm else "not calm",
        "prompt_p95": duration(snap.prompt_latency_p95) if snap else "—",
        "prompt_ok": f"{ok:.1%}" if ok is not None else "—",
        "pools": _pool_rows(service),
        **_charts(service),
        "recent_actions": [{"when": clock(a.at), "kind": a.kind, "target": a.target, "reason": a.reason}
                           for a in list(runner.recent)[:15]] if runner else [],
        **journal_context(service, principal, 10),
        **churn_context(service, principal),
        **failures_context(service, principal),
    }


def failures_context(service: Service, principal: Principal) -> dict[str, Any]:
    """The broker's actions the backend failed over the last eight days, from their journal entries
    (``broker.<kind>.failed``): they outlast the cycle whose error line they were (the next cycle replaces it)."""
    runner = service.runner
    if runner is None:
        return {"failures": [], "failures_note": "No broker runs in this service."}
    if not principal.allows(Permission.JOURNAL_READ):
        return {"failures": [], "failures_note": "Your roles (or this token's scopes) do not include journal.read."}
    entries = runner.broker.failures(principal.username, since=utcnow() - timedelta(days=8), limit=10)
    rows = [{"at": e.at, "action": e.action, "target": e.target, "error": (e.after or {}).get("failed", "")}
            for e in entries]
    return {"failures": rows, "failures_note": None}


def leadership(leading: bool | None, as_of: float | None) -> dict[str, Any]:
    """Whether this replica runs the broker, and how old the figures shown are: a standby takes no snapshot, so
    what it shows is as of the moment it last led (or started), not now."""
    if leading is None:
        return {"leading": "no broker", "standby_note": None}
    if leading:
        return {"leading": "leading", "standby_note": None}
    return {"leading": "standby",
            "standby_note": f"Standby: another replica runs the broker. The figures below are as of {clock(as_of)}, "
                            "this replica's last observation; the leading replica's dashboard shows the current ones."}


def churn_context(service: Service, principal: Principal) -> dict[str, Any]:
    """Actions and evicted core-hours per night, from the broker's journal entries (the last eight nights):
    what each action recorded when it was applied. Shown with journal.read, as the journal is."""
    runner = service.runner
    if runner is None:
        return {"churn": [], "churn_note": "No broker runs in this service."}
    if not principal.allows(Permission.JOURNAL_READ):
        return {"churn": [], "churn_note": "Your roles (or this token's scopes) do not include journal.read."}
    # Whole nights only: cut at "8 days ago", the oldest night showed its actions after that instant alone
    # (review, stop 48); read from nine days back, the night the cut falls in is left out (``churn.from_entries``).
    nights = runner.broker.churn(principal.username, since=utcnow() - timedelta(days=9)).nights()
    return {"churn": nights[-8:], "churn_note": None}


def journal_context(service: Service, principal: Principal, limit: int) -> dict[str, Any]:
    if not principal.allows(Permission.JOURNAL_READ):
        return {"journal": [], "journal_note": "Your roles (or this token's scopes) do not include journal.read.",
                "journal_status": "not shown"}
    rows = [e.__dict__ for e in service.factory.journal.entries(principal.username, limit=limit)]
    return {"journal": rows, "journal_note": None, "journal_status": "newest first"}


def nodes(service: Service, principal: Principal) -> dict[str, Any]:
    snap = service.history.latest()
    listed = list(snap.nodes) if snap else []
    cells = [(n.name, n.in_use, n.state) for n in listed]
    return {"nodes": listed, "node_states": snap.node_states if snap else {},
            "clock": clock(snap.now if snap else None), "clock_name": clock_name(service), "percent": percent,
            "heatmap": heatmap("Share of each node in use (dominant of cores and memory)", cells, columns=25)}


LISTED = 500
"""Active accounts the Notebooks page lists at most; its count is of them all."""


def notebooks(service: Service, principal: Principal) -> dict[str, Any]:
    snap = service.history.latest()
    spec = service.spec
    fits = notebook_users(spec)
    sizes = [{"name": n, "default": n == spec.notebooks.default_size, "cpu": f"{s.cpu_request:g}/{s.cpu_limit:g}",
              "mem": f"{s.memory_request_mib}/{s.memory_limit_mib}", "fit": fits[n], "description": s.description}
             for n, s in spec.notebooks.sizes.items()]
    count: int | str
    if principal.allows(Permission.ACCOUNTS_MANAGE):
        accounts = service.factory.accounts
        count = accounts.count_accounts(principal.username, status=AccountStatus.ACTIVE)  # all, not the table's
        rows = accounts.list_accounts(principal.username, status=AccountStatus.ACTIVE)[:LISTED]
        listed = [{"username": a.username, "kind": a.kind.value, "status": a.status.value,
                   "roles": ", ".join(a.roles), "workspace": a.workspace} for a in rows]
        note = f"The first {LISTED} of {count} listed." if count > LISTED else None
    else:  # not known to this caller: a dash, never a 0 that reads as a fact
        count, listed, note = "—", [], "Listing accounts needs accounts.manage."
    return {
        "notebook_running": snap.notebook_users if snap and snap.notebook_users is not None else "—",
        "notebook_pending": f"{snap.notebook_pending_cores:g}" if snap else "—",
        "sizes": sizes, "accounts": listed, "accounts_count": count, "accounts_note": note,
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


def _loopback_http(request: Request) -> bool:
    """The request came over plain http to a loopback host (``enclave serve`` on 127.0.0.1, ``make demo``): the only
    place the sign-in cookie goes without ``Secure``, since a browser would not send a Secure cookie back over
    http there. Anywhere else the cookie is ``Secure`` — behind a TLS-terminating proxy the server itself sees
    http, so the host, not the scheme, decides."""
    host = request.url.hostname or ""
    if request.url.scheme != "http":
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _from_this_site(request: Request) -> bool:
    """A form POSTed from this site's own pages: its Origin header, else its Referer, names the host the request
    came to (its Host header). OWASP's CSRF Prevention Cheat Sheet, "Verifying origin with standard headers": "If
    the Origin header is present, verify that its value matches the target origin … If the Origin header is not
    present, verify the hostname in the Referer header matches the target origin … If neither of these headers
    are present … We recommend blocking." Without it a cross-site form signed a victim's browser in as the attacker
    (login CSRF, audit finding 4). Every browser sends Origin with a form POST; ``Origin: null`` (a sandboxed or
    no-referrer page) matches no host."""
    source = request.headers.get("origin") or request.headers.get("referer")
    host = request.headers.get("host")
    if not source or not host:
        return False
    return urlsplit(source).netloc.lower() == host.lower()


def _refused(service: Service, target: str) -> Response:
    return HTMLResponse(env.get_template("login.html").render(
        title=service.title, next=_safe_next(target),
        error="refused: the sign-in form must be sent from this site's own page"), status_code=403)


def _login_result(service: Service, request: Request, token: str, target: str) -> Response:
    try:
        verify_token(service, token)
    except EnclaveError as error:
        return HTMLResponse(env.get_template("login.html").render(title=service.title, next=_safe_next(target),
                                                                  error=str(error)), status_code=401)
    response = RedirectResponse(_safe_next(target), status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/",
                        secure=not _loopback_http(request))
    return response


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/",  # noqa: A002
               service: Service = Depends(get_service)) -> Response:  # noqa: B008
    """The sign-in form. A token is never taken from the URL (docs/api.md): a link would otherwise sign a browser
    in as whoever made it, and leave the token in history, proxies' logs and Referer headers."""
    if "token" in request.query_params:
        return HTMLResponse(env.get_template("login.html").render(
            title=service.title, next=_safe_next(next),
            error="a token is never taken from a URL: paste it below (and revoke the one in the link)"),
            status_code=400)
    return HTMLResponse(env.get_template("login.html").render(title=service.title, next=_safe_next(next),
                                                              error=None))


@router.post("/login", response_class=HTMLResponse)
async def login_post(request: Request, service: Service = Depends(get_service)) -> Response:  # noqa: B008
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    token = (form.get("token") or [""])[0]
    target = (form.get("next") or ["/"])[0]
    if not _from_this_site(request):
        return _refused(service, target)
    return await run_in_threadpool(_login_result, service, request, token, target)


@router.post("/logout")
def logout(request: Request, service: Service = Depends(get_service)) -> Response:  # noqa: B008
    """Sign out: a POST from the page's own form, so no link or image elsewhere signs anyone out."""
    if not _from_this_site(request):
        return _refused(service, "/")
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=not _loopback_http(request))
    return response
