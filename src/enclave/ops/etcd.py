"""etcd through its own command-line tools (`etcdctl`, and `etcdutl` where it exists).

This is the only module that runs etcd binaries. etcd 3.5 moved offline snapshot work (status, restore)
to `etcdutl`; Debian's etcd 3.4 has only `etcdctl`, which still does both, so each call picks whichever
is installed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from enclave.errors import Conflict, EnclaveError, ExternalError, InputError, IntegrityError, NotFound, Problem


def _binary(name: str) -> str | None:
    return shutil.which(name)


def _need(name: str) -> str:
    path = _binary(name)
    if path is None:
        raise NotFound(f"`{name}` is not installed", where="PATH",
                       fix="install Debian etcd-client/etcd-server (scripts/test-deps.sh does)")
    return path


@dataclass(frozen=True)
class SnapshotStatus:
    hash: int
    revision: int
    total_keys: int
    total_size: int


@dataclass(frozen=True)
class Etcdctl:
    """How to reach one etcd cluster: endpoints plus the client TLS files kubeadm generates."""

    endpoints: tuple[str, ...]
    cacert: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    timeout_s: float = 300.0
    dial_timeout_s: float = 5.0

    def _base(self) -> list[str]:
        # Without a dial timeout etcdctl keeps retrying an unreachable endpoint until our own timeout.
        args = [_need("etcdctl"), f"--endpoints={','.join(self.endpoints)}", f"--dial-timeout={self.dial_timeout_s:g}s"]
        for flag, value in (("--cacert", self.cacert), ("--cert", self.cert), ("--key", self.key)):
            if value is not None:
                args.append(f"{flag}={value}")
        return args

    def run(self, *args: str) -> str:
        return _run([*self._base(), *args], self.timeout_s, what="etcdctl " + (args[0] if args else ""))

    def snapshot_save(self, dest: Path) -> None:
        if len(self.endpoints) != 1:
            raise InputError([Problem("--endpoints", "a snapshot is taken from exactly one etcd member",
                                      "give the client URL of one healthy member")])
        # etcdctl 3.4 `snapshot save` retries an unreachable member forever; `endpoint health` gives up.
        try:
            self.check_health()
        except ExternalError as exc:
            raise ExternalError(f"etcd at {self.endpoints[0]} is not healthy ({exc.problem.what})",
                                where="--endpoints", fix="check the URL, the TLS files and that etcd runs") from None
        self.run("snapshot", "save", str(dest))

    def put(self, key: str, value: str) -> None:
        self.run("put", key, value)

    def get_all(self) -> dict[bytes, bytes]:
        """Every key and value in the keyspace (raw bytes, as etcd stores them)."""
        import base64

        out = json.loads(self.run("get", "", "--prefix", "-w", "json"))
        return {base64.b64decode(kv["key"]): base64.b64decode(kv.get("value", ""))
                for kv in out.get("kvs", [])}

    def check_health(self) -> None:
        """`endpoint health`, failing on an unhealthy member, with etcdctl's reason. Up to 3.2.4 etcdctl prints
        "<ep> is unhealthy: …" on stdout and still exits 0 (etcd v3.1.11 etcdctl/ctlv3/command/ep_command.go,
        epHealthCommandFunc); from 3.2.5 (etcd commit 40a1704e6, the 3.2 backport of 6603a7756, "ctlv3: exit
        non-zero on unhealty ep command") it prints that line on stderr and exits 1 with "Error: unhealthy
        cluster" last (v3.2.5 and v3.4.23 ep_command.go). So the output is read as well as the exit status, and
        the member's own line, not the last one, says why."""
        done = _exec([*self._base(), "endpoint", "health"], self.timeout_s, what="etcdctl endpoint")
        lines = [line.strip() for line in f"{done.stdout}\n{done.stderr}".splitlines() if " is unhealthy" in line]
        if lines or done.returncode != 0:
            raise ExternalError(f"etcdctl endpoint health: {lines[0] if lines else _last_line(done)}",
                                where=",".join(self.endpoints), fix="check the URL, the TLS files and that etcd runs")

    def healthy(self) -> bool:
        try:
            self.check_health()
            return True
        except ExternalError:
            return False


def _exec(args: list[str], timeout: float, *, what: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ETCDCTL_API": "3"}
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        raise ExternalError(f"{what} did not finish within {timeout:g} s", where=" ".join(args[:3]),
                            fix="check that etcd is reachable and not overloaded") from None


def _last_line(done: subprocess.CompletedProcess[str]) -> str:
    msg = (done.stderr or done.stdout).strip().splitlines()
    return msg[-1] if msg else f"exit {done.returncode}"


def _run(args: list[str], timeout: float, *, what: str) -> str:
    done = _exec(args, timeout, what=what)
    if done.returncode != 0:
        raise ExternalError(f"{what} failed: {_last_line(done)}",
                            where=" ".join(args[:3]), fix="read the etcd message above; check endpoints and TLS files")
    return done.stdout


# ---- offline snapshot work: a damaged file is not a missing tool ------------------------------------------

# What etcd's tools say of a damaged snapshot file: bbolt's own errors (go.etcd.io/bbolt errors.go ErrInvalid
# "invalid database", ErrVersionMismatch "version mismatch", ErrChecksum "checksum error"; db.go mmap "file size
# too small") and etcd's integrity hash (etcdutl/snapshot/v3_snapshot.go, saveDB: "expected sha256 %v, got %v",
# "snapshot missing hash but --skip-hash-check=false"), or a Go crash inside bbolt reading its pages (a snapshot
# cut short: bbolt's mmap ends past the file and the read faults, "fatal error: fault", with etcdctl 3.4.23 here).
# bbolt's own page check, which `snapshot status` runs before anything else and which fails with "snapshot file
# integrity check failed. %d errors found." (etcd v3.4.0 clientv3/snapshot/v3_snapshot.go Status, tx.Check(); v3.5.0
# and v3.6.0 etcdutl/snapshot/v3_snapshot.go Status). Anything else is the tool failing, not a verdict on the file.
DAMAGED = ("invalid database", "version mismatch", "checksum error", "file size too small", "expected sha256",
           "snapshot missing hash", "snapshot file integrity check failed")
BOLT = ("go.etcd.io/bbolt", "github.com/coreos/bbolt", "github.com/boltdb/bolt")
# A tool without the subcommand: etcdctl 3.6 keeps only `snapshot save` (etcd v3.6.0 etcdctl/ctlv3/command/
# snapshot_command.go), and cobra answers a subcommand its parent lacks with the parent's help and exit 0
# (etcdctl 3.4.23's `snapshot bogus` does); elsewhere cobra says "unknown command" or "unknown flag".
MISSING = ("unknown command", "unknown flag", "unknown shorthand flag")
INSTALL = ("install etcdutl at the etcd server's version (etcd's release tarball): etcd 3.5 moved snapshot "
           "status and restore to it, and etcdctl 3.6 no longer has them")


def _offline_tool() -> str:
    """etcdutl where it exists (etcd ≥ 3.5), else etcdctl, which still does snapshot status and restore up to 3.5
    (Debian's 3.4 has no etcdutl)."""
    return _binary("etcdutl") or _need("etcdctl")


def _lacks(tool: str, command: str) -> NotFound:
    return NotFound(f"{Path(tool).name} has no `{command}`", where=tool, fix=INSTALL)


def _offline(args: list[str], timeout: float, *, what: str, snapshot: Path) -> str:
    """Run ``etcdutl|etcdctl snapshot …``: a message of a damaged file raises IntegrityError, a tool without the
    subcommand NotFound, any other failure ExternalError (the backup is not judged)."""
    done = _exec(args, timeout, what=what)
    if done.returncode == 0:
        return done.stdout
    text = f"{done.stdout}\n{done.stderr}"
    crashed = [line for line in text.splitlines() if line.startswith(("panic:", "fatal error:"))]
    said = [line.strip() for line in text.splitlines() if any(m in line for m in DAMAGED)]
    if said or (crashed and any(b in text for b in BOLT)):
        # etcd's own sentence, not the last line: after "integrity check failed" come bbolt's page errors.
        raise IntegrityError(f"{what}: etcd finds the snapshot damaged ({crashed[0] if crashed else said[0]})",
                             where=str(snapshot), fix="use another backup; this snapshot is damaged")
    if any(m in text for m in MISSING):
        raise _lacks(args[0], what)
    raise ExternalError(f"{what} failed: {_last_line(done)}", where=" ".join(args[:3]),
                        fix=f"etcd's tool failed, which says nothing about the backup: read its message; {INSTALL}")


def snapshot_status(snapshot: Path) -> SnapshotStatus:
    """Open a snapshot file and read its hash, revision and key count; a damaged file is refused."""
    if snapshot.is_file() and snapshot.stat().st_size == 0:
        # bbolt opens an empty file read-only and fails writing its first page ("bad file descriptor").
        raise IntegrityError("the etcd snapshot is empty", where=str(snapshot), fix="use another backup")
    tool = _offline_tool()
    out = _offline([tool, "snapshot", "status", str(snapshot), "-w", "json"], 60, what="snapshot status",
                   snapshot=snapshot)
    try:
        raw = json.loads(out)
        return SnapshotStatus(int(raw["hash"]), int(raw["revision"]), int(raw["totalKey"]), int(raw["totalSize"]))
    except (ValueError, KeyError, TypeError):
        # Exit 0 without the status: the help text of a tool that lacks the subcommand.
        raise _lacks(tool, "snapshot status") from None


def restored_token(now: dt.datetime) -> str:
    """A cluster token for one restore, stamped with its UTC minute. etcdutl derives every member ID from the
    member's peer URLs and the token, and the cluster ID from the member IDs (etcdutl/snapshot/v3_snapshot.go:
    NewClusterFromURLsMap(token, …), whose membership.NewMember (api/membership/member.go) hashes the sorted peer
    URLs and the token, with no time): a fixed token gave every restore of the same nodes the same IDs, so a
    member left over from before the restore could join the restored cluster, which the recovery guide's fresh
    token prevents. Every member of one restore takes the same token (restore_plan prints it)."""
    return f"enclave-restored-{now.astimezone(dt.UTC).strftime('%Y%m%dT%H%MZ')}"


@dataclass(frozen=True)
class Member:
    """Identity of the etcd member a snapshot is restored into (front ends give a ``restored_token``)."""

    name: str
    peer_url: str
    client_url: str
    cluster_token: str = "enclave-restored"

    @property
    def initial_cluster(self) -> str:
        return f"{self.name}={self.peer_url}"


def initial_cluster(members: Sequence[Member]) -> str:
    """`--initial-cluster` naming every member: `name=peer-url,…`."""
    return ",".join(f"{m.name}={m.peer_url}" for m in members)


def restore_args(snapshot: str, data_dir: str, member: Member, cluster: Sequence[Member] = ()) -> list[str]:
    """`etcdutl snapshot restore` for one member of a cluster restored from one snapshot. etcd's disaster
    recovery guide (etcd-io/website content/en/docs/v3.5/op-guide/recovery.md, "Restoring a cluster"): every
    member restores the same snapshot with its own --name and --initial-advertise-peer-urls, one
    --initial-cluster listing all members and one --initial-cluster-token, then each starts on its new data
    directory; a one-member --initial-cluster builds a one-member cluster."""
    members = tuple(cluster) or (member,)
    if member.name not in {m.name for m in members}:
        raise InputError([Problem("--member", f"{member.name} is not among the cluster's members",
                                  "list every member, this one included")])
    return ["snapshot", "restore", snapshot, f"--data-dir={data_dir}", f"--name={member.name}",
            f"--initial-cluster={initial_cluster(members)}", f"--initial-cluster-token={member.cluster_token}",
            f"--initial-advertise-peer-urls={member.peer_url}"]


def kubeadm_plain_member(cluster_token: str) -> Member:
    """The member kubeadm's local etcd is before 1.10: kubeadm 1.9 starts it with only --listen-client-urls and
    --advertise-client-urls http://127.0.0.1:2379 and --data-dir (cmd/kubeadm/app/phases/etcd/local.go,
    getEtcdCommand, v1.9), so the rest is etcd's own defaults: --name "default", --initial-advertise-peer-urls
    http://localhost:2380, --initial-cluster default=http://localhost:2380 (etcd v3.1.10 embed/config.go,
    DefaultName, DefaultInitialAdvertisePeerURLs, InitialClusterFromName; 3.1.10 is kubeadm 1.9's etcd). A member
    restored under that name and peer URL is the one the manifest's etcd starts as, with no flag changed but
    the data directory."""
    return Member("default", "http://localhost:2380", "http://127.0.0.1:2379", cluster_token)


PLAIN_LOCAL_ETCD_BEFORE = (1, 10)
"""kubeadm's local etcd has TLS, and a member name of its own, from 1.10 on (backup_catalog reads it the same way)."""


@dataclass(frozen=True)
class MemberRestore:
    member: Member
    steps: tuple[str, ...]
    node: str = ""
    """The control-plane node the steps run on (the member's name when empty: kubeadm names members after them)."""

    @property
    def host(self) -> str:
        return self.node or self.member.name


def restore_plan(archive: str, cluster: Sequence[Member], data_dir: str = "/var/lib/etcd-restored",
                 kubernetes_dir: str = "/root/etc-kubernetes-restored") -> tuple[MemberRestore, ...]:
    """What to run on every control-plane node to bring the whole etcd cluster back from one backup (the
    recovery guide's order: restore every member's data directory from the same snapshot, then start them
    all; a member alone has no quorum)."""
    if not cluster:
        raise InputError([Problem("--member", "no etcd member given", "name every control-plane node")])
    out = []
    for m in cluster:
        out.append(MemberRestore(m, (
            *_restore_steps(archive, m.name, m, cluster, data_dir, kubernetes_dir),
            f"in /etc/kubernetes/manifests/etcd.yaml: --data-dir={data_dir} (and its hostPath volume), "
            f"--initial-cluster={initial_cluster(cluster)}, --initial-cluster-state=new, "
            f"--initial-cluster-token={m.cluster_token}",
        )))
    return tuple(out)


def _restore_steps(archive: str, node: str, m: Member, cluster: Sequence[Member], data_dir: str,
                   kubernetes_dir: str) -> tuple[str, str, str]:
    """The steps every plan's member shares: bring the archive to ``node``, restore ``m`` (one of ``cluster``, or
    alone when it is empty) with enclave, and the etcdutl command that amounts to."""
    flags = "".join(f" --member {c.name}={c.peer_url}" for c in cluster)
    return (
        f"copy {archive} to {node} (mode 0600: it holds private keys)",
        f"enclave backup restore {archive} --data-dir {data_dir} --name {m.name} --peer-url {m.peer_url} "
        f"--client-url {m.client_url} --cluster-token {m.cluster_token}{flags} --kubernetes-dir {kubernetes_dir}",
        f"# same as: etcdutl {' '.join(restore_args('<snapshot.db>', data_dir, m, cluster))}",
    )


def plain_local_restore_plan(archive: str, node: str, member: Member, data_dir: str = "/var/lib/etcd-restored",
                             kubernetes_dir: str = "/root/etc-kubernetes-restored") -> tuple[MemberRestore, ...]:
    """What to run on the one control-plane node of a kubeadm cluster before 1.10 (``kubeadm_plain_member``):
    restore its one member under etcd's default name and peer URL, then point the manifest's --data-dir (and
    the hostPath volume that mounts it) at the new directory. The manifest names no member or cluster, and etcd
    reads both from a data directory that has them, so nothing else in it changes."""
    return (MemberRestore(member, (
        *_restore_steps(archive, node, member, (), data_dir, kubernetes_dir),
        f"in /etc/kubernetes/manifests/etcd.yaml: --data-dir={data_dir} and its hostPath volume (kubeadm before 1.10 "
        f"sets no --name or --initial-cluster: etcd's defaults are the restored member's)",
    ), node),)


def snapshot_restore(snapshot: Path, data_dir: Path, member: Member, cluster: Sequence[Member] = ()) -> None:
    """Build a fresh data directory for ``member`` from a snapshot (its integrity hash is checked), as one
    member of ``cluster`` (default: a one-member cluster)."""
    if data_dir.exists() and any(data_dir.iterdir()):
        raise Conflict(f"{data_dir} already holds data", where=str(data_dir),
                       fix="restore into an empty or new directory, then point etcd at it")
    tool = _offline_tool()
    args = [tool, *restore_args(str(snapshot), str(data_dir), member, cluster)]
    if data_dir.exists():
        data_dir.rmdir()
    try:
        _offline(args, 120, what="snapshot restore", snapshot=snapshot)
        if not (data_dir / "member").is_dir():  # exit 0 without a member directory: the tool's help text
            raise _lacks(tool, "snapshot restore")
    except EnclaveError:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class EtcdServer:
    """A real single-member etcd on loopback, for restores that are checked by reading them back."""

    data_dir: Path
    name: str = "enclave-etcd"
    client_port: int = field(default_factory=free_port)
    peer_port: int = field(default_factory=free_port)
    cluster_token: str = "enclave-restored"
    cluster: tuple[Member, ...] = ()  # every member when this one is part of a larger cluster
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def member(self) -> Member:
        return Member(self.name, f"http://127.0.0.1:{self.peer_port}", f"http://127.0.0.1:{self.client_port}",
                      self.cluster_token)

    @property
    def client(self) -> Etcdctl:
        return Etcdctl((self.member.client_url,))

    def launch(self) -> EtcdServer:
        """Start the process without waiting (the members of a cluster wait for each other's quorum)."""
        m = self.member
        log = open(self.data_dir.parent / f"{self.name}.log", "ab")  # noqa: SIM115 — kept open for the process
        self._proc = subprocess.Popen(
            [_need("etcd"), f"--name={m.name}", f"--data-dir={self.data_dir}",
             f"--listen-client-urls={m.client_url}", f"--advertise-client-urls={m.client_url}",
             f"--listen-peer-urls={m.peer_url}", f"--initial-advertise-peer-urls={m.peer_url}",
             f"--initial-cluster={initial_cluster(self.cluster or (m,))}",
             f"--initial-cluster-token={m.cluster_token}", "--initial-cluster-state=new"],
            stdout=log, stderr=log)
        log.close()
        return self

    def start(self, timeout_s: float = 30.0) -> EtcdServer:
        return self.launch().wait_healthy(timeout_s)

    def wait_healthy(self, timeout_s: float = 30.0) -> EtcdServer:
        m = self.member
        assert self._proc is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ExternalError(f"etcd exited with {self._proc.returncode} on start",
                                    where=str(self.data_dir.parent / f"{self.name}.log"), fix="read its log")
            if self.client.healthy():
                return self
            time.sleep(0.2)
        self.stop()
        raise ExternalError(f"etcd did not become healthy within {timeout_s:g} s", where=m.client_url,
                            fix="read the etcd log next to the data directory")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def __enter__(self) -> EtcdServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
