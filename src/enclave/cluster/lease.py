"""Leader election among enclave replicas in the commons by a Kubernetes Lease (coordination.k8s.io/v1), the
way client-go's leader election does it (tools/leaderelection/leaderelection.go, tryAcquireOrRenew:
https://github.com/kubernetes/client-go/blob/master/tools/leaderelection/leaderelection.go): a replica may take
the Lease when nobody holds it or the holder has not renewed it for ``leaseDurationSeconds``, and it renews it
while it leads. "Not renewed for" is timed as client-go times it, on this replica's own clock from when it last
saw the record change (``observedTime``), never by comparing the holder's ``renewTime`` with this clock: two
hosts' clocks apart by more than the slack would otherwise both lead. Every write names the resourceVersion it
read, so of two replicas racing for an expired Lease the API server lets one win and answers 409 Conflict to the
other (https://kubernetes.io/docs/concepts/architecture/leases/).

The same record is kept in an annotation of a ConfigMap of the same name, as client-go's ConfigMapLock did
(tools/leaderelection/resourcelock: ``LeaderElectionRecordAnnotationKey``, the ``LeaderElectionRecord`` as JSON),
on every cluster: alone on one older than the Lease API (``objects.LEASE_API_SINCE``: the seed's 1.9), and beside
the Lease on the others, so that replicas on either side of that version share one lock (``LeaseLock``).

``held()`` is asked before every broker cycle and again before each action of a cycle
(``BrokerService.cycle(leading=...)``), so a cycle longer than the Lease keeps renewing it, and a leader that
lost it — an action that blocked past ``leaseDurationSeconds``, an API server it could not reach to renew —
applies nothing more: its successor decides afresh from what it observes. What remains is the one action under
way when the Lease ran out: it is not cut off (the Kubernetes API has no fencing token to refuse a stale
leader's write), so a single call must stay well under the Lease (three cycles of broker.cycle_seconds, at least
90 s: ``services.factory.lease_seconds``).
"""

from __future__ import annotations

import contextlib
import copy
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from enclave.cluster.kube import REQUEST_TIMEOUT, _message
from enclave.errors import ExternalError

LEADER_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"
"""client-go's resourcelock.LeaderElectionRecordAnnotationKey: where a ConfigMap lock keeps its record."""
Record = dict[str, Any]
"""A Lease's spec: holderIdentity, leaseDurationSeconds, acquireTime, renewTime, leaseTransitions."""


