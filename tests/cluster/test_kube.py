"""The live Kubernetes adapter, tested at the official client's HTTP boundary."""

from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from kubernetes import client as k8s

from enclave.batch import render
from enclave.cluster import objects
from enclave.cluster.kube import NOTEBOOK_SELECTOR, KubeCluster, startds_of
from enclave.domain.capacity import NodeState, PendingSpawn, StartdKind
from enclave.errors import Conflict, ExternalError, InvalidTransition, NotFound
from enclave.spec import EnclaveSpec, load
from enclave.spec.defaults import EXAMPLES
from tests.cluster.conftest import (
    SINGLEUSER,
    ApiServer,
    Refused,
    container_env,
    downward_files,
    expired,
    node_obj,
    pod_obj,
    schema_version,
    unschedulable_pod,
)


def test_nodes_report_state_and_requests_of_other_pods(kube: KubeCluster, server: ApiServer) -> None:
    server.pods[("jupyter-lsst", "nb-alice")] = pod_obj("nb-alice", "kub-001", cpu="1500m", memory="4Gi")
    server.pods[("jupyter-lsst", "nb-bob")] = pod_obj("nb-bob", "kub-001", cpu="500m", memory="1Gi")
    server.pods[("jupyter-lsst", "done")] = pod_obj("done", "kub-001", cpu="8", phase="Succeeded")
    # Terminating: the scheduler counts it until the API server has removed it (kubernetes/kubernetes#96515).
    server.pods[("jupyter-lsst", "nb-carl")] = pod_obj("nb-carl", "kub-001", cpu="1", memory="1Gi", deleting=True)
    server.pods[("htcondor", "htcondor-kub-001-1")] = pod_obj(
        "htcondor-kub-001-1", "kub-001", namespace="htcondor", cpu="8",
        labels={objects.APP_LABEL: objects.WORKER_APP, objects.POOL_LABEL: "prompt"})
    server.nodes["kub-002"] = node_obj("kub-002", ready=False)
    server.nodes["kub-003"] = node_obj("kub-003", unschedulable=True)
    server.nodes["kub-004"] = node_obj("kub-004", labels={objects.BATCH_LABEL: "htcondor"}, unschedulable=True)
    # NoExecute evicts what does not tolerate it, pods bound by nodeName too (taint-based evictions,
    # https://kubernetes.io/docs/concepts/scheduling-eviction/taint-and-toleration/); NoSchedule leaves them be.
    server.nodes["kub-005"]["spec"]["taints"] = [{"key": "lsst.io/repair", "effect": "NoExecute"}]
    server.nodes["kub-006"] = node_obj("kub-006")
    server.nodes["kub-006"]["spec"]["taints"] = [{"key": "lsst.io/dedicated", "value": "gpu", "effect": "NoSchedule"}]
    # The same taint on a worker lent whole or draining: its HTCondor pod tolerates only NoSchedule taints (the
    # broker's, a cordon's: objects.worker_pod), so the taint evicts it as it does the others.
    server.nodes["kub-007"] = node_obj("kub-007", labels={objects.BATCH_LABEL: "htcondor"}, unschedulable=True)
    server.nodes["kub-008"] = node_obj("kub-008", labels={objects.BATCH_LABEL: "draining"}, unschedulable=True)
    for name in ("kub-007", "kub-008"):
        server.nodes[name]["spec"]["taints"] = [{"key": "lsst.io/repair", "effect": "NoExecute"}]
    nodes = {n.name: n for n in kube.nodes()}
    assert "stranger-1" not in nodes and "kub-master-001" in nodes and not any(n.startswith("condor") for n in nodes)
    assert nodes["kub-001"].k8s_cores_requested == pytest.approx(3.0)  # worker pods and finished pods excluded
    assert nodes["kub-001"].k8s_memory_requested_mib == 6 * 1024
    assert nodes["kub-001"].state == NodeState.READY and nodes["kub-001"].cores == 48
    assert nodes["kub-002"].state == NodeState.DOWN
    assert nodes["kub-003"].state == NodeState.DOWN  # cordoned by someone else
    assert nodes["kub-004"].state == NodeState.HTCONDOR
    assert nodes["kub-005"].state == NodeState.DOWN  # being emptied: worker pods sent there would be evicted
    assert nodes["kub-006"].state == NodeState.READY
    assert nodes["kub-007"].state == nodes["kub-008"].state == NodeState.DOWN


def _c(cpu: str, *, sidecar: bool = False) -> dict[str, object]:
    c: dict[str, object] = {"name": "c", "resources": {"requests": {"cpu": cpu, "memory": cpu + "Gi"}}}
    if sidecar:
        c["restartPolicy"] = "Always"
    return c


@pytest.mark.parametrize(("spec", "cores", "gib"), [
    # A plain init container runs alone before the containers: the larger of the two counts.
    ({"containers": [_c("2")], "initContainers": [_c("8")]}, "8", "8"),
    # KEP 753's sidecar rule (k8s.io/component-helpers resource/helpers.go, aggregateContainerResourcesByFn): the
    # sidecar (restartPolicy Always) runs beside the containers, 4 + 2; init2 runs beside it, 3 + 2 — so 6.
    ({"containers": [_c("4")], "initContainers": [_c("1"), _c("2", sidecar=True), _c("3")]}, "6", "6"),
    # A RuntimeClass's overhead is added (PodRequests: "Add overhead for running a pod").
    ({"containers": [_c("2")], "initContainers": [_c("1", sidecar=True)],
      "overhead": {"cpu": "250m", "memory": "512Mi"}}, "3.25", "3.5"),
    # Pod-level requests (PodLevelResources) replace the containers' sum for what they name.
    ({"containers": [_c("2"), _c("1")], "resources": {"requests": {"cpu": "5"}}}, "5", "3"),
])
def test_a_pods_requests_are_counted_as_the_scheduler_counts_them(spec: dict[str, object], cores: str,
                                                                   gib: str) -> None:
    assert objects.pod_requests({"spec": spec}) == (Decimal(cores), Decimal(gib) * 2**30)


def test_nodes_report_the_requests_a_drain_leaves(kube: KubeCluster, server: ApiServer) -> None:
    """A worker drained for HTCondor keeps its DaemonSet pods and static pods: kubectl drain passes over both
    (kubectl pkg/drain/filters.go, daemonSetFilter and mirrorPodFilter), so the broker must not wait for their
    requests to go before it starts HTCondor there."""
    server.nodes["kub-005"] = node_obj("kub-005", labels={objects.BATCH_LABEL: "draining"}, unschedulable=True)
    server.pods[("kube-system", "weave-abc")] = pod_obj("weave-abc", "kub-005", namespace="kube-system",
                                                        cpu="250m", daemonset=True)
    static = pod_obj("kube-proxy-kub-005", "kub-005", namespace="kube-system", cpu="100m")
    static["metadata"]["annotations"] = {"kubernetes.io/config.mirror": "abc123"}
    server.pods[("kube-system", "kube-proxy-kub-005")] = static
    server.pods[("jupyter-lsst", "nb-carol")] = pod_obj("nb-carol", "kub-005", cpu="1")  # evicted by the drain
    node = {n.name: n for n in kube.nodes()}["kub-005"]
    assert node.state == NodeState.DRAINING
    assert node.k8s_cores_requested == pytest.approx(1.35)
    assert node.k8s_cores_daemons == pytest.approx(0.35)
    del server.pods[("jupyter-lsst", "nb-carol")]  # evicted: drained, with the other two still there
    node = {n.name: n for n in kube.nodes()}["kub-005"]
    assert node.k8s_cores_requested == pytest.approx(node.k8s_cores_daemons) == pytest.approx(0.35)


def test_nodes_report_what_the_scheduler_may_allocate(kube: KubeCluster, server: ApiServer) -> None:
    # 48 cores and 256 GiB of hardware, less kube-reserved, system-reserved and the eviction threshold.
    server.nodes["kub-001"] = node_obj("kub-001", allocatable={"cpu": "47900m", "memory": "262043860Ki",
                                                                "pods": "110"})
    server.nodes["kub-002"] = node_obj("kub-002", allocatable={"cpu": "46"})  # memory not reported
    server.nodes["kub-master-001"] = node_obj("kub-master-001", allocatable={"cpu": "8", "memory": "31Gi"})
    nodes = {n.name: n for n in kube.nodes()}
    assert (nodes["kub-001"].cores, nodes["kub-001"].memory_mib) == (47, 255902)  # rounded down
    assert (nodes["kub-002"].cores, nodes["kub-002"].memory_mib) == (46, 262144)  # the spec's memory
    assert (nodes["kub-003"].cores, nodes["kub-003"].memory_mib) == (48, 262144)  # nothing reported: the spec's
    assert (nodes["kub-master-001"].cores, nodes["kub-master-001"].memory_mib) == (8, 31 * 1024)


