"""What runs enclave itself in the commons (issue 18): `enclave render deploy` — pure, no client.

Plain manifests plus a kustomization (no Helm engine installs from PyPI, so a chart could not be templated in
the tests), applied with ``kubectl apply -k``. docs/deploy.md walks through installing them and says what each
object is for. The broker's permissions are the narrowest the live adapter (``enclave.cluster.kube``) needs;
``tests/ops/test_deploy.py`` records every request the adapter makes against the strict API-server fake and
checks that these rules allow each one and grant nothing the adapter never uses.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from enclave.access.render import app_namespaces, pod_security
from enclave.batch import idtoken
from enclave.cluster import objects as cluster_objects
from enclave.outdir import output_dir
from enclave.spec.models import EnclaveSpec

NAMESPACE = "enclave"
BROKER_ACCOUNT = "enclave"
WEBDAV_ACCOUNT = "enclave-webdav"
API_PORT = 8000
WEBDAV_PORT = 8090
SPEC_MOUNT = "/etc/enclave"
DATABASE_SECRET = "enclave-database"
"""Secret with key ``url``: the SQLAlchemy URL of the PostgreSQL database (kustomize secretGenerator)."""
HTCONDOR_SECRET = "enclave-htcondor"
"""Secret with the IDTOKENs the broker presents to HTCondor, for ``render.BROKER_IDENTITY``: ``token``, signed with
``objects.BROKER_KEY``, for the startds and their masters; ``schedd-token``, signed with the pool's key, for the
schedds (which hold no broker key). A client presents only a token whose key the server lists (condor_auth_passwd.cpp,
checkToken). Kustomize makes it from the files in ``BROKER_FILES``."""
BROKER_FILES = {"token": "htcondor-token", "schedd-token": "htcondor-schedd-token"}
HTCONDOR_SECRET_MOUNT = "/var/run/secrets/htcondor"
HTCONDOR_TOKENS = "/var/run/htcondor/tokens.d"
"""The API pods' HTCondor SEC_TOKEN_DIRECTORY: a copy of the Secret's token that their own user owns, readable by
it alone — HTCondor reads a token file only so (condor_auth_passwd.cpp ``findToken``: ``read_secure_file`` with
SECURE_FILE_VERIFY_ALL, secure_file.cpp: owned by the reading uid, no group or other bits), which a Secret volume's
files (root's) never are. An init container makes it (``_token_copy``)."""
WORKER_FILES = {"token": "htcondor-worker-token", cluster_objects.BROKER_KEY: "htcondor-broker-key"}
"""The files the worker pods' Secret (``objects.WORKER_SECRET``) is made from, by key."""
JOURNAL_SECRET = "enclave-journal-key"
"""Secret with key ``key``: the journal's HMAC key (``enclave.journal.seal``), 64 lowercase hex digits, made once by
the operator and by kustomize from ``JOURNAL_FILES`` (docs/deploy.md). Every pod that opens the database reads this
one key: made by whichever replica wrote the first entry, in its own /tmp, it left every other replica (and that one
after a restart) with a journal that has entries and no key, so every journaled change failed there."""
JOURNAL_FILES = {"key": "journal-key"}
JOURNAL_SECRET_MOUNT = "/var/run/secrets/enclave-journal"
JOURNAL_KEY_DIR = "/var/run/enclave/journal"
JOURNAL_KEY = f"{JOURNAL_KEY_DIR}/key"
"""$ENCLAVE_JOURNAL_KEY in every pod that opens the database: a copy of the Secret's key that the pod's own user owns,
mode 0600 — the seal refuses a key file with any group or other bit (``seal._private``), and a Secret volume's files
are root's, so the container's user could read one only with such bits. An init container makes it, as for
HTCondor's tokens (``_copy``, ``HTCONDOR_TOKENS``), into an in-memory emptyDir. The anchor
($ENCLAVE_JOURNAL_ANCHOR) is not set: it stays per pod, under $ENCLAVE_HOME (docs/deploy.md says what that
detects)."""
HUB_SECRET = "enclave-hub"
"""Secret with key ``token``: the JupyterHub ``enclave-lifecycle`` service's token the API pods present
($ENCLAVE_HUB_TOKEN, ``notebooks.hubapi``), made by kustomize from ``HUB_FILES``; the hub has the same file's value
from `helm --set-file` (``notebooks.profiles.LIFECYCLE_TOKEN_VALUE``, docs/deploy.md)."""
HUB_FILES = {"token": "hub-token"}
HUB_SERVICE, HUB_PORT = "hub", 8081
"""Zero-to-JupyterHub 4.1.0's hub Service: templates/hub/service.yaml names it ``jupyterhub.hub.fullname``, which is
``hub`` with the chart's default ``fullnameOverride: ""`` (templates/_helpers-names.tpl), port 8081 to the hub
container's ``http`` (8081, templates/hub/deployment.yaml); the API under /hub/api (``hub.baseUrl`` "/")."""
HOMES_CLAIM = "enclave-homes"
LABEL = "app.kubernetes.io/name"

# RBAC rules, each one a call of the live adapter (verbs as the API server derives them from the HTTP method:
# https://kubernetes.io/docs/reference/access-authn-authz/authorization/#determine-the-request-verb).
CLUSTER_RULES: list[dict[str, Any]] = [
    # nodes(): list; _state(): get; the broker's taint and batch label (_mark): get, then patch.
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "patch"]},
    # nodes() counts every pod's requests and drain() finds the pods on a node: pods in all namespaces.
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]},
    # drain()/evict(): the Eviction API, in whatever namespace a pod on the node lives.
    {"apiGroups": [""], "resources": ["pods/eviction"], "verbs": ["create"]},
]
LEASE_RULES: list[dict[str, Any]] = [
    # enclave.cluster.lease.LeaseLock: read the Lease, create it the first time, renew or take it over.
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "create", "update"]},
]
LEASE_NAME = "enclave-broker"
"""The ConfigMap, and from Kubernetes 1.14 the Lease beside it, that say which process runs the broker loop."""
CONFIGMAP_LOCK_RULES: list[dict[str, Any]] = [
    # The same record in a ConfigMap's annotation, on every cluster (lease.LeaseLock: the one lock of replicas on
    # either side of 1.14, when the Lease API came): that one ConfigMap alone, not the spec's beside it (a create
    # names no object, so it cannot be restricted by name).
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create"]},
    {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [LEASE_NAME], "verbs": ["get", "update"]},
]
LOG_RULES: list[dict[str, Any]] = [
    # pod_log(): developers' logs (AA2/AA3), read for them after enclave's own check (logs.read in a namespace they
    # belong to) — only in the spec's application namespaces, so a Role in each, not a ClusterRole.
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
]
BINDING_RULES: list[dict[str, Any]] = [
    # revoke_bindings(): after depart, demote and expire, the person's rendered RoleBindings in each application
    # namespace — found by label (list), then deleted. Deleting a binding needs no escalation right: RBAC's
    # "Privilege escalation prevention and bootstrapping" restricts creating and updating a binding (the bind verb,
    # or holding every permission of its role), never deleting one
    # (https://kubernetes.io/docs/reference/access-authn-authz/rbac/#privilege-escalation-prevention-and-bootstrapping).
    {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"], "verbs": ["list", "delete"]},
]
HOME_RULES: list[dict[str, Any]] = [
    # provision_home(): the Job that makes a home where the API pods do not mount the homes (enclave.cluster.homes);
    # get and delete for a finished one of the same name, which stays before Kubernetes 1.21 (no TTL controller).
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "delete", "get"]},
]
BATCH_RULES: list[dict[str, Any]] = [
    # deploy_pods()/start_htcondor(): create; delete_pods()/return_node(): delete; label_pod_pool(): patch —
    # only HTCondor worker pods, only in the batch namespace.
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "delete", "patch"]},
]


