"""Home provisioning through the live cluster (issue 18 item 6): the Job the live adapter submits when the homes
are not mounted where enclave runs — its command, its securityContext, its volume — accepted by the strict
API-server fake, and its script run for real here to show it makes what it claims and nothing else."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from kubernetes import client as k8s

from enclave.cluster import deploy
from enclave.cluster.homes import SCRIPT, home_job, job_name
from enclave.cluster.kube import KubeCluster
from enclave.spec import EnclaveSpec
from enclave.spec.models import HomeQuota, QuotaTool
from tests.cluster.conftest import ApiServer, account_view


def _with_quota(spec: EnclaveSpec, tool: QuotaTool, filesystem: str | None) -> EnclaveSpec:
    storage = spec.storage.model_copy(update={"quota": HomeQuota(tool=tool, filesystem=filesystem)})
    return spec.model_copy(update={"storage": storage})


def _kube(spec: EnclaveSpec, server: ApiServer) -> KubeCluster:
    api = k8s.ApiClient(k8s.Configuration(host="https://kube.example.org:6443"))
    api.rest_client.pool_manager = server
    server.namespaces.add(deploy.NAMESPACE)
    return KubeCluster(spec, api, clock=lambda: 1_800_000_000.0)


def test_the_job_the_live_adapter_submits(spec: EnclaveSpec, server: ApiServer) -> None:
    spec = _with_quota(spec, QuotaTool.XFS_QUOTA, "/jhome")
    alice = account_view("alice", 70001, quota_gib=100)
    done = _kube(spec, server).provision_home(alice)
    assert done.how == "job enclave/enclave-home-alice" and done.quota == "submitted"
    (method, path, body), = [r for r in server.requests if r[0] == "POST"]
    assert path == "/apis/batch/v1/namespaces/enclave/jobs"
    assert body == home_job(spec, alice)  # what was rendered is what was sent
    pod = body["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    # 100 GiB = 100 × 1024 × 1024 KiB; xfs_quota(8): expert mode, `limit -u bsoft=N bhard=N ID` on the mount.
    assert c["command"] == ["/bin/sh", "-c", SCRIPT, "enclave-home", "/jhome/alice", "/jhome/alice/workspace",
                            "70001", "70001", "xfs_quota", "-x", "-c",
                            "limit -u bsoft=104857600k bhard=104857600k 70001", "/jhome"]
    ctx = c["securityContext"]
    assert ctx["runAsUser"] == 0 and ctx["allowPrivilegeEscalation"] is False and ctx["readOnlyRootFilesystem"]
    assert ctx["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN", "DAC_OVERRIDE", "FOWNER", "SYS_ADMIN"]}
    assert c["volumeMounts"] == [{"name": "homes", "mountPath": "/jhome"}]
    assert pod["volumes"] == [{"name": "homes", "persistentVolumeClaim": {"claimName": deploy.HOMES_CLAIM}}]
    assert pod["restartPolicy"] == "Never" and pod["automountServiceAccountToken"] is False
    # Submitted again (a re-run within the Job's TTL): the server's 409 is success, nothing else is sent.
    assert _kube(spec, server).provision_home(alice).how == done.how
    assert len(server.jobs) == 1


def test_without_a_quota_tool_the_job_only_makes_directories(spec: EnclaveSpec) -> None:
    body = home_job(spec, account_view("bob", 70002))
    (c,) = body["spec"]["template"]["spec"]["containers"]
    assert c["command"][-4:] == ["/jhome/bob", "/jhome/bob/workspace", "70002", "70002"]
    assert "SYS_ADMIN" not in c["securityContext"]["capabilities"]["add"]


def test_job_names_are_dns_labels() -> None:
    assert job_name("alice") == "enclave-home-alice"
    assert job_name("A.B_c") == "enclave-home-a-b-c"
    assert len(job_name("x" * 100)) == 63


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root (as in the Job)")
def test_the_jobs_script_makes_the_home_and_runs_the_quota_command(tmp_path: Path, spec: EnclaveSpec) -> None:
    """The container's command, run here: home and workspace 0700 owned by the account, then the quota tool
    with exactly its argv (a stand-in xfs_quota records it) — and a hostile path stays one literal name."""
    root = tmp_path / "jhome"
    root.mkdir()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "xfs_quota").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {tmp_path}/argv\n')
    (bin_dir / "xfs_quota").chmod(0o755)
    spec = _with_quota(spec.model_copy(update={"storage": spec.storage.model_copy(update={"home_root": str(root)})}),
                       QuotaTool.XFS_QUOTA, str(root))
    odd = account_view('eve"; touch pwned; "', 70003, home_root=str(root), quota_gib=0.5)
    (c,) = home_job(spec, odd)["spec"]["template"]["spec"]["containers"]
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    subprocess.run(c["command"], check=True, cwd=tmp_path, env=env)
    for path in (Path(odd.home), Path(odd.workspace)):
        st = path.stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (70003, 70003, 0o700)
    assert not (tmp_path / "pwned").exists() and sorted(os.listdir(root)) == [Path(odd.home).name]
    assert (tmp_path / "argv").read_text().splitlines() == ["-x", "-c", "limit -u bsoft=524288k bhard=524288k 70003",
                                                            str(root)]
