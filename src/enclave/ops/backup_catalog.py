"""Backups operators can manage (seed §12 option 2): names, a listing, retention and a schedule.

The archive format itself is ``backup.py``'s; this module only names archives, reads their manifests,
decides which to keep and renders the CronJob that takes them on a live cluster.
"""

from __future__ import annotations

import datetime as dt
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from enclave.errors import EnclaveError, InputError, Problem
from enclave.ops.backup import MANIFEST, BackupManifest
from enclave.ops.etcd import PLAIN_LOCAL_ETCD_BEFORE
from enclave.ops.versions import Version
from enclave.spec.load import dump
from enclave.spec.models import EnclaveSpec

STAMP = "%Y%m%dT%H%M%SZ"
_NAME = re.compile(r"^(?P<cluster>[a-z0-9]([-a-z0-9]*[a-z0-9])?)-(?P<stamp>\d{8}T\d{6}Z)\.tar\.gz$")
BACKUP_DIR = "/var/backups/enclave"


def backup_name(cluster: str, when: dt.datetime) -> str:
    """`<cluster>-<UTC time>.tar.gz`: sorts by time, says whose it is, never collides within a second."""
    return f"{cluster}-{when.astimezone(dt.UTC).strftime(STAMP)}.tar.gz"


@dataclass(frozen=True)
class Listed:
    path: Path
    created: dt.datetime
    size: int
    manifest: BackupManifest | None
    problem: str = ""


def _read_manifest(path: Path) -> BackupManifest:
    """MANIFEST.json, the archive's first member (backup.create writes it first), without unpacking the rest;
    `enclave backup verify` checks the whole archive."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            first = tar.next()
            if first is None or first.name != MANIFEST:
                raise InputError([Problem(str(path), f"does not start with {MANIFEST}", "verify it")])
            fobj = tar.extractfile(first)
            assert fobj is not None
            return BackupManifest.from_json(fobj.read(), f"{path}:{MANIFEST}")
    except (OSError, tarfile.TarError, EOFError) as exc:
        raise InputError([Problem(str(path), f"cannot be read ({exc})", "run `enclave backup verify` on it")]) \
            from None


def list_backups(directory: Path) -> list[Listed]:
    """Every archive named by ``backup_name`` in ``directory``, oldest first; one that cannot be read is
    listed with its problem (and never counted as a good backup)."""
    out: list[Listed] = []
    for path in sorted(directory.glob("*.tar.gz")):
        m = _NAME.match(path.name)
        if not m:
            continue
        created = dt.datetime.strptime(m.group("stamp"), STAMP).replace(tzinfo=dt.UTC)
        try:
            out.append(Listed(path, created, path.stat().st_size, _read_manifest(path)))
        except EnclaveError as exc:
            out.append(Listed(path, created, path.stat().st_size, None, str(exc)))
    return sorted(out, key=lambda b: b.created)


def retention(backups: list[Listed], *, keep_last: int, keep_days: int | None, now: dt.datetime
              ) -> tuple[list[Listed], list[Listed]]:
    """(keep, remove): the ``keep_last`` newest readable backups always stay, and with ``keep_days`` every
    readable backup younger than that too; unreadable archives are never deleted automatically (someone
    should look at them) and never count towards ``keep_last``."""
    if keep_last < 1:
        raise InputError([Problem("--keep-last", f"{keep_last} would delete every backup", "keep at least 1")])
    good = [b for b in backups if b.manifest is not None]
    newest = set(id(b) for b in good[-keep_last:])
    young = {id(b) for b in good if keep_days is not None and now - b.created < dt.timedelta(days=keep_days)}
    remove = [b for b in good if id(b) not in newest | young]
    keep = [b for b in backups if b not in remove]
    return keep, remove


# What the scheduled job reads besides the node's files (docs/ops.md, "Backup and restore"): the operator's signing
# key from a Secret they create (enclave never renders it), and the spec from a ConfigMap rendered here, so the
# archives carry the operator's cluster name and verify under the operator's key.
KEY_SECRET, KEY_ITEM, KEY_MOUNT = "enclave-backup-key", "signing-key", "/etc/enclave-backup-key"
SPEC_CONFIGMAP, SPEC_ITEM, SPEC_MOUNT = "enclave-backup-spec", "enclave.yaml", "/etc/enclave-backup-spec"
NAMESPACE = "kube-system"
_LABELS = {"app.kubernetes.io/managed-by": "enclave"}
_WAIVE = "security.enclave.lsst.io/waive-"
# How long one run may be active before the Job controller ends it (Job spec activeDeadlineSeconds: its pods are
# terminated, the Job fails with reason DeadlineExceeded). Without it a pod the kubelet cannot start — the Secret
# enclave-backup-key or its item missing makes the secret volume fail to mount (kubernetes pkg/volume/secret/
# secret.go SetUpAt: the Secret is not found, or MakePayload "references non-existent secret key"), so it stays
# ContainerCreating — keeps its Job active forever, and concurrencyPolicy Forbid then skips every later run. An
# hour: create gives etcd 300 s per etcdctl call (Etcdctl.timeout_s) to stream a database etcd caps at 2 GiB by
# default (8 GiB its suggested maximum, --quota-backend-bytes), and prune reads manifests only, so a healthy run
# takes minutes; an hour is far past that and far inside the daily schedule.
JOB_DEADLINE_S = 3600


def schedule_objects(spec: EnclaveSpec, *, schedule: str, keep_last: int, keep_days: int | None = None,
                     directory: str = BACKUP_DIR) -> list[dict[str, Any]]:
    """The spec's ConfigMap, then the CronJob that reads it (``render_schedule``): what `kubectl apply` takes."""
    job = render_schedule(spec, schedule=schedule, keep_last=keep_last, keep_days=keep_days, directory=directory)
    return [spec_configmap(spec), job]


