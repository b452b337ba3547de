"""Capacity planning for notebooks (seed §13): how many concurrent users fit on the commons workers,
what a mix of sizes does, what the image and container caches allow, and what to add to reach N users.

Pure arithmetic on the spec. Pods are packed by their requests (what the scheduler guarantees), one
node at a time, largest first — the same first-fit-decreasing a scheduler approximates — so a mix is
judged by real packing, not by an average that would let half a pod straddle two nodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from enclave.errors import InputError, Problem
from enclave.spec.models import EnclaveSpec, NodeGroup, NodeRole, NotebookSize
from enclave.spec.summary import users_per_node

_EPS = 1e-9


@dataclass(frozen=True)
class SizeFit:
    size: str
    per_node: dict[str, int]
    """Users of this size one node of each worker group holds."""
    users: int
    """Users of this size that fit on all worker nodes, if everyone picked it."""
    bound_by: str
    """'cpu' or 'memory': what runs out first on the biggest group."""
    users_at_limit: int
    """Users that fit if every notebook used its full limit (no overcommit)."""


@dataclass(frozen=True)
class CacheReport:
    images_offered: int
    slots_per_node: int
    """Images a node's local storage holds (§13.4: ~5 of ~10 GB on 100 GB)."""
    all_images_cached: bool
    registry_cache_images: int
    """Images the container cache holds (§13.6: 250 GB total)."""
    registry_cache_fits: bool
    notes: tuple[str, ...]


@dataclass(frozen=True)
class MixPlan:
    mix: dict[str, float]
    users: int
    """Most concurrent users the mix packs onto today's workers."""
    counts: dict[str, int]
    target: int | None = None
    add_nodes: int = 0
    """Worker nodes (of ``add_group``'s shape) to add to reach ``target``."""
    add_group: str = ""
    add_cores: int = 0
    add_memory_gib: float = 0.0


@dataclass(frozen=True)
class Capacity:
    worker_nodes: int
    worker_cores: int
    worker_memory_gib: float
    sizes: list[SizeFit]
    cache: CacheReport
    mix: MixPlan
    warnings: list[str] = field(default_factory=list)


def parse_mix(text: str, spec: EnclaveSpec) -> dict[str, float]:
    """'small=2,large=1' → normalised shares. An empty text means 'the default size only'."""
    sizes = spec.notebooks.sizes
    if not text.strip():
        return {spec.notebooks.default_size: 1.0}
    problems: list[Problem] = []
    raw: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        name = name.strip()
        if name not in sizes:
            problems.append(Problem("--mix", f"size '{name}' is not defined", f"use: {', '.join(sizes)}"))
            continue
        try:
            share = float(value) if sep else 1.0
        except ValueError:
            share = -1.0
        if not math.isfinite(share) or share < 0:
            problems.append(Problem("--mix", f"'{part.strip()}' has no usable share", "write size=share, e.g. small=3"))
            continue
        raw[name] = raw.get(name, 0.0) + share
    total = sum(raw.values())
    if not problems and total <= 0:
        problems.append(Problem("--mix", "every share is zero", "give at least one size a positive share"))
    if problems:
        raise InputError(problems)
    return {k: v / total for k, v in raw.items() if v > 0}


def counts_for(users: int, mix: dict[str, float]) -> dict[str, int]:
    """Split users over sizes by share, largest remainder first, so the counts add up exactly."""
    exact = {k: users * v for k, v in mix.items()}
    counts = {k: math.floor(x + _EPS) for k, x in exact.items()}
    rest = users - sum(counts.values())
    for k in sorted(exact, key=lambda k: (-(exact[k] - counts[k]), k))[:rest]:
        counts[k] += 1
    return counts


def _nodes(spec: EnclaveSpec, extra: int = 0, extra_group: NodeGroup | None = None) -> list[tuple[float, float]]:
    out = [(float(g.cores), g.memory_gib * 1024) for g in spec.groups(NodeRole.WORKER) for _ in range(g.count)]
    if extra_group is not None:
        out += [(float(extra_group.cores), extra_group.memory_gib * 1024)] * extra
    return out


def packs(nodes: list[tuple[float, float]], pods: list[tuple[float, int]]) -> bool:
    """First-fit decreasing by (cpu, memory) requests. True if every pod finds a node."""
    free = [list(n) for n in nodes]
    for cpu, mem in sorted(pods, key=lambda p: (-p[0], -p[1])):
        for slot in free:
            if slot[0] + _EPS >= cpu and slot[1] + _EPS >= mem:
                slot[0] -= cpu
                slot[1] -= mem
                break
        else:
            return False
    return True


def _pods(spec: EnclaveSpec, counts: dict[str, int]) -> list[tuple[float, int]]:
    sizes = spec.notebooks.sizes
    return [(sizes[k].cpu_request, sizes[k].memory_request_mib) for k, n in counts.items() for _ in range(n)]


def _upper_bound(nodes: list[tuple[float, float]], spec: EnclaveSpec, mix: dict[str, float]) -> int:
    sizes = spec.notebooks.sizes
    cpu = sum(sizes[k].cpu_request * v for k, v in mix.items())
    mem = sum(sizes[k].memory_request_mib * v for k, v in mix.items())
    return math.floor(min(sum(n[0] for n in nodes) / cpu, sum(n[1] for n in nodes) / mem) + _EPS) + len(mix)


