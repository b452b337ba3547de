"""An action the live systems fail part-way is journaled with what failed and what is in effect now.

Kubernetes has no transactions: five pods are five creates, and the API server may refuse the fourth after making
three; a drain taints, then evicts pod by pod. The broker's next cycles take the state as they find it, but the
journal must say that the attempt was made and what came of it (review: the entry was rolled back with the error,
and the three pods were nobody's)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import htcondor2
import pytest

from enclave.cluster import objects
from enclave.domain.capacity import ReturnNode
from enclave.errors import ExternalError
from enclave.journal import query, verify
from enclave.services.broker import FAILED_SUFFIX
from enclave.services.factory import Factory
from enclave.spec.defaults import EXAMPLES
from enclave.spec.load import load
from enclave.spec.models import EnclaveSpec
from tests.broker.test_conformance import World, live_world, twin_world
from tests.cluster.conftest import Refused, pod_obj


def _minimal_live() -> tuple[EnclaveSpec, World, Any]:
    """The live backend over fakes seeded with the minimal spec's twin, and its fake API server."""
    spec = load(EXAMPLES / "minimal.yaml")
    world = live_world(spec, twin_world(spec).backend.observe())
    return spec, world, world.backend.kube.api.rest_client.pool_manager  # type: ignore[attr-defined]

def test_pods_made_before_a_refusal_are_in_the_journal() -> None:
    spec, world, server = _minimal_live()
    create = server._create_pod

    def third_refused(namespace: str, *, q: dict[str, str], data: Any) -> tuple[int, Any]:
        if len(server.pods) >= 2:
            raise Refused(500, "InternalError", "etcdserver: request timed out")
        return create(namespace, q=q, data=data)  # type: ignore[no-any-return]

    server._create_pod = third_refused
    server._routes = [(v, p, third_refused if h == create else h) for v, p, h in server._routes]
    with Factory.scratch(spec) as factory:
        broker = factory.broker(world.backend, "live")
        with pytest.raises(ExternalError, match="500"):
            broker.add_pods("enclave-broker", "worker-001", "drp", reason="by hand", count=4, cores=1, memory_mib=1024)
        with factory.db.session() as s:
            (entry,) = query(s, action="broker.*")
            verify(s)
        assert entry.action == f"broker.DeployPods{FAILED_SUFFIX}" and entry.target == "node/worker-001"
        assert "500" in entry.after["failed"] and entry.after["action"]["pods"] == [
            "htcondor-worker-001-1", "htcondor-worker-001-2", "htcondor-worker-001-3", "htcondor-worker-001-4"]
        made = sorted(name for _, name in server.pods)
        assert made == ["htcondor-worker-001-1", "htcondor-worker-001-2"]
        # What is in effect now: the two pods made, as the backend observes them after the failure.
        assert set(made) <= set(entry.after["startds"]) and not set(made) & set(entry.before["startds"])
        # What failed is no move the broker counts: churn reads applied actions alone.
        assert broker.churn("admin").of(entry.after["clock"]).actions == 0


def test_a_journal_that_cannot_be_written_does_not_hide_the_action_s_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """The failed attempt's entry is best effort: when the journal cannot take it (a locked database), the error
    the caller sees is still the action's own (review: the database's replaced it)."""
    spec, world, server = _minimal_live()
    create = server._create_pod

    def second_refused(namespace: str, *, q: dict[str, str], data: Any) -> tuple[int, Any]:
        if server.pods:
            raise Refused(500, "InternalError", "etcdserver: request timed out")
        return create(namespace, q=q, data=data)  # type: ignore[no-any-return]

    server._routes = [(v, p, second_refused if h == create else h) for v, p, h in server._routes]
    import enclave.services.broker as service

    def locked(*_: object, **__: object) -> None:
        raise RuntimeError("database is locked")

    with Factory.scratch(spec) as factory:
        broker = factory.broker(world.backend, "live")
        monkeypatch.setattr(service.journal, "record", locked)
        with pytest.raises(ExternalError, match="creating pod htcondor-worker-001-2 failed \\(500"):
            broker.add_pods("enclave-broker", "worker-001", "drp", reason="by hand", count=2, cores=1,
                            memory_mib=1024)


