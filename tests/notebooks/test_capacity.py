"""Capacity planner: sizes, mixes by real packing, caches (§13.4, §13.6), nodes to add."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from enclave.cli import app
from enclave.errors import InputError
from enclave.notebooks.capacity import counts_for, max_users, packs, parse_mix, plan
from enclave.spec import EnclaveSpec
from enclave.spec.summary import notebook_users


def test_single_sizes_match_spec_summary(ldf: EnclaveSpec) -> None:
    c = plan(ldf)
    assert {f.size: f.users for f in c.sizes} == notebook_users(ldf)
    small = next(f for f in c.sizes if f.size == "small")
    # 48 cores / 0.5 = 96 by CPU; 256 GiB / 1 GiB = 256 by memory: CPU binds.
    assert small.per_node == {"kub": 96} and small.bound_by == "cpu" and small.users_at_limit == 17 * 48
    assert c.worker_nodes == 17 and c.worker_cores == 816


def test_mix_packs_by_requests(ldf: EnclaveSpec) -> None:
    mix = parse_mix("small=5,medium=3,large=2", ldf)
    assert mix == pytest.approx({"small": 0.5, "medium": 0.3, "large": 0.2})
    users = max_users(ldf, mix)
    # Average request 0.5*0.5 + 0.3*1 + 0.2*2 = 0.95 CPU → at most 816/0.95 = 858 users.
    assert users == 858
    assert plan(ldf, mix).mix.users == users


def test_a_size_given_no_share_is_left_out_of_the_mix(ldf: EnclaveSpec) -> None:
    # "large=0" names a size nobody uses: the mix holds only the sizes that have users.
    assert parse_mix("small=1,medium=1,large=0", ldf) == pytest.approx({"small": 0.5, "medium": 0.5})


def test_packing_is_by_node_not_by_total() -> None:
    # Two nodes of 2 cores: three 1.5-core pods fit by total (4.5 ≤ 4 is false anyway), two by nodes.
    nodes = [(2.0, 8192.0), (2.0, 8192.0)]
    assert packs(nodes, [(1.5, 1024)] * 2)
    assert not packs(nodes, [(1.5, 1024), (1.5, 1024), (0.75, 1024)])
    assert packs(nodes, [(1.0, 1024)] * 4)


def test_counts_add_up() -> None:
    assert counts_for(10, {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}) == {"a": 4, "b": 3, "c": 3}
    assert sum(counts_for(997, {"a": 0.5, "b": 0.3, "c": 0.2}).values()) == 997


def test_nodes_to_reach_target(ldf: EnclaveSpec) -> None:
    mix = parse_mix("small=5,medium=3,large=2", ldf)
    c = plan(ldf, mix, target=2000)
    # 2000 users × 0.95 CPU = 1900 cores; 816 exist; (1900-816)/48 = 22.6 → 23 nodes.
    assert (c.mix.add_nodes, c.mix.add_group, c.mix.add_cores) == (23, "kub", 1104)
    assert plan(ldf, mix, target=800).mix.add_nodes == 0


def test_image_caches(ldf: EnclaveSpec) -> None:
    cache = plan(ldf).cache
    assert (cache.slots_per_node, cache.registry_cache_images, cache.all_images_cached) == (5, 25, True)
    many = ldf.model_copy(update={"notebooks": ldf.notebooks.model_copy(update={"images": [
        f"registry.lsst.local/lab:{i}" for i in range(30)]})})
    cache = plan(many).cache
    assert not cache.all_images_cached and not cache.registry_cache_fits
    assert "a node caches 5" in cache.notes[0] and "250 GiB container cache" in cache.notes[1]


@pytest.mark.parametrize(("text", "message"), [
    ("huge=1", "size 'huge' is not defined"),
    ("small=x", "has no usable share"),
    ("small=-1", "has no usable share"),
    ("small=0", "every share is zero"),
])
def test_bad_mix(ldf: EnclaveSpec, text: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_mix(text, ldf)


def test_cli(ldf: EnclaveSpec) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["notebooks", "capacity", "--mix", "small=5,medium=3,large=2", "--users", "2000"])
    assert result.exit_code == 0, result.output
    assert "858 concurrent users fit today" in result.output and "add 23 'kub' nodes" in result.output
    result = runner.invoke(app, ["notebooks", "capacity", "-o", "json"])
    data = json.loads(result.output)
    assert data["mix"]["users"] == 816 and data["cache"]["slots_per_node"] == 5
    result = runner.invoke(app, ["notebooks", "capacity", "--mix", "huge=1"])
    assert result.exit_code != 0
    result = runner.invoke(app, ["notebooks", "capacity", "--users", "-5"])
    assert result.exit_code != 0