def max_users(spec: EnclaveSpec, mix: dict[str, float], nodes: list[tuple[float, float]] | None = None) -> int:
    """Most users of this mix that pack onto the nodes (binary search over real packings)."""
    nodes = _nodes(spec) if nodes is None else nodes
    lo, hi = 0, _upper_bound(nodes, spec, mix) if nodes else 0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if packs(nodes, _pods(spec, counts_for(mid, mix))):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _size_fit(spec: EnclaveSpec, name: str, size: NotebookSize) -> SizeFit:
    groups = [g for g in spec.groups(NodeRole.WORKER) if g.count > 0]
    per_node = {g.name: users_per_node(size, g.cores, g.memory_gib) for g in groups}
    users = sum(g.count * per_node[g.name] for g in groups)
    at_limit = NotebookSize(cpu_request=size.cpu_limit, cpu_limit=size.cpu_limit,
                            memory_request_mib=size.memory_limit_mib, memory_limit_mib=size.memory_limit_mib)
    users_at_limit = sum(g.count * users_per_node(at_limit, g.cores, g.memory_gib) for g in groups)
    bound = "cpu"
    if groups:
        g = max(groups, key=lambda g: g.count * g.cores)
        bound = "cpu" if g.cores / size.cpu_request <= g.memory_gib * 1024 / size.memory_request_mib else "memory"
    return SizeFit(name, per_node, users, bound, users_at_limit)


def cache_report(spec: EnclaveSpec) -> CacheReport:
    st = spec.storage
    offered = len(spec.notebooks.images)
    slots = min(st.cached_images_per_node, math.floor(st.node_local_gib / st.image_size_gib + _EPS))
    registry = math.floor(st.container_cache_gib / st.image_size_gib + _EPS)
    notes: list[str] = []
    if offered > slots:
        notes.append(f"{offered} images are offered but a node caches {slots}: spawns of the others pull "
                     f"~{st.image_size_gib:g} GiB first and evict another image (§13.4); offer at most {slots} "
                     "or raise node_local_gib")
    if offered > registry:
        notes.append(f"{offered} images exceed the {st.container_cache_gib:g} GiB container cache "
                     f"({registry} images, §13.6): pulls go past the local cache")
    return CacheReport(offered, slots, offered <= slots, registry, offered <= registry, tuple(notes))


def plan(spec: EnclaveSpec, mix: dict[str, float] | None = None, target: int | None = None) -> Capacity:
    """The whole capacity picture; with ``target``, the worker nodes to add to reach it."""
    mix = mix or {spec.notebooks.default_size: 1.0}
    if target is not None and target < 0:
        raise InputError([Problem("--users", f"{target} is negative", "give a number of concurrent users ≥ 0")])
    groups = [g for g in spec.groups(NodeRole.WORKER) if g.count > 0]
    nodes = _nodes(spec)
    fits = [_size_fit(spec, n, s) for n, s in spec.notebooks.sizes.items()]
    users = max_users(spec, mix, nodes)
    mix_plan = MixPlan(mix=mix, users=users, counts=counts_for(users, mix))
    warnings: list[str] = []
    if target is not None and target > users:
        shape = max(spec.groups(NodeRole.WORKER), key=lambda g: (g.count, g.cores), default=None)
        if shape is None:
            raise InputError([Problem("cluster.node_groups", "no worker group to grow",
                                      "add a node group with role: worker")])
        add = _nodes_to_add(spec, mix, target, shape)
        mix_plan = MixPlan(mix=mix, users=users, counts=counts_for(target, mix), target=target, add_nodes=add,
                           add_group=shape.name, add_cores=add * shape.cores, add_memory_gib=add * shape.memory_gib)
    elif target is not None:
        mix_plan = MixPlan(mix=mix, users=users, counts=counts_for(target, mix), target=target)
    for f in fits:
        if f.users_at_limit < f.users:
            warnings.append(f"size '{f.size}': {f.users} fit by request but only {f.users_at_limit} if all burst to "
                            "their limits; busy hours throttle CPU and may OOM-kill")
    return Capacity(worker_nodes=sum(g.count for g in groups), worker_cores=spec.cores(NodeRole.WORKER),
                    worker_memory_gib=spec.memory_gib(NodeRole.WORKER), sizes=fits, cache=cache_report(spec),
                    mix=mix_plan, warnings=warnings)


def _nodes_to_add(spec: EnclaveSpec, mix: dict[str, float], target: int, shape: NodeGroup) -> int:
    pods = _pods(spec, counts_for(target, mix))
    biggest = max(pods, key=lambda p: (p[0], p[1]))
    if biggest[0] > shape.cores + _EPS or biggest[1] > shape.memory_gib * 1024 + _EPS:
        raise InputError([Problem("notebooks.sizes", f"a notebook of {biggest[0]:g} CPU / {biggest[1]} MiB does not "
                                  f"fit on a '{shape.name}' node", "add bigger nodes or shrink the size")])
    # A lower bound from totals, then grow until a real packing succeeds.
    cpu = sum(p[0] for p in pods) - spec.cores(NodeRole.WORKER)
    mem = sum(p[1] for p in pods) - spec.memory_gib(NodeRole.WORKER) * 1024
    add = max(0, math.ceil(max(cpu / shape.cores, mem / (shape.memory_gib * 1024)) - _EPS))
    while not packs(_nodes(spec, add, shape), pods):
        add += 1
    return add
