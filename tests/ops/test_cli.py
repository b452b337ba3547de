"""The ops commands end to end through `enclave …`: a database with real accounts, a real etcd."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from enclave.cli import app
from enclave.cluster import deploy
from enclave.db import Database
from enclave.errors import EnclaveError, exit_code
from enclave.journal import query
from enclave.ops.admission import validate_policy
from enclave.ops.etcd import EtcdServer
from enclave.services.local import os_user
from enclave.spec import load
from enclave.spec.defaults import EXAMPLES
from tests.cluster.tokens import as_documented
from tests.pg import _sqlite_template, private_copy

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64
LAB = "registry.lsst.local/lsstsqre/sciplat-lab"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    # A copy of a database migrated once per test process: migrating per test would dominate the run time.
    private_copy(_sqlite_template(), tmp_path / "enclave.db")
    url = f"sqlite:///{tmp_path / 'enclave.db'}"
    monkeypatch.setenv("ENCLAVE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ENCLAVE_DB", url)
    monkeypatch.delenv("ENCLAVE_AS", raising=False)
    yield {"url": url}


@dataclass
class Ran:
    exit_code: int
    stdout: str
    output: str


def run(*args: str) -> Ran:
    """Invoke `enclave ARGS`; an EnclaveError becomes its exit code and message, as enclave.cli.main does."""
    r: Result = CliRunner().invoke(app, list(args))
    if isinstance(r.exception, EnclaveError):
        return Ran(exit_code(r.exception), r.stdout, r.output + str(r.exception))
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        raise r.exception
    return Ran(r.exit_code, r.stdout, r.output)


def people() -> None:
    assert run("accounts", "bootstrap", "root", "--name", "Root", "--email", "root@lsst.org").exit_code == 0
    for user, role in (("kadmin", "k8s-cluster-admin"), ("svc", "k8s-service-admin"), ("sec1", "security"),
                       ("dev", "developer")):
        r = run("accounts", "onboard", user, "--as", "root", "--reason", "staff", "--name", user.title(),
                "--email", f"{user}@lsst.org", "--kind", "staff", "--role", role)
        assert r.exit_code == 0, r.output
        # Local mode: the test's OS user acts as each of them too, mapped explicitly by the sysadmin.
        r = run("local", "map", os_user().name, user, "--as", "root", "--reason", "test acts as them")
        assert r.exit_code == 0, r.output


def vet_spec_images() -> None:
    for tag, digest in (("w_2018_25", D1), ("r16_0", D2)):
        r = run("images", "submit", f"{LAB}:{tag}@{digest}", "--as", "svc", "--reason", "spec image")
        assert r.exit_code == 0, r.output
        r = run("images", "approve", f"{LAB}@{digest}", "--as", "sec1", "--reason", "scanned, clean")
        assert r.exit_code == 0, r.output


def test_images_commands_and_refusals(env: dict[str, str]) -> None:
    people()
    vet_spec_images()
    listed = json.loads(run("images", "list", "--status", "approved", "-o", "json").stdout)
    assert {(i["tag"], i["digest"]) for i in listed} == {("w_2018_25", D1), ("r16_0", D2)}
    r = run("images", "approve", f"{LAB}@{D1}", "--as", "dev", "--reason", "x")
    assert r.exit_code == 4
    r = run("images", "submit", f"{LAB}:latest", "--as", "svc")
    assert r.exit_code == 1 and "no digest" in r.output
    assert run("images", "list", "--status", "bogus").exit_code == 1


def test_render_all_and_security_check_pass_on_own_objects(env: dict[str, str], tmp_path: Path) -> None:
    people()
    vet_spec_images()
    # enclave's own image (render deploy) is vetted like any other before the cluster may run it (seed §10).
    enclave_image = deploy.image(load(EXAMPLES / "lsst-ldf.yaml"))
    repository = enclave_image.rsplit(":", 1)[0]
    assert run("images", "submit", f"{enclave_image}@{D3}", "--as", "svc", "--reason", "enclave").exit_code == 0
    assert run("images", "approve", f"{repository}@{D3}", "--as", "sec1", "--reason", "scanned").exit_code == 0
    out = tmp_path / "rendered"
    r = run("render", "all", "--out", str(out))
    assert r.exit_code == 0, r.output
    assert (out / "access").is_dir() and (out / "notebooks").is_dir()
    policy = yaml.safe_load((out / "admission" / "kyverno-vetted-images.yaml").read_text())
    validate_policy(policy)
    system = set(load(EXAMPLES / "lsst-ldf.yaml").registry.system_images.values())  # admitted unapproved
    assert sorted(policy["spec"]["rules"][0]["validate"]["foreach"][0]["deny"]["conditions"]["all"][0]["value"]) \
        == sorted({f"{LAB}@{D1}", f"{LAB}@{D2}", f"{repository}@{D3}"} | system  # and under any tag:
                  | {f"{LAB}:*@{D1}", f"{LAB}:*@{D2}", f"{repository}:*@{D3}"})
    api = next(yaml.safe_load_all((out / "deploy" / "api.yaml").read_text()))
    assert api["spec"]["template"]["spec"]["containers"][0]["image"] == f"{repository}@{D3}"

    r = run("security", "check", "-o", "json")
    assert r.exit_code == 0, r.output
    report = {x["id"]: x for x in json.loads(r.stdout)["results"]}
    assert not [i for i, x in report.items() if x["status"] == "fail"]
    # The notebook pods KubeSpawner would start were really examined, with their pinned digests.
    for cid in ("RBAC-01", "RBAC-05", "POD-02", "POD-07", "POD-08", "IMG-01", "IMG-02"):
        assert report[cid]["status"] == "pass" and report[cid]["reason"] == "", cid
    # A PASS always names what it read; nothing read is NOT APPLICABLE (no node was given here).
    assert all(x["checked"] for x in report.values() if x["status"] == "pass")
    assert report["API-10"]["status"] == "na" and report["RBAC-02"]["status"] in ("pass", "na")
    r = run("security", "check", "--junit", str(tmp_path / "junit.xml"))
    root = ET.fromstring((tmp_path / "junit.xml").read_text())
    assert r.exit_code == 0 and root.get("failures") == "0"


@pytest.mark.parametrize("era", ["1.9", "1.33"])
def test_security_check_on_kubeadm_nodes(era: str, env: dict[str, str], tmp_path: Path) -> None:
    """`enclave security check --node` on the seed's 1.9 kubeadm node and a current one gives the CIS results
    worked out in test_security_upstream (file checks aside: these files are not root's 0600 ones)."""
    from tests.ops import test_security_upstream as up

    if era == "1.9":
        root = up._write_node(tmp_path / "k", up.KUBEADM_19, None, up.DROP_IN_19, "10-kubeadm.conf")
        extra, expected = ["--kubelet-flags", str(root / "kubelet" / "10-kubeadm.conf")], up.EXPECTED_19
    else:
        root = up._write_node(tmp_path / "k", up.KUBEADM_133, up.KUBELET_CONFIG_133, up.KUBEADM_FLAGS_133,
                              "kubeadm-flags.env")
        extra, expected = [], up.EXPECTED_133
    r = run("security", "check", "--node", str(root), *extra, "-o", "json")
    assert r.exit_code == 8, r.output  # scored CIS items fail on both (profiling, audit log, …)
    data = json.loads(r.stdout)
    got = {x["id"]: x["status"] for x in data["results"]}
    assert {k: got[k] for k in expected} == expected
    assert data["kubernetes"] == ("1.9.3" if era == "1.9" else "1.33.0")
    run("security", "check", "--node", str(root), *extra, "--kube-bench", str(tmp_path / "kb.json"))
    kube_bench = json.loads((tmp_path / "kb.json").read_text())
    assert kube_bench["Totals"]["total_fail"] == sum(1 for v in got.values() if v == "fail")


def test_security_check_reads_the_kubelet_from_several_flag_files(env: dict[str, str], tmp_path: Path) -> None:
    """--kubelet-flags repeats: kubeadm's drop-in and the /etc/default/kubelet it reads (kubeadm docs,
    kubelet-integration); KUBELET_EXTRA_ARGS there turns anonymous auth on, failing CIS 4.2.1 (Automated)."""
    from tests.ops import test_security_reading as reading
    from tests.ops import test_security_upstream as up

    root = up._write_node(tmp_path / "k", up.KUBEADM_133, up.KUBELET_CONFIG_133, up.KUBEADM_FLAGS_133,
                          "kubeadm-flags.env")
    (tmp_path / "10-kubeadm.conf").write_text(reading.DROP_IN)
    (tmp_path / "kubelet").write_text("KUBELET_EXTRA_ARGS=--anonymous-auth=true\n")
    r = run("security", "check", "--node", str(root), "--kubelet-flags", str(tmp_path / "10-kubeadm.conf"),
            "--kubelet-flags", str(tmp_path / "kubelet"), "--only", "KUBELET-01", "-o", "json")
    assert r.exit_code == 8, r.output
    assert json.loads(r.stdout)["results"][0]["status"] == "fail"


def test_security_check_fails_with_exit_code_on_bad_manifests(env: dict[str, str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    pod = {"hostNetwork": True, "containers": [{"name": "c", "image": "docker.io/x"}]}
    bad.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x", "namespace": "qserv"},
                                   "spec": pod}))
    r = run("security", "check", "--manifests", str(bad))
    assert r.exit_code == 8 and "[FAIL] POD-03" in r.stdout and "[FAIL] IMG-01" in r.stdout
    r = run("security", "check", "--manifests", str(bad), "--only", "POD-03", "--exit-code", "3")
    assert r.exit_code == 3
    assert run("security", "check", "--manifests", str(bad), "--only", "NOPE").exit_code == 1
    # A foreign YAML file next to the manifests is skipped with a note, not the end of the run.
    d = tmp_path / "dir"
    d.mkdir()
    (d / "pod.yaml").write_text(bad.read_text())
    (d / "values.yaml").write_text("singleuser:\n  image: x\n")
    r = run("security", "check", "--manifests", str(d))
    assert r.exit_code == 8 and "[FAIL] POD-03" in r.stdout and "values.yaml#0 skipped" in r.output
    assert run("security", "list").exit_code == 0


