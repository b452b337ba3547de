"""The broker service carrying actions out: role checks, journal in the same transaction, idempotence, and
convergence after a crash."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
import sqlalchemy as sa

from enclave.broker.decide import decide
from enclave.broker.layout import initial_state
from enclave.db import Database
from enclave.domain.capacity import Action, DeployPods, Observed, PoolDemand, Relabel, RunningJob, StartdKind
from enclave.errors import Conflict, ExternalError, PermissionDenied
from enclave.journal import query, verify
from enclave.journal.models import JournalEntry
from enclave.services.broker import BrokerService
from enclave.spec.models import NodeRole
from tests.broker.conftest import BROKER, CONDOR_ADMIN, K8S_ADMIN, NOW, MemoryBackend, make_spec

SPEC = make_spec(workers=3, batch=10, maximum=(10, 9, 5, 5), broker={"max_moves_per_cycle": 4, "cooldown_seconds": 0})


def busy_drp() -> Observed:
    o = initial_state(SPEC, NOW - 100_000)
    return replace(o, now=NOW, demand={"drp": PoolDemand(idle_jobs=500, idle_cores=500, running_jobs=10,
                                                         running_cores=10),
                                       "prompt": PoolDemand(idle_jobs=400, idle_cores=400)})


def entries(db: Database) -> int:
    with db.session() as s:
        return int(s.execute(sa.select(sa.func.count()).select_from(JournalEntry)).scalar_one())


def test_cycle_applies_and_journals_each_action(db: Database) -> None:
    backend = MemoryBackend(busy_drp())
    report = BrokerService(SPEC, db, backend, "memory").cycle(BROKER)
    assert report.plan.actions and all(o.applied for o in report.outcomes)
    assert backend.applied == report.plan.actions
    with db.session() as s:
        assert verify(s) >= len(report.outcomes)
        got = query(s, action="broker.*")
    assert len(got) == len(report.outcomes)
    first = got[0]
    assert first.actor == BROKER and first.reason == report.plan.actions[0].reason
    assert first.before != first.after


def test_role_is_checked_and_refusal_changes_nothing(db: Database) -> None:
    backend = MemoryBackend(busy_drp())
    state = backend.state
    deploy = DeployPods(actor=CONDOR_ADMIN, reason="test", node="kub-001", pool="prompt",
                        pods=("htcondor-kub-001-1",), cores_per_pod=8, memory_mib_per_pod=8192)
    n = entries(db)
    with pytest.raises(PermissionDenied) as err:
        BrokerService(SPEC, db, backend, "memory").apply(deploy)
    assert "k8s-service-admin" in str(err.value)
    assert backend.state == state and entries(db) == n
    relabel = Relabel(actor=K8S_ADMIN, reason="test", startd="condor-001", from_pool="prompt", to_pool="drp")
    with pytest.raises(PermissionDenied):
        BrokerService(SPEC, db, backend, "memory").apply(relabel)
    assert backend.state == state and entries(db) == n
    # The right role may.
    assert BrokerService(SPEC, db, backend, "memory").apply(replace(deploy, actor=K8S_ADMIN)).applied
    assert BrokerService(SPEC, db, backend, "memory").apply(replace(relabel, actor=CONDOR_ADMIN)).applied
    assert entries(db) == n + 2


def test_applying_twice_is_a_no_op(db: Database) -> None:
    backend = MemoryBackend(busy_drp())
    a = Relabel(actor=CONDOR_ADMIN, reason="test", startd="condor-001", from_pool="prompt", to_pool="drp")
    ex = BrokerService(SPEC, db, backend, "memory")
    assert ex.apply(a).applied
    n = entries(db)
    again = ex.apply(a)
    assert not again.applied and entries(db) == n and backend.applied == [a]


def test_a_stale_action_is_refused_before_anything_is_done(db: Database) -> None:
    backend = MemoryBackend(busy_drp())
    pool = next(s.pool for s in backend.state.startds if s.name == "condor-001")
    to = "user" if pool != "user" else "general"
    stale = Relabel(actor=CONDOR_ADMIN, reason="test", startd="condor-001", from_pool=f"not-{pool}", to_pool=to)
    n = entries(db)
    # broker.transitions: a startd labelled neither from_pool nor to_pool was moved since the decision.
    with pytest.raises(Conflict, match="observe again"):
        BrokerService(SPEC, db, backend, "memory").apply(stale)
    assert backend.applied == [] and entries(db) == n


class Failing(MemoryBackend):
    def apply(self, action: Action) -> None:
        raise ExternalError("kubernetes API unreachable")


def test_a_backend_failure_that_changed_nothing_is_not_journaled(db: Database) -> None:
    """Nothing is journaled as applied, and a failure that left everything as it was leaves no entry either: it
    would repeat every cycle, an entry a minute. One that did part of its work is journaled as failed
    (``tests/broker/test_failed_actions.py``)."""
    backend = Failing(busy_drp())
    n = entries(db)
    with pytest.raises(ExternalError, match="kubernetes API unreachable"):
        BrokerService(SPEC, db, backend, "memory").apply(decide(SPEC, backend.observe(), BROKER)[0])
    assert entries(db) == n


def _run(db: Database, crash_after: int | None) -> MemoryBackend:
    """Broker cycles a minute apart; optionally the first cycle dies after ``crash_after`` actions."""
    backend = MemoryBackend(busy_drp())
    ex = BrokerService(SPEC, db, backend, "memory")
    if crash_after is not None:
        actions = decide(SPEC, backend.observe(), BROKER)
        assert len(actions) > crash_after
        for a in actions[:crash_after]:
            ex.apply(a)
        backend.tick(60)  # the broker is down for a cycle; then it restarts with no memory
    for _ in range(30):
        report = ex.cycle(BROKER)
        backend.tick(60)
        if not report.plan.actions:
            break
    assert decide(SPEC, backend.observe(), BROKER) == []
    return backend


def holdings(b: MemoryBackend) -> Counter[str]:
    c: Counter[str] = Counter()
    for s in b.state.startds:
        c[s.pool] += s.cores
    return c


def test_broker_killed_between_actions_converges_after_restart(db: Database) -> None:
    clean = _run(db, None)
    assert any(s.kind == StartdKind.POD for s in clean.state.startds), "the run should borrow pods too"
    for k in (1, 2, 3):
        crashed = _run(db, k)
        assert holdings(crashed) == holdings(clean)
        batch = [s for s in crashed.state.startds if s.kind == StartdKind.STANDALONE]
        assert sorted(s.node for s in batch) == sorted(SPEC.node_names(NodeRole.BATCH_ONLY))
    with db.session() as s:
        verify(s)


def test_bcs5_whole_nodes_lent_and_returned(db: Database) -> None:
    from enclave.domain.capacity import NodeState, ReturnNode, StartHTCondor

    spec = make_spec(workers=3, batch=10, maximum=(10, 9, 5, 5),
                     broker={"lend_mode": "nodes", "cooldown_seconds": 0, "max_moves_per_cycle": 10})
    backend = MemoryBackend(busy_drp())
    ex = BrokerService(spec, db, backend, "memory")
    for _ in range(10):
        ex.cycle(BROKER)
        backend.tick(60)
    kinds = [a.kind for a in backend.applied]
    assert "DrainNode" in kinds and "StartHTCondor" in kinds
    assert kinds.index("DrainNode") < kinds.index("StartHTCondor")
    lent = [s for s in backend.state.startds if s.kind == StartdKind.NODE]
    assert lent and all(s.pool == "prompt" for s in lent)
    states = {n.name: n.state for n in backend.state.nodes}
    assert all(states[s.node] == NodeState.HTCONDOR for s in lent)
    assert decide(spec, backend.observe(), BROKER) == []
    # Prompt's queue empties: the nodes go back to the commons (after draining their jobs).
    backend.state = replace(backend.state, demand={"drp": backend.state.demand["drp"]})
    for _ in range(10):
        ex.cycle(BROKER)
        backend.tick(60)
    assert any(isinstance(a, ReturnNode) for a in backend.applied)
    assert not [s for s in backend.state.startds if s.kind == StartdKind.NODE]
    assert all(n.state == NodeState.READY for n in backend.state.nodes if n.role == NodeRole.WORKER)
    assert any(isinstance(a, StartHTCondor) for a in backend.applied)


def test_the_journal_records_the_clock_and_the_work_an_action_evicts(db: Database) -> None:
    """A relabel that evicts at once records the work its jobs had done (``enclave.broker.victims``: cores ×
    time run, 4 cores for 500 s = 2,000 core-seconds), and every entry the backend clock it was decided at;
    ``churn`` reads both back night by night."""
    o = busy_drp()
    drp = next(s for s in o.startds if s.pool == "drp" and s.kind == StartdKind.STANDALONE)
    jobbed = replace(drp, busy_cores=4, jobs=(RunningJob(cores=4, start=NOW - 500, pool="drp"),))
    o = replace(o, startds=tuple(jobbed if s.name == drp.name else s for s in o.startds))
    service = BrokerService(SPEC, db, MemoryBackend(o), "memory")
    evict = Relabel(actor=CONDOR_ADMIN, reason="test", startd=drp.name, from_pool="drp", to_pool="user",
                    vacate_after_seconds=0)
    outcome = service.apply(evict)
    assert outcome.applied and outcome.lost_core_s == 2000.0
    with db.session() as s:
        [entry] = query(s, action="broker.Relabel")
    assert entry.after["evicts"] == {"at_stake_core_s": 2000.0, "lost_core_s": 2000.0}
    assert entry.after["clock"] == NOW
    churn = service.churn(CONDOR_ADMIN).nights()
    assert [(n.actions, n.evicted_core_hours) for n in churn] == [(1, round(2000 / 3600, 2))]


def test_the_preview_decides_with_what_the_loop_has_learned(db: Database) -> None:
    """``plan`` (``broker plan``, ``GET /broker/plan``) shows the loop's next decision: after a cycle saw prompt's
    400 waiting cores, a preview a minute later, with none waiting, still has them as its learned need (the
    window's, ``enclave.broker.window``), and previewing moves no window: the cycle after it learns the same."""
    from enclave.broker.decide import instant_need

    backend = MemoryBackend(busy_drp())
    service = BrokerService(SPEC, db, backend, "memory")
    service.cycle(BROKER)
    backend.state = replace(backend.state, demand={**backend.state.demand, "prompt": PoolDemand()})
    backend.tick(60)
    seen = instant_need(SPEC, "prompt", PoolDemand(idle_jobs=400, idle_cores=400))
    first, observed = service.plan()
    assert observed.demand["prompt"].peak_cores == seen
    again, _ = service.plan()
    assert again == first
    assert service.window.feed(backend.observe()).demand["prompt"].peak_cores == seen


def test_a_window_peek_is_what_feed_would_write_and_moves_nothing() -> None:
    from enclave.broker.window import NeedWindow

    def at(t: float, cores: int) -> Observed:
        return replace(busy_drp(), now=NOW + t, demand={"prompt": PoolDemand(idle_jobs=cores, idle_cores=cores)})

    w = NeedWindow(make_spec(broker={"need_window_seconds": 600, "need_percentile": 1}))
    w.feed(at(0, 100))
    assert w.peek(at(60, 200)).demand["prompt"].peak_cores == 200
    # Had the peek fed its 200 at 60 s, it would still be in the window at 601 s; the 100 of 0 s is out.
    assert w.feed(at(601, 10)).demand["prompt"].peak_cores == 10
