"""Spawner options and validation at their edges (``notebooks/options.py``): each test failed a one-line bug that the
other options tests passed (a mutation round, stop 59). The LDF example's bounds: 0.5–4 CPU, 512–8192 MiB (seed
§13.2–13.3); its sizes' limits: small 1 CPU / 2048 MiB, medium 2 / 4096, large 4 / 8192; default medium."""

from __future__ import annotations

from pathlib import Path

import pytest

from enclave.errors import InputError, PermissionDenied
from enclave.notebooks.options import Choice, options_for, spec_vetter, validate
from enclave.spec import EnclaveSpec
from enclave.spec.models import NotebookSize
from tests.notebooks.conftest import NOW, FakeAccount, make_account, with_notebooks


@pytest.fixture()
def alice(tmp_path: Path) -> FakeAccount:
    return make_account(tmp_path, "alice", 1001)


def _bounds(spec: EnclaveSpec, **update: object) -> EnclaveSpec:
    return with_notebooks(spec, bounds=spec.notebooks.bounds.model_copy(update=update))


def test_a_choice_exactly_at_the_bounds_is_taken(ldf: EnclaveSpec, alice: FakeAccount) -> None:
    for cpu, memory in ((0.5, 512), (4, 8192)):
        spawn = validate(ldf, alice, Choice(cpu=cpu, memory_mib=memory), now=NOW)
        assert (spawn.cpu_request, spawn.memory_request_mib) == (cpu, memory)


@pytest.mark.parametrize("choice", [Choice(cpu=0, memory_mib=1024), Choice(cpu=1, memory_mib=0)])
def test_a_choice_of_nothing_is_no_size(ldf: EnclaveSpec, alice: FakeAccount, choice: Choice) -> None:
    # Said as no size at all, not as one below the bounds: zero is not a smaller notebook.
    with pytest.raises(InputError, match="is not a size"):
        validate(ldf, alice, choice, now=NOW)


def test_without_vetting_any_listed_image_is_acceptable(ldf: EnclaveSpec) -> None:
    spec = with_notebooks(ldf, images=[*ldf.notebooks.images, "docker.io/x/y:1"])
    spec = spec.model_copy(update={"registry": spec.registry.model_copy(update={"vetting_required": False})})
    vetted = spec_vetter(spec)
    assert vetted("docker.io/x/y:1") and not vetted("docker.io/x/z:1")  # listed, whatever its registry; unlisted


def test_a_size_over_the_memory_bound_alone_is_not_offered(ldf: EnclaveSpec, alice: FakeAccount) -> None:
    wide = NotebookSize(cpu_request=1, cpu_limit=1, memory_request_mib=4096, memory_limit_mib=16384)
    opts = options_for(with_notebooks(ldf, sizes={**ldf.notebooks.sizes, "wide": wide}), alice, now=NOW)
    assert [s.name for s in opts.sizes] == ["small", "medium", "large"]


def test_the_default_size_is_the_first_that_fits_when_the_named_one_does_not(ldf: EnclaveSpec,
                                                                             alice: FakeAccount) -> None:
    opts = options_for(_bounds(ldf, max_cpu=1, max_memory_mib=2048), alice, now=NOW)
    assert ([s.name for s in opts.sizes], opts.default_size) == (["small"], "small")
    assert opts.sizes[0].default


def test_no_size_within_the_bounds_is_refused(ldf: EnclaveSpec, alice: FakeAccount) -> None:
    with pytest.raises(PermissionDenied, match="no notebook size is that small"):
        options_for(_bounds(ldf, max_cpu=0.5), alice, now=NOW)


def test_an_image_not_offered_while_none_is_vetted_says_so(ldf: EnclaveSpec, alice: FakeAccount) -> None:
    with pytest.raises(InputError) as err:
        validate(ldf, alice, Choice(image="docker.io/evil/miner:latest"), vetted=lambda i: False, now=NOW)
    assert err.value.problems[0].fix == "choose one of: (none vetted yet)"