def _micro(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _seconds(value: Any, missing: float) -> float:
    """A record's time as Unix seconds; ``missing`` when it has none or it is not one (someone's edit)."""
    if isinstance(value, datetime):
        return value.timestamp()
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return missing


def _number(value: Any, missing: float) -> float:
    """A record's number; ``missing`` when it has none or it is not one: an edited record is read as far as it
    goes (a lease of 0 s is nobody's), not raised out of the broker's loop."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return missing


class _Unanswered(Exception):
    """A write that failed for now: no answer, or a server that could not take it (5xx, 429)."""


class _Store(Protocol):
    """Where the record lives: read it (None if there is none yet) with its resourceVersion, create it, or
    replace it at the version read (a 409 if someone wrote since); a write returns the version it made."""

    def read(self) -> tuple[Record, str] | None: ...
    def create(self, record: Record) -> str: ...
    def replace(self, record: Record, version: str) -> str: ...


def _found(api: k8s.ApiClient, read: Callable[..., Any], name: str, namespace: str) -> dict[str, Any] | None:
    """The object ``read`` gets, as the API's JSON; None if there is none yet (404)."""
    try:
        return api.sanitize_for_serialization(read(name, namespace, _request_timeout=REQUEST_TIMEOUT))  # type: ignore[no-any-return,no-untyped-call]
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


class _Object:
    """The object a store keeps its record in, as last read: a write sends it back with the record alone changed, as
    client-go's locks update the object they got (resourcelock/configmaplock.go, leaselock.go: Update), so that what
    others put there (labels, annotations, kubectl's last-applied configuration, a ConfigMap's data) stays."""

    def __init__(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        self.fresh = {"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": namespace}}
        self.last: dict[str, Any] | None = None

    def remember(self, found: dict[str, Any] | None) -> dict[str, Any] | None:
        """``found`` (a read's answer), kept for the next write, and returned."""
        self.last = found
        return found

    def body(self, version: str | None) -> dict[str, Any]:
        """The object to write: the one read (a replace at ``version``) or a new one (a create)."""
        obj: dict[str, Any] = copy.deepcopy(self.last if version is not None and self.last is not None else self.fresh)
        if version is not None:
            obj["metadata"]["resourceVersion"] = version
        return obj


def _version(written: Any) -> str:
    return str(written.metadata.resource_version)


class _LeaseStore:
    """A coordination.k8s.io/v1 Lease."""

    def __init__(self, api: k8s.ApiClient, namespace: str, name: str) -> None:
        self.coordination = k8s.CoordinationV1Api(api)
        self.api, self.namespace, self.name = api, namespace, name
        self.object = _Object("coordination.k8s.io/v1", "Lease", namespace, name)

    def read(self) -> tuple[Record, str] | None:
        read = self.coordination.read_namespaced_lease
        lease = self.object.remember(_found(self.api, read, self.name, self.namespace))
        return None if lease is None else (lease.get("spec") or {}, lease["metadata"]["resourceVersion"])

    def _body(self, record: Record, version: str | None) -> k8s.V1Lease:
        lease = k8s.V1Lease.from_dict(self.object.body(version) | {"spec": record})
        assert lease is not None  # from_dict returns None only for None
        return lease

    def create(self, record: Record) -> str:
        return _version(self.coordination.create_namespaced_lease(self.namespace, self._body(record, None),
                                                                  _request_timeout=REQUEST_TIMEOUT))

    def replace(self, record: Record, version: str) -> str:
        return _version(self.coordination.replace_namespaced_lease(self.name, self.namespace,
                                                                   self._body(record, version),
                                                                   _request_timeout=REQUEST_TIMEOUT))


class _ConfigMapStore:
    """The record in a ConfigMap's annotation, as client-go's ConfigMapLock kept it: the LeaderElectionRecord's
    JSON, whose transitions are ``leaderTransitions`` (resourcelock/interface.go)."""

    def __init__(self, api: k8s.ApiClient, namespace: str, name: str) -> None:
        self.core = k8s.CoreV1Api(api)
        self.api, self.namespace, self.name = api, namespace, name
        self.object = _Object("v1", "ConfigMap", namespace, name)

    def read(self) -> tuple[Record, str] | None:
        cm = self.object.remember(_found(self.api, self.core.read_namespaced_config_map, self.name, self.namespace))
        if cm is None:
            return None
        try:
            raw = json.loads((cm["metadata"].get("annotations") or {}).get(LEADER_ANNOTATION) or "{}")
        except ValueError:
            raw = {}  # not a record (someone's edit): nobody holds it, and the next write replaces it
        raw = raw if isinstance(raw, dict) else {}
        raw["leaseTransitions"] = raw.pop("leaderTransitions", 0)
        return raw, cm["metadata"]["resourceVersion"]

    def _body(self, record: Record, version: str | None) -> k8s.V1ConfigMap:
        saved = {**record, "leaderTransitions": record["leaseTransitions"]}
        del saved["leaseTransitions"]
        cm = self.object.body(version)
        annotations = cm["metadata"].get("annotations") or {}
        cm["metadata"]["annotations"] = annotations | {LEADER_ANNOTATION: json.dumps(saved)}
        body = k8s.V1ConfigMap.from_dict(cm)
        assert body is not None  # from_dict returns None only for None
        return body

    def create(self, record: Record) -> str:
        return _version(self.core.create_namespaced_config_map(self.namespace, self._body(record, None),
                                                               _request_timeout=REQUEST_TIMEOUT))

    def replace(self, record: Record, version: str) -> str:
        return _version(self.core.replace_namespaced_config_map(self.name, self.namespace, self._body(record, version),
                                                                _request_timeout=REQUEST_TIMEOUT))


class LeaseLock:
    def __init__(self, api: k8s.ApiClient, *, namespace: str, name: str, identity: str, duration_s: int,
                 lease_api: bool = True, clock: Callable[[], float] = time.time) -> None:
        """``lease_api``: the cluster serves coordination.k8s.io/v1 (``Cluster.serves(*LEASE_API_SINCE)``).

        The record is kept in the ConfigMap whatever the cluster, and in the Lease too where there is one, the
        ConfigMap written first: a replica leads only once it holds both. When the spec's Kubernetes crosses 1.14
        (an upgrade the ops plan takes minor by minor) the replicas of the old spec keep the record in the
        ConfigMap alone and those of the new one in the Lease: two records, two locks, and old and new would lead
        together. As one record every replica reads and writes at the version it read, the ConfigMap lets one of
        them lead, as client-go's MultiLock (resourcelock/multilock.go: ``configmapsleases``) did while clusters
        moved their locks to Leases. The Lease is also read for a holder that kept only the Lease (a replica from
        before the ConfigMap was kept on every cluster)."""
        self.stores: list[_Store] = [_ConfigMapStore(api, namespace, name)]
        if lease_api:
            self.stores.append(_LeaseStore(api, namespace, name))
        self.namespace, self.name, self.identity, self.duration_s = namespace, name, identity, duration_s
        self.clock = clock
        self._seen: list[tuple[str | None, float]] = [(None, 0.0)] * len(self.stores)
        """Per store, the resourceVersion of the record as last read (any write changes it: a renewal, a takeover)
        and when, on this replica's clock, it was first read at that version (client-go's ``observedTime``)."""

    def _record(self, now: float, *, acquired: float, transitions: int) -> Record:
        return {"holderIdentity": self.identity, "leaseDurationSeconds": self.duration_s,
                "acquireTime": _micro(acquired), "renewTime": _micro(now), "leaseTransitions": transitions}

    def held(self) -> bool:
        """Take or renew the record in every store; True while this replica holds them all."""
        try:
            found = [store.read() for store in self.stores]
        except HTTPError:
            return False  # no answer: stop leading, the others take over when it expires
        except ApiException as exc:
            return self._unreachable(exc)
        now = self.clock()  # after the reads, as client-go stamps its observedTime after its Get
        # Every store's record looked at (a list, not any() over a generator): each must be timed from when it was
        # first seen, or one seen only once the other expired would hold this replica off for a lease more.
        if any([self._held_by_another(i, record, now) for i, record in enumerate(found)]):
            return False
        return self._take_all(found, now)

    def _take_all(self, found: list[tuple[Record, str] | None], now: float) -> bool:
        """Write the record into each store in turn. When a later write is refused for good, or because another
        replica holds that store, the ones made are given up again (``_release``): a ConfigMap held by a replica
        whose Lease write fails every time (the Lease API not served yet, a webhook refusing it) would otherwise hold
        every other replica off for as long as it runs. A write that failed for now (no answer, the server busy:
        ``_Unanswered``) gives nothing up: the leader keeps what it holds and renews both on its next call."""
        written: list[tuple[_Store, Record, str]] = []
        try:
            for store, record in zip(self.stores, found, strict=True):
                taken = self._take(store, record, now, first=not written)
                if taken is None:
                    self._release(written, now)
                    return False
                written.append((store, *taken))
        except _Unanswered:
            return False
        except BaseException:
            self._release(written, now)
            raise
        return True

    def _held_by_another(self, i: int, found: tuple[Record, str] | None, now: float) -> bool:
        """Whether the record read from store ``i`` is another's, renewed within a lease of our seeing it."""
        if found is None:
            return False
        spec, version = found
        if version != self._seen[i][0]:
            self._seen[i] = (version, now)
        holder = spec.get("holderIdentity")
        return bool(holder) and holder != self.identity and \
            self._seen[i][1] + _number(spec.get("leaseDurationSeconds"), 0.0) > now

    def _take(self, store: _Store, found: tuple[Record, str] | None, now: float,
              first: bool) -> tuple[Record, str] | None:
        """Create the record in ``store``, or renew or take it over at the version read: the record and the version
        written, or None when another replica wrote first. ``first``: no other store was written before it."""
        if found is None:
            record = self._record(now, acquired=now, transitions=0)
            version = self._write(lambda: store.create(record), missing=self._missing(store, first))
        else:
            spec, read = found
            mine = spec.get("holderIdentity") == self.identity
            transitions = int(_number(spec.get("leaseTransitions"), 0.0)) + (0 if mine else 1)
            acquired = _seconds(spec.get("acquireTime"), now) if mine else now
            record = self._record(now, acquired=acquired, transitions=transitions)
            version = self._write(lambda: store.replace(record, read))
        return None if version is None else (record, version)

    def _missing(self, store: _Store, first: bool) -> str:
        """What a 404 to a create in ``store`` means: the namespace is missing, unless a store was written in it
        already — then the kind is not served."""
        if first:
            return f"namespace {self.namespace} for the leader's record {self.name} does not exist"
        return (f"the Lease API (coordination.k8s.io/v1) is not served, though the spec's kubernetes_version says it "
                f"is (it came with 1.14); the Lease {self.namespace}/{self.name} could not be made")

    def _release(self, written: list[tuple[_Store, Record, str]], now: float) -> None:
        """Give up the records just written, as client-go's ``release`` does (leaderelection.go: no holder, a
        one-second lease, the transitions kept), on a best effort: one not given up expires a lease later."""
        for store, record, version in written:
            released = {"holderIdentity": "", "leaseDurationSeconds": 1, "acquireTime": _micro(now),
                        "renewTime": _micro(now), "leaseTransitions": record["leaseTransitions"]}
            with contextlib.suppress(ApiException, HTTPError):
                store.replace(released, version)

    def _write(self, call: Callable[[], str], *, missing: str | None = None) -> str | None:
        """The version ``call`` wrote; None when another replica wrote first (409: a stale version, or a create of
        what exists). ``_Unanswered`` when no answer came or the server could not take it now (5xx, 429); an
        ``ExternalError`` for a refusal that would come again. ``missing``: what a 404 means (a create)."""
        try:
            return call()
        except HTTPError as exc:
            raise _Unanswered from exc
        except ApiException as exc:
            if exc.status == 409:
                return None
            if exc.status is None or exc.status == 429 or exc.status >= 500:
                raise _Unanswered from exc
            if exc.status == 404 and missing is not None:  # nobody could ever lead: say so (not standing by)
                raise ExternalError(f"Kubernetes API: {missing}", where="Kubernetes",
                                    fix="apply `enclave render deploy` (it makes the namespace), or set "
                                        "POD_NAMESPACE to the namespace the enclave runs in; or set the spec's "
                                        "cluster.kubernetes_version to the cluster's") from exc
            if exc.status == 422:  # refused as invalid (an immutable ConfigMap of that name): no replica ever could
                raise ExternalError(f"Kubernetes API: {self.namespace}/{self.name} refused the leader's record "
                                    f"({_message(exc)})", where="Kubernetes",
                                    fix=f"delete the ConfigMap or Lease {self.namespace}/{self.name} that refused "
                                        "it (it is the broker's lock; the broker makes it again)") from exc
            self._unreachable(exc)
            raise ExternalError(f"Kubernetes API: {self.namespace}/{self.name} refused the leader's record "
                                f"({exc.status}: {_message(exc)})", where="Kubernetes",
                                fix="see the API server's message; apply `enclave render deploy`") from exc

    def _unreachable(self, exc: ApiException) -> bool:
        if exc.status in (401, 403):
            raise ExternalError(f"Kubernetes API: the leader's record {self.namespace}/{self.name} (ConfigMap, "
                                f"Lease) is refused ({exc.status})",
                                where="Kubernetes", fix="apply the RBAC of `enclave render deploy` (the "
                                                        "ConfigMap enclave-broker; leases from Kubernetes 1.14)")
        return False  # cannot renew: stop leading, the others will take over when it expires

