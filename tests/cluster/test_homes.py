"""Home provisioning through the live cluster (issue 18 item 6): the Job the live adapter submits when the homes
are not mounted where enclave runs — its command, its securityContext, its volume — accepted by the strict
API-server fake, and its script run for real here to show it makes what it claims and nothing else."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import urllib3
from kubernetes import client as k8s

from enclave.cluster import deploy
from enclave.cluster.homes import SCRIPT, home_job, job_name
from enclave.cluster.kube import KubeCluster
from enclave.errors import ExternalError
from enclave.spec import EnclaveSpec
from enclave.spec.models import HomeQuota, QuotaTool
from tests.cluster.conftest import ApiServer, Refused, account_view


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
    # Submitted again while the first still runs (no Complete or Failed condition yet): the server's 409 is a Job in
    # flight, success; it is read to see so, and neither deleted nor replaced.
    del server.requests[:]
    assert _kube(spec, server).provision_home(alice).how == done.how
    assert [(m, p) for m, p, _ in server.requests] == [("POST", JOBS), ("GET", f"{JOBS}/enclave-home-alice")]
    assert len(server.jobs) == 1


JOBS = "/apis/batch/v1/namespaces/enclave/jobs"
ALICE = (deploy.NAMESPACE, "enclave-home-alice")


def _ran(server: ApiServer, condition: str | None) -> None:
    """The Job controller's status for alice's Job: finished with ``condition`` (Complete after its pod succeeded,
    Failed after backoffLimit), or, with None, still running its pod — no terminal condition yet
    (https://kubernetes.io/docs/concepts/workloads/controllers/job/#job-termination-and-cleanup)."""
    server.jobs[ALICE]["status"] = ({"active": 1} if condition is None else
                                    {"conditions": [{"type": condition, "status": "True"}],
                                     "succeeded" if condition == "Complete" else "failed": 1})


def _resubmit(spec: EnclaveSpec, server: ApiServer, condition: str) -> None:
    """Alice's home provisioned, its Job finished with ``condition``, then provisioned again with a new quota (a
    quota change): the finished Job — which before 1.21 stays for good — is deleted, with its pods, and the new
    body submitted in its place."""
    spec = _with_quota(spec, QuotaTool.XFS_QUOTA, "/jhome")
    kube = _kube(spec, server)
    kube.provision_home(account_view("alice", 70001, quota_gib=100))
    _ran(server, condition)
    old_uid = server.jobs[ALICE]["metadata"]["uid"]
    del server.requests[:]
    bigger = account_view("alice", 70001, quota_gib=200)
    assert kube.provision_home(bigger).how == "job enclave/enclave-home-alice"
    assert [(m, p) for m, p, _ in server.requests] == [
        ("POST", JOBS), ("GET", f"{JOBS}/enclave-home-alice"), ("DELETE", f"{JOBS}/enclave-home-alice"),
        ("POST", JOBS)]
    # Background: the Job goes at once and the garbage collector deletes its pods (batch/v1's default would
    # orphan them: https://kubernetes.io/docs/concepts/architecture/garbage-collection/#cascading-deletion).
    assert server.requests[2][2] == {"propagationPolicy": "Background"}
    assert server.requests[3][2] == home_job(spec, bigger)
    job = server.jobs[ALICE]
    assert job["metadata"]["uid"] != old_uid and job["status"] == {}  # a new Job, not yet run
    assert job["spec"] == home_job(spec, bigger)["spec"]
    assert "limit -u bsoft=209715200k bhard=209715200k 70001" in job["spec"]["template"]["spec"]["containers"][0][
        "command"]


def test_a_complete_job_is_deleted_and_submitted_again(spec: EnclaveSpec, server: ApiServer) -> None:
    _resubmit(spec, server, "Complete")


def test_a_failed_job_is_deleted_and_submitted_again(spec: EnclaveSpec, server: ApiServer) -> None:
    _resubmit(spec, server, "Failed")


def test_a_running_job_is_left_alone(spec: EnclaveSpec, server: ApiServer) -> None:
    kube = _kube(spec, server)
    kube.provision_home(account_view("alice", 70001, quota_gib=100))
    _ran(server, None)
    before = json.loads(json.dumps(server.jobs[ALICE]))
    del server.requests[:]
    assert kube.provision_home(account_view("alice", 70001, quota_gib=200)).how == "job enclave/enclave-home-alice"
    assert [m for m, _, _ in server.requests] == ["POST", "GET"]
    assert server.jobs[ALICE] == before


def _after(server: ApiServer, method: str, then: Callable[[], None], monkeypatch: pytest.MonkeyPatch) -> None:
    """``then`` runs on the server right after its first answer to a ``method`` request for alice's Job (a POST:
    to the namespace's Jobs)."""
    answer, done = server.request, []

    def request(m: str, url: str, body: str | None = None, **kwargs: Any) -> urllib3.HTTPResponse:
        response = answer(m, url, body, **kwargs)
        path = JOBS if m == "POST" else f"{JOBS}/enclave-home-alice"
        if m == method and url.endswith(path) and not done:
            done.append(m)
            then()
        return response

    monkeypatch.setattr(server, "request", request)


def _gone(server: ApiServer) -> None:
    """The TTL-after-finished controller deletes alice's Job."""
    del server.jobs[ALICE]


def test_a_job_gone_before_its_delete_is_submitted_again(spec: EnclaveSpec, server: ApiServer,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # The TTL-after-finished controller removes the Job between the read and the delete: the delete's 404 is a
    # Job already gone, and the new one is created.
    kube = _kube(spec, server)
    kube.provision_home(account_view("alice", 70001))
    _ran(server, "Complete")
    _after(server, "GET", lambda: _gone(server), monkeypatch)
    del server.requests[:]
    kube.provision_home(account_view("alice", 70001, quota_gib=200))
    assert [m for m, _, _ in server.requests] == ["POST", "GET", "DELETE", "POST"]
    assert server.jobs[ALICE]["spec"] == home_job(spec, account_view("alice", 70001, quota_gib=200))["spec"]


def test_a_job_gone_before_its_read_is_submitted_again(spec: EnclaveSpec, server: ApiServer,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # Gone between the create's 409 and the read (404): nothing to delete, the Job is created.
    kube = _kube(spec, server)
    kube.provision_home(account_view("alice", 70001))
    _ran(server, "Complete")
    _after(server, "POST", lambda: _gone(server), monkeypatch)
    del server.requests[:]
    kube.provision_home(account_view("alice", 70001, quota_gib=200))
    assert [m for m, _, _ in server.requests] == ["POST", "GET", "POST"]
    assert server.jobs[ALICE]["status"] == {}


def test_a_job_someone_submits_meanwhile_is_success(spec: EnclaveSpec, server: ApiServer,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # Another replica creates the Job between this one's delete and its create: the 409 is a Job in flight.
    kube = _kube(spec, server)
    kube.provision_home(account_view("alice", 70001))
    _ran(server, "Failed")
    theirs = home_job(spec, account_view("alice", 70001, quota_gib=300))
    _after(server, "DELETE", lambda: server.jobs.__setitem__(ALICE, theirs), monkeypatch)
    del server.requests[:]
    assert kube.provision_home(account_view("alice", 70001, quota_gib=200)).how == "job enclave/enclave-home-alice"
    assert [m for m, _, _ in server.requests] == ["POST", "GET", "DELETE", "POST"]
    assert server.jobs[ALICE] is theirs


@pytest.mark.parametrize(("before", "what"), [("POST", "reading"), ("GET", "deleting")])
def test_a_refused_read_or_delete_is_an_external_error(spec: EnclaveSpec, server: ApiServer, before: str, what: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # RBAC refuses the read (or the delete) from then on: an ExternalError naming the step, and no new Job.
    kube = _kube(spec, server)
    kube.provision_home(account_view("alice", 70001))
    _ran(server, "Complete")
    forbidden = Refused(403, "Forbidden", 'jobs.batch "enclave-home-alice" is forbidden')
    _after(server, before, lambda: setattr(server, "fail_with", forbidden), monkeypatch)
    with pytest.raises(ExternalError, match=f"{what} Job enclave/enclave-home-alice for alice's home failed \\(403"):
        kube.provision_home(account_view("alice", 70001, quota_gib=200))
    assert server.jobs[ALICE]["status"]["conditions"][0]["type"] == "Complete"


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
