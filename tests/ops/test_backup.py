"""Backup and restore against a real etcd: write keys, back up, wipe, restore into a fresh member, compare."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import io
import json
import os
import shutil
import stat
import tarfile
from pathlib import Path
from typing import Any

import pytest

from enclave.errors import Conflict, ExternalError, InputError, IntegrityError, NotFound
from enclave.ops import backup
from enclave.ops.etcd import Etcdctl, EtcdServer, free_port, snapshot_status
from tests.ops.conftest import make_kubernetes_tree

Made = tuple[Path, dict[bytes, bytes], Path]


def _fill(server: EtcdServer) -> dict[bytes, bytes]:
    c = server.client
    for i in range(40):
        c.put(f"/registry/pods/jupyter-lsst/nb-{i:03d}", json.dumps({"user": f"u{i}", "cpu": i % 4 + 0.5}))
    c.put("/registry/namespaces/qserv", "ns qserv")
    c.put("/registry/secrets/kube-system/weave-passwd", "s3cr3t\nwith newline")
    c.put("/registry/configmaps/kube-system/kubeadm-config", "kubernetesVersion: v1.9.3")
    c.put("/registry/pods/jupyter-lsst/nb-000", "overwritten once")  # a key with history
    keys = c.get_all()
    assert len(keys) == 43
    return keys


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The signing key, kept outside the archive (created, mode 0600, by the first backup)."""
    return tmp_path_factory.mktemp("keys") / "backup.key"


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory, key: Path) -> tuple[Path, dict[bytes, bytes], Path]:
    """One backup of a real etcd, taken once for the module; the source member is then stopped and wiped."""
    tmp = tmp_path_factory.mktemp("backup")
    tree = make_kubernetes_tree(tmp / "etc-kubernetes")
    server = EtcdServer(tmp / "etcd-src" / "data")
    server.data_dir.parent.mkdir()
    cfg = tmp / "kubeadm-config.yaml"
    cfg.write_text("apiVersion: kubeadm.k8s.io/v1beta1\nkind: ClusterConfiguration\nkubernetesVersion: v1.9.3\n")
    archive = tmp / "out" / "lsst-ldf.tar.gz"
    with server:
        keys = _fill(server)
        manifest = backup.create(server.client, archive, kubernetes_dir=tree, kubeadm_config=cfg, cluster="lsst-ldf",
                                 key=key)
    assert manifest.etcd.total_keys >= 43
    shutil.rmtree(server.data_dir)  # wipe: only the archive is left
    return archive, keys, tree


def test_round_trip_restores_every_key_into_a_fresh_member(key: Path, tmp_path: Path, made: Made) -> None:
    archive, keys, kubernetes_tree = made
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600  # it holds private keys

    fresh = EtcdServer(tmp_path / "restored" / "data", name="kub-master-001")
    fresh.data_dir.parent.mkdir()
    restored_k8s = tmp_path / "restored" / "etc-kubernetes"
    manifest = backup.restore(archive, fresh.data_dir, fresh.member, kubernetes_dir=restored_k8s, key=key)
    assert manifest.cluster == "lsst-ldf"
    with fresh:
        assert fresh.client.get_all() == keys
        fresh.client.put("/after-restore", "writable")  # the restored member is a working cluster
    for p in kubernetes_tree.rglob("*"):
        if p.is_file():
            q = restored_k8s / p.relative_to(kubernetes_tree)
            assert q.read_bytes() == p.read_bytes(), p
            assert stat.S_IMODE(q.stat().st_mode) == stat.S_IMODE(p.stat().st_mode), p
    assert (restored_k8s / "pki" / "etcd" / "ca.key").exists()
    assert "ClusterConfiguration" in (restored_k8s / "kubeadm" / "kubeadm-config.yaml").read_text()


def test_verify_reports_contents(key: Path, made: Made) -> None:
    archive, _, _ = made
    m = backup.verify(archive, key=key)
    paths = m.paths
    assert backup.SNAPSHOT in paths and "kubernetes/pki/ca.key" in paths and "kubernetes/admin.conf" in paths
    assert "kubernetes/manifests/kube-apiserver.yaml" in paths and backup.KUBEADM_CONFIG in paths
    assert backup.summary(m)["files"] == len(m.files)


