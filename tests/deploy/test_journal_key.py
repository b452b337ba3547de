"""The journal's HMAC key in the rendered bundle: one Secret, ``enclave-journal-key``, made by kustomize from the file
``journal-key`` the operator writes (docs/deploy.md step 4), read by every pod that opens the database through a copy
its own user owns, 0600 — what ``enclave.journal.seal`` demands of a key file (``_private``: no group or other bit).
Before it, the replica that wrote the first entry made the key in its own /tmp, and every other replica (and that one
after a restart) refused every journaled change: "the journal key … is missing"."""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from enclave import journal
from enclave.cluster import deploy
from enclave.db import Database
from enclave.errors import IntegrityError
from enclave.journal import seal
from enclave.spec import EnclaveSpec
from tests.deploy.test_bundle import _objects

DOCS = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e for e in container.get("env", [])}


def _database_pods(out: Path) -> dict[str, dict[str, Any]]:
    """Every rendered pod template whose containers get $ENCLAVE_DB, by its Deployment's name."""
    return {d["metadata"]["name"]: d["spec"]["template"]["spec"] for d in _objects(out)
            if d["kind"] == "Deployment"
            and any("ENCLAVE_DB" in _env(c) for c in d["spec"]["template"]["spec"]["containers"])}


def _key_copy(pod: dict[str, Any], main: dict[str, Any]) -> tuple[dict[str, Any], str, str]:
    """The init container that copies the journal key for ``main``, where it reads the Secret and where it writes."""
    key = _env(main)["ENCLAVE_JOURNAL_KEY"]["value"]
    directory = os.path.dirname(key)
    mounted = {m["mountPath"]: m for m in main["volumeMounts"]}
    assert mounted[directory].get("readOnly") is True  # the container reads its copy, never writes it
    copy_volume = mounted[directory]["name"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes[copy_volume] == {"name": copy_volume, "emptyDir": {"medium": "Memory"}}
    [init] = [c for c in pod.get("initContainers", [])
              if any(m["name"] == copy_volume and m["mountPath"] == directory for m in c["volumeMounts"])]
    [secret_mount] = [m for m in init["volumeMounts"] if "secret" in volumes[m["name"]]]
    assert secret_mount.get("readOnly") is True
    assert volumes[secret_mount["name"]]["secret"]["secretName"] == deploy.JOURNAL_SECRET
    return init, secret_mount["mountPath"], directory


def test_every_pod_that_opens_the_database_reads_the_one_journal_key(rendered: tuple[EnclaveSpec, Path]) -> None:
    """The API replicas (the pods that write the journal): $ENCLAVE_JOURNAL_KEY names a copy of the Secret's key made
    by an init container of the same image and user (so the copy is that user's), 0600; the anchor stays per pod,
    under the pod's own writable $ENCLAVE_HOME. The WebDAV pod opens the database too but writes no entry: a root
    pod serving users' files gets no key it could forge entries with."""
    _, out = rendered
    pods = _database_pods(out)
    assert set(pods) == {"enclave-api", "enclave-webdav"}
    webdav = pods.pop("enclave-webdav")
    assert "ENCLAVE_JOURNAL_KEY" not in _env(webdav["containers"][0])
    assert not any(v.get("secret", {}).get("secretName") == deploy.JOURNAL_SECRET for v in webdav["volumes"])
    for name, pod in pods.items():
        [main] = pod["containers"]
        init, secret_mount, directory = _key_copy(pod, main)
        assert init["image"] == main["image"] and init["securityContext"] == main["securityContext"], name
        assert init["command"][:4] == ["install", "-m", "0600", "-t"], name
        assert init["command"][4:] == [directory, f"{secret_mount}/key"], name
        assert _env(main)["ENCLAVE_JOURNAL_KEY"]["value"] == f"{directory}/key"
        env = _env(main)
        assert "ENCLAVE_JOURNAL_ANCHOR" not in env  # per pod, where $ENCLAVE_HOME says
        home = env["ENCLAVE_HOME"]["value"]
        assert any(home.startswith(m["mountPath"] + "/") and not m.get("readOnly") for m in main["volumeMounts"]), name


def test_the_kustomization_makes_the_journal_key_secret_from_journal_key(rendered: tuple[EnclaveSpec, Path]) -> None:
    """Made once by the operator (docs/deploy.md step 4), like enclave-database from database-url; the key the pods'
    Secret volumes name is the one the generator makes."""
    _, out = rendered
    kust = yaml.safe_load((out / "kustomization.yaml").read_text())
    assert {"name": "enclave-journal-key", "namespace": deploy.NAMESPACE,
            "files": ["key=journal-key"]} in kust["secretGenerator"]
    for name, pod in _database_pods(out).items():
        if name == "enclave-webdav":
            continue
        items = [v["secret"]["items"] for v in pod["volumes"]
                 if v.get("secret", {}).get("secretName") == deploy.JOURNAL_SECRET]
        assert items == [[{"key": "key", "path": "key"}]]


def _documented_commands() -> list[str]:
    commands = re.findall(r"`((?:python3|openssl) [^`]*> deploy/journal-key)`", DOCS.read_text())
    assert any(c.startswith("python3 ") for c in commands), "docs/deploy.md gives no command for deploy/journal-key"
    return commands


@pytest.mark.parametrize("command", _documented_commands())
def test_a_key_written_by_the_documented_command_is_read_through_the_pods_copy(
        rendered: tuple[EnclaveSpec, Path], tmp_path: Path, command: str) -> None:
    """docs/deploy.md's command writes the file; the kubelet puts it in the Secret volume 0644, root's, which the seal
    refuses; the pod's init container, run here with its mounts mapped under tmp_path, installs a copy this user
    owns, 0600, which the seal reads as the 32 bytes written."""
    if command.startswith("openssl ") and subprocess.run(["which", "openssl"], capture_output=True).returncode:
        pytest.skip("openssl is not installed")
    _, out = rendered
    bundle = tmp_path / "deploy"
    bundle.mkdir()
    if command.startswith("python3 "):  # the interpreter running the tests, whatever the PATH holds
        command = shlex.quote(sys.executable) + command.removeprefix("python3")
    subprocess.run(command.replace("> deploy/journal-key", f"> {shlex.quote(str(bundle / 'journal-key'))}"),
                   shell=True, check=True, timeout=30)
    written = (bundle / "journal-key").read_text()
    assert re.fullmatch(r"[0-9a-f]{64}\n", written)

    for name, pod in _database_pods(out).items():
        if name == "enclave-webdav":  # no key (test_every_pod_that_opens_the_database_reads_the_one_journal_key)
            continue
        [main] = pod["containers"]
        init, secret_mount, directory = _key_copy(pod, main)
        secret, copy = tmp_path / name / "secret", tmp_path / name / "copy"
        secret.mkdir(parents=True)
        copy.mkdir()
        # The Secret's file as the kubelet writes it: the bytes of journal-key, 0644.
        (secret / "key").write_bytes((bundle / "journal-key").read_bytes())
        (secret / "key").chmod(0o644)
        with pytest.raises(IntegrityError, match="readable or writable by others"):
            seal._read_key(secret / "key")
        mapped = [str(copy) + a.removeprefix(directory) if a.startswith(directory) else
                  str(secret) + a.removeprefix(secret_mount) if a.startswith(secret_mount) else a
                  for a in init["command"]]
        subprocess.run(mapped, check=True, timeout=30)
        key_file = copy / os.path.basename(_env(main)["ENCLAVE_JOURNAL_KEY"]["value"])
        made = key_file.stat()
        assert made.st_uid == os.getuid() and stat.S_IMODE(made.st_mode) == 0o600, name
        assert seal._read_key(key_file) == bytes.fromhex(written.strip()), name


def test_replicas_with_copies_of_one_key_and_anchors_of_their_own_share_the_journal(tmp_path: Path) -> None:
    """Two replicas (a copy of the key and an anchor each) and one of them replaced (a new copy, an empty anchor):
    each appends to the journal the others wrote, and each verifies it. The defect: a replica without the key that
    made the first entry refused every journaled change."""
    key = "0123456789abcdef" * 4 + "\n"
    url = f"sqlite:///{tmp_path / 'enclave.db'}"

    def replica(name: str) -> Database:
        pod = tmp_path / name
        pod.mkdir()
        (pod / "key").write_text(key)
        (pod / "key").chmod(0o600)
        return Database(url, journal_key=pod / "key", journal_anchor=pod / "enclave" / "journal" / "db.anchor")

    first, second = replica("api-a"), replica("api-b")
    first.migrate()  # `enclave db migrate` (docs/deploy.md step 4)
    try:
        for n, db in enumerate((first, second, first, second)):
            with db.session() as s:
                journal.record(s, actor="ops", action="x.y", target=f"t/{n}", reason="r", before=None, after=n)
        for db in (first, second):
            with db.session() as s:
                assert journal.verify(s) == 4
    finally:
        first.dispose()
        second.dispose()
    replaced = replica("api-a-restarted")
    try:
        with replaced.session() as s:
            journal.record(s, actor="ops", action="x.y", target="t/4", reason="r", before=None, after=4)
        with replaced.session() as s:
            assert journal.verify(s) == 5
    finally:
        replaced.dispose()
