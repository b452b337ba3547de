"""The database adapter: account lookup, ops image vetting (approved digests) and pinning, and the
`enclave notebooks options` command on a migrated database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from enclave.accounts.lifecycle import bootstrap, expire, onboard
from enclave.accounts.types import AccountKind
from enclave.cli import app
from enclave.db import Database
from enclave.errors import NotFound, PermissionDenied
from enclave.notebooks.options import Choice, options_for, validate
from enclave.ops.images import approve, submit
from enclave.services.factory import Factory
from enclave.services.notebooks import NotebookService
from enclave.spec import EnclaveSpec, Role
from tests.notebooks.conftest import NOW

W18 = "registry.lsst.local/lsstsqre/sciplat-lab:w_2018_25"
R16 = "registry.lsst.local/lsstsqre/sciplat-lab:r16_0"
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture()
def db(tmp_path: Path, ldf: EnclaveSpec) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'enclave.db'}")
    database.migrate()
    with database.session() as s:
        bootstrap(s, ldf, "root", name="Root Admin", email="root@example.org", now=NOW)
        for user in ("sec1", "sec2"):
            onboard(s, "root", ldf, user, name=user, email=f"{user}@example.org", kind=AccountKind.STAFF,
                    roles=[Role.SECURITY], reason="security staff", now=NOW)
        onboard(s, "root", ldf, "sci", name="Sci User", email="sci@example.org", kind=AccountKind.SCIENCE,
                reason="new science user", now=NOW)
    yield database
    database.dispose()



def notebooks(db: Database, spec: EnclaveSpec) -> NotebookService:
    return Factory(spec, db).notebooks

def test_only_approved_digests_are_offered_and_pinned(db: Database, ldf: EnclaveSpec) -> None:
    sci = notebooks(db, ldf).lookup("sci")
    vetted = notebooks(db, ldf).vetter()
    with pytest.raises(PermissionDenied, match="no notebook image is vetted"):
        options_for(ldf, sci, vetted=vetted)
    with db.session() as s:
        submit(s, ldf, "sec1", f"{R16}@{DIGEST}", reason="scan clean")
        approve(s, "sec2", f"{R16}@{DIGEST}", reason="scan clean, base image known")
    opts = options_for(ldf, sci, vetted=vetted)
    assert opts.images == (R16,) and opts.withheld_images == (W18,)
    with pytest.raises(PermissionDenied, match="not been vetted"):
        validate(ldf, sci, Choice(image=W18), vetted=vetted)
    assert validate(ldf, sci, Choice(image=R16), vetted=vetted).image == R16
    assert notebooks(db, ldf).images.pin(R16) == f"registry.lsst.local/lsstsqre/sciplat-lab@{DIGEST}"


def test_lookup_and_cli(db: Database, ldf: EnclaveSpec) -> None:
    with pytest.raises(NotFound):
        notebooks(db, ldf).lookup("nobody")
    with db.session() as s:
        submit(s, ldf, "sec1", f"{W18}@{DIGEST}", reason="scan clean")
        approve(s, "sec2", f"{W18}@{DIGEST}", reason="ok")
    runner = CliRunner()
    result = runner.invoke(app, ["notebooks", "options", "sci", "--db", db.url])
    assert result.exit_code == 0, result.output
    assert W18 in result.output and "withheld, not vetted: " + R16 in result.output
    assert "large: 2–4 CPU" in result.output
    with db.session() as s:
        expire(s, "root", "sci", reason="allocation ended")
    result = runner.invoke(app, ["notebooks", "options", "sci", "--db", db.url])
    assert result.exit_code != 0 and isinstance(result.exception, PermissionDenied)


def test_spawning_needs_the_notebooks_spawn_permission(db: Database, ldf: EnclaveSpec) -> None:
    from enclave.access.permissions import Permission
    from enclave.notebooks.account import NOTEBOOKS_SPAWN

    assert Permission.NOTEBOOKS_SPAWN.value == NOTEBOOKS_SPAWN
    lookup = notebooks(db, ldf).lookup
    with pytest.raises(PermissionDenied, match=r"no role that may spawn notebooks \(notebooks.spawn\)"):
        options_for(ldf, lookup("sec1"), vetted=lambda i: True)
    with pytest.raises(PermissionDenied, match="no role that may spawn"):
        validate(ldf, lookup("sec1"), Choice(), vetted=lambda i: True)
    assert validate(ldf, lookup("sci"), Choice(), vetted=lambda i: True).username == "sci"
    assert validate(ldf, lookup("root"), Choice(), vetted=lambda i: True).username == "root"  # developer role
