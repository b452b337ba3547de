"""Each spec rule at its edge: what it refuses alone, and what it must still accept. A mutation round of stop 58
(one-line bugs in spec/checks.py, models.py and document.py, run against tests/spec) found these bugs passing:
a bound equal to its other bound refused, a control-plane group of no node counted as a control plane, a size out
of its memory bounds on one side only accepted, a worker-only rule applied to every group, a second YAML
document read, a quota tool with nowhere to set quotas accepted."""

from __future__ import annotations

import pytest
import yaml

from enclave.errors import SpecError
from enclave.spec import parse
from tests.spec.test_spec import base, problems


def ok(data: dict) -> None:
    parse(yaml.safe_dump(data, sort_keys=False), "ok.yaml")


def control_plane(data: dict) -> dict:
    [group] = [g for g in data["cluster"]["node_groups"] if g["role"] == "control-plane"]
    return group


def test_a_control_plane_group_of_no_node_is_no_control_plane() -> None:
    data = base()
    master = control_plane(data)
    master["count"] = 0
    assert any("no control-plane node" in p for p in problems(data))


def test_notebook_bounds_may_be_equal() -> None:
    """min ≤ max: a facility may offer exactly one shape."""
    data = base()
    data["notebooks"]["bounds"] = {"min_cpu": 1, "max_cpu": 1, "min_memory_mib": 2048, "max_memory_mib": 2048}
    data["notebooks"]["sizes"]["small"] = {"cpu_request": 1, "cpu_limit": 1, "memory_request_mib": 2048,
                                           "memory_limit_mib": 2048}
    ok(data)


@pytest.mark.parametrize("size", [
    {"cpu_request": 0.5, "cpu_limit": 1, "memory_request_mib": 1024, "memory_limit_mib": 16384},  # limit above
    {"cpu_request": 0.5, "cpu_limit": 1, "memory_request_mib": 256, "memory_limit_mib": 2048},  # request below
])
def test_a_size_out_of_its_memory_bounds_on_one_side_is_refused(size: dict) -> None:
    data = base()
    data["notebooks"]["sizes"]["small"] = size
    assert any("MiB is outside the bounds 512–8192 MiB" in p for p in problems(data))


def test_only_workers_need_the_node_local_storage() -> None:
    """The node-local storage rule (checks._storage) is for worker groups, which cache the notebook images."""
    data = base()
    master = control_plane(data)
    master["local_disk_gib"] = 20
    ok(data)


def test_a_control_plane_group_is_not_held_to_worker_pod_names() -> None:
    """Worker pods run only on workers: a long control-plane group name names no pod."""
    data = base()
    master = control_plane(data)
    master["name"] = "m" * 60
    ok(data)


def test_a_second_yaml_document_is_refused() -> None:
    text = yaml.safe_dump(base(), sort_keys=False)
    with pytest.raises(SpecError) as info:
        parse(text + "---\n" + text, "two.yaml")
    assert "2 YAML documents where one is expected" in str(info.value)


@pytest.mark.parametrize("tool", ["setquota", "xfs_quota", "mmsetquota"])
def test_a_quota_tool_needs_the_file_system_it_sets_quotas_on(tool: str) -> None:
    data = base()
    data.setdefault("storage", {})["quota"] = {"tool": tool}
    assert any("needs storage.quota.filesystem" in p for p in problems(data))
    data["storage"]["quota"]["filesystem"] = "/jhome"
    ok(data)
