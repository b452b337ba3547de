"""etcd's tools as other etcd releases behave: small stand-in executables on PATH play the releases this machine
lacks (Debian ships etcd 3.4), each stating the upstream behaviour it plays and where it comes from."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from enclave.errors import ExternalError, IntegrityError, NotFound
from enclave.ops.etcd import Etcdctl, Member, SnapshotStatus, snapshot_restore, snapshot_status

StandIn = Callable[[str, str], Path]


@pytest.fixture
def stand_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StandIn:
    """``stand_in(name, body)`` writes a /bin/sh executable ``name`` and makes a PATH of only its directory, so
    neither the real etcdctl nor any etcdutl is found beside it."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))

    def write(name: str, body: str) -> Path:
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
        return path

    return write


# etcd v3.1.11 etcdctl/ctlv3/command/ep_command.go, epHealthCommandFunc: each endpoint's result is printed with
# fmt.Printf ("%s is unhealthy: failed to commit proposal: %v") and the command returns, exit status 0; it exits
# non-zero on an unhealthy endpoint only from 3.3.0 (etcd commit 6603a7756).
ETCDCTL_3_1_UNHEALTHY = """case "$*" in
  *"endpoint health"*)
    echo "http://127.0.0.1:2379 is unhealthy: failed to commit proposal: context deadline exceeded" ;;
  *"snapshot save"*) echo taken > "$(dirname "$0")/saved" ;;
esac
exit 0"""


def test_an_unhealthy_member_that_etcdctl_3_1_reports_with_exit_0_is_unhealthy(stand_in: StandIn,
                                                                             tmp_path: Path) -> None:
    stand_in("etcdctl", ETCDCTL_3_1_UNHEALTHY)
    etcd = Etcdctl(("http://127.0.0.1:2379",))
    assert not etcd.healthy()
    with pytest.raises(ExternalError, match="is not healthy .*is unhealthy: failed to commit proposal"):
        etcd.snapshot_save(tmp_path / "snap.db")
    assert not (tmp_path / "bin" / "saved").exists()  # no snapshot is taken from an unhealthy member


def test_a_healthy_member_in_etcdctl_3_1_words_is_healthy(stand_in: StandIn) -> None:
    stand_in("etcdctl", 'echo "http://127.0.0.1:2379 is healthy: successfully committed proposal: took = 1.2ms"')
    assert Etcdctl(("http://127.0.0.1:2379",)).healthy()


def test_an_unhealthy_member_is_named_with_etcdctls_reason_not_its_last_line(tmp_path: Path) -> None:
    """From 3.2.5 (etcd commit 40a1704e6, backporting 6603a7756) `endpoint health` prints "<ep> is unhealthy: …" on
    stderr, then "Error: unhealthy cluster", and exits 1 (v3.2.5 and v3.4.23 etcdctl/ctlv3/command/ep_command.go,
    epHealthCommandFunc). The real etcdctl here (3.4.23) against a port nobody listens on: the error says why."""
    etcd = Etcdctl(("http://127.0.0.1:1",), dial_timeout_s=1)
    assert not etcd.healthy()
    with pytest.raises(ExternalError, match=r"is not healthy \(etcdctl endpoint health: http://127.0.0.1:1 is "
                                            r"unhealthy: failed to commit proposal"):
        etcd.snapshot_save(tmp_path / "snap.db")
    assert not (tmp_path / "snap.db").exists()


# ---- offline snapshot work: a tool that lacks the command, or fails, is not a damaged snapshot -------------

# etcd v3.6.0 etcdctl/ctlv3/command/snapshot_command.go registers only `snapshot save` (status and restore are
# etcdutl's since 3.5). cobra answers a subcommand its parent lacks with the parent's help on stdout and exit 0
# (command.go: a command that is not Runnable returns flag.ErrHelp, which ExecuteC turns into HelpFunc and nil);
# etcdctl 3.4.23 does exactly that for `snapshot bogus` on this machine.
ETCDCTL_3_6 = """case "$*" in
  "version") printf 'etcdctl version: 3.6.0\\nAPI version: 3.6\\n' ;;
  snapshot\\ save*) echo "Snapshot saved at $3" ;;
  snapshot*) printf 'NAME:\\n\\tsnapshot - Manages etcd node snapshots\\n\\nCOMMANDS:\\n\\tsave\\tStores an etcd node \
backend snapshot to a given file\\n' ;;
esac
exit 0"""


def _member() -> Member:
    return Member("kub-master-001", "http://127.0.0.1:2380", "http://127.0.0.1:2379", "enclave-restored-test")


