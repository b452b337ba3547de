"""The CLI and the API are two front ends over one service call: every manual BCS procedure and every account
transition, run through each on its own fresh copy of the same database (and, for the procedures, the same
backend state), leaves identical state and identical journal entries — pod names, grace periods, reasons and
all. Only the wall-clock time of an entry (and so its hash) may differ."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from enclave import journal
from enclave.api.app import create_app
from enclave.api.runner import BrokerRunner
from enclave.api.service import Service
from enclave.cli import app
from enclave.db import Database
from enclave.domain.capacity import Observed
from enclave.services.factory import Factory
from enclave.services.local import os_user
from enclave.spec import EnclaveSpec, Role
from tests.api.conftest import ADMIN, STAFF_ROLE_USERS, ProjectedBackend
from tests.local import map_me, use_database
from tests.pg import copy_sqlite

SOON_TAI = time.time() + 600 + 37.0
"""A visit's startTime (TAI Unix seconds) ten minutes from now: a push is refused outside now − 1 day … + 7 days."""

CONDOR = STAFF_ROLE_USERS[Role.HTCONDOR_ADMIN]
K8S = STAFF_ROLE_USERS[Role.K8S_SERVICE_ADMIN]


@dataclass
class Side:
    """One front end on its own database and backend."""

    db: Database
    backend: ProjectedBackend
    seq: int
    """The journal's last entry before the steps: only what the steps add is compared."""

    def journal(self) -> list[dict[str, Any]]:
        with self.db.session() as s:
            return [{"actor": e.actor, "action": e.action, "target": e.target, "reason": e.reason,
                     "before": e.before, "after": e.after} for e in journal.query(s, after_seq=self.seq)]

    def accounts(self, spec: EnclaveSpec) -> list[dict[str, Any]]:
        return [a.model_dump(mode="json") for a in Factory(spec, self.db).accounts.list_accounts(ADMIN)]

    def observed(self) -> Observed:
        return self.backend.observe()


def _side(tmp_path: Path, name: str, template: Path, spec: EnclaveSpec) -> Side:
    path = tmp_path / f"{name}.db"
    copy_sqlite(template, path)
    db = Database(f"sqlite:///{path}")
    with db.session() as s:
        seq = journal.verify(s)
    return Side(db, ProjectedBackend(spec), seq)


@pytest.fixture
def sides(tmp_path: Path, spec: EnclaveSpec, template_db: tuple[Path, dict[str, str]],
          monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Side, Side, Callable[..., Any], Callable[..., Any]]]:
    cli_side, api_side = (_side(tmp_path, n, template_db[0], spec) for n in ("cli", "api"))
    # The CLI acts in local mode: the test's OS user is mapped to every acting account first (journaled before
    # the steps, so not compared).
    map_me(cli_side.db, *(u for u in template_db[1] if u != ADMIN), by=ADMIN)
    with cli_side.db.session() as s:
        cli_side.seq = journal.verify(s)
    # The CLI's live enclave is the CLI side's backend, so its state can be read after the command ended (a
    # command journals in the enclave's database only when it acts on the live enclave: --live).
    monkeypatch.setattr(Factory, "live_backend", lambda self, **kw: cli_side.backend)
    use_database(monkeypatch, cli_side.db.url, tmp_path)
    service = Service(Factory(spec, api_side.db))
    service.runner = BrokerRunner(broker=service.factory.broker(api_side.backend, "projected"),
                                  metrics=service.metrics, history=service.history, backend_name="projected")
    tokens = template_db[1]

    def cli(*args: str) -> None:
        done = CliRunner().invoke(app, list(args))
        assert done.exit_code == 0, (args, done.output, done.exception)

    with TestClient(create_app(service), raise_server_exceptions=False) as client:
        def api(method: str, path: str, body: dict[str, Any] | None = None, *, as_: str = ADMIN) -> None:
            r = client.request(method, f"/api/v1{path}", json=body,
                               headers={"Authorization": f"Bearer {tokens[as_]}"})
            assert r.status_code in (200, 201), (path, r.status_code, r.text)

        yield cli_side, api_side, cli, api
    cli_side.db.dispose()
    api_side.db.dispose()


