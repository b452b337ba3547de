"""The pure parts of the WebDAV gate: decide(), quota arithmetic and path containment (property-based)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsgidav.dav_error import DAVError

from enclave.notebooks.account import Access
from enclave.notebooks.webdav import decide, resolve, usage
from enclave.notebooks.workspace import upload_allowance
from tests.notebooks.conftest import FakeAccount

ALICE = FakeAccount("alice", 1, 1, "/jhome/alice", "/jhome/alice/workspace")


@pytest.mark.parametrize(("access", "method", "user", "status", "reason"), [
    (Access.FULL, "PUT", "alice", 0, ""),
    (Access.FULL, "GET", "bob", 403, "another user"),
    (Access.FULL, "PROPFIND", None, 403, "is at /alice/"),
    (Access.FULL, "PUT", None, 403, "outside /<username>/"),
    (Access.DATA_ONLY, "GET", "alice", 0, ""),
    (Access.DATA_ONLY, "PROPFIND", "alice", 0, ""),
    (Access.DATA_ONLY, "DELETE", "alice", 403, "read-only"),
    (Access.DATA_ONLY, "MKCOL", "alice", 403, "read-only"),
    (Access.NONE, "GET", "alice", 403, "departed"),
])
def test_decide(access: Access, method: str, user: str | None, status: int, reason: str) -> None:
    verdict = decide(ALICE, access, method, user)
    assert verdict.status == status and reason in verdict.reason


def test_allowance() -> None:
    assert upload_allowance(1000, 400, 0) == 600
    assert upload_allowance(1000, 400, 100) == 700
    assert upload_allowance(1000, 1200, 0) == 0


def test_usage_does_not_follow_links(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"x" * 10)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "b").write_bytes(b"y" * 5)
    big = tmp_path.parent / f"{tmp_path.name}-outside"
    big.write_bytes(b"z" * 1000)
    (tmp_path / "link").symlink_to(big)
    assert usage(tmp_path) == 15


segment = st.sampled_from(["..", ".", "", "a", "b", "link", "up", "..%2f", "%2e%2e", "\\..", "x\x00"])


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> str:
    base = tmp_path_factory.mktemp("contain")
    ws = base / "alice" / "workspace"
    (ws / "a" / "b").mkdir(parents=True)
    (ws / "link").symlink_to(base / "alice")
    (ws / "a" / "up").symlink_to("../..")
    (base / "alice" / "secret").write_text("s")
    return str(ws)


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(segment, max_size=6))
def test_mapped_paths_stay_inside(tree: str, parts: list[str]) -> None:
    try:
        mapped = resolve(tree, "alice", "/alice/" + "/".join(parts))
    except DAVError as err:
        assert err.value == 403
        return
    real = os.path.realpath(mapped)
    assert real == tree or real.startswith(tree + os.sep)


def test_map_refuses_other_users(tree: str) -> None:
    with pytest.raises(DAVError):
        resolve(tree, "alice", "/bob/x")


def test_descriptor_check_catches_a_swapped_directory(tmp_path: Path) -> None:
    # The race: after the path was checked, a directory on it became a link to elsewhere. O_NOFOLLOW
    # guards only the last component; the check of what the descriptor really opened guards the rest.
    from enclave.notebooks.webdav import _open_inside

    ws = tmp_path / "ws"
    ws.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("s")
    (ws / "d").symlink_to(outside)
    with pytest.raises(DAVError):
        _open_inside(str(ws), str(ws / "d" / "secret"), os.O_RDONLY)
    (ws / "mine").write_text("m")
    os.close(_open_inside(str(ws), str(ws / "mine"), os.O_RDONLY))
    (ws / "last").symlink_to(outside / "secret")
    with pytest.raises(OSError):
        _open_inside(str(ws), str(ws / "last"), os.O_RDONLY)
