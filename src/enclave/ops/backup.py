"""Control-plane backup and restore (seed §12, option 2).

One archive (tar.gz) holds the etcd snapshot, the kubeadm PKI, kubeconfigs, static-pod manifests and the
kubeadm configuration, with MANIFEST.json listing a SHA-256 for every file and the snapshot's own etcd
hash, revision and key count. `verify` recomputes all of them and opens the snapshot with etcd's tools;
`restore` refuses any archive `verify` refuses, so a damaged or truncated backup never reaches a data
directory.

The manifest is authenticated: MANIFEST.sig, the archive's second member, is HMAC-SHA256 (RFC 2104) of the
manifest's bytes under a signing key kept OUTSIDE the archive — by default ``$ENCLAVE_HOME/backup.key``
(``$ENCLAVE_BACKUP_KEY`` or ``--signing-key`` to choose another), created with mode 0600 by the first backup.
Since the manifest holds every file's SHA-256, a valid signature vouches for every byte; without the key
nobody can produce an archive `verify` accepts. Every manifest field is bounded and checked before use: a file
mode must lie in 0..0o777 without set-id, sticky or world-write bits (restore runs as root and must never
create a set-uid or world-writable file), paths must be safe and unique, sizes and counts bounded.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import json
import os
import re
import secrets
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from enclave.errors import Conflict, InputError, IntegrityError, NotFound, Problem
from enclave.home import enclave_home
from enclave.ops.etcd import Etcdctl, Member, SnapshotStatus, snapshot_restore, snapshot_status

FORMAT = "enclave-control-plane-backup/2"  # /2: signed manifest (MANIFEST.sig)
MANIFEST = "MANIFEST.json"
SIGNATURE = "MANIFEST.sig"
KEY_BYTES = 32  # HMAC-SHA256 key: RFC 2104 §3 recommends at least the hash's output length (32 bytes)
# Bounds on what a manifest may claim, far above a real control plane (a few hundred files, a few GiB of etcd):
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
MAX_FILES = 100_000
MAX_FILE_BYTES = 1 << 40  # 1 TiB; etcd's own backend quota tops out at 8 GiB (etcd docs, --quota-backend-bytes)
MAX_INT = (1 << 63) - 1  # etcd's hash, revision and counts are int64 (etcdctl snapshot status)
MODE_BITS = 0o777
FORBIDDEN_MODE = 0o7002  # set-uid, set-gid, sticky, world-write: restore (as root) never creates these
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
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
            if not isinstance(raw, dict) or raw.get("format") != FORMAT:
                found = raw.get("format") if isinstance(raw, dict) else None
                raise IntegrityError(f"unknown backup format {found!r} (expected {FORMAT})", where=where,
                                     fix="restore it with the enclave version that wrote it")
            etcd = SnapshotStatus(**{k: _bounded(raw["etcd"][k], 0, MAX_INT, f"etcd.{k}")
                                     for k in ("hash", "revision", "total_keys", "total_size")})
            files = raw["files"]
            if not isinstance(files, list) or not 0 < len(files) <= MAX_FILES:
                raise ValueError(f"files must be a list of 1 to {MAX_FILES} entries")
            entries = tuple(_entry(f) for f in files)
            if len({e.path for e in entries}) != len(entries):
                raise ValueError("a path is listed twice")
            return cls(raw["format"], _text(raw["created"], "created"), _text(raw["cluster"], "cluster"), etcd,
                       entries)
        except (ValueError, KeyError, TypeError) as exc:
            raise IntegrityError(f"{MANIFEST} is unreadable or out of bounds ({exc})", where=where,
                                 fix="the archive is damaged or forged; use another backup") from None

    @property
    def paths(self) -> set[str]:
        return {f.path for f in self.files}


def _bounded(value: Any, low: int, high: int, what: str) -> int:
    if type(value) is not int or not low <= value <= high:  # bool is an int subclass: refused too
        raise ValueError(f"{what} must be an integer in {low}..{high}, not {value!r}")
    return value


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or len(value) > 256:
        raise ValueError(f"{what} must be a string of at most 256 characters")
    return value


def _entry(f: Any) -> FileEntry:
    if not isinstance(f, dict):
        raise TypeError("a files entry is not an object")
    path, digest = f["path"], f["sha256"]
    if not isinstance(path, str) or _unsafe(path) or path in (MANIFEST, SIGNATURE):
        raise ValueError(f"unsafe path {path!r}")
    if not isinstance(digest, str) or not _HEX64.match(digest):
        raise ValueError(f"{path}: sha256 is not 64 hex digits")
    mode = _bounded(f["mode"], 0, MODE_BITS, f"{path}: mode")
    if mode & FORBIDDEN_MODE:
        raise ValueError(f"{path}: mode {mode:#o} has a set-id, sticky or world-write bit")
    return FileEntry(path, digest, _bounded(f["size"], 0, MAX_FILE_BYTES, f"{path}: size"), mode)


def _unsafe(name: str) -> bool:
    p = PurePosixPath(name)
    return p.is_absolute() or ".." in p.parts or not p.parts or p.as_posix() != name


# ---- the signing key ------------------------------------------------------------------------------------

def default_key_path() -> Path:
    """Where the signing key lives unless ``--signing-key`` says otherwise: ``$ENCLAVE_BACKUP_KEY``, else
    ``$ENCLAVE_HOME/backup.key`` — on the administrator's host, never next to (or inside) the archives."""
    return Path(os.environ.get("ENCLAVE_BACKUP_KEY") or enclave_home() / "backup.key")