def _meta(name: str, namespace: str | None = NAMESPACE, component: str = "enclave") -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {LABEL: "enclave", "app.kubernetes.io/component": component}}
    if namespace:
        meta["namespace"] = namespace
    return meta


def image(spec: EnclaveSpec) -> str:
    return f"{spec.registry.host}/enclave/enclave:{_version()}"


# enclave's own images by role in registry.system_images: the API (and broker), the WebDAV server (enclave's
# `webdav` command), the JupyterHub hub (hub.Dockerfile) and the HTCondor worker the broker starts.
SYSTEM_IMAGES = ("enclave", "htcondor-worker", "hub", "webdav")


def _version() -> str:
    try:
        return metadata.version("enclave")
    except metadata.PackageNotFoundError:  # running from a checkout without an install
        return "0.1.0"


def dockerfile(spec: EnclaveSpec) -> str:
    """The image: the wheel on python:3.11-slim (the Python enclave requires), running as a non-root user, with
    etcdctl for the scheduled backup (`enclave backup schedule` runs this image, and `backup create` runs etcdctl).

    etcdctl 3.4, the release the tests run (Debian's etcd-client 3.4.23): its `snapshot save` streams the v3
    Maintenance API's Snapshot RPC, which etcd servers have had since 3.0 (etcd v3.0.0 etcdserver/etcdserverpb/
    rpc.proto, service Maintenance), so it saves from kubeadm 1.9's etcd 3.1 as from newer ones; and it still has
    `snapshot status` (and restore), which 3.5 deprecated for etcdutl and 3.6 removed from etcdctl (etcd v3.5.0 and
    v3.6.0 etcdctl/ctlv3/command/snapshot_command.go), so `backup create` needs no etcdutl. It is copied from
    etcd's release image, which holds it at /usr/local/bin/etcdctl (etcd v3.4.23 Dockerfile-release "ADD etcdctl
    /usr/local/bin/", pushed as quay.io/coreos/etcd:v3.4.23 by scripts/release.sh; built with CGO_ENABLED=0, so
    it runs on any libc). That tag is the amd64 image; other architectures are tagged v3.4.23-arm64, -ppc64le."""
    etcd = "3.4.23"
    return "\n".join([
        f"# enclave {_version()} for {spec.cluster.name}. Build from a checkout:",
        "#   python -m pip wheel --no-deps -w dist .",
        f"#   docker build -f Dockerfile -t {image(spec)} . && docker push {image(spec)}",
        "# The registry is the enclave's own (seed §10): vet the image before the cluster may run it.",
        "FROM python:3.11-slim",
        f"# etcdctl {etcd} for the scheduled backup: saves from any etcd >= 3.0 and still has snapshot status.",
        f"COPY --from=quay.io/coreos/etcd:v{etcd} /usr/local/bin/etcdctl /usr/local/bin/etcdctl",
        "COPY dist/enclave-*.whl /tmp/",
        "RUN pip install --no-cache-dir /tmp/enclave-*.whl && rm /tmp/enclave-*.whl \\",
        "    && useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin enclave",
        "USER 10001:10001",
        'ENTRYPOINT ["enclave"]',
        "",
    ])


