"""``objects.admits``: where a pod's node selector and required node affinity let it run, as kube-scheduler's
NodeAffinity filter decides. Each case's expectation is the rule the Kubernetes documentation and API reference
state (https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/, "Node affinity"; core/v1
NodeSelectorTerm and NodeSelectorRequirement), cited beside it."""

from __future__ import annotations

from typing import Any

import pytest

from enclave.cluster.objects import admits
from tests.cluster.conftest import node_obj

NODE = node_obj("kub-003", labels={"lsst.io/notebooks": "large", "lsst.io/cores": "48"})


def pod(selector: dict[str, str] | None = None, terms: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"containers": [{"name": "notebook", "image": "x"}]}
    if selector is not None:
        spec["nodeSelector"] = selector
    if terms is not None:
        spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": terms}}}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "nb"}, "spec": spec}


def expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    return {"key": key, "operator": operator, **({"values": list(values)} if values else {})}


@pytest.mark.parametrize(("p", "expected"), [
    (pod(), True),  # neither: any node
    # nodeSelector: "the node must have each of the indicated labels"
    (pod({"lsst.io/notebooks": "large"}), True),
    (pod({"lsst.io/notebooks": "large", "lsst.io/gpu": "yes"}), False),
    (pod({"lsst.io/notebooks": "small"}), False),
    # In / NotIn / Exists / DoesNotExist; NotIn and DoesNotExist also match a node without the label
    (pod(terms=[{"matchExpressions": [expr("lsst.io/notebooks", "In", "small", "large")]}]), True),
    (pod(terms=[{"matchExpressions": [expr("lsst.io/notebooks", "NotIn", "large")]}]), False),
    (pod(terms=[{"matchExpressions": [expr("lsst.io/gpu", "NotIn", "yes")]}]), True),
    (pod(terms=[{"matchExpressions": [expr("lsst.io/gpu", "Exists")]}]), False),
    (pod(terms=[{"matchExpressions": [expr("lsst.io/gpu", "DoesNotExist")]}]), True),
    # Gt / Lt: "the value will be interpreted as an integer"
    (pod(terms=[{"matchExpressions": [expr("lsst.io/cores", "Gt", "32")]}]), True),
    (pod(terms=[{"matchExpressions": [expr("lsst.io/cores", "Lt", "32")]}]), False),
    (pod(terms=[{"matchExpressions": [expr("lsst.io/notebooks", "Gt", "1")]}]), False),  # not an integer
    # "The requirements of a term are ANDed"; "The terms are ORed"
    (pod(terms=[{"matchExpressions": [expr("lsst.io/notebooks", "In", "large"), expr("lsst.io/gpu", "Exists")]}]),
     False),
    (pod(terms=[{"matchExpressions": [expr("lsst.io/gpu", "Exists")]},
                {"matchExpressions": [expr("lsst.io/notebooks", "In", "large")]}]), True),
    # "A null or empty node selector term matches no objects"
    (pod(terms=[{}]), False),
    (pod(terms=[]), False),
    # matchFields: by the node's name (metadata.name)
    (pod(terms=[{"matchFields": [expr("metadata.name", "In", "kub-003")]}]), True),
    (pod(terms=[{"matchFields": [expr("metadata.name", "NotIn", "kub-003")]}]), False),
    # both set: "both ... must be satisfied for the pod to be scheduled onto a node"
    (pod({"lsst.io/notebooks": "small"}, [{"matchExpressions": [expr("lsst.io/notebooks", "Exists")]}]), False),
])
def test_admits(p: dict[str, Any], expected: bool) -> None:
    assert admits(p, NODE) is expected
