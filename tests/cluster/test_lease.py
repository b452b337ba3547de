"""Leader election by a Kubernetes Lease (enclave.cluster.lease), against the strict API-server fake: one holder
at a time, renewal by the holder, takeover only after leaseDurationSeconds without renewal (client-go
leaderelection's tryAcquireOrRenew), timed on the reader's own clock from when it saw the Lease change
(client-go's observedTime), and a lost race answered 409 by the server's resourceVersion check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import urllib3
from kubernetes import client as k8s

from enclave.api.metrics import Metrics
from enclave.api.runner import BrokerRunner
from enclave.api.snapshot import History
from enclave.cluster.lease import LEADER_ANNOTATION, LeaseLock
from enclave.cluster.objects import LEASE_API_SINCE
from enclave.db import Database
from enclave.errors import ExternalError
from enclave.journal import query
from enclave.services.factory import Factory
from enclave.spec.defaults import default_spec_path
from enclave.spec.load import load
from tests.cluster.conftest import ApiServer

NS = "htcondor"  # any namespace the fake serves


@pytest.fixture(params=["1.25.0", "1.9.3"], ids=["lease", "configmap"])
def server(request: pytest.FixtureRequest) -> ApiServer:
    """An API server with the Lease API, and one from before it (the seed's 1.9: objects.LEASE_API_SINCE), where
    the record lives in a ConfigMap's annotation as client-go's ConfigMapLock kept it."""
    return ApiServer("1.25.0", served=request.param)


def _lock(server: ApiServer, who: str, clock: list[float]) -> LeaseLock:
    api = k8s.ApiClient(k8s.Configuration(host="https://kube.example.org:6443"))
    api.rest_client.pool_manager = server
    return LeaseLock(api, namespace=NS, name="enclave-broker", identity=who, duration_s=30,
                     lease_api=server.served >= LEASE_API_SINCE, clock=lambda: clock[0])


def _in_configmap(server: ApiServer) -> dict[str, object]:
    """The ConfigMap annotation's LeaderElectionRecord."""
    return dict(json.loads(server.configmaps[(NS, "enclave-broker")]["metadata"]["annotations"][LEADER_ANNOTATION]))


def _record(server: ApiServer) -> dict[str, object]:
    """The record as stored: the ConfigMap annotation's LeaderElectionRecord, and where the server has the Lease
    API the Lease's spec, which names the same holder (its transitions are ``leaseTransitions``, the ConfigMap's
    ``leaderTransitions``: resourcelock/interface.go)."""
    record = _in_configmap(server)
    if server.served < LEASE_API_SINCE:
        assert not server.leases
        return record
    lease = dict(server.leases[(NS, "enclave-broker")]["spec"])
    assert lease["holderIdentity"] == record["holderIdentity"]  # their transitions differ once a lock moved over
    return lease


def test_one_holder_renewal_and_takeover_after_expiry(server: ApiServer) -> None:
    now = [1_800_000_000.0]
    a, b = _lock(server, "api-a", now), _lock(server, "api-b", now)
    assert a.held()  # creates the Lease
    assert not b.held()
    now[0] += 20
    assert a.held()  # renews: renewTime moves on
    assert not b.held()  # b sees it renewed (as its loop asks every cycle)
    now[0] += 25  # 25 s after the renewal: still within the 30 s lease
    assert not b.held()
    now[0] += 10  # 35 s without renewal: expired
    assert b.held()
    record = _record(server)
    transitions = "leaseTransitions" if server.served >= LEASE_API_SINCE else "leaderTransitions"
    assert record["holderIdentity"] == "api-b" and record[transitions] == 1
    assert not a.held()  # the old leader sees it lost


def test_a_rival_whose_clock_runs_ahead_does_not_take_a_renewed_lease(server: ApiServer) -> None:
    """b's clock is 40 s ahead of a's, more than the 30 s lease: read against its own clock, a's renewTime always
    looks expired. b times the lease from when it saw it change instead (client-go's observedTime), so while a
    renews b stays out; once a stops, b takes it a lease after its last renewal was seen."""
    a_now, b_now = [1_800_000_000.0], [1_800_000_040.0]
    a, b = _lock(server, "api-a", a_now), _lock(server, "api-b", b_now)
    assert a.held()
    for _ in range(5):
        assert not b.held()
        a_now[0] += 10
        b_now[0] += 10
        assert a.held()
    assert not b.held()  # sees the last renewal
    b_now[0] += 29
    assert not b.held()
    b_now[0] += 2
    assert b.held() and not a.held()


def test_a_lost_race_is_refused_by_the_resource_version(server: ApiServer) -> None:
    now = [1_800_000_000.0]
    a, b = _lock(server, "api-a", now), _lock(server, "api-b", now)
    assert a.held()
    assert not b.held()  # b sees a's Lease
    now[0] += 60
    # b read the expired Lease, then a renewed before b wrote: b's write names a stale resourceVersion.
    real_read = b.stores[-1].read  # the last store b reads: a renews both before b writes either

    def read_then_a_renews() -> object:
        seen = real_read()
        assert a.held()
        return seen

    b.stores[-1].read = read_then_a_renews  # type: ignore[method-assign]
    puts = sum(r[0] == "PUT" for r in server.requests)
    assert not b.held()
    assert _record(server)["holderIdentity"] == "api-a"
    # a's renewals, then b's write of the ConfigMap at the version it read, refused (409): nothing more of b's
    assert sum(r[0] == "PUT" for r in server.requests) == puts + len(a.stores) + 1



class SlowTwin:
    """A twin whose actions take time on the (fake) wall clock — ``seconds[i]`` for the i-th action: a slow API
    server, a call that blocks — while a rival replica keeps trying to take the Lease, as its own loop would."""

    def __init__(self, twin: object, clock: list[float], seconds: list[float], rival: LeaseLock) -> None:
        self.twin, self.clock, self.seconds, self.rival = twin, clock, seconds, rival
        self.applied = 0
        self.rival_took_after: int | None = None

    def __getattr__(self, name: str) -> object:
        return getattr(self.twin, name)

    def apply(self, action: object) -> bool:
        if self.rival_took_after is None:
            self.rival.held()  # the rival's loop asks every few seconds: it sees each renewal as it happens
        changed: bool = self.twin.apply(action)  # type: ignore[attr-defined]
        self.clock[0] += self.seconds[min(self.applied, len(self.seconds) - 1)]
        self.applied += 1
        if self.rival_took_after is None and self.rival.held():
            self.rival_took_after = self.applied
        return changed


def _slow_runner(server: ApiServer, tmp_path: Path, seconds: list[float]) -> tuple[BrokerRunner, SlowTwin, int]:
    now = [1_800_000_000.0]
    a, b = _lock(server, "api-a", now), _lock(server, "api-b", now)  # 30 s leases
    db = Database(f"sqlite:///{tmp_path / 'e.db'}")
    db.migrate()
    factory = Factory(load(default_spec_path()), db)
    factory.ensure_accounts("admin")
    slow = SlowTwin(factory.twin_backend("one-night", at_hours=2), now, seconds, rival=b)
    broker = factory.broker(slow, "twin (slow)")  # type: ignore[arg-type]
    planned = len(broker.plan()[0].actions)
    assert a.held()
    return BrokerRunner(broker=broker, metrics=Metrics(), history=History(), simulate=False, leader=a.held), \
        slow, planned


def _journaled(runner: BrokerRunner) -> int:
    with runner.broker.db.session() as s:
        return len(query(s, action="broker.*"))


def test_a_cycle_longer_than_the_lease_keeps_it_by_renewing(server: ApiServer, tmp_path: Path) -> None:
    """20 actions × 12 s outlast a 30 s lease, but the leader renews before each action: the rival never
    takes over and the whole plan is applied."""
    runner, slow, planned = _slow_runner(server, tmp_path, [12.0])
    assert planned * 12 > 30
    runner.step()
    assert slow.rival_took_after is None
    assert runner.actions_total == slow.applied == planned == _journaled(runner)
    runner.broker.db.dispose()


def test_no_action_is_applied_after_leadership_is_lost(server: ApiServer, tmp_path: Path) -> None:
    """Issue 18: a cycle longer than the lease could overlap its successor's first cycle. Here the second
    action blocks for 40 s (longer than the 30 s lease): the rival takes the Lease meanwhile, and the old
    leader, asking before its next action, stops — nothing more applied or journaled, the cause reported."""
    runner, slow, planned = _slow_runner(server, tmp_path, [5.0, 40.0, 5.0])
    assert planned > 3
    runner.step()
    assert slow.rival_took_after == 2
    assert slow.applied == 2 == runner.actions_total == _journaled(runner)
    assert runner.last_error is not None and "leadership lost" in runner.last_error
    assert f"{planned - 2} of {planned}" in runner.last_error
    assert _record(server)["holderIdentity"] == "api-b"
    runner.broker.db.dispose()


def test_a_lease_in_a_namespace_that_does_not_exist_is_an_error_not_a_standby(server: ApiServer) -> None:
    """Nobody could ever take it: a process that stood by would wait for a leader that does not exist."""
    api = k8s.ApiClient(k8s.Configuration(host="https://kube.example.org:6443"))
    api.rest_client.pool_manager = server
    lock = LeaseLock(api, namespace="enclave-nowhere", name="enclave-broker", identity="x", duration_s=30,
                     lease_api=server.served >= LEASE_API_SINCE, clock=lambda: 1_800_000_000.0)
    with pytest.raises(ExternalError, match="namespace enclave-nowhere for the leader's record enclave-broker does "
                                            "not exist"):
        lock.held()


def test_a_configmap_record_that_is_no_record_is_taken_over() -> None:
    """Before the Lease API the record is an annotation anyone with the ConfigMap may edit: one that does not parse
    is nobody's lock (not an exception ending the broker's loop), and the first write replaces it."""
    server = ApiServer("1.25.0", served="1.9.3")
    server.configmaps[(NS, "enclave-broker")] = {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "enclave-broker", "namespace": NS, "annotations": {LEADER_ANNOTATION: "{not json"}}}
    assert _lock(server, "api-a", [1_800_000_000.0]).held()
    assert _record(server)["holderIdentity"] == "api-a"


