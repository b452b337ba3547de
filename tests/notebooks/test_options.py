"""Spawner options and validation: every refusal has its own case."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from enclave.errors import InputError, PermissionDenied
from enclave.notebooks.account import Access, access_of
from enclave.notebooks.options import Choice, options_for, spec_vetter, validate
from enclave.spec import EnclaveSpec
from tests.notebooks.conftest import NOW, FakeAccount, make_account

W18 = "registry.lsst.local/lsstsqre/sciplat-lab:w_2018_25"
R16 = "registry.lsst.local/lsstsqre/sciplat-lab:r16_0"


@pytest.fixture()
def alice(tmp_path: Path) -> FakeAccount:
    return make_account(tmp_path, "alice", 1001)


def test_active_account_gets_vetted_images_and_all_sizes(ldf: EnclaveSpec, alice: FakeAccount) -> None:
    opts = options_for(ldf, alice, now=NOW)
    assert opts.images == (W18, R16)
    assert [s.name for s in opts.sizes] == ["small", "medium", "large"]
    assert opts.default_size == "medium" and [s.default for s in opts.sizes] == [False, True, False]


def test_unvetted_images_are_withheld(ldf: EnclaveSpec, alice: FakeAccount) -> None:
    opts = options_for(ldf, alice, vetted=lambda i: i == R16, now=NOW)
    assert opts.images == (R16,) and opts.withheld_images == (W18,)
    with pytest.raises(PermissionDenied, match="no notebook image is vetted"):
        options_for(ldf, alice, vetted=lambda i: False, now=NOW)


def test_valid_choice_resolves_everything_the_pod_needs(ldf: EnclaveSpec, alice: FakeAccount) -> None:
    spawn = validate(ldf, alice, Choice(image=R16, size="large"), now=NOW)
    assert (spawn.image, spawn.size, spawn.cpu_request, spawn.cpu_limit) == (R16, "large", 2, 4)
    assert (spawn.memory_request_mib, spawn.memory_limit_mib, spawn.uid, spawn.gid) == (4096, 8192, 1001, 1001)
    assert spawn.workspace_path.endswith("alice/workspace")
    default = validate(ldf, alice, Choice(), now=NOW)
    assert (default.image, default.size) == (W18, "medium")
    custom = validate(ldf, alice, Choice(cpu=3, memory_mib=6000), now=NOW)
    assert (custom.size, custom.cpu_request, custom.cpu_limit, custom.memory_limit_mib) == ("custom", 3, 3, 6000)


@pytest.mark.parametrize(("choice", "error", "message"), [
    (Choice(cpu=6, memory_mib=4096), InputError, "6 CPU is too big: a notebook may use at most 4"),
    (Choice(cpu=2, memory_mib=16384), InputError, "16384 MiB is too big"),
    (Choice(cpu=0.25, memory_mib=1024), InputError, "0.25 CPU is too small"),
    (Choice(cpu=1, memory_mib=256), InputError, "256 MiB is too small"),
    (Choice(cpu=1), InputError, "needs both cpu and memory"),
    (Choice(cpu=float("nan"), memory_mib=1024), InputError, "is not a size"),
    (Choice(cpu=-1, memory_mib=1024), InputError, "is not a size"),
    (Choice(size="small", cpu=1, memory_mib=1024), InputError, "both a named size"),
    (Choice(size="huge"), InputError, "size 'huge' is not defined"),
    (Choice(image="docker.io/evil/miner:latest"), InputError, "is not offered on this enclave"),
])
def test_refusals(ldf: EnclaveSpec, alice: FakeAccount, choice: Choice, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        validate(ldf, alice, choice, now=NOW)


def test_unvetted_image_is_refused(ldf: EnclaveSpec, alice: FakeAccount) -> None:
    with pytest.raises(PermissionDenied, match="has not been vetted by security"):
        validate(ldf, alice, Choice(image=W18), vetted=lambda i: i == R16, now=NOW)


def test_spec_vetter_requires_local_registry(ldf: EnclaveSpec) -> None:
    vetted = spec_vetter(ldf)
    assert vetted(W18) and not vetted("registry.lsst.local/other:1") and not vetted("docker.io/x/y:1")


@pytest.mark.parametrize(("change", "access", "message"), [
    ({"status": "expired"}, Access.DATA_ONLY, "allocation of account 'alice' has expired"),
    ({"allocation_expires": NOW - timedelta(seconds=1)}, Access.DATA_ONLY, "has expired"),
    # An allocation that expires now has ended: its end is not a moment of access still (a mutant reading it so
    # passed every test, stop 57).
    ({"allocation_expires": NOW}, Access.DATA_ONLY, "has expired"),
    ({"status": "departed"}, Access.NONE, "has departed"),
])
def test_expired_and_departed_accounts_are_refused(ldf: EnclaveSpec, alice: FakeAccount, change: dict[str, object],
                                                   access: Access, message: str) -> None:
    account = replace(alice, **change)  # type: ignore[arg-type]
    assert access_of(account, NOW) is access
    with pytest.raises(PermissionDenied, match=message):
        validate(ldf, account, Choice(), now=NOW)
    with pytest.raises(PermissionDenied, match=message):
        options_for(ldf, account, now=NOW)
    # The account check comes first: an expired user learns about the allocation, not about the image.
    with pytest.raises(PermissionDenied, match=message):
        validate(ldf, account, Choice(image="docker.io/evil/miner:latest"), now=NOW)


def test_no_allocation_date_means_active(ldf: EnclaveSpec, alice: FakeAccount) -> None:
    assert access_of(replace(alice, allocation_expires=None), NOW) is Access.FULL
