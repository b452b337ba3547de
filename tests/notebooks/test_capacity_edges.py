"""The capacity planner at its edges (``notebooks/capacity.py``): each test failed a one-line bug that the planner's
other tests passed (a mutation round, stop 59). The LDF example's workers: 17 'kub' nodes of 48 cores and 256 GiB;
a node caches min(5, 100 GiB / 10 GiB) = 5 images and the container cache holds 250 / 10 = 25 (§13.4, §13.6)."""

from __future__ import annotations

import pytest

from enclave.errors import InputError
from enclave.notebooks.capacity import parse_mix, plan
from enclave.spec import EnclaveSpec
from enclave.spec.models import NodeGroup, NodeRole, NotebookSize
from tests.notebooks.conftest import with_notebooks


def _images(spec: EnclaveSpec, n: int) -> EnclaveSpec:
    return with_notebooks(spec, images=[f"registry.lsst.local/lab:{i}" for i in range(n)])


def _workers(spec: EnclaveSpec, *groups: NodeGroup) -> EnclaveSpec:
    others = [g for g in spec.cluster.node_groups if g.role != NodeRole.WORKER]
    return spec.model_copy(update={"cluster": spec.cluster.model_copy(update={"node_groups": [*others, *groups]})})


def _sizes(spec: EnclaveSpec, **sizes: NotebookSize) -> EnclaveSpec:
    return with_notebooks(spec, sizes={**spec.notebooks.sizes, **sizes})


def test_as_many_images_as_the_caches_hold_all_fit(ldf: EnclaveSpec) -> None:
    at_slots, past_slots = plan(_images(ldf, 5)).cache, plan(_images(ldf, 6)).cache
    assert (at_slots.all_images_cached, at_slots.notes) == (True, ())
    assert not past_slots.all_images_cached and "a node caches 5" in past_slots.notes[0]
    at_registry, past_registry = plan(_images(ldf, 25)).cache, plan(_images(ldf, 26)).cache
    assert at_registry.registry_cache_fits and not any("container cache" in n for n in at_registry.notes)
    assert not past_registry.registry_cache_fits and "container cache" in past_registry.notes[-1]


def test_a_target_of_nobody_or_of_exactly_todays_users_adds_no_node(ldf: EnclaveSpec) -> None:
    mix = parse_mix("medium=1", ldf)  # 1 CPU / 2 GiB: 48 a node by CPU, 816 on 17 nodes
    today = plan(ldf, mix).mix.users
    assert today == 816
    for target in (0, today):
        got = plan(ldf, mix, target=target).mix
        assert (got.target, got.add_nodes, got.add_group) == (target, 0, "")
    assert plan(ldf, mix, target=today + 1).mix.add_nodes == 1


def test_a_target_with_no_worker_group_to_grow_is_refused(ldf: EnclaveSpec) -> None:
    with pytest.raises(InputError, match="no worker group to grow"):
        plan(_workers(ldf), parse_mix("medium=1", ldf), target=1)


def test_a_worker_group_of_no_node_holds_no_user(ldf: EnclaveSpec) -> None:
    kub = next(iter(ldf.groups(NodeRole.WORKER)))
    spare = NodeGroup(name="spare", role=NodeRole.WORKER, count=0, cores=64, memory_gib=512, local_disk_gib=200)
    fits = plan(_workers(ldf, kub, spare)).sizes
    assert all(set(f.per_node) == {"kub"} for f in fits)


def test_a_size_whose_requests_are_its_limits_warns_of_no_burst(ldf: EnclaveSpec) -> None:
    fixed = NotebookSize(cpu_request=1, cpu_limit=1, memory_request_mib=2048, memory_limit_mib=2048)
    warnings = plan(_sizes(ldf, fixed=fixed)).warnings
    assert not any("size 'fixed'" in w for w in warnings)
    assert any("size 'medium'" in w for w in warnings)  # 2 CPU at its limit: 408 of 816


def test_cpu_binds_when_cpu_and_memory_give_the_same_count(ldf: EnclaveSpec) -> None:
    # 48 cores / 3 = 16 and 262,144 MiB / 16,384 = 16: a tie is reported as CPU.
    even = NotebookSize(cpu_request=3, cpu_limit=3, memory_request_mib=16384, memory_limit_mib=16384)
    [fit] = [f for f in plan(_sizes(ldf, even=even)).sizes if f.size == "even"]
    assert (fit.per_node, fit.bound_by) == ({"kub": 16}, "cpu")


@pytest.mark.parametrize(("cores", "memory_gib", "fits"), [
    (2, 4, True),  # exactly one 'large' notebook (2 CPU, 4096 MiB requested)
    (1, 8, False),  # too few cores alone
    (4, 3, False),  # too little memory alone
])
def test_nodes_to_add_must_each_hold_the_largest_notebook(ldf: EnclaveSpec, cores: int, memory_gib: float,
                                                          fits: bool) -> None:
    one = NodeGroup(name="kub", role=NodeRole.WORKER, count=1, cores=cores, memory_gib=memory_gib,
                    local_disk_gib=200)
    spec, mix = _workers(ldf, one), parse_mix("large=1", ldf)
    if fits:
        assert plan(spec, mix, target=3).mix.add_nodes == 2
    else:
        with pytest.raises(InputError, match="does not fit on a 'kub' node"):
            plan(spec, mix, target=3)
