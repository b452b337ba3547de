"""Numbers derived from a spec: capacity per pool, notebook users that fit, storage totals."""

from __future__ import annotations

import math
from dataclasses import dataclass

from enclave.spec.models import EnclaveSpec, NodeRole, NotebookSize


@dataclass(frozen=True)
class PoolCapacity:
    name: str
    priority: int
    guaranteed_cores: int
    max_cores: int
    objective: str


def batch_cores(spec: EnclaveSpec) -> int:
    """Cores HTCondor owns outright: the standalone batch-only nodes."""
    return spec.cores(NodeRole.BATCH_ONLY)


def pool_capacity(spec: EnclaveSpec) -> list[PoolCapacity]:
    total = batch_cores(spec)
    out = []
    for name, p in sorted(spec.pools.items(), key=lambda kv: -kv[1].priority):
        obj = p.latency_objective
        out.append(
            PoolCapacity(
                name=name,
                priority=p.priority,
                # Guarantees round down and maxima round up: a guarantee is a promise, a maximum a cap.
                guaranteed_cores=math.floor(total * p.guaranteed_share + 1e-9),
                max_cores=math.ceil(total * p.max_share - 1e-9),
                objective=f"{obj.fraction:.0%} within {obj.seconds:g} s" if obj else "",
            )
        )
    return out


def users_per_node(size: NotebookSize, cores: int, memory_gib: float) -> int:
    """How many notebooks of one size a node can hold by their requests (what the scheduler packs by)."""
    by_cpu = math.floor(cores / size.cpu_request + 1e-9)
    by_mem = math.floor(memory_gib * 1024 / size.memory_request_mib + 1e-9)
    return min(by_cpu, by_mem)


def notebook_users(spec: EnclaveSpec) -> dict[str, int]:
    """Concurrent users of each size that fit on the Kubernetes worker nodes, if all chose that size."""
    return {
        name: sum(g.count * users_per_node(size, g.cores, g.memory_gib) for g in spec.groups(NodeRole.WORKER))
        for name, size in spec.notebooks.sizes.items()
    }


@dataclass(frozen=True)
class StorageTotals:
    home_quota_gib: float
    shared_tib: float
    node_local_total_gib: float
    image_cache_per_node_gib: float
    container_cache_gib: float


def storage_totals(spec: EnclaveSpec) -> StorageTotals:
    st = spec.storage
    nodes = sum(g.count for g in spec.cluster.node_groups if g.role != NodeRole.CONTROL_PLANE)
    return StorageTotals(
        home_quota_gib=st.home_quota_gib,
        shared_tib=st.shared_tib,
        node_local_total_gib=nodes * st.node_local_gib,
        image_cache_per_node_gib=st.image_size_gib * st.cached_images_per_node,
        container_cache_gib=st.container_cache_gib,
    )
