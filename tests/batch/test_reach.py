"""Account transitions reach the schedds (issue 21), at the bindings boundary: the schedds are the stand-ins of
conftest.py, whose ``Schedd.act`` has htcondor2's signature (test_live checks it against the installed bindings)
and acts as the schedd does on the job ads it holds. What must happen follows docs/accounts.md's table
(``enclave.domain.reach.RULES``): depart and demote remove the account's queued and running jobs, expire removes
the queued ones and holds the running ones, on every schedd the spec names.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import htcondor2
import pytest
from classad2 import ClassAd, ExprTree
from typer.testing import CliRunner

from enclave.accounts.lifecycle import Allocation
from enclave.accounts.types import AccountKind
from enclave.batch import policy
from enclave.batch.live import JOB_ACTIONS, owner_constraint
from enclave.cli import app
from enclave.db import Database
from enclave.domain.reach import JobState, JobVerb, Status, Transition
from enclave.errors import Conflict, ExternalError, InvalidTransition
from enclave.journal import query
from enclave.services.factory import BOOTSTRAP_ADMIN, Factory
from enclave.spec.models import EnclaveSpec
from tests.local import map_me

from .conftest import DEV, NOTEBOOK_SCHEDD, Daemons

DEV2 = "lsst-dev02.ncsa.illinois.edu"
# HTCondor manual, "Job ClassAd Attributes", JobStatus: 1 Idle, 2 Running, 5 Held, 7 Suspended.
IDLE, RUNNING, HELD = 1, 2, 5
QUEUED_TEXT = '(Owner =?= "{}") && (JobStatus == 1 || JobStatus == 5)'
RUNNING_TEXT = '(Owner =?= "{}") && (JobStatus == 2 || JobStatus == 7)'


def job(owner: str, cluster: int, status: int, pool: str = "drp") -> ClassAd:
    return ClassAd({"ClusterId": cluster, "ProcId": 0, "Owner": owner, "JobStatus": status, "RequestCpus": 1,
                    "QDate": 1_000, "EnclavePool": pool})


def owners(daemons: Daemons, schedd: str) -> list[tuple[str, int, int]]:
    return sorted((ad["Owner"], ad["ClusterId"], ad["JobStatus"]) for ad in daemons.jobs.get(schedd, []))


@pytest.fixture
def factory(tmp_path: Path, ldf: EnclaveSpec, daemons: Daemons, monkeypatch: pytest.MonkeyPatch) -> Iterator[Factory]:
    """An enclave with staff alice, science carol and their jobs (and bob's, and another login's "Alice") on
    all three schedds of the LDF spec; transitions reach the stand-in schedds, and no Kubernetes even where this
    host has credentials (tests/cluster/test_bindings.py reaches the fake one)."""
    monkeypatch.setattr(Factory, "live_configured", staticmethod(lambda: False))
    db = Database(f"sqlite:///{tmp_path / 'enclave.db'}")
    db.migrate()
    f = Factory(ldf, db)
    f.ensure_accounts()
    for name, kind in (("alice", AccountKind.STAFF), ("carol", AccountKind.SCIENCE), ("bob", AccountKind.SCIENCE)):
        f.accounts.onboard(BOOTSTRAP_ADMIN, name, name=name.title(), email=f"{name}@example.org", kind=kind,
                           reason="test")
    for i, schedd in enumerate((DEV, DEV2, NOTEBOOK_SCHEDD)):
        base = 100 * (i + 1)
        daemons.jobs[schedd] = [job("alice", base + 1, IDLE, "prompt"), job("alice", base + 2, RUNNING),
                                job("alice", base + 3, HELD, "user"), job("carol", base + 4, IDLE),
                                job("carol", base + 5, RUNNING), job("bob", base + 6, RUNNING),
                                job("Alice", base + 7, IDLE)]
    f.use_live_systems()
    yield f
    db.dispose()


def acts(daemons: Daemons) -> list[tuple[str, htcondor2.JobAction, str]]:
    return [(c[1], c[2], c[3]) for c in daemons.calls if c[0] == "act"]


def canonical(text: str) -> str:
    return str(ExprTree(text))


def test_the_spec_names_three_schedds(ldf: EnclaveSpec) -> None:
    # lsst-ldf.yaml: batch.submit_hosts lists the two lsst-dev hosts and the notebook namespace's schedd.
    assert policy.schedds(ldf) == [DEV, DEV2, NOTEBOOK_SCHEDD]


def test_the_owner_constraint_selects_exactly_the_owners_jobs() -> None:
    queued, running = owner_constraint("alice", JobState.QUEUED), owner_constraint("alice", JobState.RUNNING)
    assert str(queued) == canonical(QUEUED_TEXT.format("alice"))
    assert str(running) == canonical(RUNNING_TEXT.format("alice"))
    assert [queued.eval(job("alice", 1, s)) for s in (1, 2, 5, 7)] == [True, False, True, False]
    assert [running.eval(job("alice", 1, s)) for s in (1, 2, 5, 7)] == [False, True, False, True]
    # =?= is case-sensitive (ClassAd "is identical to"); == would match another login "Alice".
    assert queued.eval(job("Alice", 1, IDLE)) is False and queued.eval(job("alice2", 1, IDLE)) is False
    # A name is a quoted literal: quotes cannot close the string and widen the match.
    sneaky = owner_constraint('x" || true || "', JobState.QUEUED)
    assert sneaky.eval(job("alice", 1, IDLE)) is False
    assert sneaky.eval(job('x" || true || "', 1, IDLE)) is True


def test_the_verbs_are_the_bindings_job_actions() -> None:
    # htcondor2/_job_action.py: Hold = 1, Remove = 3 (condor_hold, condor_rm).
    assert {JobVerb.HOLD: htcondor2.JobAction.Hold, JobVerb.REMOVE: htcondor2.JobAction.Remove} == JOB_ACTIONS
    assert (int(htcondor2.JobAction.Hold), int(htcondor2.JobAction.Remove)) == (1, 3)


def test_departure_removes_the_persons_jobs_in_every_pool(factory: Factory, daemons: Daemons) -> None:
    done = factory.accounts.depart(BOOTSTRAP_ADMIN, "alice", reason="left the project")
    assert done.status == "departed"
    expected = [(schedd, htcondor2.JobAction.Remove, canonical(text.format("alice")))
                for schedd in (DEV, DEV2, NOTEBOOK_SCHEDD) for text in (QUEUED_TEXT, RUNNING_TEXT)]
    assert acts(daemons) == expected
    assert all(c[4] == "enclave: account alice depart: left the project" for c in daemons.calls if c[0] == "act")
    for i, schedd in enumerate((DEV, DEV2, NOTEBOOK_SCHEDD)):
        base = 100 * (i + 1)
        # Every pool's job of alice (prompt, drp, user) is gone; carol's, bob's and Alice's are untouched.
        assert owners(daemons, schedd) == [("Alice", base + 7, IDLE), ("bob", base + 6, RUNNING),
                                           ("carol", base + 4, IDLE), ("carol", base + 5, RUNNING)]
    assert done.reach is not None and done.reach.transition == Transition.DEPART
    jobs = [(o.where, o.action, o.status, o.count) for o in done.reach.outcomes if o.system == "htcondor"]
    assert jobs == [(s, a, Status.DONE, n) for s in (DEV, DEV2, NOTEBOOK_SCHEDD)
                    for a, n in (("remove queued jobs", 2), ("remove running jobs", 1))]
    with factory.db.session() as s:
        entry = query(s, action="accounts.reach")[-1]
        assert (entry.actor, entry.target, entry.reason) == (BOOTSTRAP_ADMIN, "account/alice",
                                                            "depart: left the project")
        assert {"system": "htcondor", "where": DEV, "action": "remove running jobs", "status": "done",
                "count": 1} in entry.after


def test_expiry_removes_queued_jobs_and_holds_running_ones(factory: Factory, daemons: Daemons) -> None:
    factory.accounts.expire(BOOTSTRAP_ADMIN, "carol", reason="allocation ended")
    assert acts(daemons)[:2] == [(DEV, htcondor2.JobAction.Remove, canonical(QUEUED_TEXT.format("carol"))),
                                 (DEV, htcondor2.JobAction.Hold, canonical(RUNNING_TEXT.format("carol")))]
    for i, schedd in enumerate((DEV, DEV2, NOTEBOOK_SCHEDD)):
        base = 100 * (i + 1)
        mine = [o for o in owners(daemons, schedd) if o[0] == "carol"]
        assert mine == [("carol", base + 5, HELD)]  # the idle one removed, the running one held in the queue
        # The schedd keeps enclave's reason, and subcode 0 (a defined one: sent as a plain str, the reason was
        # dropped and the subcode was the undefined reference "None").
        [held] = [ad for ad in daemons.jobs[schedd] if ad["Owner"] == "carol"]
        assert held["HoldReason"] == "enclave: account carol expire: allocation ended"
        assert held.eval("HoldReasonSubCode") == 0


def test_demotion_reaches_the_old_staff_account_only(factory: Factory, daemons: Daemons) -> None:
    new = factory.accounts.demote(BOOTSTRAP_ADMIN, "alice", new_username="alice2", reason="now an affiliate")
    assert new.username == "alice2" and new.reach is not None and new.reach.username == "alice"
    assert {c[3] for c in daemons.calls if c[0] == "act"} == {canonical(QUEUED_TEXT.format("alice")),
                                                               canonical(RUNNING_TEXT.format("alice"))}
    assert all(o[0] != "alice" for s in (DEV, DEV2, NOTEBOOK_SCHEDD) for o in owners(daemons, s))


def test_a_schedd_that_cannot_be_reached_is_reported_journaled_and_retried(factory: Factory,
                                                                            daemons: Daemons) -> None:
    down = daemons.jobs.pop(NOTEBOOK_SCHEDD)  # not advertised in the collector: it cannot be located
    done = factory.accounts.depart(BOOTSTRAP_ADMIN, "alice", reason="left")
    assert done.status == "departed"  # the transition stands
    assert done.reach is not None
    assert [(o.where, o.action) for o in done.reach.failed] == [(NOTEBOOK_SCHEDD, "remove queued jobs"),
                                                                (NOTEBOOK_SCHEDD, "remove running jobs")]
    assert "not advertised in the collector" in (done.reach.outcomes[-1].error or "")
    with factory.db.session() as s:
        entry = query(s, action="accounts.reach")[-1]
        assert [o["status"] for o in entry.after].count("failed") == 2
    daemons.jobs[NOTEBOOK_SCHEDD] = down  # back up: the retry finishes the job
    again = factory.accounts.reach(BOOTSTRAP_ADMIN, "alice", reason="notebook schedd back")
    assert again.transition == Transition.DEPART and not again.failed
    assert [o[0] for o in owners(daemons, NOTEBOOK_SCHEDD)] == ["Alice", "bob", "carol", "carol"]
    with factory.db.session() as s:
        assert len(query(s, action="accounts.reach")) == 2


def test_a_schedd_refusing_the_action_is_a_failure(factory: Factory, daemons: Daemons) -> None:
    daemons.fail = "act-denied"
    done = factory.accounts.depart(BOOTSTRAP_ADMIN, "alice", reason="left")
    assert done.reach is not None and len(done.reach.failed) == 6
    assert "permission denied" in (done.reach.failed[0].error or "")
    assert "QUEUE_SUPER_USER" in (done.reach.failed[0].error or "")  # and how to fix it


def test_reach_is_only_for_ended_accounts_and_needs_a_system(factory: Factory) -> None:
    with pytest.raises(InvalidTransition, match="is active"):
        factory.accounts.reach(BOOTSTRAP_ADMIN, "bob", reason="x")
    factory.accounts.depart(BOOTSTRAP_ADMIN, "alice", reason="left")
    bare = Factory(factory.spec, factory.db)  # no --live: nothing configured
    with pytest.raises(Conflict, match="no running system"):
        bare.accounts.reach(BOOTSTRAP_ADMIN, "alice", reason="x")
    quiet = bare.accounts.expire(BOOTSTRAP_ADMIN, "carol", reason="ended")
    assert quiet.reach is not None and {o.status for o in quiet.reach.outcomes} == {Status.NOT_CONFIGURED}
    with factory.db.session() as s:  # nothing attempted, nothing journaled for carol
        assert [e.target for e in query(s, action="accounts.reach")] == ["account/alice"]


def test_the_cli_reports_what_each_schedd_did(factory: Factory, daemons: Daemons,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENCLAVE_DB", factory.db.url)
    map_me(factory.db, BOOTSTRAP_ADMIN, by=BOOTSTRAP_ADMIN)  # local mode: the test's OS user acts as the admin
    runner = CliRunner()
    plain = runner.invoke(app, ["accounts", "expire", "carol", "--as", BOOTSTRAP_ADMIN, "--reason", "ended"])
    assert plain.exit_code == 0
    assert "note: not reached, as none is configured here: htcondor, jupyterhub, kubernetes" in plain.output
    assert "enclave accounts reach carol --live" in plain.output and not acts(daemons)
    daemons.jobs.pop(NOTEBOOK_SCHEDD)
    live = runner.invoke(app, ["accounts", "reach", "carol", "--live", "--as", BOOTSTRAP_ADMIN, "--reason", "r"])
    assert isinstance(live.exception, ExternalError), live.output  # main() exits 7: some schedd was not reached
    assert "2 step(s) did not reach their system" in str(live.exception)
    assert f"htcondor {DEV}: remove queued jobs: 1" in live.output
    assert f"htcondor {DEV}: hold running jobs: 1" in live.output
    assert "jupyterhub" in live.output  # no hub configured here: said, not hidden
    shown = json.loads(runner.invoke(app, ["journal", "show", "--as", BOOTSTRAP_ADMIN, "--action",
                                           "accounts.reach", "-o", "json"]).output)
    assert [e["target"] for e in shown] == ["account/carol"]


def test_expire_due_reaches_each_expired_account(factory: Factory, daemons: Daemons) -> None:
    ends = datetime(2099, 1, 31, tzinfo=UTC)
    factory.accounts.onboard(BOOTSTRAP_ADMIN, "dora", name="Dora", email="dora@example.org",
                             kind=AccountKind.SCIENCE, allocation=Allocation("P-1", expires=ends), reason="test")
    daemons.jobs[DEV].append(job("dora", 900, RUNNING))
    done = factory.accounts.expire_due(BOOTSTRAP_ADMIN, now=ends + timedelta(days=1))
    assert [a.username for a in done] == ["dora"]
    assert done[0].reach is not None and done[0].reach.transition == Transition.EXPIRE
    assert [o for o in owners(daemons, DEV) if o[0] == "dora"] == [("dora", 900, HELD)]
