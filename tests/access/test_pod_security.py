"""The application namespaces' Pod Security labels (https://kubernetes.io/docs/concepts/security/pod-security-admission/:
the ``pod-security.kubernetes.io/enforce`` label, read from Kubernetes 1.23, beta and on by default; GA in 1.25).

``edit`` creates pods, and a pod that is privileged, or mounts the host's / as a hostPath and names the hub's node, is
root on that node: it reads the HTCondor signing key from the kubelet's copy of the hub's Secret. enclave's admission
rules check images only, so narrowing the notebook namespace to ``view`` kept nothing from a developer with ``edit``
in another application namespace (review of `render access`, node_escape). The Pod Security Standards' baseline
refuses such a pod (https://kubernetes.io/docs/concepts/security/pod-security-standards/, "Baseline": "HostPath
volumes must be forbidden", "Privileged Pods disable most security mechanisms and must be disallowed", "Sharing the
host namespaces must be disallowed").
"""

from __future__ import annotations

from typing import Any

import pytest

from enclave.access.render import (
    POD_SECURITY_ENFORCE,
    Subject,
    app_namespaces,
    namespace_pod_security,
    render_access,
)
from enclave.cluster.deploy import render_deploy
from enclave.notebooks.profiles import z2jh_values
from enclave.spec.defaults import EXAMPLES
from enclave.spec.load import load
from enclave.spec.models import EnclaveSpec, Role


def at(version: str) -> EnclaveSpec:
    spec = load(EXAMPLES / "lsst-ldf.yaml")  # 1.9.3, the LDF's
    return spec.model_copy(update={"cluster": spec.cluster.model_copy(update={"kubernetes_version": version})})


def baseline_refuses(pod: dict[str, Any]) -> list[str]:
    """What of the Pod Security Standards' baseline (the controls named above) a pod spec breaks."""
    spec = pod["spec"]
    broken = [f"hostPath {v['name']}" for v in spec.get("volumes", []) if "hostPath" in v]
    broken += [k for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k)]
    broken += [f"privileged {c['name']}" for c in spec.get("containers", [])
               if (c.get("securityContext") or {}).get("privileged")]
    return broken


def namespace_labels(spec: EnclaveSpec) -> dict[str, dict[str, str]]:
    alice = Subject("alice", "staff", "active", frozenset({Role.DEVELOPER}), frozenset(app_namespaces(spec)))
    return {ns: next(d for d in docs if d["kind"] == "Namespace")["metadata"]["labels"]
            for ns, docs in render_access(spec, [alice]).items()}


@pytest.mark.parametrize("version", ["1.9.3", "1.22.17", "1.23.0", "1.25.0", "1.29.4"])
def test_app_namespaces_enforce_baseline_the_notebook_namespace_privileged(version: str) -> None:
    """The same labels at every version: Pod Security admission reads them from 1.23, and a server before it
    ignores them, so an upgraded cluster enforces them with no new rendering. Before 1.23 nothing does, which
    docs/batch.md ("Who can read them") and docs/hardening.md say, with what the operator does instead."""
    spec = at(version)
    labels = namespace_labels(spec)
    for ns in app_namespaces(spec):
        want = "privileged" if ns == spec.notebooks.namespace else "baseline"
        assert labels[ns][POD_SECURITY_ENFORCE] == want == namespace_pod_security(spec, ns), ns
    # One rule with the HTCondor workers' namespace of `render deploy`.
    [batch_ns] = [d for d in render_deploy(spec, "")["namespace.yaml"] if d["metadata"]["name"] == "htcondor"]
    assert batch_ns["metadata"]["labels"][POD_SECURITY_ENFORCE] == "privileged"


def test_baseline_refuses_the_node_escape_and_would_refuse_notebooks() -> None:
    escape = {"spec": {"nodeName": "hub-node", "hostPID": True,
                       "containers": [{"name": "x", "image": "x", "securityContext": {"privileged": True}}],
                       "volumes": [{"name": "root", "hostPath": {"path": "/"}}]}}
    assert baseline_refuses(escape) == ["hostPath root", "hostPID", "privileged x"]
    # Every notebook pod mounts its home as a hostPath (docs/notebooks.md): baseline in the notebook namespace would
    # refuse every spawn, so it stays privileged, where no developer creates pods while the key is there.
    volumes = z2jh_values(load(EXAMPLES / "lsst-ldf.yaml"))["singleuser"]["storage"]["extraVolumes"]
    assert baseline_refuses({"spec": {"volumes": volumes}}) == ["hostPath home"]


def test_no_developer_creates_pods_where_the_namespace_is_privileged_and_the_key_is() -> None:
    spec = at("1.29.4")
    spec = spec.model_copy(update={"notebooks": spec.notebooks.model_copy(update={
        "batch_tokens": spec.notebooks.batch_tokens.model_copy(update={"enabled": True})})})
    alice = Subject("alice", "staff", "active", frozenset({Role.DEVELOPER}), frozenset(app_namespaces(spec)))
    for ns, docs in render_access(spec, [alice]).items():
        [bound] = [d for d in docs if d["kind"] == "RoleBinding"]
        if namespace_pod_security(spec, ns) == "privileged":
            assert bound["roleRef"]["kind"] == "Role", ns  # enclave-view: no pod creation
        else:
            assert bound["roleRef"]["name"] == "edit", ns
