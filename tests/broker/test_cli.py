"""`enclave broker plan|run` and the BCS procedures under `enclave batch`, end to end through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from enclave.cli import app
from enclave.db import Database
from enclave.journal import query
from tests.broker.conftest import CONDOR_ADMIN, K8S_ADMIN

TINY = str(Path(__file__).parent / "data" / "tiny.yaml")
runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def enclave(*args: str) -> tuple[int, str]:
    """Like the `enclave` entry point: typed errors become a message and their exit code."""
    from enclave.cli import report
    from enclave.errors import EnclaveError

    try:
        return run(*args)
    except EnclaveError as err:
        return report(err), str(err)


def test_plan_shows_pools_and_actions_with_reasons() -> None:
    code, out = enclave("broker", "plan", "--scenario", TINY, "--at-hours", "0.2")
    assert code == 0, out
    assert "Pools (cores)" in out and "prompt" in out and "guaranteed" in out
    code, out = enclave("broker", "plan", "--scenario", TINY, "--at-hours", "0.2", "-o", "json")
    data = json.loads(out)
    assert set(data["pools"]) >= {"prompt", "drp", "user", "general"}
    for a in data["actions"]:
        assert a["actor"] == "enclave-broker" and a["reason"]


def test_run_on_the_twin_journals_in_a_throwaway_database() -> None:
    code, out = enclave("broker", "run", "--scenario", TINY, "--cycles", "5")
    assert code == 0, out
    assert "5 cycle(s)" in out


def test_move_is_role_checked_and_journaled(db: Database) -> None:
    url = db.url
    code, out = enclave("batch", "move", "condor-001", "--to", "drp", "--as", CONDOR_ADMIN, "--reason",
                        "DRP campaign needs it", "--scenario", TINY, "--db", url)
    assert code == 0, out
    assert "journal entry" in out or "already in effect" in out
    with db.session() as s:
        entries = query(s, action="broker.*")
    assert all(e.actor == CONDOR_ADMIN for e in entries)
    # The Kubernetes service admin may not relabel; exit code 4 and nothing journaled.
    code, out = enclave("batch", "move", "condor-002", "--to", "user", "--as", K8S_ADMIN, "--reason", "x",
                        "--scenario", TINY, "--db", url)
    assert code == 4 and "htcondor-admin" in out
    with db.session() as s:
        assert len(query(s, action="broker.*")) == len(entries)


@pytest.mark.parametrize(("args", "code", "text"), [
    (("batch", "move", "condor-001", "--to", "nowhere"), 1, "not defined"),
    (("batch", "move", "no-such-node", "--to", "drp"), 3, "no HTCondor startd"),
    (("batch", "drain-node", "condor-001"), 5, "not a Kubernetes worker"),
    (("batch", "start-htcondor", "kub-001", "--pool", "prompt"), 5, "drain it before"),
])
def test_bad_input_is_refused_clearly(db: Database, args: tuple[str, ...], code: int, text: str) -> None:
    actor = K8S_ADMIN if args[1] == "drain-node" else CONDOR_ADMIN
    got, out = enclave(*args, "--as", actor, "--reason", "test", "--scenario", TINY, "--db", db.url)
    assert got == code and text in out, out


def test_add_pods_by_the_kubernetes_service_admin(db: Database) -> None:
    code, out = enclave("batch", "add-pods", "kub-001", "--pool", "prompt", "--count", "2", "--as", K8S_ADMIN,
                        "--reason", "BCS 4 by hand", "--scenario", TINY, "--db", db.url)
    assert code == 0 and "DeployPods" in out, out
    with db.session() as s:
        [entry] = query(s, action="broker.DeployPods")
    assert entry.after["action"]["pods"] == ["htcondor-kub-001-1", "htcondor-kub-001-2"]
    code, out = enclave("batch", "add-pods", "kub-001", "--pool", "prompt", "--as", CONDOR_ADMIN, "--reason", "x",
                        "--scenario", TINY, "--db", db.url)
    assert code == 4
