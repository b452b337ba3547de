"""etcd's tools as other etcd releases behave: small stand-in executables on PATH play the releases this machine
lacks (Debian ships etcd 3.4), each stating the upstream behaviour it plays and where it comes from."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from enclave.errors import ExternalError
from enclave.ops.etcd import Etcdctl

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
