"""Leader election by a Kubernetes Lease (enclave.cluster.lease), against the strict API-server fake: one holder
at a time, renewal by the holder, takeover only after leaseDurationSeconds without renewal (client-go
leaderelection's tryAcquireOrRenew), and a lost race answered 409 by the server's resourceVersion check."""

from __future__ import annotations

from kubernetes import client as k8s

from enclave.cluster.lease import LeaseLock
from tests.cluster.conftest import ApiServer

NS = "htcondor"  # any namespace the fake serves


def _lock(server: ApiServer, who: str, clock: list[float]) -> LeaseLock:
    api = k8s.ApiClient(k8s.Configuration(host="https://kube.example.org:6443"))
    api.rest_client.pool_manager = server
    return LeaseLock(api, namespace=NS, name="enclave-broker", identity=who, duration_s=30, clock=lambda: clock[0])


def test_one_holder_renewal_and_takeover_after_expiry(server: ApiServer) -> None:
    now = [1_800_000_000.0]
    a, b = _lock(server, "api-a", now), _lock(server, "api-b", now)
    assert a.held()  # creates the Lease
    assert not b.held()
    now[0] += 20
    assert a.held()  # renews: renewTime moves on
    now[0] += 25  # 25 s after the renewal: still within the 30 s lease
    assert not b.held()
    now[0] += 10  # 35 s without renewal: expired
    assert b.held()
    lease = server.leases[(NS, "enclave-broker")]["spec"]
    assert lease["holderIdentity"] == "api-b" and lease["leaseTransitions"] == 1
    assert not a.held()  # the old leader sees it lost


def test_a_lost_race_is_refused_by_the_resource_version(server: ApiServer) -> None:
    now = [1_800_000_000.0]
    a, b = _lock(server, "api-a", now), _lock(server, "api-b", now)
    assert a.held()
    now[0] += 60
    # b read the expired Lease, then a renewed before b wrote: b's write names a stale resourceVersion.
    real_read = b.coordination.read_namespaced_lease

    def read_then_a_renews(name: str, namespace: str) -> object:
        seen = real_read(name, namespace)
        assert a.held()
        return seen

    b.coordination.read_namespaced_lease = read_then_a_renews  # type: ignore[method-assign]
    assert not b.held()
    assert server.leases[(NS, "enclave-broker")]["spec"]["holderIdentity"] == "api-a"
