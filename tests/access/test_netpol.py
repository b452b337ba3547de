"""The notebook namespace's NetworkPolicies, enclave's and Zero-to-JupyterHub 4.1.0's together, evaluated as the
API defines them (Kubernetes docs, network-policies, "The two sorts of pod isolation"): a pod is isolated for a
direction once any policy selects it for that direction, and a connection is allowed iff some policy selecting the
destination admits it on ingress (or none selects it for ingress) and some policy selecting the source admits it on
egress (or none selects it for egress). Policies add up, so one of enclave's that admitted the whole namespace undid
the chart's per-pod isolation: any notebook reached any other user's server and the proxy's REST API (review of
`render access`, netpol_same_ns).
"""

from __future__ import annotations

from typing import Any

import pytest

from enclave.access.render import SCHEDD_PORT, Subject, render_access
from enclave.notebooks.profiles import service_room
from enclave.spec.defaults import EXAMPLES
from enclave.spec.load import load

SPEC = load(EXAMPLES / "lsst-ldf.yaml")
NS = SPEC.notebooks.namespace
CHART = {"app": "jupyterhub", "release": "jhub"}
# Pod labels as Z2JH 4.1.0 gives them: jupyterhub.labels/componentLabel (templates/_helpers.tpl);
# singleuser.extraLabels hub.jupyter.org/network-access-hub (values.yaml); the proxy's pod template
# network-access-hub/-singleuser (templates/proxy/deployment.yaml); the hub's network-access-proxy-api/-http/-singleuser
# (templates/hub/deployment.yaml). The commons schedd is the operator's pod (docs/batch.md), labelled as they like.
PODS: dict[str, dict[str, str]] = {
    "alice": {**CHART, "component": "singleuser-server", "hub.jupyter.org/network-access-hub": "true"},
    "bob": {**CHART, "component": "singleuser-server", "hub.jupyter.org/network-access-hub": "true"},
    "proxy": {**CHART, "component": "proxy", "hub.jupyter.org/network-access-hub": "true",
              "hub.jupyter.org/network-access-singleuser": "true"},
    "hub": {**CHART, "component": "hub", "hub.jupyter.org/network-access-proxy-api": "true",
            "hub.jupyter.org/network-access-proxy-http": "true", "hub.jupyter.org/network-access-singleuser": "true"},
    "user-scheduler": {**CHART, "component": "user-scheduler"},
    "schedd": {"app": "commons-schedd"},
    "schedd-2": {"app": "commons-schedd"},
}
NAMED = {"notebook-port": 8888, "api": 8001, "http": 8000, "https": 8443}


def _ml(**kw: str) -> dict[str, Any]:
    return {"matchLabels": {**CHART, **kw}}


# The chart's hub, proxy and singleuser policies at 4.1.0's defaults (templates/{hub,proxy,singleuser}/netpol.yaml;
# allowedIngressPorts [http, https] for the proxy, none for the others), the in-namespace rules: their egressAllowRules
# admit pod addresses (privateIPs) for none of singleuser's, and the rest only outside.
CHART_POLICIES: list[dict[str, Any]] = [
    {"spec": {"podSelector": _ml(component="singleuser-server"), "policyTypes": ["Ingress", "Egress"],
              "ingress": [{"ports": [{"port": "notebook-port"}], "from": [
                  {"podSelector": {"matchLabels": {"hub.jupyter.org/network-access-singleuser": "true"}}}]}],
              "egress": [{"ports": [{"port": 8081}], "to": [{"podSelector": _ml(component="hub")}]},
                         {"ports": [{"port": 8000}], "to": [{"podSelector": _ml(component="proxy")}]},
                         {"ports": [{"port": 8080}, {"port": 8443}],
                          "to": [{"podSelector": _ml(component="autohttps")}]},
                         {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53}], "to": [{"ipBlock": {}}]}]}},
    {"spec": {"podSelector": _ml(component="proxy"), "policyTypes": ["Ingress", "Egress"],
              "ingress": [{"ports": [{"port": "http"}, {"port": "https"}]},
                          {"ports": [{"port": "http"}], "from": [{"podSelector": {"matchLabels": {
                              "hub.jupyter.org/network-access-proxy-http": "true"}}}]},
                          {"ports": [{"port": "api"}], "from": [{"podSelector": {"matchLabels": {
                              "hub.jupyter.org/network-access-proxy-api": "true"}}}]}],
              "egress": [{"ports": [{"port": 8081}], "to": [{"podSelector": _ml(component="hub")}]},
                         {"ports": [{"port": 8888}], "to": [{"podSelector": _ml(component="singleuser-server")}]}]}},
    {"spec": {"podSelector": _ml(component="hub"), "policyTypes": ["Ingress", "Egress"],
              "ingress": [{"ports": [{"port": "http"}], "from": [
                  {"podSelector": {"matchLabels": {"hub.jupyter.org/network-access-hub": "true"}}}]}],
              "egress": [{"ports": [{"port": 8001}], "to": [{"podSelector": _ml(component="proxy")}]},
                         {"ports": [{"port": 8888}], "to": [{"podSelector": _ml(component="singleuser-server")}]}]}},
]
NAMED_BY_POD = {"hub": {"http": 8081}}  # the hub's container port named http is 8081


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A LabelSelector (apimachinery metav1.LabelSelectorAsSelector): matchLabels and every matchExpression."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for e in selector.get("matchExpressions", []):
        key, op, values = e["key"], e["operator"], e.get("values", [])
        held = {"In": key in labels and labels[key] in values, "NotIn": key not in labels or labels[key] not in values,
                "Exists": key in labels, "DoesNotExist": key not in labels}[op]
        if not held:
            return False
    return True


