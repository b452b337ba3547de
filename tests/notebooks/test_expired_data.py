"""Seed §4: a science user whose allocation ends "will still be able to access their data" (docs/notebooks.md: the
File Workspace stays read-only over WebDAV and VOSpace). Tokens lapse within 366 days, so an expired account must
still be issued a token of scope data.read, and nothing more; a departed one none."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest

from enclave.accounts.lifecycle import Allocation, bootstrap, depart, expire, onboard
from enclave.accounts.tokens import DATA_READ, DATA_WRITE, issue
from enclave.accounts.types import AccountKind
from enclave.db import Database
from enclave.errors import PermissionDenied
from enclave.notebooks import webdav
from enclave.services.factory import Factory
from enclave.spec.models import EnclaveSpec
from tests.notebooks.conftest import NOW, raw


def test_an_expired_account_reads_its_data_with_a_new_token(tmp_path: Path, jhome: Path, minimal: EnclaveSpec
                                                             ) -> None:
    # jhome: a home root the account can enter (the server acts as the account: workspace.act_as).
    spec = minimal.model_copy(update={"storage": minimal.storage.model_copy(update={"home_root": str(jhome)})})
    db = Database(f"sqlite:///{tmp_path / 'e.db'}")
    db.migrate()
    with db.session() as s:
        bootstrap(s, spec, "root", name="Root", email="root@example.org", now=NOW)
        a = onboard(s, "root", spec, "sci", name="Sci", email="sci@example.org", kind=AccountKind.SCIENCE,
                    reason="t", now=NOW, allocation=Allocation("P-1", expires=NOW + timedelta(days=90)))
        Path(a.workspace_path).mkdir(parents=True)
        Path(a.workspace_path, "thesis.fits").write_text("data")
        for made in (Path(a.home_path), Path(a.workspace_path), Path(a.workspace_path, "thesis.fits")):
            os.chown(made, a.uid, a.gid)  # the account's, as provisioning leaves them
        old = issue(s, "sci", "sci", [DATA_READ], 7 * 86400, now=NOW)
        expire(s, "root", "sci", reason="allocation ended", now=NOW + timedelta(days=1))
        onboard(s, "root", spec, "dev", name="Dev", email="dev@example.org", kind=AccountKind.STAFF, reason="t",
                now=NOW)
        depart(s, "root", "dev", reason="left", now=NOW + timedelta(days=1))
    later = NOW + timedelta(days=8)  # the week-long token has lapsed
    with db.session() as s:
        mine = issue(s, "sci", "sci", [DATA_READ], 3600, now=later)
        issue(s, "root", "sci", [DATA_READ], 3600, now=later)  # a sysadmin may issue it too
        for scopes in ([DATA_WRITE], [DATA_READ, DATA_WRITE], ["*"]):
            with pytest.raises(PermissionDenied, match="expired"):
                issue(s, "sci", "sci", scopes, 3600, now=later)
        with pytest.raises(PermissionDenied, match="departed"):
            issue(s, "root", "dev", [DATA_READ], 3600, now=later)  # departed: nothing
    app = webdav.make_app(Factory(spec, db).notebooks.authenticator(clock=lambda: later), anchor=jhome,
                          clock=lambda: later)
    run = webdav.start(app, poll_seconds=0.05)
    try:
        assert raw(run.url, "GET", "/sci/thesis.fits", "sci", old)[0] == 401  # lapsed
        assert raw(run.url, "GET", "/sci/thesis.fits", "sci", mine)[0] == 200
        assert raw(run.url, "PUT", "/sci/new.txt", "sci", mine, b"x")[0] in (401, 403)  # read-only
    finally:
        run.stop()
        db.dispose()
