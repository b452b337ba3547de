"""A real JupyterHub on 127.0.0.1 for the end-to-end tests: JupyterHub (PyPI), configurable-http-proxy (npm, under
the project's .node/ by scripts/test-deps.sh), jupyter-server as the single-user server, and the stand-in spawner
of ``localspawner.py`` driven by enclave's own profile callable and pre-spawn hook (``hub_config.py``).

The hub reads the same enclave database as the test (SQLite file, $ENCLAVE_DB) with the spec written to a file
($ENCLAVE_SPEC). Started once per module with bounded waits; stopped (SIGTERM, then SIGKILL) at the end.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from enclave.accounts.lifecycle import Allocation
from enclave.accounts.tokens import DATA_READ
from enclave.accounts.types import AccountKind
from enclave.clock import utcnow
from enclave.db import Database
from enclave.notebooks.hubapi import HubAdmin
from enclave.notebooks.profiles import render
from enclave.services.accounts import AccountService
from enclave.services.factory import Factory
from enclave.spec import EnclaveSpec, load
from enclave.spec.defaults import EXAMPLES
from enclave.spec.load import dump
from enclave.spec.models import Role
from tests.notebooks.test_hub import KUBECONFIG

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
ADMIN = "root"
NOTEBOOKS = "notebooks.spawn"
LAB = "registry.lsst.local/lsstsqre/sciplat-lab"
W18, R16 = f"{LAB}:w_2018_25", f"{LAB}:r16_0"
D18, D16 = "sha256:" + "1" * 64, "sha256:" + "6" * 64
START_SECONDS = 60
STOP_SECONDS = 15


def chp() -> str | None:
    """configurable-http-proxy: the project-local install of scripts/test-deps.sh, else one on $PATH."""
    local = ROOT / ".node" / "node_modules" / ".bin" / "configurable-http-proxy"
    return str(local) if local.exists() else shutil.which("configurable-http-proxy")


def missing_dependencies() -> list[str]:
    missing = [] if chp() else ["configurable-http-proxy (npm)"]
    for module, package in (("jupyterhub", "jupyterhub"), ("jupyter_server", "jupyter-server"),
                            ("kubespawner", "jupyterhub-kubespawner"), ("jupyterhub_idle_culler",
                                                                         "jupyterhub-idle-culler")):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"{package} (PyPI)")
    return missing


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Hub:
    url: str
    """The proxy's public URL (what a browser opens)."""
    dir: Path
    process: subprocess.Popen[bytes]
    spec: EnclaveSpec
    db: Database
    factory: Factory
    accounts: AccountService
    """The account service; its transitions reach this hub (``factory.systems.hub``)."""
    admin: HubAdmin
    """enclave's client of this hub, as the enclave-lifecycle service."""
    tokens: dict[str, str] = field(default_factory=dict)
    """username → enclave token (notebooks.spawn; data.read too for the science users)."""

    @property
    def api(self) -> str:
        return f"{self.url}/hub/api"

    def log(self) -> str:
        return (self.dir / "hub.log").read_text(errors="replace")

    def session(self) -> Session:
        return Session(self, httpx.Client(base_url=self.url, timeout=30, follow_redirects=False))


@dataclass
class Session:
    """One browser's worth of hub cookies; requests carry the _xsrf cookie's value as JupyterHub requires."""

    hub: Hub
    http: httpx.Client

    def _xsrf(self, path: str = "/hub/") -> str | None:
        """The _xsrf cookie the hub or a single-user server set for ``path`` (each sets its own, per path)."""
        def best() -> str | None:
            found = [c for c in self.http.cookies.jar if c.name == "_xsrf" and path.startswith(c.path)]
            return max(found, key=lambda c: len(c.path)).value if found else None

        if best() is None and path.startswith("/hub/"):
            self.http.get("/hub/login")
        return best()

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        xsrf = self._xsrf(path)
        headers = {**({"X-XSRFToken": xsrf} if xsrf else {}), **kw.pop("headers", {})}
        return self.http.request(method, path, headers=headers, **kw)

    def login(self, username: str, token: str) -> httpx.Response:
        return self.request("POST", "/hub/login", data={"username": username, "password": token,
                                                        "_xsrf": self._xsrf() or ""})

    def spawn_form(self, form: dict[str, str]) -> httpx.Response:
        return self.request("POST", "/hub/spawn", data={**form, "_xsrf": self._xsrf() or ""})

    def wait_ready(self, username: str, server: str = "", seconds: float = START_SECONDS) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            model = self.request("GET", f"/hub/api/users/{username}").json()
            state = (model.get("servers") or {}).get(server)
            if state and state.get("ready"):
                return dict(state)
            if not state:
                raise AssertionError(f"{username}'s server {server!r} is neither starting nor running: {model}")
            time.sleep(0.3)
        raise AssertionError(f"{username}'s server was not ready within {seconds} s:\n{self.hub.log()[-3000:]}")

    def close(self) -> None:
        self.http.close()