def hub_dockerfile(spec: EnclaveSpec, hub_ref: str) -> str:
    """The JupyterHub hub image ``hub_ref`` (what `render notebooks` values name): Zero to JupyterHub's hub
    (JupyterHub and KubeSpawner) plus enclave, whose ``enclave.hub.configure`` the values' extraConfig calls."""
    return "\n".join([
        f"# JupyterHub hub for {spec.cluster.name} with enclave's profile list and pre-spawn hook. Build:",
        f"#   docker build -f hub.Dockerfile -t {hub_ref} . (dist/ holds the enclave wheel)",
        "# Base: the hub image of the Zero to JupyterHub chart 4.1.0 (quay.io/jupyterhub/k8s-hub).",
        "FROM quay.io/jupyterhub/k8s-hub:4.1.0",
        "USER root",
        "COPY dist/enclave-*.whl /tmp/",
        "RUN pip install --no-cache-dir /tmp/enclave-*.whl && rm /tmp/enclave-*.whl",
        # Back to the base's user by uid: NB_USER is an ARG of that build (images/hub/Dockerfile, 4.1.0: ARG
        # NB_USER=jovyan NB_UID=1000, no ENV), so ${NB_USER} is empty here and the image ran as root (review).
        "USER 1000",
        "",
    ])