def test_truncated_archive_is_refused(key: Path, tmp_path: Path, made: Made) -> None:
    archive, _, _ = made
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size * 2 // 3])
    with pytest.raises(IntegrityError, match="truncated or damaged"):
        backup.verify(cut, key=key)
    data = tmp_path / "never"
    with pytest.raises(IntegrityError):
        backup.restore(cut, data, EtcdServer(data).member, key=key)
    assert not data.exists()  # nothing was changed


def _rewrite(src: Path, dst: Path, change: dict[str, bytes], sign_with: Path | None = None) -> None:
    """Copy an archive changing some members; ``sign_with``: re-sign a changed manifest with that key (an
    attacker holding the key, or a damaged snapshot that was signed as it was)."""
    if sign_with is not None and backup.MANIFEST in change:
        digest = hmac.new(backup.load_key(sign_with), change[backup.MANIFEST], hashlib.sha256).hexdigest()
        change = {**change, backup.SIGNATURE: digest.encode()}
    with tarfile.open(src, "r:gz") as tin, tarfile.open(dst, "w:gz") as tout:
        for m in tin:
            f = tin.extractfile(m)
            assert f is not None
            data = change.get(m.name, f.read())
            m.size = len(data)
            tout.addfile(m, io.BytesIO(data))


def test_altered_file_is_refused_by_checksum(key: Path, tmp_path: Path, made: Made) -> None:
    archive, _, tree = made
    bad = tmp_path / "bad.tar.gz"
    original = (tree / "admin.conf").read_bytes()
    _rewrite(archive, bad, {"kubernetes/admin.conf": original[:-1] + b"#"})  # same size, other bytes
    with pytest.raises(IntegrityError, match="kubernetes/admin.conf does not match its checksum"):
        backup.verify(bad, key=key)
    _rewrite(archive, tmp_path / "longer.tar.gz", {"kubernetes/admin.conf": original + b"# more\n"})
    with pytest.raises(IntegrityError, match="kubernetes/admin.conf is .* bytes but the manifest says"):
        backup.verify(tmp_path / "longer.tar.gz", key=key)


def test_damaged_snapshot_with_matching_checksum_is_refused(key: Path, tmp_path: Path,
                                                            made: Made) -> None:
    archive, _, _ = made
    with tarfile.open(archive, "r:gz") as t:
        f = t.extractfile(backup.SNAPSHOT)
        assert f is not None
        snap = bytearray(f.read())
        mf = t.extractfile(backup.MANIFEST)
        assert mf is not None
        manifest = json.loads(mf.read())
    snap = snap[: len(snap) // 2]
    for entry in manifest["files"]:
        if entry["path"] == backup.SNAPSHOT:
            entry["sha256"], entry["size"] = hashlib.sha256(snap).hexdigest(), len(snap)
    bad = tmp_path / "forged.tar.gz"
    _rewrite(archive, bad, {backup.SNAPSHOT: bytes(snap), backup.MANIFEST: json.dumps(manifest).encode()},
             sign_with=key)
    with pytest.raises(IntegrityError, match="snapshot"):
        backup.verify(bad, key=key)


def test_not_gzip_and_missing_and_unsafe(key: Path, tmp_path: Path, made: Made) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"this is not an archive")
    with pytest.raises(IntegrityError):
        backup.verify(junk, key=key)
    with pytest.raises(NotFound):
        backup.verify(tmp_path / "nope.tar.gz", key=key)
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as t:
        info = tarfile.TarInfo("../../etc/passwd")
        info.size = 0
        t.addfile(info, io.BytesIO(b""))
    with pytest.raises(IntegrityError, match="unsafe path"):
        backup.verify(evil, key=key)
    empty = tmp_path / "empty.tar.gz"
    with gzip.open(empty, "wb") as g:
        g.write(b"\0" * 1024)
    with pytest.raises(IntegrityError, match="empty"):
        backup.verify(empty, key=key)