def _people(factory: Factory, spec: EnclaveSpec) -> dict[str, str]:
    """Accounts through the services (homes provisioned under the spec's home_root) and their tokens."""
    accounts, tokens = factory.accounts, factory.tokens
    accounts.ensure_admin(ADMIN)
    allocation = Allocation("P-21", expires=utcnow() + timedelta(days=90))
    accounts.onboard(ADMIN, "svc", name="Service Admin", email="svc@example.org", kind=AccountKind.STAFF,
                     reason="test", roles=[Role.K8S_SERVICE_ADMIN])
    accounts.onboard(ADMIN, "sec", name="Security", email="sec@example.org", kind=AccountKind.STAFF, reason="test",
                     roles=[Role.SECURITY])
    for user in ("alice", "carol"):
        accounts.onboard(ADMIN, user, name=user.title(), email=f"{user}@example.org", kind=AccountKind.SCIENCE,
                         reason="test", allocation=allocation)
    for user in ("dave", "erin"):
        accounts.onboard(ADMIN, user, name=user.title(), email=f"{user}@example.org", kind=AccountKind.STAFF,
                         reason="test", roles=[Role.DEVELOPER])
    # Seed §10: only an image security approved is offered; r16_0 is submitted but never approved.
    factory.images.submit("svc", f"{W18}@{D18}", reason="weekly build")
    factory.images.submit("svc", f"{R16}@{D16}", reason="release")
    factory.images.approve("sec", f"{LAB}@{D18}", reason="scan clean")
    return {user: tokens.issue(ADMIN, user, [NOTEBOOKS, DATA_READ], 3600).token
            for user in ("alice", "carol", "dave", "erin")}


def _wait_up(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the hub exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(f"{url}/hub/api", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"the hub did not answer within {START_SECONDS} s:\n{log.read_text()[-4000:]}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    # JupyterHub stops the proxy and (cleanup_servers) the single-user servers on SIGTERM.
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_SECONDS)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(STOP_SECONDS)


def lsst_spec(where: Path, **notebooks: Any) -> EnclaveSpec:
    """examples/lsst-ldf.yaml with homes under a home root every account can enter, as the real one (0755; pytest's
    ``where`` is 0700, and the WebDAV server touches files as each account: workspace.act_as), removed with the
    hub (``running_hub``); and any notebooks settings given."""
    home_root = Path(tempfile.mkdtemp(prefix=f"{where.name}-jhome-"))
    home_root.chmod(0o755)
    ldf = load(EXAMPLES / "lsst-ldf.yaml")
    return ldf.model_copy(update={"storage": ldf.storage.model_copy(update={"home_root": str(home_root)}),
                                  "notebooks": ldf.notebooks.model_copy(update=notebooks)})


@contextmanager
def running_hub(where: Path, spec: EnclaveSpec) -> Iterator[Hub]:
    """A hub over a fresh enclave database of ``spec``; skips only when a dependency of the hub is missing."""
    missing = missing_dependencies()
    if missing:
        pytest.skip(f"the hub cannot start: {', '.join(missing)} not installed — run scripts/test-deps.sh and "
                    "pip install -e '.[dev]'")
    Path(spec.storage.home_root).mkdir(exist_ok=True)
    (where / "enclave.yaml").write_text(dump(spec))
    db = Database(f"sqlite:///{where / 'enclave.db'}")
    db.migrate()
    factory = Factory(spec, db)
    tokens = _people(factory, spec)
    render(spec, where, vetted=factory.notebooks.vetter())
    service_token = secrets.token_hex(32)
    # The operator's file, as `openssl rand -hex 32 > hub-token` writes it (a newline at the end): the hub's
    # --set-file copy (hub_config.py) and enclave's (HubAdmin) must agree all the same.
    (where / "hub-token").write_text(service_token + "\n")
    ports = {name: free_port() for name in ("HUB_PORT", "HUB_API_PORT", "PROXY_API_PORT")}
    env = {**os.environ, "ENCLAVE_DB": db.url, "ENCLAVE_SPEC": str(where / "enclave.yaml"),
           "ENCLAVE_TEST_HUB_DIR": str(where), "ENCLAVE_TEST_CHP": str(chp()),
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
           **{f"ENCLAVE_TEST_{k}": str(v) for k, v in ports.items()}}
    # KubeSpawner loads a client configuration when built; an offline one is enough (the stand-in makes no request).
    (where / "kubeconfig").write_text(KUBECONFIG)
    env["KUBECONFIG"] = str(where / "kubeconfig")
    shutil.copy(HERE / "hub_config.py", where / "jupyterhub_config.py")
    log = where / "hub.log"
    url = f"http://127.0.0.1:{ports['HUB_PORT']}"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(where / "jupyterhub_config.py")],
                                   cwd=where, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    admin = HubAdmin(f"{url}/hub/api", service_token)
    factory.systems.hub = admin  # what use_live_systems does with $ENCLAVE_HUB_URL/$ENCLAVE_HUB_TOKEN
    try:
        _wait_up(process, url, log)
        yield Hub(url=url, dir=where, process=process, spec=spec, db=db, factory=factory,
                  accounts=factory.accounts, admin=admin, tokens=tokens)
    finally:
        admin.close()
        _stop(process)
        db.dispose()
        shutil.rmtree(spec.storage.home_root, ignore_errors=True)


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    where = tmp_path_factory.mktemp("hub")
    with running_hub(where, lsst_spec(where)) as running:
        yield running


def options_in(html: str) -> tuple[list[str], dict[str, list[str]]]:
    """The sizes (profile slugs) and, per size, the image choices KubeSpawner's form offers."""
    sizes = re.findall(r'<input[^>]*name="profile"[^>]*value="([^"]+)"', html) or \
        re.findall(r'<input[^>]*value="([^"]+)"[^>]*name="profile"', html)
    images: dict[str, list[str]] = {}
    for size in sizes:
        block = re.findall(rf'name="profile-option-{re.escape(size)}--image"(.*?)</select>', html, re.S)
        images[size] = re.findall(r'<option[^>]*value="([^"]+)"', block[0]) if block else []
    return sizes, images