def test_etcdctl_3_6_without_etcdutl_is_a_missing_tool_not_a_damaged_snapshot(stand_in: StandIn,
                                                                              tmp_path: Path) -> None:
    stand_in("etcdctl", ETCDCTL_3_6)
    snap = tmp_path / "snapshot.db"
    snap.write_bytes(b"\0" * 8192)
    with pytest.raises(NotFound, match="etcdctl has no `snapshot status`") as status:
        snapshot_status(snap)
    assert "install etcdutl at the etcd server's version" in str(status.value)
    data = tmp_path / "restored"
    with pytest.raises(NotFound, match="etcdctl has no `snapshot restore`") as restore:
        snapshot_restore(snap, data, _member())
    assert "install etcdutl" in str(restore.value) and not data.exists()  # nothing left that looks restored


# etcd v3.5 etcdutl/snapshot/v3_snapshot.go saveDB: a snapshot whose trailing SHA-256 does not match its bytes
# fails with fmt.Errorf("expected sha256 %v, got %v", …) — a damaged file; cobrautl.ExitWithError prints
# "Error: <err>" and exits 1.
ETCDUTL_DAMAGED = """echo '{"level":"info","msg":"restoring snapshot"}' >&2
echo 'Error: expected sha256 [1 2 3], got [4 5 6]' >&2
exit 1"""

# A failure that is the tool's or the host's, not the file's: the snapshot cannot even be opened. etcdctl 3.5
# first prints its deprecation notice (etcdctl/ctlv3/command/snapshot_command.go: "Deprecated: Use `etcdutl
# snapshot status` instead.").
ETCDCTL_3_5_FAILING = """echo 'Deprecated: Use `etcdutl snapshot status` instead.' >&2
echo "Error: open $3: too many open files" >&2
exit 1"""

ETCDCTL_3_5_WORKING = """echo 'Deprecated: Use `etcdutl snapshot status` instead.' >&2
echo '{"hash":305419896,"revision":42,"totalKey":43,"totalSize":24608}'"""


def test_etcds_words_for_a_damaged_snapshot_are_an_integrity_error(stand_in: StandIn, tmp_path: Path) -> None:
    stand_in("etcdutl", ETCDUTL_DAMAGED)
    snap = tmp_path / "snapshot.db"
    snap.write_bytes(b"\0" * 8192)
    with pytest.raises(IntegrityError, match="damaged .*expected sha256"):
        snapshot_restore(snap, tmp_path / "restored", _member())
    with pytest.raises(IntegrityError, match="expected sha256"):
        snapshot_status(snap)


def test_any_other_tool_failure_is_an_external_error(stand_in: StandIn, tmp_path: Path) -> None:
    snap = tmp_path / "snapshot.db"
    snap.write_bytes(b"\0" * 8192)
    stand_in("etcdctl", ETCDCTL_3_5_FAILING)
    with pytest.raises(ExternalError, match="too many open files") as failed:
        snapshot_status(snap)
    assert "says nothing about the backup" in str(failed.value)
    stand_in("etcdctl", ETCDCTL_3_5_WORKING)  # the deprecation notice on stderr is no failure
    assert snapshot_status(snap) == SnapshotStatus(305419896, 42, 43, 24608)


# bbolt's page check, run first by `snapshot status`: "snapshot file integrity check failed. %d errors found." and
# then one line per bbolt error (etcd v3.4.0/v3.4.23 clientv3/snapshot/v3_snapshot.go Status, tx.Check(); v3.5.0
# and v3.6.0 etcdutl/snapshot/v3_snapshot.go); etcdctl 3.4's ExitWithError prints "Error: <err>" and exits 1
# (etcdctl/ctlv3/command/error.go). bbolt's Check words (tx.go, tx_check.go from v1.3.7): "page %d: unreachable
# unfreed".
ETCDCTL_3_4_INTEGRITY = """echo 'Error: snapshot file integrity check failed. 2 errors found.' >&2
echo 'page 7: unreachable unfreed' >&2
echo 'page 8: unreachable unfreed' >&2
exit 1"""


def test_etcds_integrity_check_failure_is_a_damaged_snapshot(stand_in: StandIn, tmp_path: Path) -> None:
    stand_in("etcdctl", ETCDCTL_3_4_INTEGRITY)
    snap = tmp_path / "snapshot.db"
    snap.write_bytes(b"\0" * 8192)
    with pytest.raises(IntegrityError, match="damaged .*snapshot file integrity check failed. 2 errors found"):
        snapshot_status(snap)
    stand_in("etcdutl", ETCDCTL_3_4_INTEGRITY)  # etcdutl 3.5/3.6 (cobrautl.ExitWithError): the same words
    with pytest.raises(IntegrityError, match="snapshot file integrity check failed"):
        snapshot_status(snap)
