"""``LiveBackend.progress`` repairs what one cycle left half done and goes on past one node's trouble: a relabel whose
pod patch failed after HTCondor's half was applied, and a node whose evictions the API server refuses every cycle.

The API server's refusals reach the adapter as the kubernetes client raises them: a non-2xx answer is raised from
``ApiException.from_response`` (.venv/lib/python3.11/site-packages/kubernetes/client/api_client.py:431-436), a 403
as ForbiddenException and a 5xx as ServiceException (kubernetes/client/exceptions.py:146-147, :158-159), both
ApiExceptions that ``KubeCluster`` reports as ``ExternalError``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from enclave.cluster import objects
from enclave.cluster.kube import KubeCluster
from enclave.cluster.live import LiveBackend, LiveWorld
from enclave.domain.capacity import Action, Relabel, Startd, StartdKind
from enclave.errors import ExternalError
from enclave.spec import EnclaveSpec
from tests.cluster.conftest import ApiServer, Refused, pod_obj
from tests.cluster.test_live import CondorSide, Slot

NOW = 1_800_000_000.0
RELABELLED_AT = NOW + 60


@dataclass
class RelabellingCondor(CondorSide):
    """HTCondor whose relabel is carried out: the startd reports the new pool and when it got it, as
    ``HTCondorBatch.relabel`` sets ENCLAVE_POOL_SINCE to int(now), published as EnclavePoolSince."""

    def apply(self, action: Action) -> None:
        super().apply(action)
        assert isinstance(action, Relabel)
        self.slots_ = [Slot(replace(s.startd, pool=action.to_pool, since=float(int(RELABELLED_AT))))
                       for s in self.slots_]


def _refuse(server: ApiServer, verb: str, handler: Callable[..., tuple[int, Any]],
            refusal: Callable[[str], Refused | None]) -> None:
    """Route ``verb`` requests of ``handler`` through ``refusal`` (by the object's name) first."""
    def refusing(namespace: str, name: str, *, q: dict[str, str], data: Any) -> tuple[int, Any]:
        if (refused := refusal(name)) is not None:
            raise refused
        return handler(namespace, name, q=q, data=data)

    server._routes = [(v, p, refusing if v == verb and h == handler else h) for v, p, h in server._routes]


def _lent_whole(kube: KubeCluster, spec: EnclaveSpec) -> tuple[LiveBackend, RelabellingCondor]:
    kube.drain("kub-007")
    kube.start_htcondor("kub-007", "drp")  # its pod labelled drp, since NOW
    condor = RelabellingCondor([Slot(Startd("kub-007.example.org", "kub-007", StartdKind.NODE, "drp", 48, 262144,
                                            since=NOW))], {})
    return LiveBackend(spec, kube, condor, clock=lambda: RELABELLED_AT), condor


def _pool_of(server: ApiServer) -> tuple[str, str]:
    meta = server.pods[("htcondor", objects.node_pod_name("kub-007"))]["metadata"]
    return meta["labels"][objects.POOL_LABEL], meta["annotations"][objects.SINCE_ANNOTATION]


def test_a_relabel_whose_pod_patch_failed_is_finished_by_the_next_progress(spec: EnclaveSpec, kube: KubeCluster,
                                                                           server: ApiServer,
                                                                           caplog: pytest.LogCaptureFixture) -> None:
    live, _ = _lent_whole(kube, spec)
    once = [Refused(503, "ServiceUnavailable", "etcdserver: request timed out")]
    _refuse(server, "PATCH", server._patch_pod, lambda name: once.pop() if once else None)
    relabel = Relabel(actor="t", reason="t", startd="kub-007.example.org", from_pool="drp", to_pool="user")
    with caplog.at_level(logging.WARNING):
        assert live.apply(relabel)  # the move is made: HTCondor serves user (review: raised, it was never journaled)
    assert "relabel applied in HTCondor, pod label left for progress" in caplog.text
    assert any("etcdserver: request timed out" in str(vars(r)) for r in caplog.records)  # the server's words
    assert _pool_of(server) == ("drp", f"{NOW:.0f}")
    assert not live.apply(relabel)  # HTCondor's half is done: nothing more to ask
    assert live.progress() == 0
    # Labelled with the startd's pool and since: a restarted startd comes back as the relabel left it.
    assert _pool_of(server) == ("user", f"{RELABELLED_AT:.0f}")
    assert LiveWorld(live.view()).node_pools == {"kub-007": "user"}


def test_progress_leaves_a_pod_the_collector_has_not_caught_up_with(spec: EnclaveSpec, kube: KubeCluster,
                                                                    server: ApiServer) -> None:
    """Just after a relabel the collector may list the startd's old ad (its update comes later): the pod, relabelled
    after HTCondor, is newer than that ad and is not set back."""
    live, condor = _lent_whole(kube, spec)
    kube.label_pod_pool(objects.node_pod_name("kub-007"), "user", since=RELABELLED_AT)
    assert condor.slots_[0].startd.pool == "drp"
    live.progress()
    assert _pool_of(server) == ("user", f"{RELABELLED_AT:.0f}")


def test_one_node_whose_evictions_are_refused_holds_back_no_other(spec: EnclaveSpec, kube: KubeCluster,
                                                                 server: ApiServer) -> None:
    live = LiveBackend(spec, kube, CondorSide([], {}), clock=lambda: NOW)
    server.pods[("jupyter-lsst", "p1")] = pod_obj("p1", "kub-001")
    server.pods[("jupyter-lsst", "p2")] = pod_obj("p2", "kub-002")
    server.pdb_blocked = {"p1", "p2"}
    assert (kube.drain("kub-001"), kube.drain("kub-002")) == (1, 1)
    kube.drain("kub-006")
    kube.start_htcondor("kub-006", "drp")
    del server.pods[("htcondor", objects.node_pod_name("kub-006"))]  # lost: to be given back
    server.pdb_blocked = set()
    webhook = Refused(403, "Forbidden", 'admission webhook "policy.example.org" denied the request: p1 is protected',
                      {"name": "p1", "kind": "pods"})
    _refuse(server, "POST", server._evict, lambda name: webhook if name == "p1" else None)
    with pytest.raises(ExternalError, match=r"evicting on kub-001: .*p1 is protected") as raised:
        live.progress()
    assert "kub-002" not in str(raised.value)
    assert server.evicted("jupyter-lsst", "p2") and not server.evicted("jupyter-lsst", "p1")
    assert objects.BATCH_LABEL not in server.nodes["kub-006"]["metadata"]["labels"]  # finish_returns ran