def test_an_applied_action_is_journaled_through_a_briefly_locked_journal_and_reported_failed_if_never() -> None:
    """Review, stop 48: the entry of an action the backend had carried out was written once; a locked database
    turned the move into a "refusal" (which says nothing was touched) and the next cycle, finding it in effect,
    wrote none, so the move was never in the journal. Now the entry is tried ``JOURNAL_ATTEMPTS`` times, and an
    entry that still cannot be written makes the action a failure, with the whole entry in the log."""
    import sqlalchemy.exc

    import enclave.services.broker as service
    from enclave.errors import EnclaveError

    spec = load(EXAMPLES / "minimal.yaml")
    world = twin_world(spec)
    real = service.journal.record
    for locked_tries, journaled in ((service.JOURNAL_ATTEMPTS - 1, True), (service.JOURNAL_ATTEMPTS, False)):
        tries = {"n": 0}

        def locked_at_first(session: Any, *, _tries: dict[str, int] = tries, _locked: int = locked_tries,
                            **fields: Any) -> Any:
            _tries["n"] += 1
            if _tries["n"] <= _locked:
                raise sqlalchemy.exc.OperationalError("INSERT", {}, Exception("database is locked"))
            return real(session, **fields)

        with Factory.scratch(spec) as factory:
            broker = factory.broker(world.backend, "twin")
            service.journal.record = locked_at_first  # type: ignore[assignment]
            try:
                if journaled:
                    outcome = broker.add_pods("enclave-broker", "worker-001", "drp", reason="by hand", count=1,
                                              cores=1, memory_mib=1024)
                    assert outcome.applied and outcome.seq is not None
                else:
                    with pytest.raises(EnclaveError, match="was carried out, but its journal entry could not be "
                                                           "written"):
                        broker.add_pods("enclave-broker", "worker-002", "drp", reason="by hand", count=1, cores=1,
                                        memory_mib=1024)
            finally:
                service.journal.record = real  # type: ignore[assignment]
            with factory.db.session() as s:
                entries = [(e.action, e.target) for e in query(s, action="broker.*")]
            assert entries == ([("broker.DeployPods", "node/worker-001")] if journaled else [])


def test_part_work_before_an_adapter_bug_is_journaled_and_the_bug_still_raised() -> None:
    """Review, stop 48: only an ``EnclaveError`` from the backend had its part-work journaled (``.failed``); an
    adapter's bug (a KeyError, an unwrapped transport error) after one of three pods was made left no trace. The
    bug is raised as before, so the cycle stops as broken."""
    from dataclasses import replace

    from enclave.broker.effects import apply_one
    from enclave.domain.capacity import DeployPods
    from tests.broker.conftest import MemoryBackend

    class OnePodThenABug(MemoryBackend):
        def apply(self, action: Any) -> bool:
            if isinstance(action, DeployPods) and len(action.pods) > 1:
                self.state = apply_one(self.state, replace(action, pods=action.pods[:1]))
                raise RuntimeError("connection reset by peer")
            return super().apply(action)

    spec = load(EXAMPLES / "minimal.yaml")
    backend = OnePodThenABug(twin_world(spec).backend.observe())
    with Factory.scratch(spec) as factory:
        broker = factory.broker(backend, "memory")
        with pytest.raises(RuntimeError, match="connection reset"):
            broker.add_pods("enclave-broker", "worker-001", "drp", reason="by hand", count=3, cores=1,
                            memory_mib=1024)
        with factory.db.session() as s:
            (entry,) = query(s, action="broker.*")
        assert entry.action == f"broker.DeployPods{FAILED_SUFFIX}" and "connection reset" in entry.after["failed"]
        assert "htcondor-worker-001-1" in entry.after["startds"]


def _refuse_node_patches(server: Any, after: int) -> None:
    """Every PATCH of a node after the first ``after`` is refused with a 500 (etcd timing out)."""
    patch = server._patch_node
    calls = {"n": 0}

    def refused(name: str, *, q: dict[str, str], data: Any) -> tuple[int, Any]:
        calls["n"] += 1
        if calls["n"] > after:
            raise Refused(500, "InternalError", "etcdserver: request timed out")
        return patch(name, q=q, data=data)  # type: ignore[no-any-return]

    server._routes = [(v, p, refused if h == patch else h) for v, p, h in server._routes]