def spec_configmap(spec: EnclaveSpec) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": SPEC_CONFIGMAP, "namespace": NAMESPACE, "labels": dict(_LABELS)},
            "data": {SPEC_ITEM: dump(spec)}}


def _script(version: Version, *, keep_last: int, keep_days: int | None, directory: str) -> str:
    """kubeadm's stacked etcd listens on 127.0.0.1:2379 and is read with kubeadm's healthcheck-client certificate
    (kubeadm "PKI certificates and requirements": etcd/healthcheck-client), or over plain http before kubeadm 1.10
    (kubeadm 1.9's local etcd had no TLS). The key must exist (--no-create-key): one minted in the Job's
    container would sign archives nobody can verify once the container is gone.

    A failing prune is reported on stderr and the script still exits 0: under restartPolicy OnFailure the kubelet
    restarts a container that exits non-zero (kubernetes.io, Pod lifecycle, "Container restart policy"), which
    would run create again and write one more archive per retry, the very thing prune is for. Old archives then
    wait for the next run's prune; a failing create still fails the container, and is retried."""
    pki = "/etc/kubernetes/pki/etcd"
    etcd = ("--endpoints http://127.0.0.1:2379" if version.minor_key < PLAIN_LOCAL_ETCD_BEFORE else
            f"--endpoints https://127.0.0.1:2379 --cacert {pki}/ca.crt --cert {pki}/healthcheck-client.crt "
            f"--key {pki}/healthcheck-client.key")
    prune = f"enclave backup prune {directory} --keep-last {keep_last}" + \
        (f" --keep-days {keep_days}" if keep_days is not None else "")
    return (f"enclave backup create --spec {SPEC_MOUNT}/{SPEC_ITEM} --signing-key {KEY_MOUNT}/{KEY_ITEM} "
            f"--no-create-key --out {directory}/ {etcd} --kubernetes-dir /etc/kubernetes && "
            f"{{ {prune} || echo \"enclave backup prune failed (exit $?): the new archive is written; older ones "
            f"stay until a later run prunes them\" >&2; }}")