def _replica(server: ApiServer, who: str, clock: list[float], *, lease_api: bool) -> LeaseLock:
    api = k8s.ApiClient(k8s.Configuration(host="https://kube.example.org:6443"))
    api.rest_client.pool_manager = server
    return LeaseLock(api, namespace=NS, name="enclave-broker", identity=who, duration_s=30, lease_api=lease_api,
                     clock=lambda: clock[0])


def test_replicas_on_either_side_of_1_14_share_one_lock() -> None:
    """The spec's Kubernetes goes from 1.13 to 1.14 (an upgrade planned minor by minor) while replicas roll: those
    of the old spec know no Lease, those of the new one have it. Both keep the record in the ConfigMap, so one leads
    whichever side it is on; a new one takes over only once the old leader has stopped renewing for a lease."""
    server = ApiServer("1.25.0", served="1.14.0")
    now = [1_800_000_000.0]
    old, new = _replica(server, "api-old", now, lease_api=False), _replica(server, "api-new", now, lease_api=True)
    assert old.held()
    assert not new.held()
    for _ in range(3):
        now[0] += 20
        assert old.held() and not new.held()
    now[0] += 31  # the old replica is gone: not renewed for a lease
    assert new.held()
    assert _record(server)["holderIdentity"] == "api-new"
    assert not old.held()  # were it still there (a rollback), it stands by: the ConfigMap names the new leader
    now[0] += 20
    assert new.held() and not old.held()