SECCOMP_FIELD_SINCE = (1, 19)
"""The runtime's default seccomp profile as ``securityContext.seccompProfile``: the field came with seccomp's GA in
Kubernetes 1.19 (kubernetes/kubernetes#91381); an older API server drops it without a word, and the container runs
Unconfined. Before 1.19 the pod annotation ``seccomp.security.alpha.kubernetes.io/pod`` says it, ``docker/default``
(the profile the CIS benchmarks of those releases name, ops/data/cis-benchmarks.yaml) (review, stop 48)."""
RUN_AS_GROUP_SINCE = (1, 14)
"""``securityContext.runAsGroup``: alpha in 1.10 behind the RunAsGroup gate, beta from 1.14 (KEP-213)."""


def seccomp_field(spec: EnclaveSpec) -> dict[str, Any]:
    """What a container's securityContext holds for the runtime's default seccomp profile (``SECCOMP_FIELD_SINCE``)."""
    return {"seccompProfile": {"type": "RuntimeDefault"}} if spec.cluster.serves(*SECCOMP_FIELD_SINCE) else {}


def pod_template_metadata(spec: EnclaveSpec, labels: dict[str, str]) -> dict[str, Any]:
    """A pod template's metadata: ``labels``, and where the seccomp field is not there yet (``SECCOMP_FIELD_SINCE``)
    the annotation that says the runtime's default profile."""
    if spec.cluster.serves(*SECCOMP_FIELD_SINCE):
        return {"labels": labels}
    return {"labels": labels, "annotations": {"seccomp.security.alpha.kubernetes.io/pod": "docker/default"}}


def webdav_security(spec: EnclaveSpec) -> dict[str, Any]:
    """The WebDAV server's identity: root, to act as each account for the files of that account's requests
    (enclave.notebooks.workspace.act_as: the thread's file-system uid and gid, setfsuid(2)), with no capability but
    the two that change them — no DAC_OVERRIDE, DAC_READ_SEARCH, CHOWN or FOWNER, so the server itself reaches no
    home (each is 0700, its account's: enclave.accounts.homes) and a request reaches only what its account could.
    Run as uid 10001 like the other pods, it could enter none of them. The runtime's default seccomp profile allows
    setfsuid/setfsgid (moby profiles/seccomp/default.json, v24.0.0); no_new_privs (allowPrivilegeEscalation: false)
    limits execve, not these calls. With the fields the cluster's Kubernetes has (``RUN_AS_GROUP_SINCE``,
    ``SECCOMP_FIELD_SINCE``)."""
    group = {"runAsGroup": 0} if spec.cluster.serves(*RUN_AS_GROUP_SINCE) else {}
    return {"runAsUser": 0, **group, "runAsNonRoot": False, "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True, "privileged": False,
            "capabilities": {"drop": ["ALL"], "add": ["SETUID", "SETGID"]}, **seccomp_field(spec)}


def _container(spec: EnclaveSpec, ref: str, name: str, args: list[str], port: int) -> dict[str, Any]:
    return {
        "name": name,
        "image": ref,
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        # One JSON object per log line for the cluster's log collector (enclave.logs).
        "env": [{"name": "ENCLAVE_LOG_FORMAT", "value": "json"},
                {"name": "ENCLAVE_SPEC", "value": f"{SPEC_MOUNT}/enclave.yaml"},
                {"name": "ENCLAVE_DB", "valueFrom": {"secretKeyRef": {"name": DATABASE_SECRET, "key": "url"}}}],
        "ports": [{"name": "http", "containerPort": port}],
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
        "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
                            **seccomp_field(spec)},
        "volumeMounts": [{"name": "spec", "mountPath": SPEC_MOUNT, "readOnly": True},
                         {"name": "tmp", "mountPath": "/tmp"}],
    }


def api_probes() -> dict[str, Any]:
    """The API container's probes (kubernetes.io, "Configure Liveness, Readiness and Startup Probes"). A
    ``tcpSocket`` check passed on a frozen server — the kernel accepts the connection for a process that never
    answers (audit: SIGSTOP) — so both ask over HTTP ("Define a liveness HTTP request": any status from 200 to
    399 is success, anything else or no answer within ``timeoutSeconds`` a failure):

    - liveness, ``/api/v1/health``: answered by the process alone ("Define a liveness HTTP request"), so a restart
      comes only when this process is stuck — three missed answers in a row ("Configure Probes":
      ``failureThreshold`` 3, the default), each given 2 s rather than the default 1 s against a pause of the
      garbage collector or a burst of requests;
    - readiness, ``/api/v1/ready``: the replica's database answers a trivial query within a second
      (``enclave.services.database.unready``), else it leaves the Service's endpoints until it does ("Define
      readiness probes"), never restarted for it."""
    return {"livenessProbe": _probe("/api/v1/health"), "readinessProbe": _probe("/api/v1/ready")}


