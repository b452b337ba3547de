"""What the dashboard and the metrics show, computed from one observed state (pure; no I/O).

A ``Snapshot`` is a small, JSON-ready summary of an ``Observed``: capacity and demand per pool, node states
and what each node runs. ``History`` keeps the last N snapshots so the dashboard can draw capacity and queue
depth over time without asking the backend again.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from threading import Lock
from typing import Any

from enclave.domain.capacity import Node, NodeState, Observed, PoolDemand, Startd, StartdKind
from enclave.spec.models import EnclaveSpec
from enclave.spec.summary import pool_capacity


@dataclass(frozen=True)
class PoolView:
    capacity_cores: int = 0
    busy_cores: int = 0
    startds: int = 0
    idle_jobs: int = 0
    idle_cores: int = 0
    running_jobs: int = 0
    oldest_idle_seconds: float = 0.0
    memory_mib: int = 0
    """Memory of the pool's startds (MiB)."""
    busy_memory_mib: int = 0
    """Memory claimed by running jobs (MiB)."""
    standalone_cores: int = 0
    """Cores of standalone batch-only startds: the pool's own capacity."""
    borrowed_node_cores: int = 0
    """Cores of Kubernetes workers given whole to HTCondor (BCS 5)."""
    borrowed_pod_cores: int = 0
    """Cores of HTCondor worker pods in the commons (BCS 4)."""
    core_utilization: float | None = None
    """Busy cores over capacity cores (None without capacity)."""
    memory_utilization: float | None = None
    """Claimed memory over the startds' memory."""
    dominant_utilization: float | None = None
    """Dominant-resource utilization: each startd counts max(core share, memory share) of its cores as used,
    as HTCondor hands out a partitionable slot until ANY resource runs out (docs/twin.md, the twin's
    ``utilization.batch_dominant`` at one instant)."""
    guaranteed_cores: int = 0
    guarantee: str = "held"
    """"held": capacity at or above the guarantee; "lent": below it while the pool has no work, so its cores
    serve other pools by design (the broker promises a guarantee only to a pool with work, broker/decide.py);
    "short": below it with work queued or running."""


@dataclass(frozen=True)
class NodeView:
    name: str
    group: str
    role: str
    state: str
    cores: int
    k8s_cores_requested: float
    runs: tuple[str, ...]
    """What the node runs: "<pool> <kind> <busy>/<cores>" per startd, plus Kubernetes load when any."""
    memory_mib: int = 0
    in_use: float | None = None
    """Dominant share of the node in use: max(cores, memory) claimed by running jobs and requested by
    Kubernetes pods, over the node's own; None when the node is down."""


@dataclass(frozen=True)
class Snapshot:
    now: float
    pools: dict[str, PoolView]
    node_states: dict[str, int]
    nodes: tuple[NodeView, ...] = ()
    notebook_pending_cores: float = 0.0
    prompt_latency_p95: float | None = None
    prompt_within_objective: float | None = None
    notebook_users: int | None = None
    extra: dict[str, float] = field(default_factory=dict)
    prompt_latencies: tuple[float, ...] = ()
    """Prompt visit latencies completed since the previous snapshot (seconds): per-night percentiles."""

    def to_json(self, *, with_nodes: bool = True) -> dict[str, Any]:
        """The API's form: the time in ISO 8601 UTC, latencies to 0.1 s."""
        data = asdict(self)
        data.pop("prompt_latencies")
        data["now"] = iso(self.now)
        if self.prompt_latency_p95 is not None:
            data["prompt_latency_p95"] = round(self.prompt_latency_p95, 1)
        if not with_nodes:
            data.pop("nodes")
        return data


def _ratio(num: float, den: float) -> float | None:
    return round(num / den, 4) if den > 0 else None


def _runs(s: Startd) -> str:
    kind = "pod" if s.kind == StartdKind.POD else ("htcondor" if s.kind == StartdKind.NODE else "startd")
    return f"{s.pool} {kind} {s.busy_cores}/{s.cores}"


def _pool_view(name: str, startds: list[Startd], d: PoolDemand | None, guaranteed: int) -> PoolView:
    cores = sum(s.cores for s in startds)
    busy = sum(s.busy_cores for s in startds)
    mem = sum(s.memory_mib for s in startds)
    busy_mem = sum(s.busy_memory_mib for s in startds)
    dominant = sum(max(s.busy_cores / s.cores, s.busy_memory_mib / s.memory_mib if s.memory_mib else 0.0)
                   * s.cores for s in startds if s.cores > 0)
    by_kind = Counter[StartdKind]()
    for s in startds:
        by_kind[s.kind] += s.cores
    d = d or PoolDemand()
    has_work = d.idle_jobs + d.running_jobs > 0
    guarantee = "held" if cores >= guaranteed else ("short" if has_work else "lent")
    return PoolView(
        capacity_cores=cores, busy_cores=busy, startds=len(startds), idle_jobs=d.idle_jobs,
        idle_cores=d.idle_cores, running_jobs=d.running_jobs, oldest_idle_seconds=round(d.oldest_idle_seconds, 1),
        memory_mib=mem, busy_memory_mib=busy_mem, standalone_cores=by_kind[StartdKind.STANDALONE],
        borrowed_node_cores=by_kind[StartdKind.NODE], borrowed_pod_cores=by_kind[StartdKind.POD],
        core_utilization=_ratio(busy, cores), memory_utilization=_ratio(busy_mem, mem),
        dominant_utilization=_ratio(dominant, cores), guaranteed_cores=guaranteed, guarantee=guarantee,
    )


