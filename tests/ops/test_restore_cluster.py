"""Restoring every control-plane member from one backup (etcd's recovery guide, "Restoring a cluster":
same snapshot, one --initial-cluster naming all members, one token, each member its own name and peer URL)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from enclave.errors import InputError
from enclave.ops import backup
from enclave.ops.etcd import Etcdctl, EtcdServer, Member, free_port, restore_args, restore_plan
from enclave.services.ops import BackupService
from enclave.spec.defaults import DEFAULT_SPEC
from enclave.spec.load import dump, load
from enclave.spec.models import EnclaveSpec, NodeRole
from tests.ops.test_backup import Made, key, made  # noqa: F401  (one real backup archive per module, its key)
from tests.ops.test_cli import env, run  # noqa: F401


def test_three_members_restored_from_one_backup_form_one_cluster(tmp_path: Path, made: Made,  # noqa: F811
                                                                key: Path) -> None:  # noqa: F811
    archive, keys, _ = made
    servers = [EtcdServer(tmp_path / f"m{i}" / "data", name=f"kub-master-00{i}") for i in (1, 2, 3)]
    cluster = tuple(s.member for s in servers)
    for s in servers:
        s.data_dir.parent.mkdir()
        backup.restore(archive, s.data_dir, s.member, key=key, cluster=cluster)
        s.cluster = cluster
    try:
        for s in servers:
            s.launch()
        for s in servers:
            s.wait_healthy(60)
        members = _started_members(servers[0], len(cluster))
        assert len(members) == 3 and all(m.name in " ".join(members) for m in cluster)
        assert servers[2].client.get_all() == keys
        servers[0].client.put("/after-restore", "replicated")
        assert servers[1].client.get_all()[b"/after-restore"] == b"replicated"
    finally:
        for s in servers:
            s.stop()


def _started_members(server: EtcdServer, count: int, timeout_s: float = 30.0) -> list[str]:
    """The member list once every member has published its name.

    A member publishes its name and client URLs through raft after it serves (etcd server/etcdserver/server.go,
    `publishV3`), so a healthy member can still be listed by another as `unstarted` with an empty name
    (etcdctl/ctlv3/command/printer_simple.go prints `unstarted` when `m.Name` is empty)."""
    deadline = time.monotonic() + timeout_s
    while True:
        members = server.client.run("member", "list").strip().splitlines()
        if (len(members) == count and all(", started, " in m for m in members)) or time.monotonic() > deadline:
            return members
        time.sleep(0.2)


def test_restore_args_name_every_member() -> None:
    a, b = Member("a", "https://10.0.0.1:2380", ""), Member("b", "https://10.0.0.2:2380", "")
    args = restore_args("s.db", "/d", a, (a, b))
    assert "--initial-cluster=a=https://10.0.0.1:2380,b=https://10.0.0.2:2380" in args
    assert "--initial-advertise-peer-urls=https://10.0.0.1:2380" in args and "--name=a" in args
    assert "--initial-cluster=a=https://10.0.0.1:2380" in restore_args("s.db", "/d", a)  # alone: one member
    with pytest.raises(InputError, match="not among"):
        restore_args("s.db", "/d", Member("c", "https://x:2380", ""), (a, b))


def test_plan_covers_every_control_plane_node_of_the_spec() -> None:
    spec = load(DEFAULT_SPEC)
    plan = BackupService(None, spec).restore_plan("ldf.tar.gz")  # type: ignore[arg-type]
    names = spec.node_names(NodeRole.CONTROL_PLANE)
    assert [p.member.name for p in plan] == names and len(plan) == 3
    everyone = ",".join(f"{n}=https://{n}:2380" for n in names)
    for p in plan:
        assert any(f"--initial-cluster={everyone}" in line for line in p.steps)
        assert any(line.startswith("enclave backup restore ldf.tar.gz --data-dir") and f"--name {p.member.name}"
                   in line for line in p.steps)
    with pytest.raises(InputError):
        restore_plan("x", ())


@pytest.mark.usefixtures("env")
def test_restore_plan_command() -> None:
    r = run("backup", "restore-plan", "ldf.tar.gz")
    assert r.exit_code == 0, r.output
    assert r.output.count("enclave backup restore ldf.tar.gz") == 3 and "start all 3 etcd members" in r.output
    r = run("backup", "restore-plan", "ldf.tar.gz", "--member", "a=https://10.0.0.1:2380", "--member", "b")
    assert r.exit_code == 1 and "NAME=PEER_URL" in r.output


def _one_master(version: str) -> EnclaveSpec:
    """The LDF spec with one control-plane node (kubeadm's own single-master layout) at ``version``."""
    spec = load(DEFAULT_SPEC)
    groups = [g.model_copy(update={"count": 1}) if g.role == NodeRole.CONTROL_PLANE else g
              for g in spec.cluster.node_groups]
    cluster = spec.cluster.model_copy(update={"node_groups": groups, "kubernetes_version": version})
    return spec.model_copy(update={"cluster": cluster})


def test_a_kubeadm_1_9_master_restores_its_plain_local_member() -> None:
    # kubeadm 1.9 (cmd/kubeadm/app/phases/etcd/local.go, getEtcdCommand) starts etcd with --listen-client-urls and
    # --advertise-client-urls http://127.0.0.1:2379 and --data-dir alone; etcd 3.1's defaults name the member
    # "default" at http://localhost:2380 (embed/config.go DefaultName, DefaultInitialAdvertisePeerURLs).
    plan = BackupService(None, _one_master("1.9.3")).restore_plan("ldf.tar.gz", token="t")  # type: ignore[arg-type]
    assert len(plan) == 1
    (step,) = plan
    assert (step.host, step.member.name, step.member.peer_url) == ("kub-master-001", "default", "http://localhost:2380")
    assert step.steps[0] == "copy ldf.tar.gz to kub-master-001 (mode 0600: it holds private keys)"
    assert "--name default --peer-url http://localhost:2380 " in step.steps[1] and "--member" not in step.steps[1]
    assert "--initial-cluster=default=http://localhost:2380 " in step.steps[2]
    assert "--initial-cluster=" not in step.steps[3] and "--data-dir=/var/lib/etcd-restored" in step.steps[3]
    # From 1.10 kubeadm's etcd has TLS and its own member name; with several masters the etcd cluster is one of
    # the operator's, a member per control-plane node; members given on the command line are taken as given.
    assert [p.member.peer_url for p in BackupService(None, _one_master("1.10.13")).restore_plan(  # type: ignore[arg-type]
        "x")] == ["https://kub-master-001:2380"]
    given = (Member("a", "https://10.0.0.1:2380", "https://10.0.0.1:2379"),)
    assert [p.member.name for p in BackupService(None, _one_master("1.9.3")).restore_plan(  # type: ignore[arg-type]
        "x", given)] == ["a"]


def test_the_plain_member_restored_starts_under_kubeadm_1_9s_command_line(tmp_path: Path, made: Made,  # noqa: F811
                                                                         key: Path) -> None:  # noqa: F811
    archive, keys, _ = made
    (step,) = BackupService(None, _one_master("1.9.3")).restore_plan(  # type: ignore[arg-type]
        str(archive), token="enclave-restored-test")
    data = tmp_path / "etcd-restored"
    backup.restore(archive, data, step.member, key=key)
    client = f"http://127.0.0.1:{free_port()}"
    # kubeadm 1.9's flags, and a free peer port: the default (localhost:2380) may be taken on a test host. The
    # restored member keeps its advertised peer URL whatever it listens on.
    log = (tmp_path / "etcd.log").open("wb")
    proc = subprocess.Popen(["etcd", f"--listen-client-urls={client}", f"--advertise-client-urls={client}",
                             f"--data-dir={data}", f"--listen-peer-urls=http://127.0.0.1:{free_port()}"],
                            stdout=log, stderr=log)
    try:
        etcd = Etcdctl((client,))
        deadline = time.monotonic() + 30
        while not etcd.healthy() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert etcd.healthy(), (tmp_path / "etcd.log").read_text()[-2000:]
        assert etcd.get_all() == keys
        assert "default, http://localhost:2380" in etcd.run("member", "list")
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


@pytest.mark.usefixtures("env")
def test_the_command_prints_the_node_and_the_member(tmp_path: Path) -> None:
    path = tmp_path / "one.yaml"
    path.write_text(dump(_one_master("1.9.3")))
    r = run("backup", "restore-plan", "ldf.tar.gz", "--spec", str(path), "-o", "json")
    assert r.exit_code == 0, r.output
    (only,) = json.loads(r.stdout)
    assert (only["node"], only["member"], only["peer_url"]) == ("kub-master-001", "default", "http://localhost:2380")
    r = run("backup", "restore-plan", "ldf.tar.gz", "--spec", str(path))
    assert "1. on kub-master-001 (member default, http://localhost:2380):" in r.output
    assert "restarts the etcd static pod" in r.output