def _probe(path: str) -> dict[str, Any]:
    return {"httpGet": {"path": path, "port": "http"}, "periodSeconds": 10, "timeoutSeconds": 2, "failureThreshold": 3}


WEBDAV_HEALTH = "/-/health"
"""What the WebDAV server answers without a login (enclave.notebooks.webdav.HEALTH_PATH)."""


def webdav_probes() -> dict[str, Any]:
    """The WebDAV container's probes, as ``api_probes`` reasons: over HTTP, since a frozen server still accepts
    connections. Both ask the process alone (``WEBDAV_HEALTH``): it is ready once it answers. It has no readiness of
    its own on the database, which the API's readiness already reports for both (they share it)."""
    return {"livenessProbe": _probe(WEBDAV_HEALTH), "readinessProbe": _probe(WEBDAV_HEALTH)}


def _copy(main: dict[str, Any], name: str, secret_volume: str, secret_mount: str, files: list[str],
          copy_volume: str, copy_dir: str) -> dict[str, Any]:
    """An init container that copies a Secret's ``files`` into ``copy_dir`` for ``main``: the same image and user as
    ``main``, so each copy is that user's, mode 0600 (``idtoken.copy_container``, the rule notebook pods' tokens
    follow too)."""
    container = idtoken.copy_container(
        name=name, image=main["image"], security_context=main["securityContext"],
        resources={"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"cpu": "100m", "memory": "64Mi"}},
        secret_volume=secret_volume, secret_mount=secret_mount, files=files,
        tokens_volume=copy_volume, tokens_dir=copy_dir)
    return {**container, "imagePullPolicy": main["imagePullPolicy"]}


def _token_copy(api: dict[str, Any]) -> dict[str, Any]:
    """The init container that copies the API pods' HTCondor token where their client reads it (``HTCONDOR_TOKENS``)."""
    return _copy(api, "htcondor-token", "htcondor-token", HTCONDOR_SECRET_MOUNT, list(BROKER_FILES),
                 "htcondor-tokens", HTCONDOR_TOKENS)


def _journal_key(main: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Give ``main`` (whose securityContext is final) the journal key: $ENCLAVE_JOURNAL_KEY naming the copy
    (``JOURNAL_KEY``) and its mount; returns the init container that makes the copy and the pod's two volumes."""
    main["env"].append({"name": "ENCLAVE_JOURNAL_KEY", "value": JOURNAL_KEY})
    main["volumeMounts"].append({"name": "journal-key-copy", "mountPath": JOURNAL_KEY_DIR, "readOnly": True})
    init = _copy(main, "journal-key", "journal-key", JOURNAL_SECRET_MOUNT, list(JOURNAL_FILES), "journal-key-copy",
                 JOURNAL_KEY_DIR)
    volumes = [{"name": "journal-key", "secret": {"secretName": JOURNAL_SECRET,
                                                  "items": [{"key": k, "path": k} for k in JOURNAL_FILES]}},
               {"name": "journal-key-copy", "emptyDir": {"medium": "Memory"}}]
    return init, volumes


def _deployment(spec: EnclaveSpec, name: str, account: str, container: dict[str, Any], volumes: list[dict[str, Any]],
                *, automount: bool, replicas: int, init: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(name, component=name),
        "spec": {
            # Several API replicas are safe: only the holder of the PostgreSQL advisory lock runs the broker
            # loop (enclave.db.leader); the others serve the API and wait for the lock.
            "replicas": replicas,
            "selector": {"matchLabels": {LABEL: "enclave", "app.kubernetes.io/component": name}},
            "template": {
                "metadata": pod_template_metadata(spec, {LABEL: "enclave", "app.kubernetes.io/component": name}),
                "spec": {"serviceAccountName": account, "automountServiceAccountToken": automount,
                         **({"initContainers": init} if init else {}),
                         "containers": [container],
                         "volumes": [{"name": "spec", "configMap": {"name": "enclave-spec"}},
                                     {"name": "tmp", "emptyDir": {}}, *volumes]},
            },
        },
    }


def _webdav_deployment(spec: EnclaveSpec, container: dict[str, Any]) -> dict[str, Any]:
    """The WebDAV Deployment, with the homes mounted; it runs as uid 0 (``webdav_security``), which `enclave security
    check` reports as POD-09 unless waived (ops/data/security-checks.yaml: the waiver annotation keeps the finding
    visible as "waived" in every report). No journal key: it reads accounts and writes no journal entry, and a root
    pod serving users' files that held the key could forge entries."""
    deployment = _deployment(spec, "enclave-webdav", WEBDAV_ACCOUNT, container,
                             [{"name": "homes", "persistentVolumeClaim": {"claimName": HOMES_CLAIM}}],
                             automount=False, replicas=1)
    deployment["metadata"]["annotations"] = {
        "security.enclave.lsst.io/waive-POD-09": "uid 0 with only CAP_SETUID and CAP_SETGID, to act as each account "
                                                 "on its own files (setfsuid); docs/deploy.md, enclave-webdav"}
    return deployment


def _service(name: str, port: int) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(name, component=name),
            "spec": {"selector": {LABEL: "enclave", "app.kubernetes.io/component": name},
                     "ports": [{"name": "http", "port": port, "targetPort": "http"}]}}


def _rbac(spec: EnclaveSpec) -> list[dict[str, Any]]:
    subject = [{"kind": "ServiceAccount", "name": BROKER_ACCOUNT, "namespace": NAMESPACE}]
    batch_ns = cluster_objects.DEFAULT_NAMESPACE
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": _meta("enclave-broker", None), "rules": CLUSTER_RULES},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": _meta("enclave-broker", None), "subjects": subject,
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "enclave-broker"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": _meta("enclave-broker", batch_ns), "rules": BATCH_RULES},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": _meta("enclave-leader"),
         "rules": CONFIGMAP_LOCK_RULES + (LEASE_RULES if spec.cluster.serves(*cluster_objects.LEASE_API_SINCE)
                                          else [])},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": _meta("enclave-leader"), "subjects": subject,
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "enclave-leader"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": _meta("enclave-homes"), "rules": HOME_RULES},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": _meta("enclave-homes"), "subjects": subject,
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "enclave-homes"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": _meta("enclave-broker", batch_ns), "subjects": subject,
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "enclave-broker"}},
        *(doc for ns in app_namespaces(spec) for name, rules in (("enclave-logs", LOG_RULES),
                                                                 ("enclave-bindings", BINDING_RULES))
          for doc in _namespaced_role(name, ns, rules, subject)),
    ]