def test_deploy_pods_is_idempotent_and_valid(kube: KubeCluster, server: ApiServer, spec: EnclaveSpec) -> None:
    names = ("htcondor-kub-001-1", "htcondor-kub-001-2")
    kube.deploy_pods("kub-001", "prompt", names, 8, 32768)
    kube.deploy_pods("kub-001", "prompt", names, 8, 32768)  # 409s are success
    assert {k[1] for k in server.pods} == set(names)
    posts = [r for r in server.requests if r[0] == "POST"]
    assert len(posts) == 4
    for _, path, body in posts:
        assert path == "/api/v1/namespaces/htcondor/pods"
        kubernetes_validate.validate(body, schema_version(spec), strict=True)
    body = posts[0][2]
    res = body["spec"]["containers"][0]["resources"]
    assert res["requests"] == res["limits"] == {"cpu": "8", "memory": "32768Mi"}
    assert body["spec"]["nodeName"] == "kub-001"
    env = container_env(body)
    assert env["ENCLAVE_POOL"] == "prompt" and env["ENCLAVE_POD_CPUS"] == "8"
    assert env["ENCLAVE_POD_SINCE"] == "1800000000"  # the adapter's clock when it created the pod
    # The image's own names for the share, which its start.sh writes into 01-env.conf (htcondor/htcondor
    # build/docker/services/base/start.sh; README: NUM_CPUS and MEMORY "to advertise").
    assert (env["NUM_CPUS"], env["MEMORY"]) == ("8", "32768")
    pods = kube.worker_pods()
    # Created now: a startd not reported yet is within the broker's cooldown, as once it publishes EnclavePoolSince.
    assert [(p.name, p.pool, p.kind, p.cores, p.memory_mib, p.since) for p in pods] == [
        (n, "prompt", StartdKind.POD, 8, 32768, 1_800_000_000.0) for n in names]
    assert {s.since for s in startds_of(pods)} == {1_800_000_000.0}


def test_a_relabelled_pod_restarts_in_its_new_pool(kube: KubeCluster, server: ApiServer) -> None:
    """A relabel sets the startd's pool at run time, which "is lost on restarts" (htcondor/htcondor
    src/condor_daemon_core.V6/README.config, DC_CONFIG_RUNTIME). The pod's startd reads its pool and since from
    the pod's label and annotation (the downward API, as its container starts), which the relabel patches: when
    its container restarts (its worker's reboot) it comes back where the broker moved it, not where it was made."""
    kube.deploy_pods("kub-001", "user", ("htcondor-kub-001-1",), 8, 32768)
    kube.clock = lambda: 1_800_000_600.0
    kube.label_pod_pool("htcondor-kub-001-1", "drp")
    pod = server.pods[("htcondor", "htcondor-kub-001-1")]
    env = container_env(pod)
    assert (env["ENCLAVE_POOL"], env["ENCLAVE_POD_SINCE"]) == ("drp", "1800000600")
    [listed] = kube.worker_pods()
    assert (listed.pool, listed.since) == ("drp", 1_800_000_600.0)


@pytest.mark.parametrize("whole", [False, True])
def test_a_startd_its_master_restarts_serves_the_pool_it_was_moved_to(kube: KubeCluster, server: ApiServer,
                                                                     tmp_path: Path, whole: bool) -> None:
    """In a container that keeps running, the environment is the one it started with ("user"), and the relabel's
    runtime setting is gone once the master restarts a crashed startd. The startd reads its pool the broker set last
    from the pod's annotation instead (a downward-API file the kubelet keeps up to date: kubernetes' conformance
    test "Downward API volume should update annotations on modification"), with what follows from it: the published
    pool and the schedds that may claim it (``ENCLAVE_SCHEDDS_drp``)."""
    if whole:
        kube.drain("kub-001")
        kube.start_htcondor("kub-001", "user")
        name = objects.node_pod_name("kub-001")
    else:
        name = "htcondor-kub-001-1"
        kube.deploy_pods("kub-001", "user", (name,), 8, 32768)
    started = copy.deepcopy(server.pods[("htcondor", name)])
    kube.clock = lambda: 1_800_000_600.0
    kube.label_pod_pool(name, "drp")
    [cm] = [m for m in objects.worker_config_maps(kube.spec) if m["metadata"]["name"] == objects.config_map_name(whole)]
    text = cm["data"][objects.CONFIG_FILE]
    knobs = [render.POOL_KNOB, render.SINCE_KNOB, kube.spec.batch.pool_attribute, "ALLOW_DAEMON", "ENCLAVE_SCHEDDS_drp"]
    env = {k: v for k, v in container_env(started).items() if v is not None}

    def restarted(pod: dict[str, Any], where: Path) -> dict[str, str | None]:
        mounted_at = downward_files(pod, where / "pod-info")
        assert mounted_at in text
        config = where / objects.CONFIG_FILE
        config.write_text(text.replace(mounted_at, str(where / "pod-info")))
        return render.read_back(config, knobs, subsystem="STARTD", env=env)

    (tmp_path / "before").mkdir()
    before = restarted(started, tmp_path / "before")  # as made: its own pool, from the file as from the environment
    assert (before[render.POOL_KNOB], before[render.SINCE_KNOB]) == ("user", "1800000000")
    (tmp_path / "after").mkdir()
    got = restarted(server.pods[("htcondor", name)], tmp_path / "after")
    assert (got[render.POOL_KNOB], got[render.SINCE_KNOB], got[kube.spec.batch.pool_attribute]) == (
        "drp", "1800000600", '"drp"')
    assert (got["ENCLAVE_SCHEDDS_drp"] or "?") in (got["ALLOW_DAEMON"] or "")


def test_delete_pods_tolerates_missing(kube: KubeCluster, server: ApiServer) -> None:
    kube.deploy_pods("kub-002", "drp", ("htcondor-kub-002-1",), 8, 8192)
    kube.delete_pods(("htcondor-kub-002-1", "htcondor-kub-002-9"))
    assert not kube.worker_pods()  # marked for deletion: no longer the broker's
    server.kubelet_stops()
    assert not server.pods


def _notebooks_and_a_daemonset_on_kub_005(server: ApiServer) -> None:
    """Two notebooks on kub-005, nb-bob's eviction refused by a disruption budget for now; a DaemonSet pod there
    (a drain leaves it) and a pod on kub-006 (no drain touches it)."""
    server.pods[("jupyter-lsst", "nb-alice")] = pod_obj("nb-alice", "kub-005")
    server.pods[("jupyter-lsst", "nb-bob")] = pod_obj("nb-bob", "kub-005")
    server.pods[("kube-system", "weave-net-x")] = pod_obj("weave-net-x", "kub-005", namespace="kube-system",
                                                          daemonset=True)
    server.pods[("firefly", "ff")] = pod_obj("ff", "kub-006")
    server.pdb_blocked.add("nb-bob")


def test_drain_taints_and_evicts_through_the_eviction_api(kube: KubeCluster, server: ApiServer) -> None:
    _notebooks_and_a_daemonset_on_kub_005(server)
    left = kube.drain("kub-005")
    assert left == 1
    node = server.nodes["kub-005"]
    # The broker's own taint keeps new pods off, not a cordon: the cordon stays free for an administrator's.
    assert objects.broker_taint(node) == {"key": objects.BATCH_LABEL, "value": "draining", "effect": "NoSchedule"}
    assert "unschedulable" not in node["spec"]
    assert node["metadata"]["labels"][objects.BATCH_LABEL] == "draining"
    assert node["metadata"]["annotations"][objects.SINCE_ANNOTATION] == "1800000000"
    evictions = [r for r in server.requests if r[1].endswith("/eviction")]
    assert {r[1] for r in evictions} == {"/api/v1/namespaces/jupyter-lsst/pods/nb-alice/eviction",
                                         "/api/v1/namespaces/jupyter-lsst/pods/nb-bob/eviction"}
    first = evictions[0][2]
    assert first["kind"] == "Eviction" and first["apiVersion"] == "policy/v1beta1"
    assert first["metadata"]["name"] in ("nb-alice", "nb-bob")
    assert ("kube-system", "weave-net-x") in server.pods and ("firefly", "ff") in server.pods
    assert {n.name: n for n in kube.nodes()}["kub-005"].state == NodeState.DRAINING
    server.pdb_blocked.clear()
    assert kube.evict("kub-005") == 0
    assert server.evicted("jupyter-lsst", "nb-bob")