def test_a_lease_held_without_the_configmap_holds_a_new_replica_off() -> None:
    """A replica from before the ConfigMap was kept beside the Lease leads by the Lease alone: it is read too."""
    server = ApiServer("1.25.0", served="1.25.0")
    now = [1_800_000_000.0]
    earlier = _replica(server, "api-earlier", now, lease_api=True)
    earlier.stores = earlier.stores[1:]  # the Lease alone, as it was kept until stop 42
    assert earlier.held() and not server.configmaps
    new = _replica(server, "api-new", now, lease_api=True)
    assert not new.held()
    now[0] += 20
    assert earlier.held() and not new.held()
    now[0] += 31
    assert new.held()
    assert _record(server)["holderIdentity"] == "api-new" and server.leases[(NS, "enclave-broker")]["spec"][
        "leaseTransitions"] == 1


def test_a_replica_whose_lease_cannot_be_made_gives_the_configmap_up() -> None:
    """The spec says 1.14 or later while the API server does not serve the Lease yet (the spec bumped ahead of the
    control plane): the ConfigMap written, the Lease's create answers 404. That is an error naming the cause, and the
    ConfigMap is given up again (client-go's release: no holder, a one-second lease), so a replica of the old spec
    leads at once rather than standing by for as long as the failing one runs (review)."""
    server = ApiServer("1.25.0", served="1.13.0")
    now = [1_800_000_000.0]
    ahead, old = _replica(server, "api-ahead", now, lease_api=True), _replica(server, "api-old", now, lease_api=False)
    with pytest.raises(ExternalError, match=r"the Lease API \(coordination.k8s.io/v1\) is not served"):
        ahead.held()
    released = _in_configmap(server)
    assert released["holderIdentity"] == "" and released["leaseDurationSeconds"] == 1
    assert old.held()
    assert not ahead.held()  # the ConfigMap held by another: it stands by, writing nothing
    assert _in_configmap(server)["holderIdentity"] == "api-old"