def _volumes(directory: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(mounts, volumes): the node's kubeadm files and backup directory, the key Secret (0400: load_key refuses
    a key others may read) and the spec ConfigMap."""
    mounts: list[dict[str, Any]] = [{"name": "kubernetes", "mountPath": "/etc/kubernetes", "readOnly": True},
                                    {"name": "backups", "mountPath": directory},
                                    {"name": "signing-key", "mountPath": KEY_MOUNT, "readOnly": True},
                                    {"name": "spec", "mountPath": SPEC_MOUNT, "readOnly": True}]
    volumes: list[dict[str, Any]] = [
        {"name": "kubernetes", "hostPath": {"path": "/etc/kubernetes", "type": "Directory"}},
        {"name": "backups", "hostPath": {"path": directory, "type": "DirectoryOrCreate"}},
        {"name": "signing-key", "secret": {"secretName": KEY_SECRET, "defaultMode": 0o400,
                                           "items": [{"key": KEY_ITEM, "path": KEY_ITEM}]}},
        {"name": "spec", "configMap": {"name": SPEC_CONFIGMAP, "items": [{"key": SPEC_ITEM, "path": SPEC_ITEM}]}}]
    return mounts, volumes


def _pod(image: str, version: Version, script: str, directory: str) -> dict[str, Any]:
    # The control-plane node label is node-role.kubernetes.io/control-plane from 1.20 and …/master before 1.24
    # (kubeadm sets both in between).
    role = "control-plane" if version.minor_key >= (1, 20) else "master"
    mounts, volumes = _volumes(directory)
    return {"spec": {
        "hostNetwork": True, "restartPolicy": "OnFailure",
        "nodeSelector": {f"node-role.kubernetes.io/{role}": ""},
        # Both taints on every release (tolerating a taint a node lacks is harmless): kubeadm's control-plane
        # nodes carry …/master:NoSchedule, and from 1.24 …/control-plane:NoSchedule beside it
        # (CHANGELOG-1.24, kubernetes/kubernetes#107533); 1.25 stops applying the master taint (#110095).
        "tolerations": [{"key": f"node-role.kubernetes.io/{r}", "operator": "Exists", "effect": "NoSchedule"}
                        for r in ("control-plane", "master")],
        "containers": [{
            "name": "backup", "image": image, "imagePullPolicy": "IfNotPresent",
            "command": ["/bin/sh", "-c", script],
            "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
            # root: kubeadm writes its PKI keys 0600 root and the backup directory is root's; the owner's bits
            # are what let uid 0 in (every capability, CAP_DAC_OVERRIDE too, is dropped), so no group is needed.
            # No runAsGroup: Kubernetes 1.9's SecurityContext has none, so the API server rejects it (KEP-213
            # RunAsGroup: alpha in 1.10 behind the RunAsGroup gate, beta in 1.14).
            "securityContext": {"runAsUser": 0, "allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]}},
            "volumeMounts": mounts,
        }],
        "volumes": volumes,
    }}


def render_schedule(spec: EnclaveSpec, *, schedule: str, keep_last: int, keep_days: int | None = None,
                    directory: str = BACKUP_DIR) -> dict[str, Any]:
    """A CronJob that runs `enclave backup create` and `enclave backup prune` on a control-plane node, on the
    node's loopback etcd (hostNetwork), with the operator's spec and signing key."""
    image = spec.registry.system_images.get("enclave")
    if not image:
        raise InputError([Problem("registry.system_images.enclave", "no pinned enclave image",
                                  "add enclave: <registry>/…/enclave@sha256:<digest> (the admission policy admits "
                                  "only pinned images)")])
    version = Version.parse(spec.cluster.kubernetes_version, where="cluster.kubernetes_version")
    script = _script(version, keep_last=keep_last, keep_days=keep_days, directory=directory)
    # batch/v1 CronJob from 1.21 (batch/v1beta1 before).
    api = "batch/v1" if version.minor_key >= (1, 21) else "batch/v1beta1"
    return {"apiVersion": api, "kind": "CronJob",
            "metadata": {"name": "enclave-etcd-backup", "namespace": NAMESPACE, "labels": dict(_LABELS),
                         "annotations": {
                             f"{_WAIVE}POD-03": "etcd listens on the node's 127.0.0.1 only (kubeadm stacked etcd)",
                             f"{_WAIVE}POD-02": "reads /etc/kubernetes (the etcd client certificate) and writes "
                                                "the backup directory",
                             f"{_WAIVE}POD-09": "root reads kubeadm's PKI keys (0600, root) and writes the backup "
                                                "directory (root's); no capability, no escalation"}},
            "spec": {"schedule": schedule, "concurrencyPolicy": "Forbid", "successfulJobsHistoryLimit": 3,
                     "failedJobsHistoryLimit": 3,
                     "jobTemplate": {"spec": {"activeDeadlineSeconds": JOB_DEADLINE_S,
                                              "template": _pod(image, version, script, directory)}}}}
