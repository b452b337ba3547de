"""`enclave render deploy`: every object validates against the Kubernetes OpenAPI schema (kubernetes-validate),
the kustomization lists every file, and the objects refer to each other consistently (issue 18)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from enclave.cluster import deploy, objects
from enclave.notebooks import hubapi
from enclave.notebooks.profiles import z2jh_values
from enclave.spec import EnclaveSpec, load, parse
from enclave.spec.defaults import EXAMPLES
from tests.access.test_render import schema_version


def _objects(out: Path) -> list[dict[str, Any]]:
    kust = yaml.safe_load((out / "kustomization.yaml").read_text())
    return [d for f in kust["resources"] for d in yaml.safe_load_all((out / f).read_text()) if d]


def test_kustomization_lists_every_manifest(rendered: tuple[EnclaveSpec, Path]) -> None:
    _, out = rendered
    kust = yaml.safe_load((out / "kustomization.yaml").read_text())
    assert sorted(kust["resources"]) == sorted(p.name for p in out.glob("*.yaml") if p.name != "kustomization.yaml")
    assert (out / "Dockerfile").read_text().startswith("# enclave")


def test_the_image_holds_the_etcdctl_the_scheduled_backup_runs(rendered: tuple[EnclaveSpec, Path]) -> None:
    """`enclave backup schedule`'s CronJob runs this image, and its `enclave backup create` runs etcdctl (endpoint
    health, snapshot save, snapshot status): python:3.11-slim has none, so every scheduled run failed. etcd's
    release image holds it at /usr/local/bin/etcdctl (etcd v3.4.23 Dockerfile-release, "ADD etcdctl
    /usr/local/bin/"; scripts/release.sh pushes quay.io/coreos/etcd:v<version>), a directory on the python image's
    PATH (docker-library python's Dockerfile: ENV PATH /usr/local/bin:$PATH). The release is 3.4 (status and
    restore still in etcdctl; removed in 3.6) and the one the tests run, the etcdctl on this machine."""
    _, out = rendered
    text = (out / "Dockerfile").read_text()
    copy = re.search(r"^COPY --from=quay\.io/coreos/etcd:v(3\.4\.\d+) /usr/local/bin/etcdctl /usr/local/bin/etcdctl$",
                     text, re.M)
    assert copy, text
    assert [line for line in text.splitlines() if line.startswith("FROM ")] == ["FROM python:3.11-slim"]
    assert text.index("FROM python:3.11-slim") < copy.start()  # into the image itself, not a build stage
    here = subprocess.run(["etcdctl", "version"], capture_output=True, text=True, check=True).stdout
    assert f"etcdctl version: {copy.group(1)}\n" in here


def test_every_object_validates(rendered: tuple[EnclaveSpec, Path]) -> None:
    spec, out = rendered
    version = schema_version(spec.cluster.kubernetes_version)
    for doc in _objects(out):
        if doc["apiVersion"] == "policy/v1beta1":
            # The seed's 1.9 serves PDBs as v1beta1, which the oldest schema here (1.25) no longer has; v1 kept
            # the fields used (maxUnavailable, selector), so check them against v1.
            assert spec.cluster.kubernetes_version.startswith("1.")
            doc = doc | {"apiVersion": "policy/v1"}
        kubernetes_validate.validate(doc, version, strict=True)


def test_objects_refer_to_each_other(rendered: tuple[EnclaveSpec, Path]) -> None:
    spec, out = rendered
    docs = _objects(out)
    have = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs}
    for d in docs:
        if d["kind"] != "Deployment":
            continue
        ns, pod = d["metadata"]["namespace"], d["spec"]["template"]["spec"]
        assert ("Namespace", None, ns) in have and ("ServiceAccount", ns, pod["serviceAccountName"]) in have
        for v in pod["volumes"]:
            if "configMap" in v:
                assert ("ConfigMap", ns, v["configMap"]["name"]) in have
            if "persistentVolumeClaim" in v:
                assert ("PersistentVolumeClaim", ns, v["persistentVolumeClaim"]["claimName"]) in have
        sel = d["spec"]["selector"]["matchLabels"]
        assert sel.items() <= d["spec"]["template"]["metadata"]["labels"].items()
        assert any(s["kind"] == "Service" and s["spec"]["selector"] == sel for s in docs)
    # Only the broker's pod gets an API token; the WebDAV pod talks to no Kubernetes API.
    tokens = {d["metadata"]["name"]: d["spec"]["template"]["spec"]["automountServiceAccountToken"] for d in docs
              if d["kind"] == "Deployment"}
    assert tokens == {"enclave-api": True, "enclave-webdav": False}
    # The worker pods' ConfigMaps are in the batch namespace, under the names the pods mount.
    for whole in (True, False):
        assert ("ConfigMap", objects.DEFAULT_NAMESPACE, objects.config_map_name(whole)) in have
    # The spec the pods (enclave's and the JupyterHub hub's) read is the spec rendered from.
    cms = {d["metadata"]["namespace"]: d for d in docs if d["kind"] == "ConfigMap"
           and d["metadata"]["name"] == "enclave-spec"}
    assert set(cms) == {deploy.NAMESPACE, spec.notebooks.namespace}
    assert all(parse(cm["data"]["enclave.yaml"]) == spec for cm in cms.values())


def test_hub_values_find_what_the_bundle_makes(rendered: tuple[EnclaveSpec, Path]) -> None:
    """The hub (values of `render notebooks`) mounts the spec ConfigMap and reads the database Secret of its own
    namespace, and runs the image hub.Dockerfile defines."""
    spec, out = rendered
    hub = z2jh_values(spec)["hub"]
    ns = spec.notebooks.namespace
    have = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in _objects(out)}
    for v in hub["extraVolumes"]:
        assert ("ConfigMap", ns, v["configMap"]["name"]) in have
    ref = hub["extraEnv"]["ENCLAVE_DB"]["valueFrom"]["secretKeyRef"]
    kust = yaml.safe_load((out / "kustomization.yaml").read_text())
    assert {"name": ref["name"], "namespace": ns, "files": [f"{ref['key']}=database-url"]} in kust["secretGenerator"]
    # A pinned hub's tag field is tag@sha256:<digest> (Z2JH writes name:tag); the build names the tag alone.
    dockerfile = (out / "hub.Dockerfile").read_text()
    assert f"-t {hub['image']['name']}:{hub['image']['tag'].split('@')[0]} " in dockerfile
    # The base's user by uid: its NB_USER is a build ARG (images/hub/Dockerfile, Z2JH 4.1.0), empty in a derived
    # build, where `USER ${NB_USER}` left the image running as root (review, stop 48).
    assert dockerfile.splitlines()[-1] == "USER 1000" and "${NB_USER}" not in dockerfile
    [mount] = hub["extraVolumeMounts"]
    assert hub["extraEnv"]["ENCLAVE_SPEC"].startswith(mount["mountPath"] + "/")


def test_pdb_api_follows_the_kubernetes_version(rendered: tuple[EnclaveSpec, Path]) -> None:
    spec, out = rendered
    [pdb] = [d for d in _objects(out) if d["kind"] == "PodDisruptionBudget"]
    minor = int(spec.cluster.kubernetes_version.split(".")[1])
    assert pdb["apiVersion"] == ("policy/v1" if minor >= 21 else "policy/v1beta1")
    assert pdb["metadata"]["namespace"] == deploy.NAMESPACE


def test_kubectl_kustomize_builds_the_bundle_with_the_database_secret(rendered: tuple[EnclaveSpec, Path],
                                                                      tmp_path: Path) -> None:
    """kustomize (client side, no cluster) reads the kustomization and makes the Secret from database-url."""
    import shutil
    import subprocess

    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    _, out = rendered
    work = tmp_path / "bundle"
    shutil.copytree(out, work)
    (work / "database-url").write_text("postgresql+psycopg://enclave@db.example.org/enclave")
    for name in (*deploy.BROKER_FILES.values(), *deploy.WORKER_FILES.values(), *deploy.HUB_FILES.values(),
                 *deploy.JOURNAL_FILES.values()):
        (work / name).write_text(f"{name} contents")
    built = subprocess.run([kubectl, "kustomize", str(work)], capture_output=True, text=True, timeout=60)
    assert built.returncode == 0, built.stderr
    docs = [d for d in yaml.safe_load_all(built.stdout) if d]
    secrets = {(d["metadata"]["namespace"], d["metadata"]["name"]): sorted(d["data"]) for d in docs
               if d["kind"] == "Secret"}
    spec = rendered[0]
    assert secrets == {(deploy.NAMESPACE, deploy.DATABASE_SECRET): ["url"],
                       (spec.notebooks.namespace, deploy.DATABASE_SECRET): ["url"],
                       (deploy.NAMESPACE, deploy.HTCONDOR_SECRET): ["schedd-token", "token"],
                       ("htcondor", objects.WORKER_SECRET): ["ENCLAVE", "token"],
                       (deploy.NAMESPACE, deploy.HUB_SECRET): ["token"],
                       (deploy.NAMESPACE, deploy.JOURNAL_SECRET): ["key"]}
    assert len(docs) == len(_objects(out)) + 6


def test_every_secret_a_pod_mounts_or_reads_is_made_by_the_kustomization(rendered: tuple[EnclaveSpec, Path]) -> None:
    """The API pods' HTCondor token, and the worker pods' token and signing key (which the broker's pods are made
    with, objects.worker_pod): kustomize makes each from a file the operator writes, with the keys they read."""
    spec, out = rendered
    kust = yaml.safe_load((out / "kustomization.yaml").read_text())
    made = {(g["namespace"], g["name"]): {f.split("=")[0] for f in g["files"]} for g in kust["secretGenerator"]}
    worker = objects.worker_pod(spec, name="p", node="kub-001", pool="user", cores=8, memory_mib=32768,
                                image="registry/htcondor:25", since=0.0)
    [api] = [d for d in _objects(out) if d["kind"] == "Deployment" and d["metadata"]["name"] == "enclave-api"]
    for namespace, pod in (("htcondor", worker["spec"]), (deploy.NAMESPACE, api["spec"]["template"]["spec"])):
        for volume in pod["volumes"]:
            if "secret" in volume:
                keys = {item["key"] for item in volume["secret"]["items"]}
                assert keys <= made[(namespace, volume["secret"]["secretName"])]
    env = {e["name"]: e.get("value") for e in api["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["CONDOR_CONFIG"] == "ONLY_ENV"


def test_the_brokers_htcondor_token_is_a_file_htcondor_reads(rendered: tuple[EnclaveSpec, Path],
                                                             tmp_path: Path) -> None:
    """HTCondor reads a token file only if the reading user owns it and nobody else may read it (condor_auth_passwd.cpp
    findToken: read_secure_file with SECURE_FILE_VERIFY_ALL; secure_file.cpp), which a Secret volume's files, root's,
    never are. The init container, as the API container's user, installs a copy 0600 into the directory the client
    reads (SEC_TOKEN_DIRECTORY): run here, its command makes such a file."""
    import os
    import stat
    import subprocess

    _, out = rendered
    [api] = [d for d in _objects(out) if d["kind"] == "Deployment" and d["metadata"]["name"] == "enclave-api"]
    pod = api["spec"]["template"]["spec"]
    [init] = [c for c in pod["initContainers"] if c["name"] == "htcondor-token"]
    [main] = pod["containers"]
    assert init["image"] == main["image"] and init["securityContext"] == main["securityContext"]
    env = {e["name"]: e.get("value") for e in main["env"]}
    tokens = env["_CONDOR_SEC_TOKEN_DIRECTORY"]
    volume_at = {m["mountPath"]: m["name"] for m in init["volumeMounts"]}
    assert {m["mountPath"]: m["name"] for m in main["volumeMounts"]}[tokens] == volume_at[tokens]
    # The command, run with the mounts mapped under tmp_path.
    secret, copy = tmp_path / "secret", tmp_path / "copy"
    secret.mkdir()
    copy.mkdir()
    for key in deploy.BROKER_FILES:  # the Secret's files, as the kubelet writes them (0644, root's)
        (secret / key).write_text("eyJhbGciOi...")
        (secret / key).chmod(0o644)
    mapped = [str(copy) + a.removeprefix(tokens) if a.startswith(tokens) else
              str(secret) + a.removeprefix(deploy.HTCONDOR_SECRET_MOUNT) if a.startswith(deploy.HTCONDOR_SECRET_MOUNT)
              else a for a in init["command"]]
    subprocess.run(mapped, check=True)
    for key in deploy.BROKER_FILES:  # both tokens: the startds' (the broker's key) and the schedds' (the pool's)
        made = (copy / key).stat()
        assert made.st_uid == os.getuid() and stat.S_IMODE(made.st_mode) & 0o077 == 0


def test_the_worker_namespace_admits_what_its_pods_need(rendered: tuple[EnclaveSpec, Path]) -> None:
    """Worker pods mount a hostPath, and a whole-node one is privileged on the host network: the Pod Security
    Standards' baseline forbids all three, only the privileged level admits them
    (https://kubernetes.io/docs/concepts/security/pod-security-standards/)."""
    _, out = rendered
    [ns] = [d for d in _objects(out) if d["kind"] == "Namespace" and d["metadata"]["name"] == "htcondor"]
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


HUB_CONTAINER_PORTS = {"http": 8081}
"""The hub container's named port (zero-to-jupyterhub-k8s 4.1.0 templates/hub/deployment.yaml)."""
CHART_HUB_INGRESS = [{"ports": [{"port": "http"}],
                      "from": [{"podSelector": {"matchLabels": {"hub.jupyter.org/network-access-hub": "true"}}}]}]
"""The hub NetworkPolicy's own rule as the chart 4.1.0 renders it with its defaults (templates/hub/netpol.yaml,
``interNamespaceAccessLabels: ignore``, ``allowedIngressPorts: []``); ``hub.networkPolicy.ingress`` follows it."""


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    return selector.get("matchLabels", {}).items() <= labels.items() and not selector.get("matchExpressions")


def _admits(rules: list[dict[str, Any]], port: int, pod: dict[str, str], namespace: dict[str, str],
            policy_namespace: str) -> bool:
    """Whether NetworkPolicy ingress ``rules`` admit TCP ``port`` from a pod with labels ``pod`` in a namespace with
    labels ``namespace`` (https://kubernetes.io/docs/concepts/services-networking/network-policies/#behavior-of-to-
    and-from-selectors: a podSelector alone is the policy's namespace; with a namespaceSelector, both must hold)."""
    def peer(p: dict[str, Any]) -> bool:
        if "namespaceSelector" not in p:
            in_namespace = namespace.get("kubernetes.io/metadata.name") == policy_namespace
            return in_namespace and _selects(p["podSelector"], pod)
        return _selects(p["namespaceSelector"], namespace) and _selects(p.get("podSelector", {}), pod)

    def port_of(r: dict[str, Any]) -> bool:
        return not r.get("ports") or any(HUB_CONTAINER_PORTS.get(q["port"], q["port"]) == port
                                         and q.get("protocol", "TCP") == "TCP" for q in r["ports"])

    return any(port_of(r) and ("from" not in r or any(peer(p) for p in r["from"])) for r in rules)


def test_the_api_pods_reach_the_hub(rendered: tuple[EnclaveSpec, Path]) -> None:
    """The control plane reaches JupyterHub after depart, expire, demote (HubAdmin.from_env: URL and token from the
    environment, else nothing): the URL is the hub Service of the Z2JH 4.1.0 chart in the notebook namespace
    (templates/hub/service.yaml: ``hub`` with fullnameOverride "", port 8081; /hub/api), the token comes from a Secret
    the kustomization makes, and the hub's NetworkPolicy admits the API pods on the hub container's port, from the
    Namespace as rendered (a cluster before 1.21 adds no kubernetes.io/metadata.name), and nothing else of enclave."""
    spec, out = rendered
    docs = _objects(out)
    [api] = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "enclave-api"]
    [webdav] = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "enclave-webdav"]
    env = {e["name"]: e for e in api["spec"]["template"]["spec"]["containers"][0]["env"]}
    url = urlsplit(env[hubapi.HUB_URL_ENV]["value"])
    ns = spec.notebooks.namespace
    assert (url.scheme, url.hostname, url.port, url.path) == ("http", f"hub.{ns}", 8081, "/hub/api")
    ref = env[hubapi.HUB_TOKEN_ENV]["valueFrom"]["secretKeyRef"]
    kust = yaml.safe_load((out / "kustomization.yaml").read_text())
    made = {(g["namespace"], g["name"]): {f.split("=")[0] for f in g["files"]} for g in kust["secretGenerator"]}
    assert ref["key"] in made[(api["metadata"]["namespace"], ref["name"])] and not ref.get("optional")

    [namespace] = [d for d in docs if d["kind"] == "Namespace" and d["metadata"]["name"] == deploy.NAMESPACE]
    labels = namespace["metadata"]["labels"]
    rules = CHART_HUB_INGRESS + z2jh_values(spec)["hub"]["networkPolicy"]["ingress"]
    pod = api["spec"]["template"]["metadata"]["labels"]
    assert not _admits(CHART_HUB_INGRESS, 8081, pod, labels, ns)  # the chart alone refuses them
    assert _admits(rules, 8081, pod, labels, ns)
    assert not _admits(rules, 8081, webdav["spec"]["template"]["metadata"]["labels"], labels, ns)
    assert not _admits(rules, 8081, pod, {"kubernetes.io/metadata.name": "htcondor"}, ns)