def test_a_drain_in_effect_whose_evictions_fail_is_journaled_as_done() -> None:
    """Review, stop 53: the drain taints and labels the node, then evicts; an eviction refused outright (RBAC's 403)
    raised, so the drain was journaled as failed, and never as done, since the next attempt finds it in effect. The
    drain is under way: its evictions are retried each cycle (``progress``), as after a budget's refusal."""
    spec, world, server = _minimal_live()
    server.pods[("jupyter-lsst", "nb-1")] = pod_obj("nb-1", "worker-001", labels={"app": "x"})
    server.pods[("jupyter-lsst", "nb-1")]["metadata"]["ownerReferences"] = [
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u", "controller": True}]
    server.evictions_forbidden = True
    with Factory.scratch(spec) as factory:
        broker = factory.broker(world.backend, "live")
        assert broker.drain_node("enclave-broker", "worker-001", reason="by hand").applied
        with factory.db.session() as s:
            (entry,) = query(s, action="broker.*")
        assert entry.action == "broker.DrainNode" and entry.after["nodes"]["worker-001"]["state"] == "draining"
        assert not server.evicted("jupyter-lsst", "nb-1")
        server.evictions_forbidden = False
        world.backend.progress()
        assert server.evicted("jupyter-lsst", "nb-1")
        assert broker.churn("admin").of(entry.after["clock"]).actions == 1


def test_htcondor_started_whose_node_mark_fails_is_journaled_as_done_and_the_mark_kept_later() -> None:
    """Review, stop 53: the whole-node pod is made, then the node's label and taint are refused; HTCondor runs there,
    but the start was journaled as failed and the next attempt found it in effect. ``keep_marks`` puts the mark
    right at the next cycle."""
    spec, world, server = _minimal_live()
    with Factory.scratch(spec) as factory:
        broker = factory.broker(world.backend, "live")
        assert broker.drain_node("enclave-broker", "worker-001", reason="r").applied
        world.settle()
        routes = list(server._routes)
        _refuse_node_patches(server, after=0)
        assert broker.start_htcondor("enclave-broker", "worker-001", "drp", reason="r").applied
        assert ("htcondor", "htcondor-node-worker-001") in server.pods
        with factory.db.session() as s:
            assert [e.action for e in query(s, action="broker.*")] == ["broker.DrainNode", "broker.StartHTCondor"]
        server._routes = routes
        world.backend.progress()
        assert objects.batch_label(server.nodes["worker-001"]) == "htcondor"


def test_a_drain_given_up_whose_return_fails_part_way_is_journaled() -> None:
    """Review, stop 53: ``return_node`` notes the stuck drain on the node first, then takes the broker's mark off;
    when that is refused, the node stays draining with the note, which the broker decides on (it does not drain the
    node again at once), and the failed attempt's entry was skipped as "nothing changed"."""
    spec, world, server = _minimal_live()
    with Factory.scratch(spec) as factory:
        broker = factory.broker(world.backend, "live")
        assert broker.drain_node("enclave-broker", "worker-001", reason="r").applied
        _refuse_node_patches(server, after=1)  # the note is written, the mark's patch refused
        with pytest.raises(ExternalError, match="500"):
            broker.apply(ReturnNode(actor="enclave-broker", reason="drain stuck", node="worker-001", drain_stuck=True))
        with factory.db.session() as s:
            failed = query(s, action=f"broker.ReturnNode{FAILED_SUFFIX}")
        [entry] = failed
        assert entry.before["nodes"]["worker-001"]["drain_stuck"] is None
        assert entry.after["nodes"]["worker-001"] == {**entry.before["nodes"]["worker-001"],
                                                      "drain_stuck": entry.after["nodes"]["worker-001"]["drain_stuck"]}
        assert isinstance(entry.after["nodes"]["worker-001"]["drain_stuck"], float)


def test_a_relabel_whose_reconfig_arrived_but_was_reported_failed_stands() -> None:
    """Review, stop 53: the reconfig reached the startd and its answer was lost; the knobs were set back, so the
    next reconfig anyone sent (here the drain's) moved the startd back to its old pool with no entry saying so.
    The collector showing the new pool, the relabel is done."""
    spec, world, _ = _minimal_live()
    condor: Any = world.backend.condor  # type: ignore[attr-defined]
    send = condor.bindings.send_command
    lose = {"once": True}

    def delivered_then_lost(ad: Any, command: Any, target: Any = None) -> None:
        send(ad, command, target)
        if lose.pop("once", False):
            raise htcondor2.HTCondorException("Failed to send command to daemon")

    condor.bindings = replace(condor.bindings, send_command=delivered_then_lost)
    s = min(world.backend.observe().startds, key=lambda x: x.name)
    to = "drp" if s.pool != "drp" else "user"
    with Factory.scratch(spec) as factory:
        broker = factory.broker(world.backend, "live")
        broker.move("enclave-broker", s.name, to, reason="r")
        broker.drain_startd("enclave-broker", s.name, reason="drain")
        assert next(x.pool for x in world.backend.observe().startds if x.name == s.name) == to
        with factory.db.session() as ss:
            assert [e.action for e in query(ss, action="broker.*")] == ["broker.Relabel", "broker.DrainStartd"]