def test_a_drain_is_left_until_its_evicted_pods_are_gone(kube: KubeCluster, server: ApiServer) -> None:
    """kubectl drain waits, after its evictions, until each evicted pod is not found (pkg/drain/drain.go,
    waitForDelete); the API server keeps an evicted pod, marked for deletion, until the kubelet has stopped it.
    So a drain has left what a budget refused and what still terminates; not the DaemonSet pod it leaves."""
    _notebooks_and_a_daemonset_on_kub_005(server)
    assert kube.drain("kub-005") == 1  # nb-bob refused for now
    assert kube.drain_left("kub-005") == 2  # nb-bob, and nb-alice terminating
    server.kubelet_stops()
    assert kube.drain_left("kub-005") == 1
    server.pdb_blocked.clear()
    assert kube.evict("kub-005") == 0
    assert kube.drain_left("kub-005") == 1  # evicted: nothing left to evict, but still terminating
    server.kubelet_stops()
    assert kube.drain_left("kub-005") == 0 and ("kube-system", "weave-net-x") in server.pods


def test_a_whole_worker_offers_what_its_node_has_left(spec: EnclaveSpec, server: ApiServer) -> None:
    """Drained, a worker keeps its DaemonSet pods (kubectl's daemonSetFilter), and the scheduler may allocate
    only its allocatable (capacity less kube-reserved, system-reserved and the eviction threshold). The whole-node
    HTCondor pod requests what is left, in whole cores and MiB, and its startd offers that (NUM_CPUS and MEMORY in
    its environment): 47.9 − 0.35 cores, 250 GiB − 512 MiB."""
    server.nodes["kub-005"] = node_obj("kub-005", allocatable={"cpu": "47900m", "memory": "250Gi", "pods": "110"})
    server.pods[("kube-system", "weave-abc")] = pod_obj("weave-abc", "kub-005", namespace="kube-system",
                                                        cpu="350m", memory="512Mi", daemonset=True)
    kube = _kubectl_defaults(spec, server, ignore_daemonsets=True)
    kube.drain("kub-005")
    kube.start_htcondor("kub-005", "drp")
    pod = server.pods[("htcondor", "htcondor-node-kub-005")]
    [container] = pod["spec"]["containers"]
    cores, mib = 47, 250 * 1024 - 512
    assert container["resources"] == {"requests": {"cpu": str(cores), "memory": f"{mib}Mi"}}  # Burstable
    env = container_env(pod)
    assert (env["NUM_CPUS"], env["MEMORY"], env["ENCLAVE_POD_CPUS"]) == (str(cores), str(mib), str(cores))
    [listed] = kube.worker_pods()
    assert (listed.kind, listed.cores, listed.memory_mib) == (StartdKind.NODE, cores, mib)


def test_a_worker_with_no_core_left_is_not_lent_whole(spec: EnclaveSpec, server: ApiServer) -> None:
    """A pod offering 0 cores would be a startd no job fits: refused, and nothing made."""
    server.nodes["kub-005"] = node_obj("kub-005", allocatable={"cpu": "1", "memory": "250Gi", "pods": "110"})
    server.pods[("kube-system", "weave-abc")] = pod_obj("weave-abc", "kub-005", namespace="kube-system",
                                                        cpu="500m", daemonset=True)
    kube = _kubectl_defaults(spec, server, ignore_daemonsets=True)
    kube.drain("kub-005")
    with pytest.raises(InvalidTransition, match="node kub-005 has no room left for HTCondor"):
        kube.start_htcondor("kub-005", "drp")
    assert ("htcondor", "htcondor-node-kub-005") not in server.pods


def test_start_htcondor_needs_a_drained_node_then_returns_it(kube: KubeCluster, server: ApiServer,
                                                             spec: EnclaveSpec) -> None:
    with pytest.raises(InvalidTransition, match="drain it before"):
        kube.start_htcondor("kub-007", "prompt")
    assert not server.pods
    kube.drain("kub-007")
    kube.start_htcondor("kub-007", "prompt")
    kube.start_htcondor("kub-007", "prompt")  # again: no-op
    pod = server.pods[("htcondor", "htcondor-node-kub-007")]
    kubernetes_validate.validate(pod | {"status": {}}, schema_version(spec), strict=True)
    assert pod["spec"]["hostNetwork"] is True and pod["metadata"]["labels"][objects.KIND_LABEL] == "node"
    # On the host's network a pod resolves through the node's resolver unless it says otherwise: a central manager
    # named as a Service would not resolve (kubernetes.io/docs/concepts/services-networking/dns-pod-service/).
    assert pod["spec"]["dnsPolicy"] == "ClusterFirstWithHostNet"
    assert {n.name: n for n in kube.nodes()}["kub-007"].state == NodeState.HTCONDOR
    assert objects.broker_taint(server.nodes["kub-007"])["value"] == "htcondor"  # type: ignore[index]
    # Bound by nodeName it passes no scheduler; it tolerates the node's taints all the same, a cordon's too.
    assert objects.tolerates(pod, server.nodes["kub-007"]["spec"]["taints"] + [
        {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}])
    [wp] = kube.worker_pods()
    assert (wp.kind, wp.cores, wp.pool, wp.since) == (StartdKind.NODE, 48, "prompt", 1_800_000_000.0)
    kube.return_node("kub-007")
    # Its jobs retire while the kubelet stops the pod (terminationGracePeriodSeconds): the node stays tainted and
    # labelled for HTCondor until the pod is gone, so Kubernetes places nothing on cores the jobs still use.
    node = server.nodes["kub-007"]
    assert objects.broker_taint(node) and node["metadata"]["labels"][objects.BATCH_LABEL] == "htcondor"
    assert not kube.worker_pods() and kube.finish_returns(kube.nodes()) == []
    server.kubelet_stops()
    assert kube.finish_returns(kube.nodes()) == ["kub-007"]
    node = server.nodes["kub-007"]
    assert "unschedulable" not in node["spec"] and objects.BATCH_LABEL not in node["metadata"]["labels"]
    assert "taints" not in node["spec"]
    assert not server.pods
    assert {n.name: n for n in kube.nodes()}["kub-007"].state == NodeState.READY
    kube.return_node("kub-007")  # again: no-op
    # A worker whose node pod went without a return (evicted while the node was NotReady) goes back too.
    kube.drain("kub-008")
    kube.start_htcondor("kub-008", "drp")
    del server.pods[("htcondor", "htcondor-node-kub-008")]
    assert kube.finish_returns(kube.nodes()) == ["kub-008"]


def _lent_whole(kube: KubeCluster, node: str) -> None:
    kube.drain(node)
    kube.start_htcondor(node, "drp")