def test_extra_and_missing_members_are_refused(key: Path, tmp_path: Path, made: Made) -> None:
    archive, _, _ = made
    missing = tmp_path / "missing.tar.gz"
    with tarfile.open(archive, "r:gz") as tin, tarfile.open(missing, "w:gz") as tout:
        for m in tin:
            if m.name != "kubernetes/pki/sa.key":
                tout.addfile(m, tin.extractfile(m))
    with pytest.raises(IntegrityError, match="missing"):
        backup.verify(missing, key=key)


def test_restore_refuses_non_empty_targets(key: Path, tmp_path: Path, made: Made) -> None:
    archive, _, _ = made
    data = tmp_path / "busy"
    data.mkdir()
    (data / "member").mkdir()
    with pytest.raises(Conflict):
        backup.restore(archive, data, EtcdServer(data).member, key=key)
    k8s = tmp_path / "k8s"
    k8s.mkdir()
    (k8s / "admin.conf").write_text("keep me")
    with pytest.raises(Conflict):
        backup.restore(archive, tmp_path / "d2", EtcdServer(tmp_path / "d2").member, kubernetes_dir=k8s,
                       key=key)
    assert (k8s / "admin.conf").read_text() == "keep me"


def test_create_never_overwrites(key: Path, made: Made) -> None:
    archive, _, _ = made
    before = archive.read_bytes()
    with pytest.raises(Conflict):
        backup.create(Etcdctl(("http://127.0.0.1:9",)), archive, key=key)
    assert archive.read_bytes() == before
    assert not list(archive.parent.glob("*.partial"))


def test_snapshot_status_of_garbage(tmp_path: Path) -> None:
    junk = tmp_path / "snap.db"
    junk.write_bytes(os.urandom(4096))
    with pytest.raises(IntegrityError):
        snapshot_status(junk)


def test_unreachable_etcd_and_bad_inputs_leave_nothing(key: Path, tmp_path: Path, kubernetes_tree: Path) -> None:
    out = tmp_path / "x.tar.gz"
    with pytest.raises(ExternalError, match="is not healthy"):
        backup.create(Etcdctl((f"http://127.0.0.1:{free_port()}",)), out, kubernetes_dir=kubernetes_tree, key=key)
    assert not out.exists() and not list(tmp_path.glob("*.partial"))
    with pytest.raises(NotFound):
        backup.create(Etcdctl(("http://127.0.0.1:9",)), out, kubernetes_dir=tmp_path / "missing", key=key)
    with pytest.raises(InputError, match="exactly one"):
        backup.create(Etcdctl(("http://127.0.0.1:9", "http://127.0.0.1:10")), out, key=key)
    (kubernetes_tree / "link.conf").symlink_to(kubernetes_tree / "admin.conf")
    with pytest.raises(InputError, match="symbolic links"):
        backup.create(Etcdctl(("http://127.0.0.1:9",)), out, kubernetes_dir=kubernetes_tree, key=key)
    assert not out.exists()


# ---- hardening (issue 20): authenticated manifest, bounded fields, suitable targets ------------------------

def _manifest(archive: Path) -> dict[str, Any]:
    with tarfile.open(archive, "r:gz") as t:
        f = t.extractfile(backup.MANIFEST)
        assert f is not None
        data: dict[str, Any] = json.loads(f.read())
    return data


def _with_mode(archive: Path, out: Path, path: str, mode: object, sign_with: Path | None) -> Path:
    manifest = _manifest(archive)
    for entry in manifest["files"]:
        if entry["path"] == path:
            entry["mode"] = mode
    _rewrite(archive, out, {backup.MANIFEST: json.dumps(manifest).encode()}, sign_with=sign_with)
    return out


