"""Restoring every control-plane member from one backup (etcd's recovery guide, "Restoring a cluster":
same snapshot, one --initial-cluster naming all members, one token, each member its own name and peer URL)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from enclave.errors import InputError
from enclave.ops import backup
from enclave.ops.etcd import EtcdServer, Member, restore_args, restore_plan
from enclave.services.ops import BackupService
from enclave.spec.defaults import DEFAULT_SPEC
from enclave.spec.load import load
from enclave.spec.models import NodeRole
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
