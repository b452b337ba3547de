"""Fixtures: a migrated SQLite database per test, one account per actor role with a token, and the app."""

from __future__ import annotations

import hashlib
import html
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.testclient import TestClient

from enclave.accounts import lifecycle as accounts
from enclave.accounts import tokens
from enclave.accounts.types import AccountKind
from enclave.api.app import create_app
from enclave.api.runner import BrokerRunner
from enclave.api.server import ThreadedServer
from enclave.api.service import Service
from enclave.api.wiring import build_service
from enclave.broker.effects import apply_one
from enclave.broker.layout import initial_state
from enclave.db import Database
from enclave.domain.capacity import Action, DeployPods, DrainNode, Observed
from enclave.ops import images
from enclave.services.factory import Factory
from enclave.spec import EnclaveSpec, Role, load
from enclave.spec.defaults import EXAMPLES
from tests.pg import copy_sqlite

ADMIN = "root"
STAFF_ROLE_USERS = {role: role.value.replace("-", "") for role in Role if role != Role.SCIENCE_USER}
SCIENCE = "sci"


@dataclass
class World:
    spec: EnclaveSpec
    db: Database
    service: Service
    client: TestClient
    tokens: dict[str, str]
    """username → a '*' token; one user per actor role, plus the bootstrap admin and a science user."""

    def as_(self, username: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[username]}"}

    def token(self, username: str, scopes: list[str], ttl: int = 3600) -> str:
        with self.db.session() as s:
            return tokens.issue(s, username, username, scopes, ttl)


def role_user(role: Role) -> str:
    return SCIENCE if role == Role.SCIENCE_USER else STAFF_ROLE_USERS[role]


T0 = 1_782_043_200.0  # 2026-06-21 12:00 UTC


class ProjectedBackend:
    """The broker's own model of the enclave as a backend: the spec's initial layout, changed by each action
    exactly as ``enclave.broker.effects`` projects it. No workload and no clock of its own: the role and
    refusal tests need a backend that is fast and holds still. The twin drives the runner tests."""

    def __init__(self, spec: EnclaveSpec) -> None:
        self.state = initial_state(spec, now=T0)
        # One worker already draining, so a start-htcondor procedure has somewhere legal to go, and two
        # HTCondor worker pods that a delete-pods procedure can remove.
        self.state = apply_one(self.state, DrainNode(actor="setup", reason="fixture", node="kub-017"))
        self.state = apply_one(self.state, DeployPods(actor="setup", reason="fixture", node="kub-003", pool="drp",
                                                      pods=("kub-003-htcondor-1", "kub-003-htcondor-2"),
                                                      cores_per_pod=8, memory_mib_per_pod=16384))

    def observe(self) -> Observed:
        return self.state

    def apply(self, action: Action) -> bool:
        before, self.state = self.state, apply_one(self.state, action)
        return self.state != before

    def advance(self, seconds: float) -> None:
        self.state = replace(self.state, now=self.state.now + seconds)

    def progress(self, node: str | None = None) -> None:
        """Nothing is under way: every action takes effect at once."""

    def advertise_calm(self, calm: bool) -> None:
        """No startd reads it here."""
        self.calm = calm

    def drain_left(self, node: str) -> int | None:
        """A drain takes effect at once: nothing is ever left to move."""
        return 0

    @property
    def finished(self) -> bool:
        return False


@pytest.fixture(scope="session")
def spec() -> EnclaveSpec:
    return load(EXAMPLES / "lsst-ldf.yaml")


def pinned_image(tag: str) -> str:
    return f"registry.lsst.local/lsstsqre/sciplat-lab:{tag}@sha256:{hashlib.sha256(tag.encode()).hexdigest()}"


def populate(db: Database, spec: EnclaveSpec) -> dict[str, str]:
    out: dict[str, str] = {}
    with db.session() as s:
        accounts.bootstrap(s, spec, ADMIN, name="Root Admin", email="root@example.org")
        for role, user in STAFF_ROLE_USERS.items():
            accounts.onboard(s, ADMIN, spec, user, name=f"{role.value} person", email=f"{user}@example.org",
                             kind=AccountKind.STAFF, reason="test fixture", roles=[role])
        accounts.onboard(s, ADMIN, spec, SCIENCE, name="Science Person", email="sci@example.org",
                         kind=AccountKind.SCIENCE, reason="test fixture",
                         allocation=accounts.Allocation(proposal_id="P-1"))
        # Targets for the lifecycle endpoints, one per transition so any of them can be tried on a fresh copy.
        accounts.onboard(s, ADMIN, spec, "victim", name="Victim Staff", email="victim@example.org",
                         kind=AccountKind.STAFF, reason="test fixture", namespaces=["qserv"])
        for user in ("scivictim", "scipromo", "sciexpired"):
            accounts.onboard(s, ADMIN, spec, user, name=f"{user} person", email=f"{user}@example.org",
                             kind=AccountKind.SCIENCE, reason="test fixture",
                             allocation=accounts.Allocation(proposal_id="P-2"))
        accounts.expire(s, ADMIN, "sciexpired", reason="test fixture")
        # Security vets the notebook images (seed §10), so notebook options have something to offer.
        for image in spec.notebooks.images:
            pinned = f"{image}@sha256:{hashlib.sha256(image.encode()).hexdigest()}"
            images.submit(s, spec, STAFF_ROLE_USERS[Role.K8S_SERVICE_ADMIN], pinned, reason="fixture")
            images.approve(s, STAFF_ROLE_USERS[Role.SECURITY], pinned, reason="scanned clean")
        for tag in ("approve-me", "reject-me"):
            images.submit(s, spec, STAFF_ROLE_USERS[Role.K8S_SERVICE_ADMIN], pinned_image(tag), reason="fixture")
        for user in [ADMIN, *STAFF_ROLE_USERS.values(), SCIENCE]:
            out[user] = tokens.issue(s, user, user, ["*"], 3600)
    return out


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory, spec: EnclaveSpec) -> tuple[Path, dict[str, str]]:
    """Migrate and populate once; each test gets a copy of the file (fast and fully isolated)."""
    path = tmp_path_factory.mktemp("db") / "template.db"
    db = Database(f"sqlite:///{path}")
    db.migrate()
    made = populate(db, spec)
    # Closing the last connection checkpoints the WAL into the main file, which is then complete on its own.
    db.dispose()
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    return path, made