def _node_view(n: Node, startds: list[Startd]) -> NodeView:
    runs = [_runs(s) for s in startds]
    k8s = n.state == NodeState.READY and n.k8s_cores_requested > 0
    if k8s:
        runs.append(f"kubernetes {n.k8s_cores_requested:g} cores")
    cores = n.k8s_cores_requested + sum(s.busy_cores for s in startds)
    mem = n.k8s_memory_requested_mib + sum(s.busy_memory_mib for s in startds)
    # At most all of it: a worker lent whole runs a startd offering every core beside its DaemonSet pods' requests.
    in_use = None if n.state == NodeState.DOWN else round(min(1.0, max(
        cores / n.cores if n.cores else 0.0, mem / n.memory_mib if n.memory_mib else 0.0)), 4)
    return NodeView(name=n.name, group=n.group, role=n.role.value, state=n.state.value, cores=n.cores,
                    k8s_cores_requested=n.k8s_cores_requested, runs=tuple(runs), memory_mib=n.memory_mib,
                    in_use=in_use)


def summarise(spec: EnclaveSpec, observed: Observed, *, prompt_latency_p95: float | None = None,
              prompt_within_objective: float | None = None, notebook_users: int | None = None,
              prompt_latencies: tuple[float, ...] = ()) -> Snapshot:
    """Fold an observed state into per-pool and per-node views. Every spec pool appears, even when empty,
    so a pool that lost all its capacity shows as zero rather than vanishing from the charts."""
    by_pool: dict[str, list[Startd]] = {}
    by_node: dict[str, list[Startd]] = {}
    for s in observed.startds:
        by_pool.setdefault(s.pool, []).append(s)
        by_node.setdefault(s.node, []).append(s)
    guaranteed = {p.name: p.guaranteed_cores for p in pool_capacity(spec)}
    pools = {name: _pool_view(name, by_pool.get(name, []), observed.demand.get(name), guaranteed.get(name, 0))
             for name in [*spec.pools, *sorted(set(by_pool) - set(spec.pools))]}
    states = Counter(n.state.value for n in observed.nodes)
    nodes = tuple(_node_view(n, by_node.get(n.name, [])) for n in observed.nodes)
    return Snapshot(
        now=observed.now, pools=pools, node_states={s.value: states.get(s.value, 0) for s in NodeState},
        nodes=nodes, notebook_pending_cores=observed.notebook_pending_cores,
        prompt_latency_p95=prompt_latency_p95, prompt_within_objective=prompt_within_objective,
        notebook_users=notebook_users, prompt_latencies=tuple(prompt_latencies),
    )


def iso(seconds: float) -> str:
    """A backend clock reading as ISO 8601 in UTC, to the second: the one time format of the API."""
    return datetime.fromtimestamp(round(seconds), UTC).isoformat().replace("+00:00", "Z")


class History:
    """The last ``size`` snapshots, thread-safe: the broker loop appends while API requests read."""

    def __init__(self, size: int = 720) -> None:
        self._items: deque[Snapshot] = deque(maxlen=size)
        self._lock = Lock()

    def append(self, snap: Snapshot) -> None:
        with self._lock:
            self._items.append(snap)

    def latest(self) -> Snapshot | None:
        with self._lock:
            return self._items[-1] if self._items else None

    def items(self) -> list[Snapshot]:
        with self._lock:
            return list(self._items)

    def series(self) -> dict[str, Any]:
        """Per-pool time series for charts: capacity, utilization (cores, memory, dominant), idle jobs, oldest
        idle age, guarantee state; batch capacity by source; prompt latencies completed per snapshot."""
        items = self.items()
        pools: list[str] = []
        for snap in items:
            pools.extend(p for p in snap.pools if p not in pools)

        def per_pool(field: str, empty: Any = 0) -> dict[str, list[Any]]:
            return {p: [getattr(s.pools[p], field) if p in s.pools else empty for s in items] for p in pools}

        def total(field: str) -> list[int]:
            return [sum(getattr(v, field) for v in s.pools.values()) for s in items]

        return {
            "t": [s.now for s in items],
            "capacity": per_pool("capacity_cores"),
            "idle_jobs": per_pool("idle_jobs"),
            "oldest_idle": per_pool("oldest_idle_seconds", 0.0),
            "core_utilization": per_pool("core_utilization", None),
            "memory_utilization": per_pool("memory_utilization", None),
            "dominant_utilization": per_pool("dominant_utilization", None),
            "guarantee": per_pool("guarantee", "held"),
            "by_source": {"standalone": total("standalone_cores"), "whole nodes (BCS 5)": total("borrowed_node_cores"),
                          "pods (BCS 4)": total("borrowed_pod_cores")},
            "prompt_p95": [s.prompt_latency_p95 for s in items],
            "prompt_latencies": [s.prompt_latencies for s in items],
        }