def test_security_credentials_exits_non_zero_on_any_problem(env: dict[str, str], tmp_path: Path) -> None:
    """The deploy bundle's HTCondor credentials (tests/cluster/test_credentials.py checks each rule)."""
    bundle = as_documented(load(EXAMPLES / "lsst-ldf.yaml"), tmp_path / "deploy")
    ok = run("security", "credentials", str(bundle), "-o", "json")
    assert ok.exit_code == 0, ok.output
    assert [f["file"] for f in json.loads(ok.stdout)] == [*deploy.BROKER_FILES.values(), *deploy.WORKER_FILES.values()]
    assert yaml.safe_load(run("security", "credentials", str(bundle), "-o", "yaml").stdout) == json.loads(ok.stdout)
    (bundle / "htcondor-worker-token").unlink()
    bad = run("security", "credentials", str(bundle))
    assert bad.exit_code == 1 and "missing" in bad.stdout
    nowhere = run("security", "credentials", str(tmp_path / "nowhere"))
    assert nowhere.exit_code == 1 and "is not a directory" in nowhere.output


def test_upgrade_plan_commands(env: dict[str, str], tmp_path: Path) -> None:
    r = run("upgrade", "plan", "--today", "2026-11-25", "-o", "json")
    assert r.exit_code == 0, r.output
    plan = json.loads(r.stdout)
    assert plan["current"] == "1.9.3" and plan["target"] == "1.37.1" and len(plan["steps"]) == 28
    assert [m["minor"] for m in plan["maintained"]] == ["1.35", "1.36", "1.37"]
    r = run("upgrade", "plan", "--to", "1.11.0", "--step", "1.11.0")
    assert r.exit_code == 5 and "skips minor" in r.output
    old = tmp_path / "old.yaml"
    old.write_text(yaml.safe_dump({"apiVersion": "extensions/v1beta1", "kind": "Deployment",
                                   "metadata": {"name": "hub"}}))
    r = run("upgrade", "plan", "--today", "2026-11-25", "--manifests", str(old))
    assert r.exit_code == 0 and "Deployment hub uses extensions/v1beta1, which is removed in 1.16" in r.stdout
    obs = tmp_path / "observed.yaml"
    obs.write_text("apiserver: 1.9.3\nkubelets: {1.10.4: 2}\n")
    assert run("upgrade", "plan", "--observed", str(obs)).exit_code == 5
    assert run("upgrade", "releases", "--today", "2026-11-25").exit_code == 0