def test_a_lease_lost_after_the_configmap_was_taken_gives_the_configmap_up() -> None:
    """A replica that keeps only the Lease renews it between this one's reads and its Lease write: the write names a
    stale version (409), and the ConfigMap just taken is given up, not left naming a replica that does not lead."""
    server = ApiServer("1.25.0", served="1.25.0")
    now = [1_800_000_000.0]
    earlier = _replica(server, "api-earlier", now, lease_api=True)
    earlier.stores = earlier.stores[1:]  # the Lease alone
    assert earlier.held()
    new = _replica(server, "api-new", now, lease_api=True)
    assert not new.held()
    now[0] += 60  # earlier stopped renewing; new sees the Lease expired...
    real_read = new.stores[1].read

    def read_then_earlier_renews() -> object:
        seen = real_read()
        assert earlier.held()  # ...but earlier renews before new writes
        return seen

    new.stores[1].read = read_then_earlier_renews  # type: ignore[method-assign]
    assert not new.held()
    assert server.leases[(NS, "enclave-broker")]["spec"]["holderIdentity"] == "api-earlier"
    assert _in_configmap(server)["holderIdentity"] == ""


def test_what_others_keep_in_the_configmap_stays() -> None:
    """A ConfigMap of that name made by someone (kubectl apply, with data and labels): the record goes into its
    annotation, and the rest is sent back as read, as client-go's ConfigMapLock updates the object it got."""
    server = ApiServer("1.25.0", served="1.25.0")
    server.configmaps[(NS, "enclave-broker")] = {
        "apiVersion": "v1", "kind": "ConfigMap", "data": {"note": "the broker's lock"},
        "metadata": {"name": "enclave-broker", "namespace": NS, "labels": {"team": "sqre"},
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}"}}}
    now = [1_800_000_000.0]
    lock = _replica(server, "api-a", now, lease_api=True)
    assert lock.held()
    now[0] += 10
    assert lock.held()
    cm = server.configmaps[(NS, "enclave-broker")]
    assert cm["data"] == {"note": "the broker's lock"} and cm["metadata"]["labels"] == {"team": "sqre"}
    assert cm["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] == "{}"
    assert _record(server)["holderIdentity"] == "api-a"


@pytest.mark.parametrize("failure", [
    urllib3.exceptions.MaxRetryError(None, "/", urllib3.exceptions.ProtocolError("reset")),  # type: ignore[arg-type]
    k8s.ApiException(status=500, reason="injected"),
    k8s.ApiException(status=503, reason="injected"),
    k8s.ApiException(status=429, reason="injected"),
], ids=["no-answer", "500", "503", "429"])
def test_a_lease_renewal_that_fails_for_now_keeps_the_configmap(failure: Exception) -> None:
    """No answer to the leader's Lease renewal, or a server that cannot take it now (a 5xx, 429 Too Many Requests):
    it does not lead this once and raises nothing, but gives nothing up, so a replica keeping the ConfigMap alone
    does not take over on its next call (review); the next call renews both."""
    server = ApiServer("1.25.0", served="1.25.0")
    now = [1_800_000_000.0]
    leader, old = _replica(server, "api-a", now, lease_api=True), _replica(server, "api-old", now, lease_api=False)
    assert leader.held() and not old.held()
    now[0] += 10
    replace = leader.stores[1].replace

    def fails(record: object, version: str) -> str:
        raise failure

    leader.stores[1].replace = fails  # type: ignore[method-assign]
    assert not leader.held()
    assert _in_configmap(server)["holderIdentity"] == "api-a"
    assert not old.held()
    leader.stores[1].replace = replace  # type: ignore[method-assign]
    assert leader.held()


def test_an_edited_record_is_read_as_far_as_it_goes() -> None:
    """The ConfigMap's record is an annotation anyone may edit (the Lease's fields the API server validates): fields
    edited into what they are not (a count that is no number, a time that is none) do not raise out of the broker's
    loop, nor leave the ConfigMap taken; a lease that is no number is nobody's."""
    server = ApiServer("1.25.0", served="1.25.0")
    now = [1_800_000_000.0]
    a = _replica(server, "api-a", now, lease_api=True)
    assert a.held()
    cm = server.configmaps[(NS, "enclave-broker")]
    cm["metadata"]["annotations"][LEADER_ANNOTATION] = json.dumps({
        "holderIdentity": "api-x", "leaseDurationSeconds": "long", "leaderTransitions": "many",
        "acquireTime": "yesterday"})
    assert a.held()  # api-x holds nothing a lease of no length keeps
    assert _record(server)["holderIdentity"] == "api-a"


def test_a_leader_whose_reads_get_no_answer_stops_leading_until_they_do(server: ApiServer) -> None:
    """No answer to the read (the API server unreachable from this replica): it cannot know it still holds the lock,
    so it does not lead — client-go's tryAcquireOrRenew returns false on a failed Get — and the others take over once
    the lease expires. When answers come again it renews what it still holds."""
    now = [1_800_000_000.0]
    a = _lock(server, "api-a", now)
    assert a.held()
    server.unanswered = True
    now[0] += 10
    assert not a.held()
    server.unanswered = False
    assert a.held() and _record(server)["holderIdentity"] == "api-a"


def test_a_holder_renewing_keeps_its_acquire_time_and_transitions(server: ApiServer) -> None:
    """client-go's tryAcquireOrRenew: the holder's own renewal keeps acquireTime and the transitions and moves
    renewTime; only a new holder changes them (the takeover test above counts the transition)."""
    now = [1_800_000_000.0]
    a = _lock(server, "api-a", now)
    assert a.held()
    first = _record(server)
    now[0] += 20
    assert a.held()
    renewed = _record(server)
    transitions = "leaseTransitions" if server.served >= LEASE_API_SINCE else "leaderTransitions"
    assert (renewed["acquireTime"], renewed[transitions]) == (first["acquireTime"], 0)
    assert renewed["renewTime"] != first["renewTime"]


@pytest.mark.parametrize("status", [401, 403])
def test_a_lock_the_api_refuses_this_replica_is_an_error_naming_the_rbac(server: ApiServer, status: int) -> None:
    """Unauthorized or Forbidden: no call will ever hold the lock, so standing by would wait for ever; the error
    names the RBAC that grants it."""
    server.fail_with = status
    with pytest.raises(ExternalError, match=f"is refused \\({status}\\)") as err:
        _lock(server, "api-a", [1_800_000_000.0]).held()
    assert "apply the RBAC of `enclave render deploy`" in err.value.problem.fix


def test_a_read_refused_for_another_reason_is_not_leading(server: ApiServer) -> None:
    """Any other refusal of the read (400 here): the replica cannot know who holds the lock, so it does not lead."""
    a = _lock(server, "api-a", [1_800_000_000.0])
    server.fail_with = 400
    assert not a.held()
    server.fail_with = None
    assert a.held()


def test_a_record_refused_as_invalid_names_the_object_to_delete() -> None:
    """422 Unprocessable (an immutable ConfigMap of the lock's name): no replica could ever write the record."""
    server = ApiServer("1.25.0", served="1.25.0")
    now = [1_800_000_000.0]
    leader = _replica(server, "api-a", now, lease_api=True)
    assert leader.held()

    def invalid(record: object, version: str) -> str:
        raise k8s.ApiException(status=422, reason="Unprocessable Entity")

    leader.stores[0].replace = invalid  # type: ignore[method-assign]
    with pytest.raises(ExternalError, match=f"{NS}/enclave-broker refused the leader's record") as err:
        leader.held()
    assert err.value.problem.fix.startswith(f"delete the ConfigMap or Lease {NS}/enclave-broker that refused it")