def test_an_administrators_drain_of_a_worker_lent_whole_stays_theirs(kube: KubeCluster, server: ApiServer) -> None:
    """``kubectl drain --force`` of a worker the broker lent whole: kubectl cordons it (spec.unschedulable; the node
    lifecycle controller then adds the cordon's taint, k8s.io/api core/v1 well_known_taints.go) and evicts its
    HTCondor pod. The broker gives the node back, as for any lost node pod, and takes off only its own label and
    taint: the cordon is the administrator's, and the node stays down for the broker until they uncordon it."""
    _lent_whole(kube, "kub-007")
    node = server.nodes["kub-007"]
    node["spec"]["unschedulable"] = True
    node["spec"]["taints"].append({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"})
    del server.pods[("htcondor", "htcondor-node-kub-007")]
    assert kube.finish_returns(kube.nodes()) == ["kub-007"]
    node = server.nodes["kub-007"]
    assert node["spec"]["unschedulable"] is True and objects.BATCH_LABEL not in node["metadata"]["labels"]
    assert node["spec"]["taints"] == [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]
    assert {n.name: n for n in kube.nodes()}["kub-007"].state == NodeState.DOWN
    assert kube.finish_returns(kube.nodes()) == []


def test_giving_a_node_back_keeps_the_taints_of_others(kube: KubeCluster, server: ApiServer) -> None:
    """A node's taints are one list the API replaces whole (core/v1 NodeSpec.Taints, listType=atomic): the
    broker's patch carries the others as they are."""
    gpu = {"key": "lsst.io/dedicated", "value": "gpu", "effect": "NoSchedule"}
    server.nodes["kub-006"]["spec"]["taints"] = [gpu]
    _lent_whole(kube, "kub-006")
    assert server.nodes["kub-006"]["spec"]["taints"] == [
        gpu, {"key": objects.BATCH_LABEL, "value": "htcondor", "effect": "NoSchedule"}]
    kube.return_node("kub-006")
    server.kubelet_stops()
    assert kube.finish_returns(kube.nodes()) == ["kub-006"]
    assert server.nodes["kub-006"]["spec"]["taints"] == [gpu]


def test_a_taint_added_while_the_broker_marks_a_node_is_kept(kube: KubeCluster, server: ApiServer,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The node lifecycle controller taints a node that stops answering between the broker's read and its patch: the
    patch names the version it was made from, the API server refuses it as stale (409), and the broker makes it
    again from a fresh read (client-go retry.RetryOnConflict), so the controller's taint is not undone."""
    unreachable = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}
    read = server._read_node  # what the server's PATCH reads the node it applies the patch to with
    raced = []

    def controller_first(name: str, **kw: Any) -> Any:
        if not raced:
            raced.append(name)
            node = server.nodes[name]
            server._update(node, {**node, "spec": {**node["spec"], "taints": [unreachable]}}, None)
        return read(name, **kw)

    monkeypatch.setattr(server, "_read_node", controller_first)
    kube.drain("kub-006")
    assert raced == ["kub-006"]
    assert server.nodes["kub-006"]["spec"]["taints"] == [
        unreachable, {"key": objects.BATCH_LABEL, "value": "draining", "effect": "NoSchedule"}]


def test_a_node_that_changes_at_every_try_is_a_conflict(kube: KubeCluster, server: ApiServer,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    read = server._read_node

    def always_raced(name: str, **kw: Any) -> Any:
        node = server.nodes[name]
        server._update(node, copy.deepcopy(node), None)  # a new resourceVersion each time
        return read(name, **kw)

    monkeypatch.setattr(server, "_read_node", always_raced)
    with pytest.raises(Conflict, match="kub-006 changed while the broker patched it"):
        kube.drain("kub-006")
    assert objects.BATCH_LABEL not in server.nodes["kub-006"]["metadata"].get("labels", {})
    assert sum(r[0] == "PATCH" for r in server.requests) == 5  # client-go's DefaultRetry steps


def test_a_node_the_broker_cordoned_before_its_taint_is_uncordoned_when_given_back(kube: KubeCluster,
                                                                                   server: ApiServer) -> None:
    """A worker lent whole by an earlier broker, which cordoned it (labelled for HTCondor, unschedulable, no broker
    taint): the cordon is the broker's own, and goes when the node is given back."""
    server.nodes["kub-004"] = node_obj("kub-004", labels={objects.BATCH_LABEL: "htcondor"}, unschedulable=True)
    assert kube.finish_returns(kube.nodes()) == ["kub-004"]
    assert "unschedulable" not in server.nodes["kub-004"]["spec"]
    assert {n.name: n for n in kube.nodes()}["kub-004"].state == NodeState.READY


def test_a_node_an_earlier_broker_was_draining_is_held_by_the_taint_once_marked_again(kube: KubeCluster,
                                                                                      server: ApiServer) -> None:
    """A worker an earlier broker cordoned to drain it (labelled, unschedulable, no taint): when HTCondor starts there,
    the taint takes the cordon's place, so that giving the node back later leaves it schedulable (review: the cordon
    stayed for good, the node then down for the broker and closed to Kubernetes)."""
    server.nodes["kub-006"] = node_obj("kub-006", labels={objects.BATCH_LABEL: "draining"}, unschedulable=True)
    kube.start_htcondor("kub-006", "drp")
    node = server.nodes["kub-006"]
    assert "unschedulable" not in node["spec"] and objects.broker_taint(node)["value"] == "htcondor"  # type: ignore[index]
    kube.return_node("kub-006")
    server.kubelet_stops()
    assert kube.finish_returns(kube.nodes()) == ["kub-006"]
    assert {n.name: n for n in kube.nodes()}["kub-006"].state == NodeState.READY


def test_htcondor_does_not_start_on_a_node_someone_cordoned_while_it_drained(kube: KubeCluster,
                                                                            server: ApiServer) -> None:
    """The broker drains by its taint; a cordon on the node is an administrator's maintenance (`kubectl cordon`
    patches spec.unschedulable alone: kubectl pkg/drain/cordon.go), and no HTCondor pod goes there."""
    kube.drain("kub-006")
    server.nodes["kub-006"]["spec"]["unschedulable"] = True
    with pytest.raises(Conflict, match="kub-006 was cordoned by someone else while the broker drained it"):
        kube.start_htcondor("kub-006", "drp")
    assert not kube.worker_pods()
    # Down for the broker, which gives it back: its label and taint off, their cordon kept (review: it stayed
    # draining, and the broker asked to start HTCondor there every cycle).
    assert {n.name: n for n in kube.nodes()}["kub-006"].state == NodeState.DOWN
    assert kube.keep_marks(kube.node_items()) == ["kub-006"]
    node = server.nodes["kub-006"]
    assert node["spec"]["unschedulable"] is True and objects.BATCH_LABEL not in node["metadata"]["labels"]
    assert "taints" not in node["spec"]


def test_marks_out_of_step_are_put_back(kube: KubeCluster, server: ApiServer) -> None:
    """A start whose mark failed (the node pod made, the node still labelled draining) is marked for HTCondor; a node
    labelled for batch whose broker taint went (`kubectl taint` patches without a resourceVersion:
    kubectl pkg/cmd/taint/taint.go) gets it back; nodes in step are not patched."""
    kube.drain("kub-006")
    kube.start_htcondor("kub-006", "drp")
    server.nodes["kub-006"]["metadata"]["labels"][objects.BATCH_LABEL] = "draining"  # as if the mark had failed
    server.nodes["kub-006"]["spec"]["taints"] = [{"key": objects.BATCH_LABEL, "value": "draining",
                                                  "effect": "NoSchedule"}]
    _lent_whole(kube, "kub-007")
    gpu = {"key": "lsst.io/dedicated", "value": "gpu", "effect": "NoSchedule"}
    server.nodes["kub-007"]["spec"]["taints"] = [gpu]  # someone's kubectl taint replaced the list
    kube.drain("kub-008")  # in step: no patch
    for name in ("kub-006", "kub-007"):  # marked an hour before the kube's clock (1,800,000,000)
        server.nodes[name]["metadata"]["annotations"][objects.SINCE_ANNOTATION] = "1799996400"
    patches = sum(r[0] == "PATCH" for r in server.requests)
    assert kube.keep_marks(kube.node_items()) == ["kub-006", "kub-007"]
    assert sum(r[0] == "PATCH" for r in server.requests) == patches + 2
    assert server.nodes["kub-006"]["metadata"]["labels"][objects.BATCH_LABEL] == "htcondor"
    assert objects.broker_taint(server.nodes["kub-006"])["value"] == "htcondor"  # type: ignore[index]
    # kub-006's state changed (draining to HTCondor): its since with it; kub-007's taint alone came back: its since,
    # which the broker's cooldowns count from, stays.
    since = {n: server.nodes[n]["metadata"]["annotations"][objects.SINCE_ANNOTATION] for n in ("kub-006", "kub-007")}
    assert since == {"kub-006": "1800000000", "kub-007": "1799996400"}
    assert server.nodes["kub-007"]["spec"]["taints"] == [
        gpu, {"key": objects.BATCH_LABEL, "value": "htcondor", "effect": "NoSchedule"}]
    assert kube.keep_marks(kube.node_items()) == []
    # The node lifecycle controller appends its taint after the broker's: where the others stand is theirs, and no
    # patch follows (a repair for their order would patch the node every cycle).
    server.nodes["kub-007"]["spec"]["taints"].append({"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"})
    assert kube.keep_marks(kube.node_items()) == []
    # A listing whose node changed before the repair (someone gave it back by hand): the repair is not made.
    listed = kube.node_items()
    server.nodes["kub-007"]["spec"]["taints"] = [gpu]
    server.nodes["kub-007"]["metadata"]["labels"].pop(objects.BATCH_LABEL)
    assert kube.keep_marks(listed) == [] and server.nodes["kub-007"]["spec"]["taints"] == [gpu]


def test_returning_a_draining_node_whose_start_was_not_marked_ends_as_any_return(kube: KubeCluster,
                                                                                server: ApiServer) -> None:
    """The node pod made, the node still labelled draining (the mark failed): giving it back labels it for HTCondor
    while the pod's jobs retire, and ``finish_returns`` ends the return once the pod is gone (review: the node was
    left draining, and lent again)."""
    kube.drain("kub-006")
    kube.start_htcondor("kub-006", "drp")
    server.nodes["kub-006"]["metadata"]["labels"][objects.BATCH_LABEL] = "draining"
    kube.return_node("kub-006")
    assert server.nodes["kub-006"]["metadata"]["labels"][objects.BATCH_LABEL] == "htcondor"
    assert kube.keep_marks(kube.node_items()) == []  # the terminating pod is no start to mark
    server.kubelet_stops()
    assert kube.finish_returns(kube.nodes()) == ["kub-006"]
    assert {n.name: n for n in kube.nodes()}["kub-006"].state == NodeState.READY


def test_the_brokers_taint_alone_says_the_node_is_the_brokers() -> None:
    """Label and taint go on and off in one patch; a node someone took the label off by hand is still the broker's,
    and giving it back takes the taint off too."""
    node = node_obj("kub-004")
    node["spec"]["taints"] = [{"key": objects.BATCH_LABEL, "value": "htcondor", "effect": "NoSchedule"}]
    assert objects.node_state(node) == NodeState.HTCONDOR
    node["spec"]["taints"][0]["value"] = "draining"
    assert objects.node_state(node) == NodeState.DRAINING


def test_refuses_nodes_that_are_not_workers(kube: KubeCluster, server: ApiServer) -> None:
    for node in ("kub-master-001", "condor-001"):
        with pytest.raises(InvalidTransition, match="not a Kubernetes worker"):
            kube.drain(node)
    with pytest.raises(NotFound, match="'kub-999' is no node of this enclave"):  # kub has 40 nodes
        kube.drain("kub-999")
    assert not [r for r in server.requests if r[0] != "GET"]


def test_missing_node_and_api_failures_are_typed(kube: KubeCluster, server: ApiServer) -> None:
    del server.nodes["kub-003"]
    with pytest.raises(NotFound, match="kub-003"):
        kube.drain("kub-003")
    server.fail_with = 403
    with pytest.raises(ExternalError, match="403"):
        kube.nodes()
    with pytest.raises(ExternalError, match="RBAC"):
        kube.deploy_pods("kub-001", "prompt", ("htcondor-kub-001-1",), 8, 8192)


@pytest.mark.parametrize("call", [
    lambda k: k.deploy_pods("kub-001", "prompt", ("htcondor-kub-001-1",), 8, 8192),
    lambda k: k.delete_pods(("htcondor-kub-001-1",)),
    lambda k: k.drain("kub-001"),
    lambda k: k.drain_left("kub-001"),
    lambda k: k.start_htcondor("kub-001", "prompt"),
    lambda k: k.return_node("kub-001"),
    lambda k: k.label_pod_pool("htcondor-kub-001-1", "drp"),
    lambda k: k.pending_notebooks(),
])
def test_an_api_server_that_does_not_answer_is_an_external_error(kube: KubeCluster, server: ApiServer,
                                                                 call: Any) -> None:
    """urllib3 gives up (connection refused or reset, retries spent) on a write as on a listing: the adapter reports
    it as the ExternalError every caller handles, not a bare urllib3 error that ended the broker's cycle, answered a
    bare 500 and printed a traceback (review)."""
    server.unanswered = True
    with pytest.raises(ExternalError, match="the API server did not answer"):
        call(kube)


def test_every_call_gives_the_api_server_a_time_to_answer(kube: KubeCluster, server: ApiServer) -> None:
    """A server that accepts the connection and never answers would hold the broker's cycle, and its lock, for
    ever (review): each call carries a connect and a read timeout, the read one kube-apiserver's own request limit
    (--request-timeout, 1m0s by default)."""
    kube.deploy_pods("kub-001", "prompt", ("htcondor-kub-001-1",), 8, 8192)
    kube.label_pod_pool("htcondor-kub-001-1", "drp")
    kube.nodes()
    kube.pending_notebooks()
    kube.drain("kub-002")
    kube.drain_left("kub-002")
    kube.delete_pods(("htcondor-kub-001-1",))
    assert len(server.timeouts) >= 8
    assert all(t is not None and (t.connect_timeout, t.read_timeout) == (10.0, 60.0) for t in server.timeouts)


def test_a_pod_of_the_same_name_still_terminating_is_no_deployment(kube: KubeCluster, server: ApiServer) -> None:
    """Create answers 409 AlreadyExists while a pod of that name is being deleted (the API server keeps it until its
    kubelet has stopped it): the pod that goes is not the one asked for, so it is a Conflict, not "in effect"
    (review: it was journaled as deployed, and nothing ran once the old pod went). A live one of that name is."""
    kube.deploy_pods("kub-001", "prompt", ("htcondor-kub-001-1",), 8, 8192)
    kube.deploy_pods("kub-001", "prompt", ("htcondor-kub-001-1",), 8, 8192)  # there already: in effect
    kube.delete_pods(("htcondor-kub-001-1",))
    assert server.pods[("htcondor", "htcondor-kub-001-1")]["metadata"].get("deletionTimestamp")
    with pytest.raises(Conflict, match="htcondor-kub-001-1 is still terminating"):
        kube.deploy_pods("kub-001", "prompt", ("htcondor-kub-001-1",), 8, 8192)


def test_pending_notebooks_are_the_spawns_that_found_no_room(kube: KubeCluster, server: ApiServer) -> None:
    nb = "jupyter-lsst"
    server.pods[(nb, "nb-carol")] = unschedulable_pod("nb-carol", cpu="2500m", memory="8Gi")
    server.pods[(nb, "nb-dave")] = unschedulable_pod("nb-dave", cpu="1", memory="1536Mi")
    server.pods[(nb, "nb-alice")] = pod_obj("nb-alice", "kub-001")  # running
    server.pods[(nb, "nb-bound")] = pod_obj(  # scheduled, still pulling its image
        "nb-bound", "kub-002", phase="Pending", conditions=[{"type": "PodScheduled", "status": "True"}])
    server.pods[("firefly", "ff")] = unschedulable_pod("ff", namespace="firefly")
    server.pods[(nb, "nb-gone")] = unschedulable_pod("nb-gone", deleting=True)
    server.pods[(nb, "nb-new")] = pod_obj("nb-new", "", phase="Pending", labels=SINGLEUSER,
                                          conditions=[])  # not tried yet
    server.pods[(nb, "nb-gated")] = pod_obj("nb-gated", "", phase="Pending", labels=SINGLEUSER, conditions=[
        {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}])
    assert kube.pending_notebooks() == [PendingSpawn(cpu=2.5, memory_mib=8192), PendingSpawn(cpu=1.0, memory_mib=1536)]
    # The nodes are listed for the workers the spawns may go to (``test_a_pinned_spawn_is_told_with...``).
    assert server.requests == [("GET", "/api/v1/namespaces/jupyter-lsst/pods", None), ("GET", "/api/v1/nodes", None)]
    assert server.queries[0] == {"fieldSelector": "status.phase=Pending",
                                 "labelSelector": "component=singleuser-server"}


def test_pending_notebooks_leave_out_placeholders_and_pods_room_would_not_place(kube: KubeCluster,
                                                                                server: ApiServer) -> None:
    nb = "jupyter-lsst"
    server.pods[(nb, "user-placeholder-0")] = unschedulable_pod(  # Z2JH keeps these pending on purpose
        "user-placeholder-0", cpu="2", labels={"app": "jupyterhub", "component": "user-placeholder"})
    server.pods[(nb, "hook-image-puller")] = unschedulable_pod("hook-image-puller", labels={})
    server.pods[(nb, "nb-affinity")] = unschedulable_pod(
        "nb-affinity", message="0/60 nodes are available: 60 node(s) didn't match Pod's node affinity/selector.")
    server.pods[(nb, "nb-taint")] = unschedulable_pod(
        "nb-taint", message="0/60 nodes are available: 60 node(s) had untolerated taint {lsst.io/batch: }.")
    server.pods[(nb, "nb-gpu")] = unschedulable_pod(
        "nb-gpu", message="0/60 nodes are available: 60 Insufficient nvidia.com/gpu.")
    server.pods[(nb, "nb-memory")] = unschedulable_pod(
        "nb-memory", cpu="2", memory="6Gi",
        message="0/20 nodes are available: 3 Insufficient cpu, 17 Insufficient memory.")
    server.pods[(nb, "nb-mixed")] = unschedulable_pod(  # short of memory on some nodes: room would place it
        "nb-mixed", cpu="1", memory="1Gi", message="0/60 nodes are available: 2 Insufficient memory, "
        "58 node(s) didn't match Pod's node affinity/selector. preemption: 0/60 nodes are available.")
    assert kube.pending_notebooks() == [PendingSpawn(cpu=2.0, memory_mib=6144), PendingSpawn(cpu=1.0, memory_mib=1024)]


def test_a_pinned_spawn_is_told_with_the_workers_its_selector_admits(kube: KubeCluster, server: ApiServer) -> None:
    """A spawn short of memory on the 2 workers its profile's selector admits, the other workers not matching: room
    freed elsewhere would not place it, so it comes with the workers that would (``PendingSpawn.nodes``). The nodes
    are listed once for all the spawns, and not at all when none waits."""
    nb = "jupyter-lsst"
    for name in ("kub-003", "kub-004"):
        server.nodes[name]["metadata"]["labels"]["lsst.io/notebooks"] = "large"
    mixed = "0/60 nodes are available: 2 Insufficient memory, 58 node(s) didn't match Pod's node affinity/selector."
    assert kube.pending_notebooks() == []
    assert not any(path == "/api/v1/nodes" for _, path, _ in server.requests)
    server.pods[(nb, "nb-plain")] = unschedulable_pod("nb-plain")
    assert kube.pending_notebooks() == [PendingSpawn(cpu=1.0, memory_mib=2048)]
    server.requests.clear()
    server.pods[(nb, "nb-pinned")] = unschedulable_pod("nb-pinned", cpu="4", memory="16Gi", message=mixed)
    server.pods[(nb, "nb-pinned")]["spec"]["nodeSelector"] = {"lsst.io/notebooks": "large"}
    server.pods[(nb, "nb-affine")] = unschedulable_pod("nb-affine", cpu="2", memory="8Gi", message=mixed)
    server.pods[(nb, "nb-affine")]["spec"]["affinity"] = {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{
            "matchExpressions": [{"key": "lsst.io/notebooks", "operator": "In", "values": ["large"]}],
            "matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["kub-004"]}]}]}}}
    assert sorted(kube.pending_notebooks(), key=lambda sp: sp.cpu) == [
        PendingSpawn(cpu=1.0, memory_mib=2048),
        PendingSpawn(cpu=2.0, memory_mib=8192, nodes=frozenset({"kub-003"})),
        PendingSpawn(cpu=4.0, memory_mib=16384, nodes=frozenset({"kub-003", "kub-004"}))]
    assert sum(path == "/api/v1/nodes" for _, path, _ in server.requests) == 1


def test_a_spawn_a_taint_keeps_off_some_workers_is_told_with_the_others(kube: KubeCluster, server: ApiServer) -> None:
    """kube-scheduler's TaintToleration filter keeps a pod off a node with a NoSchedule or NoExecute taint it does
    not tolerate (https://kubernetes.io/docs/concepts/scheduling-eviction/taint-and-toleration/): room freed there
    would not place it, so it comes with the workers that would. A taint that mirrors what the node's state says
    already (a cordon's ``node.kubernetes.io/unschedulable``, k8s.io/api core/v1 well_known_taints.go), a
    PreferNoSchedule one (it only scores), or one on a node that is not ready, pins nobody."""
    nb = "jupyter-lsst"
    workers = sorted(n for n in server.nodes if n.startswith("kub-") and not n.startswith("kub-master"))
    server.nodes["kub-001"]["spec"]["taints"] = [{"key": "lsst.io/dedicated", "value": "gpu", "effect": "NoSchedule"}]
    server.nodes["kub-002"]["spec"]["taints"] = [{"key": "lsst.io/maintenance", "effect": "NoSchedule"}]
    server.nodes["kub-005"]["spec"]["taints"] = [{"key": "lsst.io/busy", "effect": "PreferNoSchedule"}]
    server.nodes["kub-006"] = node_obj("kub-006", unschedulable=True)
    server.nodes["kub-006"]["spec"]["taints"] = [{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]
    server.nodes["kub-007"] = node_obj("kub-007", ready=False)
    server.nodes["kub-007"]["spec"]["taints"] = [{"key": "lsst.io/dedicated", "value": "gpu", "effect": "NoSchedule"}]
    short = "0/60 nodes are available: 58 Insufficient cpu, 2 node(s) had untolerated taint {lsst.io/dedicated: gpu}."
    server.pods[(nb, "nb-plain")] = unschedulable_pod("nb-plain", cpu="3", message=short)
    server.pods[(nb, "nb-gpu")] = unschedulable_pod("nb-gpu", cpu="4", message=short)
    server.pods[(nb, "nb-gpu")]["spec"]["tolerations"] = [  # Equal: the same key and value; effect empty: any
        {"key": "lsst.io/dedicated", "operator": "Equal", "value": "gpu"}]
    server.pods[(nb, "nb-any")] = unschedulable_pod("nb-any", cpu="5", message=short)
    server.pods[(nb, "nb-any")]["spec"]["tolerations"] = [{"operator": "Exists"}]  # empty key, Exists: every taint
    assert sorted(kube.pending_notebooks(), key=lambda sp: sp.cpu) == [
        PendingSpawn(cpu=3.0, memory_mib=2048, nodes=frozenset(workers) - {"kub-001", "kub-002", "kub-007"}),
        PendingSpawn(cpu=4.0, memory_mib=2048, nodes=frozenset(workers) - {"kub-002"}),
        PendingSpawn(cpu=5.0, memory_mib=2048)]
    server.nodes["kub-001"]["spec"]["taints"][0]["effect"] = "NoExecute"  # down now (test_nodes_report_state...)
    server.nodes["kub-002"]["spec"]["taints"] = [{"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"}]
    server.pods[(nb, "nb-gpu")]["spec"]["tolerations"][0]["effect"] = "NoSchedule"  # not the taint's effect
    server.pods[(nb, "nb-any")]["spec"]["tolerations"] = [{"key": "lsst.io/dedicated", "operator": "Exists"}]
    assert sorted(kube.pending_notebooks(), key=lambda sp: sp.cpu) == [
        PendingSpawn(cpu=3.0, memory_mib=2048, nodes=frozenset(workers) - {"kub-001", "kub-002", "kub-007"}),
        PendingSpawn(cpu=4.0, memory_mib=2048, nodes=frozenset(workers) - {"kub-001", "kub-002"}),
        PendingSpawn(cpu=5.0, memory_mib=2048, nodes=frozenset(workers) - {"kub-002"})]
    # A worker lent whole (labelled and tainted for HTCondor by the broker) may be given back for a spawn: the
    # broker's taint goes with it, the node's other taint counts.
    for name in ("kub-001", "kub-002"):
        server.nodes[name]["spec"]["taints"] = []
    server.nodes["kub-008"] = node_obj("kub-008", labels={objects.BATCH_LABEL: "htcondor"})
    server.nodes["kub-008"]["spec"]["taints"] = [
        {"key": objects.BATCH_LABEL, "value": "htcondor", "effect": "NoSchedule"},
        {"key": "lsst.io/dedicated", "value": "gpu", "effect": "NoSchedule"}]
    assert sorted(kube.pending_notebooks(), key=lambda sp: sp.cpu) == [
        PendingSpawn(cpu=3.0, memory_mib=2048, nodes=frozenset(workers) - {"kub-007", "kub-008"}),
        PendingSpawn(cpu=4.0, memory_mib=2048), PendingSpawn(cpu=5.0, memory_mib=2048)]


def test_the_selected_label_is_the_one_kubespawner_puts_on_server_pods() -> None:
    import inspect

    from kubespawner import KubeSpawner

    from enclave.notebooks import hook
    from enclave.notebooks.profiles import HUB_CONFIG, z2jh_values

    key, value = NOTEBOOK_SELECTOR.split("=")
    assert key == "component" and KubeSpawner.class_traits()["component_label"].default_value == value
    # enclave's hub configuration leaves the trait at its default.
    values = z2jh_values(load(EXAMPLES / "lsst-ldf.yaml"))
    assert not any("component_label" in text for text in (repr(values), HUB_CONFIG, inspect.getsource(hook)))


def test_pending_notebooks_api_failure_is_typed(kube: KubeCluster, server: ApiServer) -> None:
    server.fail_with = 403
    with pytest.raises(ExternalError, match="listing pods in jupyter-lsst failed \\(403"):
        kube.pending_notebooks()


def test_drain_evicts_htcondor_worker_pods_but_not_htcondor_on_the_bare_node(kube: KubeCluster,
                                                                             server: ApiServer) -> None:
    # BCS 5 takes the whole node: its HTCondor worker pods go with the rest (the projection and the twin drop
    # them too); the whole-node pod of a node already running HTCondor is what stays.
    kube.deploy_pods("kub-008", "drp", ("htcondor-kub-008-1",), 8, 8192)
    assert kube.drain("kub-008") == 0
    assert server.evicted("htcondor", "htcondor-kub-008-1")
    kube.start_htcondor("kub-008", "drp")
    assert kube.evict("kub-008") == 0
    assert ("htcondor", "htcondor-node-kub-008") in server.pods


def _kubectl_defaults(spec: EnclaveSpec, server: ApiServer, **flags: bool) -> KubeCluster:
    """The adapter with ``kubectl drain``'s default flags (all off), or the ones given."""
    from enclave.spec.models import DrainFlags

    cluster = spec.cluster.model_copy(update={"drain": DrainFlags(**flags)})
    api = k8s.ApiClient(k8s.Configuration(host="https://kube.example.org:6443"))
    api.rest_client.pool_manager = server
    return KubeCluster(spec.model_copy(update={"cluster": cluster}), api, clock=lambda: 1_800_000_000.0)


# kubectl pkg/drain/filters.go: a pod with no controller needs --force, an emptyDir needs --delete-emptydir-data,
# a DaemonSet pod needs --ignore-daemonsets; any one refused pod stops the whole drain.
REFUSALS = [("bare", {}, "force", "declare no controller"),
            ("daemon", {"daemonset": True}, "ignore_daemonsets", "DaemonSet-managed"),
            ("scratch", {"empty_dir": True}, "delete_emptydir_data", "local storage")]


def refusal_pod(name: str, shape: dict[str, bool]) -> dict[str, Any]:
    """A pod on kub-005 with only the property a REFUSALS row tests (no controller, a DaemonSet's, emptyDir)."""
    pod = pod_obj(name, "kub-005", daemonset=shape.get("daemonset", False))
    if not shape.get("daemonset"):  # give it a controller, so only the property under test can refuse it
        pod["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                                               "uid": "u2", "controller": True}]
    if name == "bare":
        del pod["metadata"]["ownerReferences"]
    if shape.get("empty_dir"):
        pod["spec"]["volumes"] = [{"name": "scratch", "emptyDir": {}}]
    return pod


@pytest.mark.parametrize(("name", "shape", "flag", "message"), REFUSALS)
def test_drain_refuses_what_kubectl_refuses_without_the_flag(spec: EnclaveSpec, server: ApiServer, name: str,
                                                             shape: dict[str, bool], flag: str, message: str) -> None:
    server.pods[("jupyter-lsst", name)] = refusal_pod(name, shape)
    with pytest.raises(InvalidTransition, match=message):
        _kubectl_defaults(spec, server).drain("kub-005")
    assert not [r for r in server.requests if r[0] != "GET"]  # nothing changed: not even tainted
    left = _kubectl_defaults(spec, server, **{flag: True}).drain("kub-005")
    assert objects.broker_taint(server.nodes["kub-005"]) and left == 0
    evicted = [r for r in server.requests if r[1].endswith("/eviction")]
    # --ignore-daemonsets leaves the DaemonSet pod where it is; the other two flags let it be evicted.
    assert len(evicted) == (0 if flag == "ignore_daemonsets" else 1)


@pytest.mark.parametrize("phase", ["Succeeded", "Failed"])
def test_a_finished_pod_needs_no_flag_even_a_daemonset_s(spec: EnclaveSpec, server: ApiServer, phase: str) -> None:
    """kubectl pkg/drain/filters.go: every filter lets a finished pod through before it reads its flag ("Any
    finished pod can be removed", daemonSetFilter, localStorageFilter, unreplicatedFilter); a finished
    DaemonSet pod stopped the drain without --ignore-daemonsets (review, stop 53)."""
    for name, shape, _, _ in REFUSALS:
        pod = refusal_pod(name, shape)
        pod["status"]["phase"] = phase
        server.pods[("jupyter-lsst", name)] = pod
    assert _kubectl_defaults(spec, server).drain("kub-005") == 0
    assert objects.broker_taint(server.nodes["kub-005"])


def test_drain_never_needs_force_for_enclaves_own_worker_pods(spec: EnclaveSpec, server: ApiServer) -> None:
    kube = _kubectl_defaults(spec, server)
    kube.deploy_pods("kub-008", "drp", ("htcondor-kub-008-1",), 8, 8192)
    assert kube.drain("kub-008") == 0
    assert server.evicted("htcondor", "htcondor-kub-008-1")


@pytest.mark.parametrize(("name", "shape", "flag", "message"), REFUSALS)
def test_drain_flags_given_override_the_spec(spec: EnclaveSpec, server: ApiServer, name: str,
                                            shape: dict[str, bool], flag: str, message: str) -> None:
    """`enclave batch drain-node --force …` overrides cluster.drain both ways: a flag given lets the drain
    through a spec that says no, and --no-<flag> refuses where the spec says yes."""
    server.pods[("jupyter-lsst", name)] = refusal_pod(name, shape)
    with pytest.raises(InvalidTransition, match=message):
        _kubectl_defaults(spec, server, **{flag: True}).drain("kub-005", **{flag: False})
    assert not [r for r in server.requests if r[0] != "GET"]
    assert _kubectl_defaults(spec, server).drain("kub-005", **{flag: True}) == 0
    assert objects.broker_taint(server.nodes["kub-005"])


def test_an_eviction_refused_for_good_holds_back_that_pod_only(spec: EnclaveSpec, server: ApiServer,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    """The Eviction API answers 500 for a pod two disruption budgets select (pkg/registry/core/pod/storage/
    eviction.go, EvictionREST.Create), and 403 or 504 for other budget trouble. kubectl evicts each pod apart
    and reports the failures together (pkg/drain/drain.go, evictPods): the node's other pods go, the refused one
    counts as still to go (the drain is then given up after its wait, as any stuck one), with the server's words
    logged (review: the refusal ended the round, and every round after it, before the pods after it)."""
    for name in ("web-1", "web-2", "web-3"):
        pod = pod_obj(name, "kub-006")
        pod["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                                               "uid": "u3", "controller": True}]
        server.pods[("jupyter-lsst", name)] = pod
    server.pdb_several.add("web-1")
    server.pdb_negative.add("web-3")
    kube = _kubectl_defaults(spec, server)
    with caplog.at_level("WARNING", logger="enclave.cluster"):
        assert kube.drain("kub-006") == 2
    assert server.pods[("jupyter-lsst", "web-2")]["metadata"].get("deletionTimestamp")
    assert not server.pods[("jupyter-lsst", "web-1")]["metadata"].get("deletionTimestamp")
    assert not server.pods[("jupyter-lsst", "web-3")]["metadata"].get("deletionTimestamp")
    refused = {r.fields["pod"]: r.fields for r in caplog.records  # type: ignore[attr-defined]
               if r.getMessage() == "eviction refused"}
    assert refused["jupyter-lsst/web-1"]["status"] == 500
    assert "more than one PodDisruptionBudget" in refused["jupyter-lsst/web-1"]["reason"]
    assert refused["jupyter-lsst/web-3"]["status"] == 403
    assert kube.drain_left("kub-006") == 3  # one terminating, two not evicted


def test_an_eviction_the_caller_may_not_make_is_an_error(spec: EnclaveSpec, server: ApiServer) -> None:
    """A 403 from the authorizer (no pods/eviction in the RBAC) is no budget's doing: the eviction round fails, it
    does not wait for ever on a pod it may never evict (review). The drain itself is in effect by then (tainted and
    labelled), so it returns its pod still to go and the error comes from the rounds that follow (``evict``, which
    ``LiveBackend.progress`` reports each cycle): raised at once, the drain was journaled as failed and never as
    done (review, stop 53)."""
    pod = pod_obj("web-1", "kub-006")
    pod["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                                           "uid": "u3", "controller": True}]
    server.pods[("jupyter-lsst", "web-1")] = pod
    server.evictions_forbidden = True
    kube = _kubectl_defaults(spec, server)
    assert kube.drain("kub-006") == 1 and kube.draining("kub-006")
    with pytest.raises(ExternalError, match='cannot create resource "pods/eviction"'):
        kube.evict("kub-006")


def test_drain_grace_period_goes_in_every_eviction(spec: EnclaveSpec, server: ApiServer) -> None:
    """kubectl drain --grace-period N sets the Eviction's deleteOptions.gracePeriodSeconds (kubectl
    pkg/drain/drain.go, makeDeleteOptions), in the first round and in the retries after a budget said no."""
    for name in ("web-1", "web-2"):
        pod = pod_obj(name, "kub-006")
        pod["metadata"]["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                                               "uid": "u3", "controller": True}]
        server.pods[("jupyter-lsst", name)] = pod
    server.pdb_blocked.add("web-2")
    kube = _kubectl_defaults(spec, server)
    assert kube.drain("kub-006", grace_period_seconds=30) == 1
    server.pdb_blocked.discard("web-2")
    assert kube.evict("kub-006") == 0
    bodies = [r[2] for r in server.requests if r[1].endswith("/eviction")]
    assert len(bodies) == 3  # web-1, web-2 refused, web-2 again
    assert all(b["deleteOptions"]["gracePeriodSeconds"] == 30 for b in bodies), bodies
    # Without --grace-period the pod's own period holds: no deleteOptions at all.
    server.requests.clear()
    server.pods[("jupyter-lsst", "web-3")] = {**pod_obj("web-3", "kub-007"), "metadata": {
        **pod_obj("web-3", "kub-007")["metadata"], "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u4", "controller": True}]}}
    assert kube.drain("kub-007") == 0
    (body,) = [r[2] for r in server.requests if r[1].endswith("/eviction")]
    assert "deleteOptions" not in body


# --- listings in pages ----------------------------------------------------------------------------------------------


def _crowd(server: ApiServer, pods: int = 1203) -> tuple[dict[str, int], set[str]]:
    """``pods`` pods over the workers, every other one an HTCondor worker pod, the rest notebooks of 100m in two
    namespaces; 600 more nodes than the spec's. Returns the notebooks on each worker and the worker pods' names."""
    notebooks: dict[str, int] = {}
    workers: set[str] = set()
    for i in range(pods):
        node = f"kub-{i % 17 + 1:03d}"
        if i % 2:
            name = f"htcondor-{node}-{i}"
            server.pods[("htcondor", name)] = pod_obj(name, node, namespace="htcondor", cpu="100m", labels={
                objects.APP_LABEL: objects.WORKER_APP, objects.POOL_LABEL: "prompt"})
            workers.add(name)
        else:
            namespace = ("jupyter-lsst", "firefly")[i % 4 // 2]
            server.pods[(namespace, f"nb-{i}")] = pod_obj(f"nb-{i}", node, namespace=namespace, cpu="100m")
            notebooks[node] = notebooks.get(node, 0) + 1
    for i in range(2, 602):
        server.nodes[f"stranger-{i}"] = node_obj(f"stranger-{i}")
    return notebooks, workers


def _listings(server: ApiServer, path: str) -> list[dict[str, str]]:
    """The queries of the GETs of ``path`` made so far."""
    return [q for (method, p, _), q in zip(server.requests, server.queries, strict=True)
            if (method, p) == ("GET", path)]


def test_a_listing_longer_than_a_page_returns_each_item_once(kube: KubeCluster, server: ApiServer) -> None:
    """The big listings go in pages of 500, kubectl's --chunk-size and client-go's pager's default, each following
    the last page's continue token: 1,203 pods are three pages, 601 worker pods two, 621 nodes two."""
    notebooks, workers = _crowd(server)
    assert len(workers) == 601 and sum(notebooks.values()) == 602
    nodes = {n.name: n for n in kube.nodes()}
    assert {name: round(n.k8s_cores_requested * 10) for name, n in nodes.items() if n.group == "kub"} == notebooks
    pages = _listings(server, "/api/v1/pods")
    assert [q.get("limit") for q in pages] == ["500"] * 3 and "continue" not in pages[0]
    assert len({q["continue"] for q in pages[1:]}) == 2
    listed = kube.worker_pods()
    assert len(listed) == len(workers) and {p.name for p in listed} == workers
    items = kube.node_items()
    assert len(items) == len(server.nodes) == 621 and {n["metadata"]["name"] for n in items} == set(server.nodes)
    assert [q.get("limit") for q in _listings(server, "/api/v1/nodes")[-2:]] == ["500", "500"]


def test_an_expired_continue_token_falls_back_to_one_full_list(kube: KubeCluster, server: ApiServer) -> None:
    """etcd compacted the revision the listing began at: the server answers the next page 410 Expired
    (apiserver etcd3/errors.go, handleCompactedErrorForPaging), and the listing is made again, whole and without a
    limit, as client-go's pager falls back (tools/pager/pager.go, ListPager.list, FullListIfExpired)."""
    notebooks, workers = _crowd(server)
    server.between_pages = server.compact  # every token has expired by the time it comes back
    nodes = {n.name: n for n in kube.nodes()}
    assert {name: round(n.k8s_cores_requested * 10) for name, n in nodes.items() if n.group == "kub"} == notebooks
    pages = _listings(server, "/api/v1/pods")
    assert [sorted(q) for q in pages] == [["limit"], ["continue", "limit"], []]
    assert {p.name for p in kube.worker_pods()} == workers and len(kube.worker_pods()) == len(workers)
    assert len(kube.node_items()) == len(server.nodes)


def test_a_full_list_refused_after_an_expiry_is_an_external_error(kube: KubeCluster, server: ApiServer) -> None:
    """The fallback is made once (pager.go returns its error as is): a 410 to it too is the server's refusal,
    reported as every other, not a loop. (A real server would not expire a list at its latest revision: the fake is
    told to answer 410 Expired to everything once the first page is out.)"""
    _crowd(server)
    server.between_pages = lambda: setattr(server, "fail_with", expired(served=server.served))
    with pytest.raises(ExternalError, match=r"listing pods failed \(410: The provided (from|continue) parameter is "
                                            "too old"):
        kube.worker_pods()
    assert [sorted(q) for q in _listings(server, "/api/v1/pods")] == [
        ["labelSelector", "limit"], ["continue", "labelSelector", "limit"], ["labelSelector"]]


@pytest.mark.parametrize(("refusal", "what"), [
    (Refused(500, "InternalError", "etcdserver: request timed out"), "500"),
    (Refused(429, "TooManyRequests", "too many requests"), "429"),
    (Refused(400, "BadRequest", "invalid continue token"), "400"),
    (Refused(410, "Gone", "gone, not expired"), "410"),  # 410 whose reason is not Expired: not what the pager forgives
], ids=["500", "429", "400", "410-gone"])
def test_a_later_page_refused_otherwise_than_expired_is_an_error_not_a_full_list(
        kube: KubeCluster, server: ApiServer, refusal: Refused, what: str) -> None:
    """client-go's pager falls back to a full list only on ResourceExpired from a page after the first (pager.go,
    ListPager.list: ``!errors.IsResourceExpired(err) || !p.FullListIfExpired || options.Continue == ""`` returns
    the error): any other refusal ends the listing there, after its two requests."""
    _crowd(server)
    server.between_pages = lambda: setattr(server, "fail_with", refusal)
    with pytest.raises(ExternalError, match=rf"listing pods failed \({what}"):
        kube.worker_pods()
    assert len(_listings(server, "/api/v1/pods")) == 2


def test_an_expired_first_page_is_an_error(kube: KubeCluster, server: ApiServer) -> None:
    """The first page has sent no token: an expiry there has nothing to fall back from (pager.go: ``options.Continue
    == ""``), and is the server's refusal."""
    _crowd(server)
    server.fail_with = expired(served=server.served)
    with pytest.raises(ExternalError, match=r"listing pods failed \(410"):
        kube.worker_pods()
    assert len(_listings(server, "/api/v1/pods")) == 1