def agree(spec: EnclaveSpec, cli_side: Side, api_side: Side) -> None:
    added = cli_side.journal()
    assert added, "the steps journaled nothing: the comparison would be empty"
    # Local mode adds the OS user to each reason (enclave.services.local); otherwise the entries are the same.
    suffix = f" [{os_user().origin}]"
    assert all(e["reason"].endswith(suffix) for e in added), added
    assert [{**e, "reason": e["reason"].removesuffix(suffix)} for e in added] == api_side.journal()
    assert cli_side.accounts(spec) == api_side.accounts(spec)
    assert cli_side.observed() == api_side.observed()


BCS: dict[str, tuple[list[tuple[str, ...]], list[tuple[str, str, dict[str, Any], str]]]] = {
    # name: (CLI commands, API calls (method, path, body, acting user)) doing the same procedure.
    "move (BCS 1/2)": (
        [("batch", "move", "condor-001", "--to", "user", "--as", CONDOR, "--reason", "prompt caught up")],
        [("POST", "/broker/actions", {"kind": "relabel", "startd": "condor-001", "to_pool": "user",
                                      "reason": "prompt caught up"}, CONDOR)]),
    "add pods (BCS 4), named by the one rule": (
        [("batch", "add-pods", "kub-001", "--pool", "drp", "--count", "2", "--as", K8S, "--reason", "borrow")],
        [("POST", "/broker/actions", {"kind": "deploy-pods", "node": "kub-001", "pool": "drp", "count": 2,
                                      "cores_per_pod": 8, "memory_mib_per_pod": 32768, "reason": "borrow"}, K8S)]),
    "delete pods (BCS 3)": (
        [("batch", "delete-pods", "kub-003-htcondor-1", "--as", K8S, "--reason", "caught up")],
        [("POST", "/broker/actions", {"kind": "delete-pods", "pods": ["kub-003-htcondor-1"],
                                      "reason": "caught up"}, K8S)]),
    "drain node (BCS 5 step 1)": (
        [("batch", "drain-node", "kub-005", "--as", K8S, "--reason", "lend the node")],
        [("POST", "/broker/actions", {"kind": "drain-node", "node": "kub-005", "reason": "lend the node"}, K8S)]),
    "start HTCondor (BCS 5 steps 2-3)": (
        [("batch", "start-htcondor", "kub-017", "--pool", "prompt", "--as", CONDOR, "--reason", "night")],
        [("POST", "/broker/actions", {"kind": "start-htcondor", "node": "kub-017", "pool": "prompt",
                                      "reason": "night"}, CONDOR)]),
    "return node (reverse of BCS 5), by someone holding both roles": (
        [("roles", "grant", K8S, "htcondor-admin", "--as", ADMIN, "--reason", "both roles"),
         ("batch", "return-node", "kub-017", "--as", K8S, "--reason", "morning")],
        [("POST", f"/accounts/{K8S}/roles", {"role": "htcondor-admin", "reason": "both roles"}, ADMIN),
         ("POST", "/broker/actions", {"kind": "return-node", "node": "kub-017", "reason": "morning"}, K8S)]),
    "drain startd, vacate after a grace": (
        [("batch", "drain-startd", "condor-040", "--vacate-after", "300", "--as", CONDOR, "--reason", "repair")],
        [("POST", "/broker/actions", {"kind": "drain-startd", "startd": "condor-040",
                                      "vacate_after_seconds": 300, "reason": "repair"}, CONDOR)]),
}


@pytest.mark.parametrize("name", list(BCS))
def test_each_bcs_procedure_is_the_same_through_cli_and_api(name: str, spec: EnclaveSpec, sides: Any) -> None:
    cli_side, api_side, cli, api = sides
    commands, calls = BCS[name]
    for command in commands:  # a procedure journals in the enclave only on the live enclave: --live
        cli(*command, *(("--live",) if command[0] == "batch" else ()))
    for method, path, body, user in calls:
        api(method, path, body, as_=user)
    agree(spec, cli_side, api_side)


def test_a_relabel_of_a_vacating_pool_carries_its_grace_either_way(spec: EnclaveSpec, sides: Any) -> None:
    """The rule the API used to miss: a startd leaving a pool with take_away: vacate is evicted after that
    pool's grace period, whoever moves it."""
    cli_side, api_side, cli, api = sides
    drp = next(s.name for s in cli_side.observed().startds if s.pool == "drp")
    cli("batch", "move", drp, "--to", "prompt", "--as", CONDOR, "--reason", "night", "--live")
    api("POST", "/broker/actions", {"kind": "relabel", "startd": drp, "to_pool": "prompt", "reason": "night"},
        as_=CONDOR)
    agree(spec, cli_side, api_side)
    assert cli_side.journal()[-1]["after"]["action"]["vacate_after_seconds"] == spec.pools["drp"].grace_seconds


