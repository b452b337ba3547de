"""The scheduled backup as a node would run it: the CronJob's own script, with its volumes laid out as the kubelet
lays them out (a Secret's items at its defaultMode, a ConfigMap's items, the hostPaths), against a real etcd.

What was wrong (audit): the Job signed with a key it minted in its own container's $ENCLAVE_HOME and lost with
the container, so no scheduled archive could ever be verified or restored; and it ran with the embedded spec,
so archives were named after the example cluster, not the operator's."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from enclave.errors import IntegrityError
from enclave.ops import backup, security
from enclave.ops import backup_catalog as catalog
from enclave.ops.etcd import EtcdServer
from enclave.services.ops import security_params
from enclave.spec.defaults import DEFAULT_SPEC
from enclave.spec.load import load
from enclave.spec.models import EnclaveSpec
from tests.access.test_render import schema_version
from tests.ops.test_cli import env, run  # noqa: F401
from tests.pg import _sqlite_template, private_copy

ENCLAVE = "registry.lsst.local/enclave/enclave@sha256:" + "e" * 64


def _spec(version: str = "1.9.3", name: str = "ldf-night") -> EnclaveSpec:
    raw = load(DEFAULT_SPEC).model_dump(mode="json")
    raw["cluster"]["kubernetes_version"] = version
    raw["cluster"]["name"] = name
    raw["registry"]["system_images"] = {"enclave": ENCLAVE}
    return EnclaveSpec.model_validate(raw)


def _lay_out(objects: list[dict[str, Any]], root: Path, key: Path, kubernetes: Path) -> dict[str, Path]:
    """Each volumeMount's path → a local directory holding what the kubelet would put there."""
    configmap, job = objects
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    local: dict[str, Path] = {}
    for volume in pod["volumes"]:
        where = root / volume["name"]
        if "hostPath" in volume:
            where = kubernetes if volume["hostPath"]["path"] == "/etc/kubernetes" else where
            where.mkdir(parents=True, exist_ok=True)  # DirectoryOrCreate
        elif "secret" in volume:
            assert volume["secret"]["secretName"] == catalog.KEY_SECRET
            where.mkdir(parents=True)
            for item in volume["secret"]["items"]:  # the operator's key, as `kubectl create secret` stored it
                shutil.copyfile(key, where / item["path"])
                (where / item["path"]).chmod(volume["secret"]["defaultMode"])
        else:
            assert volume["configMap"]["name"] == configmap["metadata"]["name"]
            where.mkdir(parents=True)
            for item in volume["configMap"]["items"]:
                (where / item["path"]).write_text(configmap["data"][item["key"]])
        local[volume["name"]] = where
    return {m["mountPath"]: local[m["name"]] for m in pod["containers"][0]["volumeMounts"]}


def _script(objects: list[dict[str, Any]], mounts: dict[str, Path], etcd_url: str) -> str:
    script: str = objects[1]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    script = script.replace("--endpoints http://127.0.0.1:2379", f"--endpoints {etcd_url}")
    paths = re.compile("|".join(re.escape(p) for p in sorted(mounts, key=len, reverse=True)))
    return paths.sub(lambda m: str(mounts[m.group(0)]), script)


