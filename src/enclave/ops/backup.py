"""Control-plane backup and restore (seed §12, option 2).

One archive (tar.gz) holds the etcd snapshot, the kubeadm PKI, kubeconfigs, static-pod manifests and the
kubeadm configuration, with MANIFEST.json listing a SHA-256 for every file and the snapshot's own etcd
hash, revision and key count. `verify` recomputes all of them and opens the snapshot with etcd's tools;
`restore` refuses any archive `verify` refuses, so a damaged or truncated backup never reaches a data
directory.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from enclave.errors import Conflict, InputError, IntegrityError, NotFound, Problem
from enclave.ops.etcd import Etcdctl, Member, SnapshotStatus, snapshot_restore, snapshot_status

FORMAT = "enclave-control-plane-backup/1"
MANIFEST = "MANIFEST.json"
SNAPSHOT = "etcd/snapshot.db"
KUBERNETES = "kubernetes"  # /etc/kubernetes: pki/, *.conf kubeconfigs, manifests/
KUBEADM_CONFIG = "kubeadm/kubeadm-config.yaml"


@dataclass(frozen=True)
class FileEntry:
    path: str
    sha256: str
    size: int
    mode: int


@dataclass(frozen=True)
class BackupManifest:
    format: str
    created: str
    cluster: str
    etcd: SnapshotStatus
    files: tuple[FileEntry, ...]

    def to_json(self) -> str:
        return json.dumps({"format": self.format, "created": self.created, "cluster": self.cluster,
                           "etcd": asdict(self.etcd), "files": [asdict(f) for f in self.files]}, indent=2)

    @classmethod
    def from_json(cls, text: bytes, where: str) -> BackupManifest:
        try:
            raw = json.loads(text)
            if raw.get("format") != FORMAT:
                raise IntegrityError(f"unknown backup format {raw.get('format')!r} (expected {FORMAT})", where=where,
                                     fix="restore it with the enclave version that wrote it")
            return cls(raw["format"], str(raw["created"]), str(raw["cluster"]), SnapshotStatus(**raw["etcd"]),
                       tuple(FileEntry(str(f["path"]), str(f["sha256"]), int(f["size"]), int(f["mode"]))
                             for f in raw["files"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"{MANIFEST} is unreadable ({exc})", where=where,
                                 fix="the archive is damaged; use another backup") from None

    @property
    def paths(self) -> set[str]:
        return {f.path for f in self.files}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _collect(kubernetes_dir: Path | None, kubeadm_config: Path | None) -> list[tuple[str, Path]]:
    files: list[tuple[str, Path]] = []
    if kubernetes_dir is not None:
        if not kubernetes_dir.is_dir():
            raise NotFound(f"{kubernetes_dir} is not a directory", where="--kubernetes-dir",
                           fix="give the kubeadm configuration directory, usually /etc/kubernetes")
        for p in sorted(kubernetes_dir.rglob("*")):
            if p.is_symlink():
                raise InputError([Problem(str(p), "symbolic links are not backed up",
                                          "replace the link with the file it points to")])
            if p.is_file():
                files.append((f"{KUBERNETES}/{p.relative_to(kubernetes_dir).as_posix()}", p))
        if not files:
            raise InputError([Problem(str(kubernetes_dir), "holds no files",
                                      "give the directory with pki/, admin.conf and manifests/")])
    if kubeadm_config is not None:
        if not kubeadm_config.is_file():
            raise NotFound(f"{kubeadm_config} does not exist", where="--kubeadm-config",
                           fix="give the kubeadm ClusterConfiguration file (kubectl -n kube-system get cm "
                               "kubeadm-config -o jsonpath='{.data.ClusterConfiguration}')")
        files.append((KUBEADM_CONFIG, kubeadm_config))
    return files


def create(etcd: Etcdctl, out: Path, *, kubernetes_dir: Path | None = None, kubeadm_config: Path | None = None,
           cluster: str = "", now: dt.datetime | None = None) -> BackupManifest:
    """Snapshot etcd and pack it with the control-plane files into ``out`` (written atomically, mode 0600)."""
    if out.exists():
        raise Conflict(f"{out} already exists", where=str(out),
                       fix="choose a new file name; backups are never overwritten")
    files = _collect(kubernetes_dir, kubeadm_config)
    with tempfile.TemporaryDirectory(prefix="enclave-backup-") as tmp:
        snap = Path(tmp) / "snapshot.db"
        etcd.snapshot_save(snap)
        status = snapshot_status(snap)
        entries = [FileEntry(SNAPSHOT, _sha256(snap), snap.stat().st_size, 0o600)]
        entries += [FileEntry(name, _sha256(p), p.stat().st_size, p.stat().st_mode & 0o777) for name, p in files]
        manifest = BackupManifest(FORMAT, (now or dt.datetime.now(dt.UTC)).isoformat(timespec="seconds"),
                                  cluster, status, tuple(entries))
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(out.name + ".partial")
        # The archive holds private keys: nobody but the owner may read it, from its first byte.
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
                data = manifest.to_json().encode()
                info = tarfile.TarInfo(MANIFEST)
                info.size, info.mode = len(data), 0o600
                tar.addfile(info, io.BytesIO(data))
                for entry, src in zip(entries, [snap, *[p for _, p in files]], strict=True):
                    info = tar.gettarinfo(str(src), arcname=entry.path)
                    info.uid = info.gid = 0
                    info.uname = info.gname = "root"
                    info.mode = entry.mode
                    with src.open("rb") as f:
                        tar.addfile(info, f)
            partial.replace(out)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    return manifest


def _safe_name(name: str, archive: Path) -> str:
    p = PurePosixPath(name)
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise IntegrityError(f"the archive holds an unsafe path {name!r}", where=str(archive),
                             fix="do not restore this archive; it was not written by enclave")
    return p.as_posix()


def _unpack(archive: Path, dest: Path) -> BackupManifest:
    """Extract into ``dest`` checking every member against the manifest as it streams past."""
    if not archive.is_file():
        raise NotFound(f"{archive} does not exist", where=str(archive), fix="give the path of a backup archive")
    manifest: BackupManifest | None = None
    seen: set[str] = set()
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            for member in tar:
                name = _safe_name(member.name, archive)
                if not member.isfile():
                    raise IntegrityError(f"unexpected {member.type!r} entry {name!r}", where=str(archive),
                                         fix="do not restore this archive; it was not written by enclave")
                fobj = tar.extractfile(member)
                if fobj is None:
                    raise IntegrityError(f"{name} has no contents", where=str(archive), fix="use another backup")
                if manifest is None:
                    if name != MANIFEST:
                        raise IntegrityError(f"the archive does not start with {MANIFEST}", where=str(archive),
                                             fix="this is not an enclave backup")
                    manifest = BackupManifest.from_json(fobj.read(), f"{archive}:{MANIFEST}")
                    continue
                expected = {f.path: f for f in manifest.files}.get(name)
                if expected is None or name in seen:
                    raise IntegrityError(f"{name} is not listed in the manifest (or appears twice)",
                                         where=str(archive), fix="the archive was altered; use another backup")
                seen.add(name)
                target = dest / name
                target.parent.mkdir(parents=True, exist_ok=True)
                h = hashlib.sha256()
                with target.open("wb") as out:
                    for chunk in iter(lambda: fobj.read(1 << 20), b""):  # noqa: B023 — consumed in this iteration
                        h.update(chunk)
                        out.write(chunk)
                os.chmod(target, expected.mode)
                if h.hexdigest() != expected.sha256:
                    raise IntegrityError(f"{name} does not match its checksum", where=str(archive),
                                         fix="the archive is damaged; use another backup")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise IntegrityError(f"the archive is truncated or damaged ({type(exc).__name__}: {exc})",
                             where=str(archive), fix="use another backup; this one cannot be read to its end") from None
    if manifest is None:
        raise IntegrityError("the archive is empty", where=str(archive), fix="use another backup")
    missing = sorted(manifest.paths - seen)
    if missing:
        raise IntegrityError(f"{len(missing)} file(s) listed in the manifest are missing, e.g. {missing[0]}",
                             where=str(archive), fix="the archive is incomplete; use another backup")
    status = snapshot_status(dest / SNAPSHOT)
    if status != manifest.etcd:
        raise IntegrityError(f"the etcd snapshot reports {status} but the manifest recorded {manifest.etcd}",
                             where=str(archive), fix="the archive was altered; use another backup")
    return manifest


def verify(archive: Path) -> BackupManifest:
    """Check every checksum and open the etcd snapshot; raise IntegrityError on any damage."""
    with tempfile.TemporaryDirectory(prefix="enclave-verify-") as tmp:
        return _unpack(archive, Path(tmp))


def restore(archive: Path, data_dir: Path, member: Member, *, kubernetes_dir: Path | None = None,
            cluster: Sequence[Member] = ()) -> BackupManifest:
    """Verify, then build a fresh etcd data directory for ``member`` of ``cluster`` (default: alone) and
    (optionally) put the control-plane files back."""
    if kubernetes_dir is not None and kubernetes_dir.exists() and any(kubernetes_dir.iterdir()):
        raise Conflict(f"{kubernetes_dir} is not empty", where="--kubernetes-dir",
                       fix="restore into an empty directory and move it into place after checking it")
    if data_dir.exists() and any(data_dir.iterdir()):
        raise Conflict(f"{data_dir} already holds data", where="--data-dir",
                       fix="restore into an empty or new directory, then point etcd at it")
    with tempfile.TemporaryDirectory(prefix="enclave-restore-") as tmp:
        unpacked = Path(tmp)
        manifest = _unpack(archive, unpacked)
        snapshot_restore(unpacked / SNAPSHOT, data_dir, member, cluster)
        if kubernetes_dir is not None:
            kubernetes_dir.mkdir(parents=True, exist_ok=True)
            for entry in manifest.files:
                if entry.path == SNAPSHOT:
                    continue
                target = kubernetes_dir / entry.path.removeprefix(f"{KUBERNETES}/")
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(unpacked / entry.path, target)
                os.chmod(target, entry.mode)
    return manifest


def summary(manifest: BackupManifest) -> dict[str, Any]:
    return {"format": manifest.format, "created": manifest.created, "cluster": manifest.cluster,
            "etcd": asdict(manifest.etcd), "files": len(manifest.files),
            "bytes": sum(f.size for f in manifest.files)}
