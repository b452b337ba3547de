"""One copy of each File Workspace rule (seed §6.2: the workspace is reachable over WebDAV and VOSpace): both
protocols use the functions of enclave.notebooks.workspace, and those refuse in a protocol-free way."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from enclave.notebooks import vospace, webdav, workspace
from enclave.notebooks.workspace import Refused, resolve, size_of, workspace_root
from tests.notebooks.conftest import make_account

SHARED = ["decide", "quota_bytes", "reserve", "usage", "resolve", "workspace_root", "open_inside", "act_as",
          "act_as_server", "drop_supplementary_groups", "url_user"]


def test_both_protocols_use_the_shared_rules() -> None:
    for name in SHARED:
        rule = getattr(workspace, name)
        in_vospace = getattr(vospace, name)
        assert in_vospace is rule, name
    for name in ("decide", "quota_bytes", "reserve", "usage"):  # one quota rule for both (workspace.reserve)
        assert getattr(webdav, name) is getattr(workspace, name), name
    # WebDAV's path rules only translate the refusal into WsgiDAV's error type; the rule itself is not restated.
    for adapter in (webdav.resolve, webdav.workspace_root, webdav._open_inside):
        source = inspect.getsource(adapter)
        assert "workspace." in source and "realpath" not in source and "commonpath" not in source
    for module in (webdav, vospace):
        source = inspect.getsource(module)
        assert "os.path.commonpath" not in source and "def decide" not in source and "def usage" not in source


def test_refusals_carry_a_status_and_a_reason(tmp_path: Path) -> None:
    account = make_account(tmp_path, "alice", 1001)
    root = workspace_root(account)
    with pytest.raises(Refused) as other:
        resolve(root, "alice", "/bob/x")
    assert other.value.status == 403 and "/alice/" in other.value.reason
    with pytest.raises(Refused) as dots:
        resolve(root, "alice", "/alice/a/../../x")
    assert dots.value.status == 403 and "'..'" in dots.value.reason
    Path(account.workspace_path).rmdir()
    with pytest.raises(Refused) as missing:
        workspace_root(account)
    assert missing.value.status == 404 and "is missing" in missing.value.reason


def test_size_of_counts_what_a_copy_adds(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "a").write_bytes(b"x" * 7)
    (tmp_path / "f").write_bytes(b"y" * 3)
    (tmp_path / "link").symlink_to(tmp_path / "d")
    assert size_of(str(tmp_path / "d")) == 7
    assert size_of(str(tmp_path / "f")) == 3
    assert size_of(str(tmp_path / "link")) == 0  # a copy keeps links as links
    assert size_of(str(tmp_path / "absent")) == 0
