"""Pod logs on the twin (AA2/AA3): the simulated notebook pods' events, behind the same check as the live cluster,
journaling nothing (nothing simulated enters the enclave's journal)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from enclave.accounts.types import AccountKind
from enclave.cli import app
from enclave.db import Database
from enclave.domain.logs import LogRequest
from enclave.errors import InputError, NotFound, PermissionDenied
from enclave.journal import query
from enclave.services.factory import BOOTSTRAP_ADMIN, Factory
from enclave.spec.models import EnclaveSpec, Role
from enclave.twin.backend import TwinBackend
from enclave.twin.logs import TwinLogs
from enclave.twin.scenario import Loaded
from enclave.twin.sim import Sim
from tests.local import map_me

from .conftest import make_sim

TINY = str(Path(__file__).parents[1] / "broker" / "data" / "tiny.yaml")


@pytest.fixture
def sim(small: Loaded) -> Sim:
    s = make_sim(small)
    s.run_until(1.5 * 3600)
    return s


def stamp(sim: Sim, t: float) -> str:
    return datetime.fromtimestamp(sim.sc.start_epoch + t, UTC).isoformat().replace("+00:00", "Z")


def test_a_notebook_pods_events(sim: Sim) -> None:
    logs = TwinLogs(sim)
    i = sorted(sim.nb_node)[0]
    s = sim.wl.sessions
    lines = list(logs.pod_log(LogRequest("jupyter-lsst", f"jupyter-session-{i}")))
    assert lines == [f"{stamp(sim, s.t[i])} spawn requested: {s.cpu[i]:g} CPU, {s.memory_mib[i]} MiB",
                     f"{stamp(sim, sim.now)} running on node {sim.nb_node[i].name}"]
    assert list(logs.pod_log(LogRequest("jupyter-lsst", f"jupyter-session-{i}", tail_lines=1))) == lines[1:]
    assert list(logs.pod_log(LogRequest("jupyter-lsst", f"jupyter-session-{i}", since_seconds=1))) == lines[1:]
    assert list(logs.pod_log(LogRequest("jupyter-lsst", f"jupyter-session-{i}", container="notebook"))) == lines


def test_what_the_twin_does_not_have(sim: Sim) -> None:
    logs = TwinLogs(sim)
    ended = next(i for i in range(len(sim.wl.sessions.t)) if i not in sim.nb_node and i not in sim.nb_pending
                 and sim.wl.sessions.t[i] < sim.now)
    for namespace, pod in (("jupyter-lsst", f"jupyter-session-{ended}"), ("firefly", "ff"),
                           ("jupyter-lsst", "hub-0")):
        with pytest.raises(NotFound):
            logs.pod_log(LogRequest(namespace, pod))
    with pytest.raises(InputError, match="container sidecar is not valid"):
        logs.pod_log(LogRequest("jupyter-lsst", f"jupyter-session-{sorted(sim.nb_node)[0]}", container="sidecar"))


@pytest.fixture
def enclave(tmp_path: Path, ldf: EnclaveSpec, monkeypatch: pytest.MonkeyPatch) -> Iterator[Factory]:
    db = Database(f"sqlite:///{tmp_path / 'enclave.db'}")
    db.migrate()
    f = Factory(ldf, db)
    f.ensure_accounts()
    for name, namespaces in (("nbdev", ["jupyter-lsst"]), ("ffdev", ["firefly"])):
        f.accounts.onboard(BOOTSTRAP_ADMIN, name, name=name, email=f"{name}@example.org", kind=AccountKind.STAFF,
                           roles=[Role.DEVELOPER], namespaces=namespaces, reason="test")
    monkeypatch.setenv("ENCLAVE_DB", db.url)
    yield f
    db.dispose()


def test_the_twin_is_checked_like_the_cluster_but_journals_nothing(enclave: Factory, sim: Sim) -> None:
    enclave.use_twin_logs(TwinBackend(sim))
    pod = f"jupyter-session-{sorted(sim.nb_node)[0]}"
    assert len(list(enclave.logs.read("nbdev", LogRequest("jupyter-lsst", pod)))) == 2
    with pytest.raises(PermissionDenied):
        enclave.logs.read("ffdev", LogRequest("jupyter-lsst", pod))
    with enclave.db.session() as s:
        assert query(s, action="logs.read") == []


def test_the_cli_reads_the_twin(enclave: Factory) -> None:
    twin = enclave.twin_backend(TINY, 1.5)
    pods = TwinLogs(twin.sim).pods()
    assert pods, "the tiny scenario has a notebook server 90 minutes in"
    want = [*TwinLogs(twin.sim).pod_log(LogRequest("jupyter-lsst", pods[0]))]
    map_me(enclave.db, "nbdev", by=BOOTSTRAP_ADMIN)  # local mode: the test's OS user acts as nbdev
    got = CliRunner().invoke(app, ["logs", "jupyter-lsst", pods[0], "--as", "nbdev", "--twin", TINY,
                                   "--at-hours", "1.5"])
    assert got.exit_code == 0, got.output
    assert got.output.splitlines() == want  # the same twin, run as far: the same events
