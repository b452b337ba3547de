"""`enclave broker plan|run` and the BCS procedures under `enclave batch`, end to end through the CLI."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from enclave.cli import app
from enclave.db import Database
from enclave.journal import query
from tests.broker.conftest import CONDOR_ADMIN, K8S_ADMIN
from tests.local import map_me

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
    code, out = enclave("broker", "run", "--twin", TINY, "--cycles", "5")
    assert code == 0, out
    assert "5 cycle(s) on twin" in out and "SIMULATED" in out


@pytest.fixture(autouse=True)
def mapped(db: Database) -> None:
    """Local mode: the test's OS user may act as each batch administrator (mapped by the sysadmin, journaled)."""
    map_me(db, CONDOR_ADMIN, K8S_ADMIN)


def broker_entries(db: Database) -> int:
    with db.session() as s:
        return len(query(s, action="broker.*"))


def test_move_on_the_twin_is_role_checked_and_never_enters_the_enclave_journal(db: Database) -> None:
    """Issue 16: a twin move used to print "done on twin" and write a real broker.Relabel entry each time."""
    url = db.url
    for _ in range(2):
        code, out = enclave("batch", "move", "condor-001", "--to", "drp", "--as", CONDOR_ADMIN, "--reason",
                            "DRP campaign needs it", "--twin", TINY, "--db", url)
        assert code == 0, out
        said = " ".join(out.split())  # the console wraps long lines
        assert "on twin" in said and "SIMULATED" in said and "nothing recorded in the enclave's" in said
    assert broker_entries(db) == 0
    # The twin mirrors the actor's real roles: the Kubernetes service admin may not relabel there either.
    code, out = enclave("batch", "move", "condor-002", "--to", "user", "--as", K8S_ADMIN, "--reason", "x",
                        "--twin", TINY, "--db", url)
    assert code == 4 and "htcondor-admin" in out
    assert broker_entries(db) == 0