def _port_ok(rule: dict[str, Any], port: int, dst: str) -> bool:
    named = {**NAMED, **NAMED_BY_POD.get(dst, {})}
    return not rule.get("ports") or any(named.get(p["port"], p["port"]) == port for p in rule["ports"])


def _peer_ok(rule: dict[str, Any], key: str, other: str) -> bool:
    peers = rule.get(key)
    if peers is None:
        return True
    # Every pod here has a pod address, which no ipBlock of these policies (the chart's DNS and public-address
    # rules) covers on the ports asked; a bare podSelector is the policy's own namespace, where every pod here is.
    return any("podSelector" in p and "namespaceSelector" not in p and selects(p["podSelector"], PODS[other])
               for p in peers)


def allowed(policies: list[dict[str, Any]], src: str, dst: str, port: int) -> bool:
    def side(pod: str, direction: str, key: str, other: str, dst: str) -> bool:
        chosen = [p["spec"] for p in policies if selects(p["spec"]["podSelector"], PODS[pod])
                  and direction in p["spec"].get("policyTypes", ["Ingress"])]
        return not chosen or any(_port_ok(r, port, dst) and _peer_ok(r, key, other)
                                 for s in chosen for r in s.get(direction.lower(), []))
    return side(dst, "Ingress", "from", src, dst) and side(src, "Egress", "to", dst, dst)


def enclave_policies() -> list[dict[str, Any]]:
    return [d for d in render_access(SPEC, [Subject("x", "staff", "active")], service_room(SPEC))[NS]
            if d["kind"] == "NetworkPolicy"]


REFUSED = [
    ("alice", "bob", 8888, "a notebook to another user's server"),
    ("alice", "bob", 22, "a notebook to another user's pod, any other port"),
    ("alice", "proxy", 8001, "a notebook to the proxy's REST API"),
    ("alice", "hub", 8001, "a notebook to the hub on another port than its API"),
    ("alice", "schedd", 22, "a notebook to a commons schedd off its port"),
    ("alice", "user-scheduler", 10251, "a notebook to the user-scheduler"),
    ("schedd", "bob", 8888, "the namespace's other pods to a notebook server"),
    ("schedd", "proxy", 8001, "the namespace's other pods to the proxy's REST API"),
]
ALLOWED = [
    ("proxy", "bob", 8888, "the proxy to a notebook server (every notebook request)"),
    ("hub", "bob", 8888, "the hub to a notebook server (its readiness check)"),
    ("hub", "proxy", 8001, "the hub to the proxy's REST API (routes)"),
    ("bob", "hub", 8081, "a notebook to the hub's API (its activity, its auth)"),
    ("bob", "proxy", 8000, "a notebook to the proxy's http port"),
    # docs/batch.md: notebook pods submit to a commons schedd of their namespace (render.commons_schedd).
    ("alice", "schedd", SCHEDD_PORT, "a notebook to a commons schedd"),
    ("schedd", "schedd-2", SCHEDD_PORT, "the namespace's other pods to each other"),
]


@pytest.mark.parametrize(("src", "dst", "port", "what"), REFUSED)
def test_the_union_refuses(src: str, dst: str, port: int, what: str) -> None:
    assert not allowed(CHART_POLICIES, src, dst, port), f"the chart alone admits {what}"
    assert not allowed(CHART_POLICIES + enclave_policies(), src, dst, port), what


@pytest.mark.parametrize(("src", "dst", "port", "what"), ALLOWED)
def test_the_union_allows(src: str, dst: str, port: int, what: str) -> None:
    assert allowed(CHART_POLICIES + enclave_policies(), src, dst, port), what


def test_other_namespaces_keep_their_own_pods_together() -> None:
    """No chart isolates pods there: the namespace is the bound, as before."""
    for ns, docs in render_access(SPEC, []).items():
        if ns != NS:
            [own] = [d["spec"] for d in docs if d["metadata"]["name"] == "allow-same-namespace"]
            assert own["podSelector"] == {} and own["ingress"] == [{"from": [{"podSelector": {}}]}]


def test_the_evaluator_reads_selectors_as_the_api_does() -> None:
    not_in = {"matchExpressions": [{"key": "component", "operator": "NotIn", "values": ["hub"]}]}
    assert selects(not_in, {}) and selects(not_in, {"component": "proxy"}) and not selects(not_in, {"component": "hub"})
    assert selects({}, {"a": "b"})
