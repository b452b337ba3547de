"""Hypothesis: any valid spec survives load → dump → load unchanged."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from enclave.spec import dump, parse
from enclave.spec.checks import REQUIRED_POOLS
from enclave.spec.models import EnclaveSpec

names = st.from_regex(r"^[a-z][a-z0-9]{0,8}$", fullmatch=True)


@st.composite
def node_groups(draw: st.DrawFn) -> list[dict[str, Any]]:
    roles = ["control-plane", *draw(st.lists(st.sampled_from(["worker", "batch-only"]), min_size=1, max_size=4))]
    group_names = draw(st.lists(names, min_size=len(roles), max_size=len(roles), unique=True))
    return [
        {
            "name": n,
            "role": r,
            "count": draw(st.integers(1 if r == "control-plane" else 0, 50)),
            "cores": draw(st.integers(1, 128)),
            "memory_gib": draw(st.integers(1, 1024)),
            "local_disk_gib": draw(st.integers(100, 4000)),
            "labels": draw(st.dictionaries(names, names, max_size=2)),
        }
        for n, r in zip(group_names, roles, strict=True)
    ]


@st.composite
def pools(draw: st.DrawFn) -> dict[str, Any]:
    extra = draw(st.lists(names.filter(lambda n: n not in REQUIRED_POOLS), max_size=2, unique=True))
    out: dict[str, Any] = {}
    budget = 100
    for name in (*REQUIRED_POOLS, *extra):
        g = draw(st.integers(0, budget))
        budget -= g
        m = draw(st.integers(max(g, 1), 100))
        priority = draw(st.integers(0, 1000))
        pool: dict[str, Any] = {"guaranteed_share": g / 100, "max_share": m / 100, "priority": priority}
        if draw(st.booleans()):
            seconds, percent = draw(st.integers(1, 600)), draw(st.integers(1, 100))
            pool["latency_objective"] = {"seconds": seconds, "fraction": percent / 100}
        out[name] = pool
    return out


@st.composite
def sizes(draw: st.DrawFn) -> dict[str, Any]:
    size_names = draw(st.lists(names, min_size=1, max_size=4, unique=True))
    out = {}
    for n in size_names:
        cpu_req = draw(st.integers(1, 8)) / 2  # 0.5 … 4
        cpu_lim = draw(st.integers(int(cpu_req * 2), 8)) / 2
        mem_req = draw(st.integers(512, 8192))
        mem_lim = draw(st.integers(mem_req, 8192))
        out[n] = {"cpu_request": cpu_req, "cpu_limit": cpu_lim, "memory_request_mib": mem_req,
                  "memory_limit_mib": mem_lim, "description": draw(st.text(max_size=20))}
    return out


@st.composite
def specs(draw: st.DrawFn) -> dict[str, Any]:
    size_map = draw(sizes())
    registry = "registry.example.org"
    return {
        "cluster": {
            "name": draw(names),
            "kubernetes_version": f"1.{draw(st.integers(9, 40))}.{draw(st.integers(0, 20))}",
            "network_overlay": draw(st.sampled_from(["weave", "calico", "flannel"])),
            "node_groups": draw(node_groups()),
            "namespaces": draw(st.lists(names, max_size=3, unique=True)),
        },
        "pools": draw(pools()),
        "batch": {"central_manager": "cm.example.org", "submit_hosts": ["login.example.org"]},
        "notebooks": {
            "images": [f"{registry}/lab/{draw(names)}:{draw(names)}"],
            "sizes": size_map,
            "default_size": draw(st.sampled_from(sorted(size_map))),
            "idle_cull_seconds": draw(st.integers(60, 10**6)),
        },
        "storage": {"workspace_subdir": draw(names), "cached_images_per_node": draw(st.integers(1, 10))},
        "registry": {"host": registry, "vetting_required": draw(st.booleans())},
    }


@settings(max_examples=60, deadline=None)
@given(specs())
def test_valid_specs_round_trip(data: dict[str, Any]) -> None:
    spec = EnclaveSpec.model_validate(data)
    once = parse(dump(spec))
    assert once == spec
    assert parse(dump(once)) == once