def _namespaced_role(name: str, namespace: str, rules: list[dict[str, Any]],
                     subject: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A Role of ``rules`` in ``namespace`` and its RoleBinding to ``subject``, both called ``name``."""
    return [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": _meta(name, namespace),
         "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": _meta(name, namespace),
         "subjects": subject, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name}},
    ]


def _pdb_api(spec: EnclaveSpec) -> str:
    """policy/v1 PodDisruptionBudget is GA from Kubernetes 1.21; older servers (the seed's 1.9) serve v1beta1
    (https://kubernetes.io/docs/reference/using-api/deprecation-guide/#poddisruptionbudget-v125)."""
    return "policy/v1" if spec.cluster.serves(1, 21) else "policy/v1beta1"


def _htcondor_client_env() -> list[dict[str, Any]]:
    """The API pods' HTCondor client (the broker's ``HTCondorBatch``): no config file in the image, so its settings
    come from the environment alone (``CONDOR_CONFIG=ONLY_ENV``, htcondor/htcondor condor_config.cpp), and its
    tokens from the init container's copies (``SEC_TOKEN_DIRECTORY``, ``HTCONDOR_TOKENS``; a ``_CONDOR_`` variable
    sets a knob, HTCondor manual, "Configuration File Macros"). Which token it presents is the server's to say: one
    whose issuer is the server's TRUST_DOMAIN (the pool's: ``render._security``) and whose key the server holds."""
    return [{"name": "CONDOR_CONFIG", "value": "ONLY_ENV"},
            {"name": "_CONDOR_SEC_TOKEN_DIRECTORY", "value": HTCONDOR_TOKENS}]


def _hub_env(spec: EnclaveSpec) -> list[dict[str, Any]]:
    """What the API pods need to reach JupyterHub after depart, expire and demote (``notebooks.hubapi.HubAdmin``
    reads $ENCLAVE_HUB_URL and $ENCLAVE_HUB_TOKEN; without both nothing is stopped or revoked): the hub Service in
    the notebook namespace, whose NetworkPolicy admits these pods (``notebooks.profiles.hub_ingress``)."""
    url = f"http://{HUB_SERVICE}.{spec.notebooks.namespace}:{HUB_PORT}/hub/api"
    return [{"name": "ENCLAVE_HUB_URL", "value": url},
            {"name": "ENCLAVE_HUB_TOKEN", "valueFrom": {"secretKeyRef": {"name": HUB_SECRET, "key": "token"}}}]


def _namespace() -> dict[str, Any]:
    """enclave's own namespace, labelled with its name as the API server labels every namespace from Kubernetes 1.21
    on (``kubernetes.io/metadata.name``, NamespaceDefaultLabelName): the hub's NetworkPolicy picks the API pods'
    namespace by it, and on an older cluster only this label is there to pick."""
    meta = _meta(NAMESPACE, None)
    meta["labels"]["kubernetes.io/metadata.name"] = NAMESPACE
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def _batch_namespace(name: str) -> dict[str, Any]:
    """The HTCondor worker pods' namespace. Its pods mount the host's /software, and a whole-node pod runs
    privileged on the host's network: only the Pod Security Standards' privileged level admits them (baseline
    forbids hostPath volumes, hostNetwork and privileged containers: https://kubernetes.io/docs/concepts/security/
    pod-security-standards/), so the namespace says so, whatever the cluster's default (Pod Security admission reads
    the label from Kubernetes 1.23; older servers ignore it)."""
    meta = _meta(name, None, "htcondor-worker")
    meta["labels"].update(pod_security("privileged"))
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": meta}


def render_deploy(spec: EnclaveSpec, spec_text: str, pinned: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """File name → the objects in it, in the order ``kubectl apply`` should see them. ``pinned``: the vetted
    ``repository@digest`` of enclave's image (seed §10); else the spec's pin (``registry.system_images``:
    ``enclave`` for the API, ``webdav`` for the WebDAV server, which the admission policy admits without an
    approval); without either the pods name the tag, and the security benchmark (IMG-02) and the admission policy
    refuse them until security staff approve the image."""
    batch_ns = cluster_objects.DEFAULT_NAMESPACE
    system = spec.registry.system_images
    ref = pinned or system.get("enclave") or image(spec)
    api = _container(spec, ref, "api", ["serve", "--live", "--host", "0.0.0.0", "--port", str(API_PORT)], API_PORT)
    api.update(api_probes())
    # Who this replica is, for the Lease that picks the one running the broker loop (enclave.cluster.lease).
    api["env"] += [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                   {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                   *_htcondor_client_env(), *_hub_env(spec),
                   # The enclave home on the pod's own writable /tmp (the root file system is read-only): where
                   # `serve` leaves the bootstrap token, 0600, rather than in the log (docs/deploy.md step 8), and
                   # the journal anchor of this pod (the key is the Secret's: _journal_key).
                   {"name": "ENCLAVE_HOME", "value": "/tmp/enclave"}]
    api["volumeMounts"].append({"name": "htcondor-tokens", "mountPath": HTCONDOR_TOKENS, "readOnly": True})
    journal_init, journal = _journal_key(api)
    token = [{"name": "htcondor-token", "secret": {"secretName": HTCONDOR_SECRET,
                                                   "items": [{"key": k, "path": k} for k in BROKER_FILES]}},
             {"name": "htcondor-tokens", "emptyDir": {"medium": "Memory"}}, *journal]
    webdav = _container(spec, system.get("webdav", ref), "webdav",
                        ["webdav", "--host", "0.0.0.0", "--port", str(WEBDAV_PORT)], WEBDAV_PORT)
    webdav["volumeMounts"].append({"name": "homes", "mountPath": spec.storage.home_root})
    webdav["securityContext"] = webdav_security(spec)
    webdav.update(webdav_probes())
    # Where the journal anchor goes (ENCLAVE_HOME, as for the API pods): the pod's own writable /tmp.
    webdav["env"].append({"name": "ENCLAVE_HOME", "value": "/tmp/enclave"})
    return {
        "namespace.yaml": [
            _namespace(),
            _batch_namespace(batch_ns),
        ],
        "serviceaccounts.yaml": [
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(BROKER_ACCOUNT)},
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(WEBDAV_ACCOUNT),
             "automountServiceAccountToken": False},
        ],
        "rbac.yaml": _rbac(spec),
        "configmaps.yaml": [
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("enclave-spec"),
             "data": {"enclave.yaml": spec_text}},
            # The JupyterHub hub reads the same spec (values from `render notebooks` mount it).
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _meta("enclave-spec", spec.notebooks.namespace),
             "data": {"enclave.yaml": spec_text}},
            *cluster_objects.worker_config_maps(spec, batch_ns),
        ],
        "api.yaml": [
            _deployment(spec, "enclave-api", BROKER_ACCOUNT, api, token, automount=True, replicas=2,
                        init=[_token_copy(api), journal_init]),
            _service("enclave-api", API_PORT),
            {"apiVersion": _pdb_api(spec), "kind": "PodDisruptionBudget", "metadata": _meta("enclave-api"),
             # A drain may take one of the two API pods at a time, never both: the API and a standby for
             # the broker loop stay up.
             "spec": {"minAvailable": 1,
                      "selector": {"matchLabels": {LABEL: "enclave", "app.kubernetes.io/component": "enclave-api"}}}},
        ],
        "webdav.yaml": [
            {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": _meta(HOMES_CLAIM),
             "spec": {"accessModes": ["ReadWriteMany"],
                      "resources": {"requests": {"storage": f"{int(spec.storage.shared_tib * 1024)}Gi"}}}},
            _webdav_deployment(spec, webdav),
            _service("enclave-webdav", WEBDAV_PORT),
        ],
    }


def kustomization(files: list[str], notebook_namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": files,
        # The database URL never goes into a rendered file: write it to database-url, kustomize makes the Secret
        # (for enclave, and for the JupyterHub hub in the notebook namespace).
        "secretGenerator": [
            *({"name": DATABASE_SECRET, "namespace": ns, "files": ["url=database-url"]}
              for ns in (NAMESPACE, notebook_namespace)),
            # HTCondor's: the broker's IDTOKENs; the worker pods' IDTOKEN and the broker's signing key (docs/deploy.md).
            {"name": HTCONDOR_SECRET, "namespace": NAMESPACE,
             "files": [f"{key}={file}" for key, file in BROKER_FILES.items()]},
            {"name": cluster_objects.WORKER_SECRET, "namespace": cluster_objects.DEFAULT_NAMESPACE,
             "files": [f"{key}={file}" for key, file in WORKER_FILES.items()]},
            # The journal's HMAC key, one for every pod that opens the database (docs/deploy.md step 4).
            {"name": JOURNAL_SECRET, "namespace": NAMESPACE, "files": [f"{k}={f}" for k, f in JOURNAL_FILES.items()]},
            # The hub's enclave-lifecycle token, presented by the API pods (the hub gets the same file by helm).
            {"name": HUB_SECRET, "namespace": NAMESPACE, "files": [f"{k}={f}" for k, f in HUB_FILES.items()]},
        ],
        "generatorOptions": {"disableNameSuffixHash": True},
    }


def write(spec: EnclaveSpec, spec_text: str, out: Path, pinned: str | None = None, *, hub_ref: str) -> list[Path]:
    """Write the bundle under ``out``: Dockerfile, one YAML file per concern, kustomization.yaml."""
    output_dir(out)
    bundle = render_deploy(spec, spec_text, pinned)
    paths = []
    for name, docs in bundle.items():
        path = out / name
        path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
        paths.append(path)
    for name, text in (("Dockerfile", dockerfile(spec)), ("hub.Dockerfile", hub_dockerfile(spec, hub_ref)),
                       ("kustomization.yaml", yaml.safe_dump(kustomization(list(bundle), spec.notebooks.namespace),
                                                            sort_keys=False))):
        (out / name).write_text(text)
        paths.append(out / name)
    return paths