def _run_job(script: str, home: Path, first: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The container's `/bin/sh -c`, with the enclave CLI of this checkout on PATH (after ``first``, if given)
    and a fresh home."""
    home.mkdir(exist_ok=True)
    private_copy(_sqlite_template(), home / "enclave.db")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ENCLAVE_")}
    path = f"{Path(sys.executable).parent}:{os.environ['PATH']}"
    environ.update(HOME=str(home), ENCLAVE_HOME=str(home), ENCLAVE_DB=f"sqlite:///{home / 'enclave.db'}",
                   PATH=f"{first}:{path}" if first else path)
    return subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, env=environ, timeout=120,
                          check=False)


def test_a_scheduled_backup_verifies_under_the_operators_key_and_names_their_cluster(
        tmp_path: Path, etcd: EtcdServer, kubernetes_tree: Path) -> None:
    etcd.client.put("/registry/namespaces/qserv", "ns")
    operator_key = tmp_path / "operator" / "backup.key"
    backup.ensure_key(operator_key)
    objects = catalog.schedule_objects(_spec(), schedule="@daily", keep_last=7)
    mounts = _lay_out(objects, tmp_path / "node", operator_key, kubernetes_tree)
    job = _run_job(_script(objects, mounts, etcd.member.client_url), tmp_path / "home")
    assert job.returncode == 0, job.stdout + job.stderr
    [archive] = catalog.list_backups(mounts[catalog.BACKUP_DIR])
    assert archive.path.name.startswith("ldf-night-")  # the operator's spec, not the embedded example's
    manifest = backup.verify(archive.path, key=operator_key)  # the key the operator keeps
    assert manifest.cluster == "ldf-night" and manifest.etcd.total_keys >= 1
    assert not (tmp_path / "home" / "backup.key").exists()  # no key minted in the container

    # Without the Secret (or its item) the kubelet never starts the container (the next test); run by hand without
    # the key, create fails and mints none: an archive nobody can verify is no backup.
    (mounts[catalog.KEY_MOUNT] / catalog.KEY_ITEM).unlink()
    job = _run_job(_script(objects, mounts, etcd.member.client_url), tmp_path / "home")
    assert job.returncode == 3 and "does not exist" in job.stdout + job.stderr
    assert not (tmp_path / "home" / "backup.key").exists()
    assert len(catalog.list_backups(mounts[catalog.BACKUP_DIR])) == 1
    other = tmp_path / "other.key"
    backup.ensure_key(other)
    with pytest.raises(IntegrityError, match="signature does not match"):
        backup.verify(archive.path, key=other)


@pytest.mark.parametrize("version", ["1.9.3", "1.33.10"])
def test_the_spec_configmap_is_the_spec_and_the_objects_pass_the_benchmark(version: str, tmp_path: Path) -> None:
    spec = _spec(version)
    configmap, job = catalog.schedule_objects(spec, schedule="@daily", keep_last=7)
    assert (configmap["kind"], configmap["metadata"]["namespace"]) == ("ConfigMap", "kube-system")
    (tmp_path / "enclave.yaml").write_text(configmap["data"][catalog.SPEC_ITEM])
    assert load(tmp_path / "enclave.yaml") == spec
    script = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    assert f"--signing-key {catalog.KEY_MOUNT}/{catalog.KEY_ITEM} --no-create-key" in script
    assert f"--spec {catalog.SPEC_MOUNT}/{catalog.SPEC_ITEM}" in script
    report = security.run(security.shipped_checks()[1], objects=[("configmap", configmap), ("cronjob", job)],
                          params=security_params(spec))
    assert not report.failed, [r.check.id for r in report.results if r.status == "fail"]


@pytest.mark.usefixtures("env")
def test_the_schedule_command_prints_objects_kubectl_apply_takes(tmp_path: Path) -> None:
    spec = tmp_path / "enclave.yaml"
    spec.write_text(yaml.safe_dump(_spec("1.22.17").model_dump(mode="json")))
    r = run("backup", "schedule", "--spec", str(spec), "--keep-last", "5")
    assert r.exit_code == 0, r.output
    docs = list(yaml.safe_load_all(r.stdout))  # stdout is the objects alone
    assert [d["kind"] for d in docs] == ["ConfigMap", "CronJob"]
    assert "enclave-backup-key" in r.output  # the note on stderr names the Secret to create
    r = run("backup", "schedule", "--spec", str(spec), "--keep-last", "5", "--out", str(tmp_path / "out"))
    assert r.exit_code == 0, r.output
    written = list(yaml.safe_load_all((tmp_path / "out" / "enclave-etcd-backup.yaml").read_text()))
    assert written == docs


def test_a_failing_prune_is_reported_and_does_not_make_the_kubelet_take_another_backup(
        tmp_path: Path, etcd: EtcdServer, kubernetes_tree: Path) -> None:
    """restartPolicy OnFailure: the kubelet runs a container that exited non-zero again (kubernetes.io, "Pod
    Lifecycle", Container restart policy; the Job's backoffLimit, 6 by default, counts the failures). With
    `create && prune`, a prune that failed made the script fail, so every retry ran create again and wrote one more
    archive. Here `enclave backup prune` fails (an `enclave` ahead on PATH fails it and runs the real one for
    the rest) and the kubelet is played: the script runs again while it exits non-zero, up to three times."""
    etcd.client.put("/registry/namespaces/qserv", "ns")
    operator_key = tmp_path / "operator" / "backup.key"
    backup.ensure_key(operator_key)
    objects = catalog.schedule_objects(_spec(), schedule="@daily", keep_last=1)
    mounts = _lay_out(objects, tmp_path / "node", operator_key, kubernetes_tree)
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "enclave").write_text(f"""#!/bin/sh
if [ "$1 $2" = "backup prune" ]; then echo "Error: prune failed (test)" >&2; exit 7; fi
exec {Path(sys.executable).parent / "enclave"} "$@"
""")
    (shadow / "enclave").chmod(0o755)
    runs = []
    while len(runs) < 3 and (not runs or runs[-1].returncode != 0):
        runs.append(_run_job(_script(objects, mounts, etcd.member.client_url), tmp_path / "home", shadow))
    assert len(runs) == 1 and runs[0].returncode == 0, [r.returncode for r in runs]
    assert "enclave backup prune failed (exit 7)" in runs[0].stderr
    assert len(catalog.list_backups(mounts[catalog.BACKUP_DIR])) == 1  # one run, one archive

    # A failing create still fails the container (the kubelet retries it) and prune does not run.
    (mounts[catalog.KEY_MOUNT] / catalog.KEY_ITEM).unlink()
    job = _run_job(_script(objects, mounts, etcd.member.client_url), tmp_path / "home", shadow)
    assert job.returncode == 3 and "prune failed" not in job.stderr


@pytest.mark.parametrize("version", ["1.9.3", "1.33.10"])
def test_a_run_that_cannot_start_ends_so_the_next_one_runs(version: str) -> None:
    """A secret volume whose Secret or item is missing does not mount (kubernetes pkg/volume/secret/secret.go,
    SetUpAt: the Secret not found and the volume not optional; MakePayload: "references non-existent secret key"),
    so the pod waits in ContainerCreating and its Job stays active. With concurrencyPolicy Forbid "the CronJob does
    not allow concurrent runs; if it is time for a new Job run and the previous Job run hasn't finished yet, the
    CronJob skips the new Job run" (kubernetes.io, CronJob, Concurrency policy): without a deadline, one missing
    Secret stopped every later backup. activeDeadlineSeconds "applies to the duration of the job … once a Job
    reaches activeDeadlineSeconds, all of its running Pods are terminated and the Job status will become type:
    Failed with reason: DeadlineExceeded" (kubernetes.io, Jobs, Job termination and cleanup)."""
    job = catalog.render_schedule(_spec(version), schedule="@daily", keep_last=7)
    spec = job["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    deadline = spec["jobTemplate"]["spec"]["activeDeadlineSeconds"]
    assert 600 <= deadline <= 3600  # past a healthy run (minutes), well inside the daily schedule
    pod = spec["jobTemplate"]["spec"]["template"]["spec"]
    [secret] = [v["secret"] for v in pod["volumes"] if "secret" in v]
    assert not secret.get("optional")  # a missing key must stop the run, never let it mint one
    if version != "1.9.3":  # batch/v1beta1 CronJob is gone from kubernetes-validate's oldest schema (1.25)
        kubernetes_validate.validate(job, schema_version(version), strict=True)