def _containers(out: Path, name: str) -> dict[str, Any]:
    return next(c for d in _objects(out) if d["kind"] == "Deployment" and d["metadata"]["name"] == name
                for c in d["spec"]["template"]["spec"]["containers"])


def test_the_api_is_probed_over_http_for_liveness_and_readiness(rendered: tuple[EnclaveSpec, Path]) -> None:
    """kubernetes.io, "Configure Liveness, Readiness and Startup Probes": a tcpSocket probe only sees the kernel
    accept a connection, which it does for a frozen (SIGSTOPped) server too (audit), so both probes ask over HTTP.
    Liveness ("Define a liveness HTTP request") asks the endpoint that depends on nothing outside the process;
    readiness ("Define readiness probes") the one that asks the database. failureThreshold 3 is the documented
    default; timeoutSeconds leaves room beyond the readiness check's own 1 s wait."""
    _, out = rendered
    api = _containers(out, "enclave-api")
    assert api["livenessProbe"]["httpGet"] == {"path": "/api/v1/health", "port": "http"}
    assert api["readinessProbe"]["httpGet"] == {"path": "/api/v1/ready", "port": "http"}
    for probe in (api["livenessProbe"], api["readinessProbe"]):
        assert "tcpSocket" not in probe
        assert probe["failureThreshold"] == 3
        assert probe["timeoutSeconds"] > 1
    assert [p["name"] for p in api["ports"]] == ["http"]  # the name the probes use