ACCOUNTS: dict[str, tuple[tuple[str, ...], tuple[str, str, dict[str, Any] | None]]] = {
    "onboard": (("accounts", "onboard", "newbie", "--name", "New Person", "--email", "newbie@example.org",
                 "--kind", "science", "--proposal", "P-9", "--reason", "joined"),
                ("POST", "/accounts", {"username": "newbie", "name": "New Person", "email": "newbie@example.org",
                                       "kind": "science", "reason": "joined",
                                       "allocation": {"proposal_id": "P-9"}})),
    "depart": (("accounts", "depart", "victim", "--reason", "left"),
               ("POST", "/accounts/victim/depart", {"reason": "left"})),
    "expire": (("accounts", "expire", "scivictim", "--reason", "ended"),
               ("POST", "/accounts/scivictim/expire", {"reason": "ended"})),
    "renew": (("accounts", "renew", "sciexpired", "--proposal", "P-3", "--expires", "2099-01-31", "--reason", "new"),
              ("POST", "/accounts/sciexpired/renew", {"reason": "new", "allocation": {
                  "proposal_id": "P-3", "expires": "2099-01-31T00:00:00Z"}})),
    "promote": (("accounts", "promote", "scipromo", "--reason", "hired"),
                ("POST", "/accounts/scipromo/promote", {"reason": "hired"})),
    "demote": (("accounts", "demote", "victim", "--new-username", "victim2", "--reason", "affiliate"),
               ("POST", "/accounts/victim/demote", {"new_username": "victim2", "reason": "affiliate"})),
    "grow quota": (("accounts", "grow-quota", "victim", "--quota", "400", "--reason", "big proposal"),
                   ("POST", "/accounts/victim/quota", {"quota_gib": 400, "reason": "big proposal"})),
    "correct quota": (("accounts", "correct-quota", "victim", "--quota", "50", "--reason", "typo in grow-quota"),
                      ("PUT", "/accounts/victim/quota", {"quota_gib": 50, "reason": "typo in grow-quota"})),
    "grant role": (("roles", "grant", "victim", "security", "--reason", "joins security"),
                   ("POST", "/accounts/victim/roles", {"role": "security", "reason": "joins security"})),
    "revoke role": (("roles", "revoke", "victim", "developer", "--reason", "changed"),
                    ("DELETE", "/accounts/victim/roles/developer?reason=changed", None)),
    "join namespace": (("accounts", "join", "victim", "firefly", "--reason", "team"),
                       ("POST", "/accounts/victim/namespaces", {"namespace": "firefly", "reason": "team"})),
    "leave namespace": (("accounts", "leave", "victim", "qserv", "--reason", "moved"),
                        ("DELETE", "/accounts/victim/namespaces/qserv?reason=moved", None)),
}


@pytest.mark.parametrize("name", list(ACCOUNTS))
def test_each_account_transition_is_the_same_through_cli_and_api(name: str, spec: EnclaveSpec, sides: Any) -> None:
    cli_side, api_side, cli, api = sides
    command, (method, path, body) = ACCOUNTS[name]
    cli(*command, "--as", ADMIN)
    api(method, path, body)
    agree(spec, cli_side, api_side)


def test_an_observing_schedule_push_is_the_same_through_cli_and_api(spec: EnclaveSpec, sides: Any,
                                                                   tmp_path: Path) -> None:
    cli_side, api_side, cli, api = sides
    schedule = {"visits": [{"groupId": f"v{i}", "startTime": SOON_TAI + 36 * i, "duration": 33.0,
                            "instrument": "LSSTCam"}
                           for i in range(3)], "complete_from": SOON_TAI - 1200, "source": "tonight"}
    path = tmp_path / "tonight.json"
    path.write_text(json.dumps(schedule))
    cli("broker", "schedule", "push", str(path), "--as", CONDOR, "--reason", "tonight's plan")
    api("POST", "/broker/schedule", {"schedule": schedule, "reason": "tonight's plan"}, as_=CONDOR)
    agree(spec, cli_side, api_side)
    assert cli_side.journal()[-1]["action"] == "broker.schedule"