@pytest.fixture
def world(tmp_path: Path, spec: EnclaveSpec, template_db: tuple[Path, dict[str, str]]) -> Iterator[World]:
    path = tmp_path / "enclave.db"
    copy_sqlite(template_db[0], path)
    db = Database(f"sqlite:///{path}")
    service = Service(Factory(spec, db))
    backend = ProjectedBackend(spec)
    service.runner = BrokerRunner(broker=service.factory.broker(backend, "projected"), metrics=service.metrics,
                                  history=service.history, backend_name="projected")
    service.runner.snapshot()
    with TestClient(create_app(service), raise_server_exceptions=False) as client:
        yield World(spec=spec, db=db, service=service, client=client, tokens=dict(template_db[1]))
    db.dispose()


# --- headless Chromium ---------------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
OUTPUT = Path(os.environ.get("ENCLAVE_TEST_OUTPUT", Path(__file__).resolve().parents[2] / "test-output")) / "api"


@dataclass
class Browser:
    """Debian's chromium, headless, with a fresh profile per call (no state leaks between page loads)."""

    workdir: Path

    def _run(self, url: str, *extra: str, budget_ms: int, height: int = 1100) -> str:
        profile = tempfile.mkdtemp(dir=self.workdir, prefix="profile-")
        cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage", f"--user-data-dir={profile}", f"--window-size=1400,{height}",
               f"--virtual-time-budget={budget_ms}", *extra, url]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    def dom(self, url: str, budget_ms: int = 3000) -> str:
        """The DOM after scripts ran for ``budget_ms`` of virtual time."""
        return self._run(url, "--dump-dom", budget_ms=budget_ms)

    def screenshot(self, url: str, name: str, budget_ms: int = 3000, height: int = 1100) -> Path:
        OUTPUT.mkdir(parents=True, exist_ok=True)
        path = OUTPUT / f"{name}.png"
        path.unlink(missing_ok=True)
        self._run(url, f"--screenshot={path}", budget_ms=budget_ms, height=height)
        assert path.exists() and path.stat().st_size > 10_000, f"no screenshot at {path}"
        return path


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Browser:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: run scripts/test-deps.sh (Debian package chromium)")
    return Browser(tmp_path_factory.mktemp("chromium"))


@dataclass
class Live:
    """A real server on loopback with the twin and the broker loop running."""

    world: World
    server: ThreadedServer

    def login_url(self, page: str, user: str = ADMIN, *, signed_out_later: bool = False) -> str:
        """A page of this server that signs Chromium in as ``user`` (an unknown one: a well-formed unknown token)
        through the real form POST from this site, then goes on to ``page``: a token is never taken from a URL.
        ``signed_out_later``: the page's later refreshes are answered 401, as once the sign-in lapses."""
        query = {"user": user, "next": page} | ({"signed_out_later": "1"} if signed_out_later else {})
        return f"{self.server.url}{SIGN_IN}?{urlencode(query)}"


SIGN_IN = "/test-only/sign-in"


def with_sign_in_page(app: FastAPI, tokens: dict[str, str]) -> FastAPI:
    """The test server also serves a page that submits the sign-in form by itself: what a person does by pasting
    the token, from this site's own origin (the Origin check of POST /login applies as for them)."""
    def page(user: str, next: str, signed_out_later: str = "") -> HTMLResponse:  # noqa: A002
        token = tokens.get(user, f"enc_0000000000000000_{'x' * 43}")
        mark = f'document.cookie = "{SIGNED_OUT_LATER}=1; path=/";' if signed_out_later else ""
        return HTMLResponse(f"""<form id="f" method="post" action="/login"><input name="token" value="{token}">
<input name="next" value="{html.escape(next)}"></form><script>{mark}document.getElementById("f").submit()</script>""")

    @app.middleware("http")
    async def lapse(request: Request, call_next: Any) -> Any:
        if request.url.path.startswith("/fragments/") and request.cookies.get(SIGNED_OUT_LATER):
            return HTMLResponse("Signed out", status_code=401)
        return await call_next(request)

    app.add_api_route(SIGN_IN, page, methods=["GET"])
    return app


SIGNED_OUT_LATER = "test_signed_out_later"


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, spec: EnclaveSpec,
         template_db: tuple[Path, dict[str, str]]) -> Iterator[Live]:
    path = tmp_path_factory.mktemp("live") / "enclave.db"
    copy_sqlite(template_db[0], path)
    db = Database(f"sqlite:///{path}")
    factory = Factory(spec, db)
    factory.ensure_accounts(ADMIN)
    service = build_service(factory, scenario="one-night", sim_seconds_per_cycle=600, wall_seconds_per_cycle=0.3)
    assert service.runner is not None
    for _ in range(3):  # some history before the first page load; the first cycle also warms the twilight cache
        service.runner.step()
    server = ThreadedServer(with_sign_in_page(create_app(service), dict(template_db[1]))).start()
    service.runner.start()
    try:
        yield Live(World(spec=spec, db=db, service=service, client=TestClient(create_app(service)),
                         tokens=dict(template_db[1])), server)
    finally:
        service.runner.stop()
        server.stop()
        db.dispose()