def test_backup_commands_with_roles_and_journal(env: dict[str, str], tmp_path: Path,
                                                kubernetes_tree: Path, etcd: EtcdServer) -> None:
    people()
    etcd.client.put("/registry/namespaces/jupyter-lsst", "ns")
    archive = tmp_path / "b.tar.gz"
    url = etcd.member.client_url
    r = run("backup", "create", "--endpoints", url, "--kubernetes-dir", str(kubernetes_tree), "--out", str(archive),
            "--as", "dev")
    assert r.exit_code == 4 and not archive.exists()
    r = run("backup", "create", "--endpoints", url, "--kubernetes-dir", str(kubernetes_tree), "--out", str(archive),
            "--as", "kadmin", "--reason", "before upgrade to 1.10")
    assert r.exit_code == 0, r.output
    # The first backup creates the signing key in $ENCLAVE_HOME, outside the archive (docs/hardening.md).
    assert "created signing key" in r.output and (tmp_path / "home" / "backup.key").is_file()
    assert json.loads(run("backup", "verify", str(archive), "-o", "json").stdout)["cluster"] == "lsst-ldf"
    assert yaml.safe_load(run("backup", "verify", str(archive), "-o", "yaml").stdout)["cluster"] == "lsst-ldf"
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(archive.read_bytes()[:-4000])
    r = run("backup", "verify", str(cut))
    assert r.exit_code == 6 and "truncated or damaged" in r.output
    etcd.stop()
    fresh = EtcdServer(tmp_path / "new" / "data", name="kub-master-001")
    fresh.data_dir.parent.mkdir()
    r = run("backup", "restore", str(archive), "--data-dir", str(fresh.data_dir), "--name", fresh.name,
            "--peer-url", fresh.member.peer_url, "--client-url", fresh.member.client_url,
            "--kubernetes-dir", str(tmp_path / "new" / "k8s"), "--as", "kadmin")
    assert r.exit_code == 0, r.output
    with fresh:
        assert fresh.client.get_all() == {b"/registry/namespaces/jupyter-lsst": b"ns"}
    db = Database(env["url"])
    with db.session() as s:
        entries = query(s, action="backup.*")
        assert [(e.actor, e.action) for e in entries] == [("kadmin", "backup.create"), ("kadmin", "backup.restore")]
        assert entries[0].reason == f"before upgrade to 1.10 [{os_user().origin}]"  # local mode names the OS user
    db.dispose()