def test_the_webdav_server_is_probed_over_http_at_a_path_it_answers_without_a_login(
        rendered: tuple[EnclaveSpec, Path], tmp_path: Path) -> None:
    """As the API (above): a tcpSocket probe passes a frozen server, so the WebDAV container is asked over HTTP, at
    the path the server answers from the process alone, without a login (a probe carries no credentials)."""
    import httpx

    from enclave.notebooks import webdav

    _, out = rendered
    dav = _containers(out, "enclave-webdav")
    for probe in (dav["livenessProbe"], dav["readinessProbe"]):
        assert probe["httpGet"] == {"path": webdav.HEALTH_PATH, "port": "http"} and "tcpSocket" not in probe
    assert [p["name"] for p in dav["ports"]] == ["http"]

    def nobody(*_: object) -> None:
        raise AssertionError("the health path asks no one")

    running = webdav.start(webdav.make_app(nobody, anchor=tmp_path))  # type: ignore[arg-type]
    try:
        health = httpx.get(f"{running.url}{webdav.HEALTH_PATH}")
        assert health.status_code == 200 and health.text == "ok\n"
        assert httpx.get(f"{running.url}/alice/").status_code == 401  # everything else still needs a login
    finally:
        running.stop()


@pytest.mark.parametrize(("example", "field"), [("lsst-ldf.yaml", False), ("minimal.yaml", True)])
def test_seccomp_and_run_as_group_as_the_cluster_s_kubernetes_has_them(example: str, field: bool) -> None:
    """Review, stop 48: for the LDF spec's Kubernetes 1.9.3 the bundle wrote securityContext.seccompProfile (from 1.19,
    kubernetes#91381) and runAsGroup (beta from 1.14, KEP-213), which an API server of that release drops: the
    containers ran Unconfined. Before 1.19 the pod annotation says docker/default; from it, the field."""
    spec = load(EXAMPLES / example)
    objects_ = deploy.render_deploy(spec, "x")
    pods = [o["spec"]["template"] for docs in objects_.values() for o in docs if o["kind"] == "Deployment"]
    assert pods
    for pod in pods:
        annotations = pod["metadata"].get("annotations", {})
        assert ("seccomp.security.alpha.kubernetes.io/pod" in annotations) is not field
        for c in pod["spec"]["containers"] + pod["spec"].get("initContainers", []):
            assert ("seccompProfile" in c["securityContext"]) is field
            assert "runAsGroup" not in c["securityContext"] or spec.cluster.serves(1, 14)