def test_without_a_live_enclave_a_change_is_refused_not_simulated(db: Database, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.kube/config
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    for command in (("batch", "move", "condor-001", "--to", "drp", "--as", CONDOR_ADMIN, "--reason", "x"),
                    ("broker", "run", "--cycles", "1")):
        code, out = enclave(*command, "--db", db.url)
        said = " ".join(out.split())
        assert code == 1 and "no live enclave is configured" in said and "--twin one-night" in said, out
    code, out = enclave("batch", "move", "condor-001", "--to", "drp", "--as", CONDOR_ADMIN, "--reason", "x",
                        "--live", "--twin", TINY, "--db", db.url)
    assert code == 1 and "not both" in out
    assert broker_entries(db) == 0


@pytest.mark.parametrize(("args", "code", "text"), [
    (("batch", "move", "condor-001", "--to", "nowhere"), 1, "not defined"),
    (("batch", "move", "no-such-node", "--to", "drp"), 3, "no HTCondor startd"),
    (("batch", "drain-node", "condor-001"), 5, "not a Kubernetes worker"),
    (("batch", "start-htcondor", "kub-001", "--pool", "prompt"), 5, "drain it before"),
])
def test_bad_input_is_refused_clearly(db: Database, args: tuple[str, ...], code: int, text: str) -> None:
    actor = K8S_ADMIN if args[1] == "drain-node" else CONDOR_ADMIN
    got, out = enclave(*args, "--as", actor, "--reason", "test", "--twin", TINY, "--db", db.url)
    assert got == code and text in out, out


def test_add_pods_by_the_kubernetes_service_admin(db: Database) -> None:
    code, out = enclave("batch", "add-pods", "kub-001", "--pool", "prompt", "--count", "2", "--as", K8S_ADMIN,
                        "--reason", "BCS 4 by hand", "--twin", TINY, "--db", db.url)
    assert code == 0 and "DeployPods" in out and "on twin" in out, out
    code, out = enclave("batch", "add-pods", "kub-001", "--pool", "prompt", "--as", CONDOR_ADMIN, "--reason", "x",
                        "--twin", TINY, "--db", db.url)
    assert code == 4
    assert broker_entries(db) == 0


def test_drain_node_takes_kubectls_flags(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """kubectl drain's flag names on the command (https://kubernetes.io/docs/reference/kubectl/generated/
    kubectl_drain/): each given one reaches the action, which the journal records; the rest stay the spec's."""
    from enclave.services.broker import BrokerService

    seen = []
    real = BrokerService.apply

    def recording(self: BrokerService, action: object) -> object:
        seen.append(action)
        return real(self, action)  # type: ignore[arg-type]

    monkeypatch.setattr(BrokerService, "apply", recording)
    code, out = enclave("batch", "drain-node", "kub-001", "--force", "--no-delete-emptydir-data",
                        "--grace-period", "30", "--timeout", "1m30s", "--as", K8S_ADMIN, "--reason", "BCS 5",
                        "--twin", TINY, "--db", db.url)
    assert code == 0 and "DrainNode node/kub-001 done on twin" in " ".join(out.split()), out
    (action,) = seen
    assert (action.force, action.ignore_daemonsets, action.delete_emptydir_data,  # type: ignore[attr-defined]
            action.grace_period_seconds) == (True, None, False, 30)  # type: ignore[attr-defined]
    seen.clear()
    code, out = enclave("batch", "drain-node", "kub-002", "--grace-period", "-1", "--as", K8S_ADMIN, "--reason",
                        "BCS 5", "--twin", TINY, "--db", db.url)
    assert code == 0, out
    assert seen[0].grace_period_seconds is None and seen[0].force is None  # type: ignore[attr-defined]


@pytest.mark.parametrize("timeout", ["soon", "-5s", "5x"])
def test_drain_node_refuses_a_bad_timeout(db: Database, timeout: str) -> None:
    code, out = enclave("batch", "drain-node", "kub-001", "--timeout", timeout, "--as", K8S_ADMIN, "--reason", "x",
                        "--twin", TINY, "--db", db.url)
    assert code == 1 and "--timeout" in out, out


def test_broker_run_logs_each_action_when_asked() -> None:
    """`broker run --log-format json`: each applied action is one JSON line with actor and reason (the loop's
    log, as `enclave serve` writes it); without the option the command prints only its own lines."""
    import logging

    try:
        code, out = enclave("broker", "run", "--twin", "one-night", "--cycles", "40", "--log-format", "json")
    finally:
        root = logging.getLogger()
        for handler in [h for h in root.handlers if h.get_name() == "enclave-logs"]:
            root.removeHandler(handler)
    assert code == 0, out
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert all(e["logger"].startswith("enclave.") for e in events), "third-party chatter stays below warning"
    applied = [e for e in events if e["message"] == "broker action applied"]
    summary = next(line for line in out.splitlines() if "cycle(s) on twin" in line)  # "…: Relabel 24, DrainNode 1"
    assert len(applied) == sum(int(n) for n in re.findall(r"[A-Za-z]+ (\d+)", summary.split(":", 1)[1])) > 0
    assert applied and all(e["actor"] == "enclave-broker" and e["reason"] and e["where"].startswith("twin")
                           for e in applied)
    code, out = enclave("broker", "run", "--twin", TINY, "--cycles", "5")
    assert code == 0 and not any(line.startswith("{") for line in out.splitlines())


def test_broker_run_on_the_live_enclave_stands_by_and_survives_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    """`broker run` on the live enclave asks before each cycle whether it may lead — the same leadership as a
    serving replica's loop (``Factory.broker_leadership``) — and a failure of the systems it drives is reported
    and tried again next cycle, as the server's loop does (review: it never asked, and the first 500 ended it)."""
    from contextlib import contextmanager

    import enclave.cli.broker as cli
    from enclave.errors import ExternalError
    from enclave.services.factory import Factory
    from enclave.spec.defaults import default_spec_path
    from enclave.spec.load import load

    with Factory.scratch(load(default_spec_path())) as factory:
        twin = factory.twin_backend("one-night", 2.0)
        broker = factory.broker(twin, "live")
        asked: list[int] = []

        def leads() -> bool:  # another process leads at first, then this one
            asked.append(1)
            return len(asked) > 1

        cycles: list[int] = []
        real_cycle = broker.cycle

        def cycle(actor: str, leading: object = None) -> object:
            cycles.append(1)
            if len(cycles) == 1:
                raise ExternalError("Kubernetes API: listing pods failed (500 Internal Server Error)")
            assert leading is not None  # asked again before each action, as the server's loop does
            return real_cycle(actor, leading=leading)  # type: ignore[arg-type]

        @contextmanager
        def loop_host(*_: object):  # type: ignore[no-untyped-def]
            yield broker, leads

        monkeypatch.setattr(broker, "cycle", cycle)
        monkeypatch.setattr(cli, "_loop_host", loop_host)
        monkeypatch.setattr(cli, "_target", lambda live, twin: False)  # the live enclave, here a twin stands in
        result = runner.invoke(app, ["broker", "run", "--cycles", "3"])
    assert result.exit_code == 0, result.output
    assert "standing by: another enclave process runs the broker" in result.output
    assert "cycle failed, trying again next cycle: ExternalError: Kubernetes API: listing pods failed" in result.output
    assert len(cycles) == 2 and "3 cycle(s) on live" in result.output


@pytest.mark.parametrize("args", [("broker", "run", "--twin", "one-night-instant", "--hours", "inf"),
                                  ("broker", "plan", "--scenario", "one-night-instant", "--at-hours", "inf"),
                                  ("batch", "drain-startd", "condor-001", "--reason", "r", "--twin",
                                   "one-night-instant", "--vacate-after", "inf")])
def test_an_infinite_number_of_hours_or_seconds_is_refused_by_name(args: tuple[str, ...]) -> None:
    """Review, stop 48: `--hours inf` passed `min=0` and ended in a traceback (int() of inf // step)."""
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 2 and "less than or equal to" in result.output
    assert args[-2] in result.output