def ensure_key(path: Path) -> bool:
    """Create a random signing key at ``path`` (mode 0600) unless one exists; True if it was created."""
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_hex(KEY_BYTES) + "\n")
    return True


def load_key(path: Path) -> bytes:
    """The signing key: a file of hex digits, readable by its owner only (like an ssh private key)."""
    fix = f"give the signing key written by the first backup (default {default_key_path()}), with --signing-key"
    if not path.is_file():
        raise NotFound(f"signing key {path} does not exist", where="--signing-key", fix=fix)
    if path.stat().st_mode & 0o077:
        raise InputError([Problem(str(path), "the signing key is readable or writable by others",
                                  f"chmod 600 {path}")])
    try:
        key = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (ValueError, UnicodeDecodeError):
        raise InputError([Problem(str(path), "the signing key is not hex digits", fix)]) from None
    if len(key) < KEY_BYTES:
        raise InputError([Problem(str(path), f"the signing key is shorter than {KEY_BYTES} bytes", fix)])
    return key


def _sign(key: bytes, manifest: bytes) -> bytes:
    return hmac.new(key, manifest, hashlib.sha256).hexdigest().encode()


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


def _check_parent(out: Path) -> None:
    """Before the snapshot is taken: the directory ``out`` goes into must exist or be creatable, so the nearest
    existing ancestor must be a directory (`--out FILE/` with FILE a regular file raised FileExistsError from
    mkdir, after etcd was read)."""
    for ancestor in out.parents:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise InputError([Problem("--out", f"{ancestor} is a file, not a directory, so {out} cannot be "
                                          "written", "give an existing directory, DIR/ for one to create, or an "
                                          f"archive name whose directory is not {ancestor}")])
            return


def create(etcd: Etcdctl, out: Path, *, key: Path, kubernetes_dir: Path | None = None,
           kubeadm_config: Path | None = None, cluster: str = "", now: dt.datetime | None = None,
           create_key: bool = True) -> BackupManifest:
    """Snapshot etcd and pack it with the control-plane files into ``out`` (written atomically, mode 0600),
    its manifest signed with the key at ``key`` (created, mode 0600, if there is none yet and ``create_key``)."""
    if out.exists():
        raise Conflict(f"{out} already exists", where=str(out),
                       fix="choose a new file name; backups are never overwritten")
    _check_parent(out)
    if create_key:
        ensure_key(key)
    elif not key.exists():
        # A key minted where nobody keeps it (a Job's container) signs archives nobody can ever verify.
        raise NotFound(f"signing key {key} does not exist (--no-create-key)", where="--signing-key",
                       fix="give the operator's key: in the scheduled job, the Secret kube-system/enclave-backup-key "
                           "(docs/ops.md)")
    secret = load_key(key)
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
                for name, body in ((MANIFEST, data), (SIGNATURE, _sign(secret, data))):
                    info = tarfile.TarInfo(name)
                    info.size, info.mode = len(body), 0o600
                    tar.addfile(info, io.BytesIO(body))
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


def _open(tar: tarfile.TarFile, member: tarfile.TarInfo, archive: Path, limit: int) -> tuple[str, IO[bytes]]:
    name = _safe_name(member.name, archive)
    if not member.isfile():
        raise IntegrityError(f"unexpected {member.type!r} entry {name!r}", where=str(archive),
                             fix="do not restore this archive; it was not written by enclave")
    if member.size > limit:
        raise IntegrityError(f"{name} is {member.size} bytes, more than {limit}", where=str(archive),
                             fix="the archive was altered; use another backup")
    fobj = tar.extractfile(member)
    if fobj is None:
        raise IntegrityError(f"{name} has no contents", where=str(archive), fix="use another backup")
    return name, fobj