def test_forged_manifest_without_the_key_is_refused(key: Path, tmp_path: Path, made: Made) -> None:
    archive, _, _ = made
    # Checksums intact, manifest changed, signature left as it was: what anyone without the key can do.
    forged = _with_mode(archive, tmp_path / "forged.tar.gz", "kubernetes/admin.conf", 0o644, sign_with=None)
    with pytest.raises(IntegrityError, match="signature does not match"):
        backup.verify(forged, key=key)
    other = tmp_path / "other.key"
    backup.ensure_key(other)
    with pytest.raises(IntegrityError, match="signature does not match"):
        backup.verify(archive, key=other)  # a genuine archive under another key is not vouched for either
    unsigned = tmp_path / "unsigned.tar.gz"
    with tarfile.open(archive, "r:gz") as tin, tarfile.open(unsigned, "w:gz") as tout:
        for m in tin:
            if m.name != backup.SIGNATURE:
                tout.addfile(m, tin.extractfile(m))
    with pytest.raises(IntegrityError, match="not followed by its signature"):
        backup.verify(unsigned, key=key)


@pytest.mark.parametrize("mode", [0o6777, 0o4755, 0o1777, 0o666, 2**40, -1, "0o644", True, 1.5])
def test_manifest_mode_out_of_bounds_is_refused_even_when_signed(key: Path, tmp_path: Path, made: Made,
                                                                   mode: object) -> None:
    archive, _, _ = made
    bad = _with_mode(archive, tmp_path / "mode.tar.gz", "kubernetes/admin.conf", mode, sign_with=key)
    with pytest.raises(IntegrityError, match="out of bounds"):
        backup.verify(bad, key=key)
    data = tmp_path / "data"
    k8s = tmp_path / "k8s"
    with pytest.raises(IntegrityError):
        backup.restore(bad, data, EtcdServer(data).member, kubernetes_dir=k8s, key=key)
    assert not data.exists() and not k8s.exists()  # nothing written


def test_other_manifest_fields_are_bounded(key: Path, tmp_path: Path, made: Made) -> None:
    archive, _, _ = made
    changes: list[tuple[str, object]] = [("size", -1), ("size", 2**41), ("sha256", "x" * 64), ("path", "../x"),
                                         ("path", "/etc/shadow"), ("path", backup.SIGNATURE)]
    for field, value in changes:
        manifest = _manifest(archive)
        manifest["files"][1][field] = value
        bad = tmp_path / f"{field}.tar.gz"
        bad.unlink(missing_ok=True)
        _rewrite(archive, bad, {backup.MANIFEST: json.dumps(manifest).encode()}, sign_with=key)
        with pytest.raises(IntegrityError, match="out of bounds"):
            backup.verify(bad, key=key)
    manifest = _manifest(archive)
    manifest["files"].append(dict(manifest["files"][1]))
    dup = tmp_path / "dup.tar.gz"
    _rewrite(archive, dup, {backup.MANIFEST: json.dumps(manifest).encode()}, sign_with=key)
    with pytest.raises(IntegrityError, match="listed twice"):
        backup.verify(dup, key=key)


def test_signing_key_is_checked(key: Path, tmp_path: Path, made: Made) -> None:
    archive, _, _ = made
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    with pytest.raises(NotFound, match="signing key"):
        backup.verify(archive, key=tmp_path / "none.key")
    loose = tmp_path / "loose.key"
    loose.write_text(key.read_text())
    loose.chmod(0o644)
    with pytest.raises(InputError, match="readable or writable by others"):
        backup.verify(archive, key=loose)
    short = tmp_path / "short.key"
    short.write_text("abcd\n")
    short.chmod(0o600)
    with pytest.raises(InputError, match="shorter than 32 bytes"):
        backup.verify(archive, key=short)


def test_restore_target_that_is_a_file_is_refused(key: Path, tmp_path: Path, made: Made) -> None:
    archive, _, _ = made
    target = tmp_path / "a-file"
    target.write_text("keep me")
    with pytest.raises(InputError, match="exists and is not a directory"):
        backup.restore(archive, target, EtcdServer(target).member, key=key)
    data = tmp_path / "data"
    with pytest.raises(InputError, match="exists and is not a directory"):
        backup.restore(archive, data, EtcdServer(data).member, kubernetes_dir=target, key=key)
    assert target.read_text() == "keep me" and not data.exists()


