"""``objects.admits`` and ``objects.tolerates``: where a pod's node selector, required node affinity and
tolerations let it run, as kube-scheduler's NodeAffinity and TaintToleration filters decide. Each case's expectation
is the rule the Kubernetes documentation and API reference state
(https://kubernetes.io/docs/concepts/scheduling-eviction/assign-pod-node/, "Node affinity"; core/v1
NodeSelectorTerm and NodeSelectorRequirement; core/v1 toleration.go ToleratesTaint), cited beside it."""

from __future__ import annotations

from typing import Any

import pytest

from enclave.cluster.objects import admits, refusing_taints, tolerates
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
    # In needs the label, with one of the values (apimachinery labels.Requirement.Matches: In is
    # ``ls.Has(key) && hasValue(ls.Get(key))``; Exists is ``ls.Has(key)``)
    (pod(terms=[{"matchExpressions": [expr("lsst.io/notebooks", "In", "small")]}]), False),
    (pod(terms=[{"matchExpressions": [expr("lsst.io/gpu", "In", "")]}]), False),
    (pod(terms=[{"matchExpressions": [expr("lsst.io/notebooks", "Exists")]}]), True),
    (pod(terms=[{"matchExpressions": [expr("lsst.io/notebooks", "NotIn", "large")]}]), False),
    (pod(terms=[{"matchExpressions": [expr("lsst.io/gpu", "NotIn", "yes")]}]), True),
    (pod(terms=[{"matchExpressions": [expr("lsst.io/gpu", "Exists")]}]), False),
    (pod(terms=[{"matchExpressions": [expr("lsst.io/gpu", "DoesNotExist")]}]), True),
    # Gt / Lt: "the value will be interpreted as an integer"
    (pod(terms=[{"matchExpressions": [expr("lsst.io/cores", "Gt", "32")]}]), True),
    (pod(terms=[{"matchExpressions": [expr("lsst.io/cores", "Lt", "32")]}]), False),
    # strictly: "greater than" / "less than" (core/v1 NodeSelectorOperator), so 48 is neither above nor below 48
    (pod(terms=[{"matchExpressions": [expr("lsst.io/cores", "Gt", "48")]}]), False),
    (pod(terms=[{"matchExpressions": [expr("lsst.io/cores", "Lt", "48")]}]), False),
    (pod(terms=[{"matchExpressions": [expr("lsst.io/cores", "Lt", "49")]}]), True),
    # Gt and Lt need the label and exactly one value ("a single element ... interpreted as an integer")
    (pod(terms=[{"matchExpressions": [expr("lsst.io/gpu", "Gt", "1")]}]), False),
    (pod(terms=[{"matchExpressions": [expr("lsst.io/cores", "Gt", "1", "2")]}]), False),
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


GPU = {"key": "lsst.io/dedicated", "value": "gpu", "effect": "NoSchedule"}


def tolerating(*tolerations: dict[str, str]) -> dict[str, Any]:
    p = pod()
    p["spec"]["tolerations"] = list(tolerations)
    return p


@pytest.mark.parametrize(("p", "taint", "expected"), [
    # k8s.io/api core/v1 toleration.go ToleratesTaint, rule by rule
    (pod(), GPU, False),  # no toleration
    (tolerating({"key": "lsst.io/dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"}), GPU, True),
    (tolerating({"key": "lsst.io/dedicated", "value": "gpu"}), GPU, True),  # operator defaults to Equal; any effect
    (tolerating({"key": "lsst.io/dedicated", "value": "cpu"}), GPU, False),  # Equal: the values differ
    (tolerating({"key": "lsst.io/dedicated", "operator": "Exists"}), GPU, True),  # Exists: any value
    (tolerating({"key": "lsst.io/other", "operator": "Exists"}), GPU, False),  # the keys differ
    (tolerating({"operator": "Exists"}), GPU, True),  # empty key with Exists: every key and value
    (tolerating({"operator": "Exists", "effect": "NoExecute"}), GPU, False),  # the effects differ
    # Lt and Gt compare numbers only behind the alpha gate TaintTolerationComparisonOperators (off by default); a
    # value that is not a number matches nothing either way
    (tolerating({"key": "lsst.io/dedicated", "operator": "Lt", "value": "gpu"}), GPU, False),
    (tolerating({"key": "lsst.io/maintenance", "operator": "Equal"}),  # empty values are equal
     {"key": "lsst.io/maintenance", "effect": "NoExecute"}, True),
    # every taint needs a toleration of its own
    (tolerating({"key": "lsst.io/dedicated", "operator": "Exists"}),
     [GPU, {"key": "lsst.io/maintenance", "effect": "NoExecute"}], False),
])
def test_tolerates(p: dict[str, Any], taint: dict[str, str] | list[dict[str, str]], expected: bool) -> None:
    assert tolerates(p, taint if isinstance(taint, list) else [taint]) is expected


def test_the_taints_that_refuse_a_pod_are_the_ones_the_scheduler_filters_on() -> None:
    """NoSchedule and NoExecute keep a pod off (kube-scheduler's TaintToleration filter); PreferNoSchedule only
    scores; the node lifecycle controller's and a cordon's taints say what the node's state says already."""
    node = node_obj("kub-003")
    node["spec"]["taints"] = [GPU, {"key": "lsst.io/maintenance", "effect": "NoExecute"},
                              {"key": "lsst.io/busy", "effect": "PreferNoSchedule"},
                              {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
                              {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"},
                              {"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"}]
    assert [t["key"] for t in refusing_taints(node)] == [
        "lsst.io/dedicated", "lsst.io/maintenance", "node.kubernetes.io/memory-pressure"]