def _signed_manifest(tar: tarfile.TarFile, archive: Path, key: bytes) -> BackupManifest:
    """The first two members: the manifest and its signature, checked before the manifest is parsed."""
    first = tar.next()
    if first is None:
        raise IntegrityError("the archive is empty", where=str(archive), fix="use another backup")
    name, fobj = _open(tar, first, archive, MAX_MANIFEST_BYTES)
    if name != MANIFEST:
        raise IntegrityError(f"the archive does not start with {MANIFEST}", where=str(archive),
                             fix="this is not an enclave backup")
    data = fobj.read()
    second = tar.next()
    if second is None or second.name != SIGNATURE:
        raise IntegrityError(f"{MANIFEST} is not followed by its signature {SIGNATURE}", where=str(archive),
                             fix="the archive is unsigned (written before format /2) or altered; use another backup")
    _, fobj = _open(tar, second, archive, 64)  # hex of a SHA-256 HMAC
    if not hmac.compare_digest(fobj.read(), _sign(key, data)):
        raise IntegrityError("the manifest's signature does not match the signing key", where=str(archive),
                             fix="give the key this backup was made with (--signing-key); otherwise the archive "
                                 "was altered or forged — do not restore it")
    manifest = BackupManifest.from_json(data, f"{archive}:{MANIFEST}")
    if SNAPSHOT not in manifest.paths:
        raise IntegrityError(f"the manifest lists no {SNAPSHOT}", where=str(archive), fix="use another backup")
    return manifest


def _extract(fobj: IO[bytes], target: Path, expected: FileEntry, archive: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    with target.open("wb") as out:
        for chunk in iter(lambda: fobj.read(1 << 20), b""):
            h.update(chunk)
            out.write(chunk)
    os.chmod(target, expected.mode)  # validated: within 0o777, no set-id, sticky or world-write bit
    if h.hexdigest() != expected.sha256:
        raise IntegrityError(f"{expected.path} does not match its checksum", where=str(archive),
                             fix="the archive is damaged; use another backup")


def _unpack(archive: Path, dest: Path, key: bytes) -> BackupManifest:
    """Extract into ``dest`` checking the signature, then every member against the manifest as it streams past."""
    if not archive.is_file():
        raise NotFound(f"{archive} does not exist", where=str(archive), fix="give the path of a backup archive")
    seen: set[str] = set()
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            manifest = _signed_manifest(tar, archive, key)
            expected = {f.path: f for f in manifest.files}
            while (member := tar.next()) is not None:  # iter(tar) would start again at the manifest
                name, fobj = _open(tar, member, archive, MAX_FILE_BYTES)
                entry = expected.get(name)
                if entry is None or name in seen:
                    raise IntegrityError(f"{name} is not listed in the manifest (or appears twice)",
                                         where=str(archive), fix="the archive was altered; use another backup")
                if member.size != entry.size:  # checked before a byte is written: no bomb past the manifest
                    raise IntegrityError(f"{name} is {member.size} bytes but the manifest says {entry.size}",
                                         where=str(archive), fix="the archive was altered; use another backup")
                seen.add(name)
                _extract(fobj, dest / name, entry, archive)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as exc:
        raise IntegrityError(f"the archive is truncated or damaged ({type(exc).__name__}: {exc})",
                             where=str(archive), fix="use another backup; this one cannot be read to its end") from None
    missing = sorted(manifest.paths - seen)
    if missing:
        raise IntegrityError(f"{len(missing)} file(s) listed in the manifest are missing, e.g. {missing[0]}",
                             where=str(archive), fix="the archive is incomplete; use another backup")
    status = snapshot_status(dest / SNAPSHOT)
    if status != manifest.etcd:
        raise IntegrityError(f"the etcd snapshot reports {status} but the manifest recorded {manifest.etcd}",
                             where=str(archive), fix="the archive was altered; use another backup")
    return manifest


def verify(archive: Path, *, key: Path) -> BackupManifest:
    """Check the manifest's signature under ``key``, every checksum, and open the etcd snapshot; raise
    IntegrityError on any damage or forgery."""
    secret = load_key(key)
    with tempfile.TemporaryDirectory(prefix="enclave-verify-") as tmp:
        return _unpack(archive, Path(tmp), secret)


def _empty_dir_or_new(path: Path, option: str) -> None:
    """A restore target must be a new path or an empty directory (never a file, a link or live data)."""
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise InputError([Problem(option, f"{path} exists and is not a directory",
                                  "give a new path or an empty directory")])
    if path.exists() and any(path.iterdir()):
        raise Conflict(f"{path} is not empty", where=option,
                       fix="restore into an empty or new directory, then move it into place after checking it")


def restore(archive: Path, data_dir: Path, member: Member, *, key: Path, kubernetes_dir: Path | None = None,
            cluster: Sequence[Member] = ()) -> BackupManifest:
    """Verify, then build a fresh etcd data directory for ``member`` of ``cluster`` (default: alone) and
    (optionally) put the control-plane files back."""
    if kubernetes_dir is not None:
        _empty_dir_or_new(kubernetes_dir, "--kubernetes-dir")
    _empty_dir_or_new(data_dir, "--data-dir")
    secret = load_key(key)
    with tempfile.TemporaryDirectory(prefix="enclave-restore-") as tmp:
        unpacked = Path(tmp)
        manifest = _unpack(archive, unpacked, secret)
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
