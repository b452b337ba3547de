"""A restore's etcd cluster token: fresh for every restore, one for all members of it.

etcdutl/snapshot/v3_snapshot.go builds the restored cluster with NewClusterFromURLsMap(token, …), whose
membership.NewMember hashes the sorted peer URLs and the token with no time: the member and cluster IDs are a
function of those two alone. A fixed default token therefore gives every restore of the same nodes the same IDs,
and a member left over from before the restore is not told apart from the restored cluster's (etcd's recovery
guide, content/en/docs/v3.5/op-guide/recovery.md, restores with a new --initial-cluster-token for that reason).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from enclave.ops import backup
from enclave.ops.etcd import EtcdServer, restored_token
from enclave.services.ops import BackupService
from enclave.spec.defaults import DEFAULT_SPEC
from enclave.spec.load import load
from tests.ops.test_backup import Made, key, made  # noqa: F401  (one real backup archive per module, its key)
from tests.ops.test_cli import env, run  # noqa: F401

T = dt.datetime(2026, 12, 2, 11, 0, 30, tzinfo=dt.UTC)
STAMPED = re.compile(r"^enclave-restored-\d{8}T\d{4}Z$")


def _ids(server: EtcdServer) -> tuple[int, int]:
    """(cluster ID, member ID) as the member reports them in every response header (`endpoint status`)."""
    header = json.loads(server.client.run("endpoint", "status", "-w", "json"))[0]["Status"]["header"]
    return header["cluster_id"], header["member_id"]


def _restored_ids(archive: Path, signing: Path, where: Path, token: str, peer_port: int) -> tuple[int, int]:
    server = EtcdServer(where / "data", name="kub-master-001", peer_port=peer_port, cluster_token=token)
    where.mkdir()
    backup.restore(archive, server.data_dir, server.member, key=signing)
    with server:
        return _ids(server)


def test_the_ids_follow_the_token_so_each_restore_gets_its_own(tmp_path: Path, made: Made,  # noqa: F811
                                                               key: Path) -> None:  # noqa: F811
    archive = made[0]
    port = EtcdServer(tmp_path).peer_port  # the same node: the same peer URL each time
    first = _restored_ids(archive, key, tmp_path / "a", restored_token(T), port)
    # upstream: the same peer URL and token give the same IDs (what the fixed "enclave-restored" did)
    assert _restored_ids(archive, key, tmp_path / "b", restored_token(T), port) == first
    later = _restored_ids(archive, key, tmp_path / "c", restored_token(T + dt.timedelta(hours=1)), port)
    assert later[0] != first[0] and later[1] != first[1]


def test_the_default_token_is_stamped_and_shared_by_every_member_of_a_plan() -> None:
    service = BackupService(None, load(DEFAULT_SPEC))  # type: ignore[arg-type]  (no database needed)
    plan = service.restore_plan("ldf.tar.gz", now=T)
    assert {p.member.cluster_token for p in plan} == {"enclave-restored-20261202T1100Z"}
    for p in plan:
        assert any("--cluster-token enclave-restored-20261202T1100Z" in line for line in p.steps)
        assert any("--initial-cluster-token=enclave-restored-20261202T1100Z" in line for line in p.steps)
    later = service.restore_plan("ldf.tar.gz", now=T + dt.timedelta(minutes=1))
    assert {p.member.cluster_token for p in later} == {"enclave-restored-20261202T1101Z"}
    assert {p.member.cluster_token for p in service.restore_plan("x", token="mine")} == {"mine"}


@pytest.mark.usefixtures("env")
def test_restore_plan_and_restore_commands_keep_one_token_per_restore() -> None:
    r = run("backup", "restore-plan", "ldf.tar.gz", "-o", "json")
    assert r.exit_code == 0, r.output
    tokens = {m["cluster_token"] for m in json.loads(r.stdout)}
    assert len(tokens) == 1 and STAMPED.match(tokens.pop())
    # One member of a multi-member restore cannot make up its own token: the others would not share it.
    r = run("backup", "restore", "ldf.tar.gz", "--data-dir", "/nonexistent", "--name", "a", "--peer-url",
            "https://10.0.0.1:2380", "--member", "a=https://10.0.0.1:2380", "--member", "b=https://10.0.0.2:2380")
    assert r.exit_code == 1 and "same cluster token" in r.output
