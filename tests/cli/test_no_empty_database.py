"""A host without the enclave's database never grows an empty one (audit of identity and trust, finding 5).

docs/accounts.md: "A missing database is created only by `accounts bootstrap`, `db migrate` and `serve`; any other
command refuses (exit 3), so a client host never grows an empty database by accident." `enclave render access` on
an operator's laptop created an empty database and rendered no RoleBinding at all, exit 0; the documented
`kubectl apply --prune -l app.kubernetes.io/managed-by=enclave` of those files then deletes every binding enclave
manages. Run as the program itself, as the audit did.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from enclave.db import Database
from enclave.errors import InvalidTransition, NotFound, exit_code

NOT_FOUND = exit_code(NotFound("x"))
BEHIND = exit_code(InvalidTransition("x"))


def enclave(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ENCLAVE_")} | {"ENCLAVE_HOME": str(home)}
    return subprocess.run([sys.executable, "-c", "from enclave.main import main; main()", *args], env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_render_access_on_a_host_without_the_database_refuses_and_creates_nothing(tmp_path: Path) -> None:
    home, out = tmp_path / "laptop", tmp_path / "out"
    done = enclave(home, "render", "access", "--out", str(out))
    assert done.returncode == NOT_FOUND, done.stdout + done.stderr
    said = " ".join((done.stdout + done.stderr).split())
    assert f"there is no enclave database at {home / 'enclave.db'}" in said and "enclave login" in said
    assert not (home / "enclave.db").exists() and not out.exists()


def test_commands_on_nobodys_state_answer_as_for_a_new_enclave_and_leave_no_database(tmp_path: Path) -> None:
    """`render deploy` runs on an operator machine before the enclave's database exists (docs/deploy.md, step 1):
    with no approved image, enclave's own image is the spec's pin (registry.system_images.enclave)."""
    home, out = tmp_path / "laptop", tmp_path / "deploy"
    done = enclave(home, "render", "deploy", "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (out / "kustomization.yaml").exists() and not (home / "enclave.db").exists()
    done = enclave(home, "backup", "list", str(tmp_path))  # reads no database at all
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (home / "enclave.db").exists()


def test_render_access_refuses_a_database_without_accounts(tmp_path: Path) -> None:
    home, out = tmp_path / "server", tmp_path / "out"
    assert enclave(home, "db", "migrate").returncode == 0  # a database of the newest schema, nobody in it
    done = enclave(home, "render", "access", "--out", str(out))
    assert done.returncode == NOT_FOUND, done.stdout + done.stderr
    assert "has no accounts" in done.stdout + done.stderr and not out.exists()


def test_a_database_behind_this_enclaves_schema_is_not_migrated_by_the_way(tmp_path: Path) -> None:
    home = tmp_path / "server"
    home.mkdir()
    db = Database(f"sqlite:///{home / 'enclave.db'}")
    db.migrate("0004_observing_schedules")
    done = enclave(home, "render", "access", "--out", str(tmp_path / "out"))
    assert done.returncode == BEHIND and "enclave db migrate" in done.stdout + done.stderr, done.stdout + done.stderr
    assert db.current_revisions() == {"0004_observing_schedules"}
    db.dispose()
