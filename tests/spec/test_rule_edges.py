"""Each spec rule at its edge: what it refuses alone, and what it must still accept. A mutation round of stop 58
(one-line bugs in spec/checks.py, models.py and document.py, run against tests/spec) found these bugs passing:
a bound equal to its other bound refused, a control-plane group of no node counted as a control plane, a size out
of its memory bounds on one side only accepted, a worker-only rule applied to every group, a second YAML
document read, a quota tool with nowhere to set quotas accepted. Stop 59 ran the round's rest against the model's
own rules: an API version compared, a grace, the pre-warmed pool, node names by role (the last four tests)."""

from __future__ import annotations

import pytest
import yaml

from enclave.errors import SpecError
from enclave.spec import parse
from enclave.spec.models import EnclaveSpec, NodeRole
from tests.spec.test_spec import base, problems


def ok(data: dict) -> EnclaveSpec:
    """The spec ``data`` describes, which must be accepted."""
    return parse(yaml.safe_dump(data, sort_keys=False), "ok.yaml")


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


def test_a_cluster_serves_an_api_from_its_own_minor_version_on() -> None:
    # Cluster.serves(major, minor): "major.minor or later", the patch release aside (policy/v1 Eviction from
    # 1.22, PodDisruptionBudget from 1.21: kube.py and deploy.py ask exactly that).
    data = base()
    data["cluster"]["kubernetes_version"] = "v1.22.17"
    cluster = ok(data).cluster
    assert cluster.serves(1, 22) and cluster.serves(1, 21) and not cluster.serves(1, 23)


def test_only_a_vacating_pool_has_a_grace_before_eviction() -> None:
    data = base()
    data["pools"]["drp"] |= {"take_away": "vacate", "grace_seconds": 900}
    data["pools"]["user"] |= {"take_away": "drain", "grace_seconds": 900}
    pools = ok(data).pools
    assert (pools["drp"].vacate_grace, pools["user"].vacate_grace) == (900, None)


def test_the_prewarmed_pool_is_the_named_one_else_the_first_latency_pool_else_none() -> None:
    # EnclaveSpec.prewarmed_pool: broker.prewarm_pool when given; else the highest-priority pool with a latency
    # objective (the minimal example's: prompt alone); else no pool is pre-warmed.
    data = base()
    assert ok(data).prewarmed_pool() == "prompt"
    data["pools"]["user"]["latency_objective"] = {"seconds": 600, "fraction": 0.9}
    assert ok(data).prewarmed_pool() == "prompt"  # priority 100 over 30
    data["pools"]["user"]["priority"] = 200
    assert ok(data).prewarmed_pool() == "user"
    data["broker"] = {"prewarm_pool": "drp"}
    assert ok(data).prewarmed_pool() == "drp"
    data = base()
    del data["pools"]["prompt"]["latency_objective"]
    assert ok(data).prewarmed_pool() is None


def test_node_names_of_one_role_or_of_all() -> None:
    spec = ok(base())  # master ×1 (control plane), worker ×2, batch ×2 (batch-only)
    assert spec.node_names(NodeRole.WORKER) == ["worker-001", "worker-002"]
    assert spec.node_names() == ["master-001", "worker-001", "worker-002", "batch-001", "batch-002"]