def _members(archive: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(archive, "r:gz") as t:
        return [(m, (t.extractfile(m) or io.BytesIO()).read()) for m in t]


def _write(out: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    with tarfile.open(out, "w:gz") as t:
        for info, data in members:
            t.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return out


def test_a_restore_target_that_is_a_link_is_refused(key: Path, tmp_path: Path, made: Made) -> None:
    """A link to an empty directory is no new path or empty directory of the operator's choosing: the restore would
    write wherever it points (a mutant that let it through passed every test, stop 57)."""
    archive, _, _ = made
    (tmp_path / "elsewhere").mkdir()
    link = tmp_path / "data"
    link.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(InputError, match="exists and is not a directory"):
        backup.restore(archive, link, EtcdServer(tmp_path / "x").member, key=key)
    assert not any((tmp_path / "elsewhere").iterdir())


def test_the_archives_layout_is_checked_before_its_contents(key: Path, tmp_path: Path, made: Made) -> None:
    """Each structural refusal of ``_signed_manifest`` and ``_open``, in an archive otherwise as made (stop 57's
    mutation round removed each and no test failed: a later check refused the archive with a vaguer reason, or
    none did)."""
    archive, _, _ = made
    members = _members(archive)
    assert [m.name for m, _ in members[:2]] == [backup.MANIFEST, backup.SIGNATURE]
    # The manifest must come first: swapped with its signature, the archive says so, not "signature mismatch".
    swapped = _write(tmp_path / "swapped.tar.gz", [members[1], members[0], *members[2:]])
    with pytest.raises(IntegrityError, match=f"does not start with {backup.MANIFEST}"):
        backup.verify(swapped, key=key)
    # A signature is 64 hex digits: a larger member is refused by its header, before it is read into memory.
    big = tarfile.TarInfo(backup.SIGNATURE)
    big.size = 65
    bloated = _write(tmp_path / "bloated.tar.gz", [members[0], (big, b"0" * 65), *members[2:]])
    with pytest.raises(IntegrityError, match="65 bytes, more than 64"):
        backup.verify(bloated, key=key)
    # A link where a file belongs (the manifest's name pointing at a file outside): refused as such.
    link = tarfile.TarInfo(backup.MANIFEST)
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    linked = _write(tmp_path / "linked.tar.gz", [(link, b""), *members[1:]])
    with pytest.raises(IntegrityError, match="unexpected"):
        backup.verify(linked, key=key)
    # A listed file twice: the second copy is refused even when it is the same bytes.
    twice = _write(tmp_path / "twice.tar.gz", [*members, members[-1]])
    with pytest.raises(IntegrityError, match="appears twice"):
        backup.verify(twice, key=key)


def test_a_signed_manifest_must_list_the_snapshot_as_it_was(key: Path, tmp_path: Path, made: Made) -> None:
    """Signed with the right key, a manifest is still held to what it describes: it lists the etcd snapshot, and
    the snapshot reports what it recorded (revision, hash, keys). What a backup tool that wrote a wrong manifest
    left cannot be restored (the snapshot check was a mutant no test caught, stop 57)."""
    archive, _, _ = made
    manifest = _manifest(archive)
    without = {**manifest, "files": [f for f in manifest["files"] if f["path"] != backup.SNAPSHOT]}
    unsnapped = tmp_path / "unsnapped.tar.gz"
    _rewrite(archive, unsnapped, {backup.MANIFEST: json.dumps(without).encode()}, sign_with=key)
    with tarfile.open(unsnapped, "r:gz") as tin, tarfile.open(tmp_path / "u.tar.gz", "w:gz") as tout:
        for m in tin:
            if m.name != backup.SNAPSHOT:
                tout.addfile(m, tin.extractfile(m))
    with pytest.raises(IntegrityError, match=f"lists no {backup.SNAPSHOT}"):
        backup.verify(tmp_path / "u.tar.gz", key=key)
    recorded = manifest["etcd"]
    wrong = {**manifest, "etcd": {**recorded, "revision": recorded["revision"] + 1}}
    misdescribed = tmp_path / "misdescribed.tar.gz"
    _rewrite(archive, misdescribed, {backup.MANIFEST: json.dumps(wrong).encode()}, sign_with=key)
    with pytest.raises(IntegrityError, match="the etcd snapshot reports"):
        backup.verify(misdescribed, key=key)
