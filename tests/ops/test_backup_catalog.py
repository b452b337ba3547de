"""Named backups, their listing, retention and the schedule that takes them on a live cluster."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest

from enclave.errors import InputError
from enclave.ops import backup_catalog as catalog
from enclave.ops import security
from enclave.ops.etcd import EtcdServer
from enclave.services.ops import BackupService, security_params
from enclave.spec.defaults import DEFAULT_SPEC
from enclave.spec.load import load
from enclave.spec.models import EnclaveSpec
from tests.ops.test_backup import Made, key, made  # noqa: F401  (one real backup archive per module, its key)
from tests.ops.test_cli import env, run  # noqa: F401

T0 = dt.datetime(2026, 11, 1, 2, 30, tzinfo=dt.UTC)
ENCLAVE = "registry.lsst.local/enclave/enclave@sha256:" + "e" * 64


def _spec(version: str = "1.9.3", enclave: bool = True) -> EnclaveSpec:
    raw = load(DEFAULT_SPEC).model_dump(mode="json")
    raw["cluster"]["kubernetes_version"] = version
    raw["registry"]["system_images"] = {"enclave": ENCLAVE} if enclave else {}
    return EnclaveSpec.model_validate(raw)


@pytest.fixture
def shelf(tmp_path: Path, made: Made) -> Path:  # noqa: F811
    """Six nightly backups (copies of one real archive under nightly names) and one damaged archive."""
    d = tmp_path / "backups"
    d.mkdir()
    for day in range(6):
        shutil.copy(made[0], d / catalog.backup_name("lsst-ldf", T0 + dt.timedelta(days=day)))
    (d / catalog.backup_name("lsst-ldf", T0 + dt.timedelta(days=6))).write_bytes(b"not a tar.gz")
    (d / "notes.tar.gz").write_bytes(b"someone else's")
    return d


def test_names_sort_by_time_and_name_the_cluster() -> None:
    assert catalog.backup_name("lsst-ldf", T0) == "lsst-ldf-20261101T023000Z.tar.gz"


def test_listing_reads_each_manifest_and_names_the_damaged_one(shelf: Path) -> None:
    rows = catalog.list_backups(shelf)
    assert [r.created.day for r in rows] == [1, 2, 3, 4, 5, 6, 7]  # notes.tar.gz is not a named backup
    assert all(r.manifest is not None and r.manifest.cluster == "lsst-ldf" for r in rows[:6])
    assert rows[6].manifest is None and "cannot be read" in rows[6].problem


def test_retention_keeps_the_newest_good_ones_and_never_deletes_a_damaged_one(shelf: Path) -> None:
    rows = catalog.list_backups(shelf)
    keep, remove = catalog.retention(rows, keep_last=2, keep_days=None, now=T0 + dt.timedelta(days=7))
    assert [r.created.day for r in remove] == [1, 2, 3, 4]
    assert [r.created.day for r in keep] == [5, 6, 7]  # the damaged 7th does not count as one of the two
    keep, remove = catalog.retention(rows, keep_last=1, keep_days=3, now=T0 + dt.timedelta(days=7))
    # now is day 8 02:30: day 6 is two days old and stays, day 5 is exactly three days old and goes
    assert [r.created.day for r in remove] == [1, 2, 3, 4, 5]
    with pytest.raises(InputError, match="keep at least 1"):
        catalog.retention(rows, keep_last=0, keep_days=None, now=T0)


def test_prune_deletes_only_what_retention_lets_go(shelf: Path) -> None:
    service = BackupService(None, _spec())  # type: ignore[arg-type]  (no actor: no database needed)
    _, would = service.prune(shelf, keep_last=3, keep_days=None, actor=None, reason="t", dry_run=True,
                             now=T0 + dt.timedelta(days=7))
    assert len(would) == 3 and all(p.exists() for p in would)
    _, removed = service.prune(shelf, keep_last=3, keep_days=None, actor=None, reason="t",
                               now=T0 + dt.timedelta(days=7))
    assert removed == would and not any(p.exists() for p in removed)
    assert len(catalog.list_backups(shelf)) == 4


def test_target_in_a_directory_gets_the_next_name(tmp_path: Path) -> None:
    service = BackupService(None, _spec())  # type: ignore[arg-type]
    assert service.target(tmp_path, T0) == tmp_path / "lsst-ldf-20261101T023000Z.tar.gz"
    assert service.target(tmp_path / "x.tar.gz", T0) == tmp_path / "x.tar.gz"


@pytest.mark.parametrize(("version", "api", "label", "endpoint"), [
    ("1.9.3", "batch/v1beta1", "master", "http://127.0.0.1:2379"),  # kubeadm 1.9: etcd without TLS
    ("1.22.17", "batch/v1", "control-plane", "https://127.0.0.1:2379"),
    ("1.33.10", "batch/v1", "control-plane", "https://127.0.0.1:2379"),
])
def test_schedule_cronjob_per_release(version: str, api: str, label: str, endpoint: str) -> None:
    spec = _spec(version)
    job = catalog.render_schedule(spec, schedule="30 2 * * *", keep_last=7)
    assert job["apiVersion"] == api and job["spec"]["concurrencyPolicy"] == "Forbid"
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {f"node-role.kubernetes.io/{label}": ""}
    script = pod["containers"][0]["command"][-1]
    assert f"--endpoints {endpoint}" in script and "enclave backup prune /var/backups/enclave --keep-last 7" in script
    assert pod["containers"][0]["image"] == ENCLAVE
    # enclave's own benchmark passes it (host network and host paths waived with their reasons)
    report = security.run(security.shipped_checks()[1], objects=[("cronjob", job)], params=security_params(spec))
    assert not report.failed, [r.check.id for r in report.results if r.status == "fail"]
    with pytest.raises(InputError, match="no pinned enclave image"):
        catalog.render_schedule(_spec(version, enclave=False), schedule="@daily", keep_last=7)


@pytest.mark.usefixtures("env")
def test_backup_list_and_prune_commands(shelf: Path) -> None:
    r = run("backup", "list", str(shelf), "-o", "json")
    assert r.exit_code == 0, r.output
    assert len(__import__("json").loads(r.stdout)) == 7
    r = run("backup", "prune", str(shelf), "--keep-last", "5", "--dry-run")
    assert r.exit_code == 0 and "would remove 1 backup(s)" in r.output


@pytest.mark.usefixtures("env")
def test_create_into_a_directory_not_there_yet(tmp_path: Path, etcd: EtcdServer) -> None:
    """`--out DIR/` means a directory even before it exists: the trailing slash must survive the option (pathlib
    collapses it: Path("d/") is Path("d"), Python docs, pathlib "spurious slashes … are collapsed")."""
    etcd.client.put("/registry/namespaces/qserv", "ns")
    shelf = tmp_path / "new" / "backups"
    r = run("backup", "create", "--endpoints", etcd.member.client_url, "--out", f"{shelf}/",
            "--signing-key", str(tmp_path / "backup.key"))
    assert r.exit_code == 0, r.output
    assert shelf.is_dir(), "a file named after the directory was written"
    [archive] = catalog.list_backups(shelf)
    assert archive.path.name.startswith("lsst-ldf-") and archive.manifest is not None
    r = run("backup", "create", "--endpoints", etcd.member.client_url, "--out", str(tmp_path / "one.tar.gz"),
            "--signing-key", str(tmp_path / "backup.key"))
    assert r.exit_code == 0 and (tmp_path / "one.tar.gz").is_file()  # a file name stays a file


@pytest.mark.parametrize("version", ["1.9.3", "1.22.17", "1.24.17", "1.25.16", "1.33.10"])
def test_schedule_tolerates_both_control_plane_taints_on_every_release(version: str) -> None:
    """kubeadm 1.24 taints a new control-plane node with node-role.kubernetes.io/master:NoSchedule AND
    …/control-plane:NoSchedule (CHANGELOG-1.24, kubernetes/kubernetes#107533); before, master alone; from 1.25
    control-plane alone (#110095). A pod tolerating one of two taints is never scheduled there."""
    job = catalog.render_schedule(_spec(version), schedule="@daily", keep_last=7)
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    tolerated = {(t["key"], t["operator"], t["effect"]) for t in pod["tolerations"]}
    assert tolerated == {("node-role.kubernetes.io/master", "Exists", "NoSchedule"),
                         ("node-role.kubernetes.io/control-plane", "Exists", "NoSchedule")}


# Kubernetes v1.9.3's v1.SecurityContext, every field it has (its OpenAPI spec, as instrumenta/kubernetes-json-schema
# v1.9.3-standalone-strict/container-v1.json renders it, "additionalProperties": false; k8s-openapi's v1_9
# SecurityContext has the same seven). runAsGroup came with 1.10, alpha behind the RunAsGroup gate (KEP-213; beta
# 1.14), so the 1.9 API server refuses a container that sets it.
SECURITY_CONTEXT_1_9 = {"allowPrivilegeEscalation", "capabilities", "privileged", "readOnlyRootFilesystem",
                        "runAsNonRoot", "runAsUser", "seLinuxOptions"}


@pytest.mark.parametrize("version", ["1.9.3", "1.33.10"])
def test_schedule_sets_only_security_fields_kubernetes_1_9_has(version: str) -> None:
    job = catalog.render_schedule(_spec(version), schedule="@daily", keep_last=7)
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert "securityContext" not in pod  # the pod level's runAsGroup is as new
    for container in pod["containers"]:
        assert set(container["securityContext"]) <= SECURITY_CONTEXT_1_9, container["securityContext"]


def test_schedule_runs_as_root_with_the_benchmark_item_waived() -> None:
    """kubeadm, run as root, writes the PKI keys mode 0600 (pkiutil → client-go util/keyutil.WriteKey, 0600), and a
    hostPath DirectoryOrCreate is made "with permission set to 0755, having the same group and ownership with
    Kubelet" (kubernetes.io, Volumes, hostPath): a non-root image user can read the one and write the other
    neither. POD-09 (runs as root by explicit user id 0) is waived, with the reason, on the CronJob."""
    spec = _spec("1.33.10")
    job = catalog.render_schedule(spec, schedule="@daily", keep_last=7)
    container = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["runAsUser"] == 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    report = security.run(security.shipped_checks()[1], objects=[("cronjob", job)], params=security_params(spec))
    pod09 = next(r for r in report.results if r.check.id == "POD-09")
    assert pod09.status == "waived" and "PKI keys" in (pod09.findings[0].waived or "")


@pytest.mark.usefixtures("env")
def test_create_into_a_file_named_as_a_directory_is_refused_before_etcd_is_read(tmp_path: Path) -> None:
    """`--out FILE/` where FILE is a regular file: the archive cannot be written (mkdir raises FileExistsError,
    Python docs pathlib.Path.mkdir "If the path already exists, FileExistsError is raised"; open under a file
    NotADirectoryError), so it is an input error said before the snapshot, not a traceback after it. The endpoint
    is one nobody listens on: had etcd been read first, its health check would have failed instead."""
    plain = tmp_path / "backups"
    plain.write_text("not a directory")
    for out in (f"{plain}/", f"{plain}/deeper/"):
        r = run("backup", "create", "--endpoints", "http://127.0.0.1:1", "--out", out,
                "--signing-key", str(tmp_path / "backup.key"))
        assert r.exit_code == 1, r.output  # InputError
        assert f"{plain} is a file, not a directory" in r.output and "--out" in r.output
    assert plain.read_text() == "not a directory" and not (tmp_path / "backup.key").exists()
