"""Home provisioning through the cluster (issue 18 item 6): where the home file system is not mounted where
enclave runs — the API pods in the commons — a Kubernetes Job that mounts it (the same ``enclave-homes`` claim
the WebDAV server mounts, ``enclave.cluster.deploy``) creates the account's home and workspace with its uid and
gid and mode 0700, then sets its quota with the spec's tool (``enclave.accounts.homes.quota_command``, the
argv the local path runs). Pure: ``home_job`` renders the object; ``KubeCluster.provision_home`` submits it.

The container runs as root because chown to the account's uid and quotactl need it, with every capability
dropped but the ones those steps use (capabilities(7)): CHOWN (chown), FOWNER (chmod of a directory the account
owns), DAC_OVERRIDE (reach into an existing 0700 home on a re-run), and SYS_ADMIN only when a quota tool runs
(quotactl(2): Q_SETQUOTA needs CAP_SYS_ADMIN). No service-account token, no privilege escalation, a read-only
root file system. Nothing it runs deletes: departure and expiry never submit a Job.
"""

from __future__ import annotations

import re
from typing import Any

from enclave.accounts.homes import quota_command
from enclave.accounts.types import AccountView
from enclave.cluster import deploy
from enclave.spec.models import EnclaveSpec

SCRIPT = ('set -eu; mkdir -p "$1" "$2"; chown "$3:$4" "$1" "$2"; chmod 0700 "$1" "$2"; shift 4; '
          'if [ "$#" -gt 0 ]; then exec "$@"; fi')
"""Paths, ids and the quota argv arrive as positional parameters, never spliced into the script: a username
cannot inject shell."""
TTL_SECONDS = 86400
"""The Job is removed a day after it finishes (ttlSecondsAfterFinished, https://kubernetes.io/docs/concepts/
workloads/controllers/ttlafterfinished/); its outcome stays in the logs meanwhile. Only from 1.21, though: before,
the TTL-after-finished controller is alpha and off by default, the field is dropped and a finished Job stays for
good. Either way a re-provision may find the last Job under its fixed name: ``KubeCluster.provision_home`` deletes
one that has finished and submits the new one."""


def job_name(username: str) -> str:
    """``enclave-home-<username>`` as a DNS-1123 label (a Job's name becomes its pods' job-name label, at most
    63 characters: https://kubernetes.io/docs/concepts/workloads/controllers/job/#writing-a-job-spec)."""
    safe = re.sub(r"[^a-z0-9-]+", "-", username.lower()).strip("-") or "account"
    return f"enclave-home-{safe}"[:63].rstrip("-")


def home_job(spec: EnclaveSpec, account: AccountView, image: str | None = None) -> dict[str, Any]:
    quota = spec.storage.quota
    argv = quota_command(quota, account.uid, account.quota_gib) or []
    caps = ["CHOWN", "DAC_OVERRIDE", "FOWNER", *(["SYS_ADMIN"] if argv else [])]
    ref = image or quota.image or deploy.image(spec)
    labels = {deploy.LABEL: "enclave", "app.kubernetes.io/component": "home-provisioning"}
    container = {
        "name": "provision",
        "image": ref,
        "imagePullPolicy": "IfNotPresent",
        "command": ["/bin/sh", "-c", SCRIPT, "enclave-home", account.home, account.workspace, str(account.uid),
                    str(account.gid), *argv],
        "securityContext": {"runAsUser": 0, "runAsNonRoot": False, "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True, "privileged": False,
                            "capabilities": {"drop": ["ALL"], "add": caps}, **deploy.seccomp_field(spec)},
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}},
        "volumeMounts": [{"name": "homes", "mountPath": spec.storage.home_root}],
    }
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": job_name(account.username), "namespace": deploy.NAMESPACE, "labels": labels},
        "spec": {
            "backoffLimit": 2, "activeDeadlineSeconds": 600, "ttlSecondsAfterFinished": TTL_SECONDS,
            "template": {
                "metadata": deploy.pod_template_metadata(spec, labels),
                "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False,
                         "containers": [container],
                         "volumes": [{"name": "homes",
                                      "persistentVolumeClaim": {"claimName": deploy.HOMES_CLAIM}}]},
            },
        },
    }
