"""What the dashboard and the metrics show, computed from one observed state (pure; no I/O).

A ``Snapshot`` is a small, JSON-ready summary of an ``Observed``: capacity and demand per pool, node states
and what each node runs. ``History`` keeps the last N snapshots so the dashboard can draw capacity and queue
depth over time without asking the backend again.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from threading import Lock
from typing import Any

from enclave.domain.capacity import NodeState, Observed, StartdKind
from enclave.spec.models import EnclaveSpec


@dataclass(frozen=True)
class PoolView:
    capacity_cores: int = 0
    busy_cores: int = 0
    startds: int = 0
    idle_jobs: int = 0
    idle_cores: int = 0
    running_jobs: int = 0
    oldest_idle_seconds: float = 0.0


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

    def to_json(self, *, with_nodes: bool = True) -> dict[str, Any]:
        data = asdict(self)
        if not with_nodes:
            data.pop("nodes")
        return data


def summarise(spec: EnclaveSpec, observed: Observed, *, prompt_latency_p95: float | None = None,
              prompt_within_objective: float | None = None, notebook_users: int | None = None) -> Snapshot:
    """Fold an observed state into per-pool and per-node views. Every spec pool appears, even when empty,
    so a pool that lost all its capacity shows as zero rather than vanishing from the charts."""
    cap: Counter[str] = Counter()
    busy: Counter[str] = Counter()
    count: Counter[str] = Counter()
    by_node: dict[str, list[str]] = {}
    for s in observed.startds:
        cap[s.pool] += s.cores
        busy[s.pool] += s.busy_cores
        count[s.pool] += 1
        kind = "pod" if s.kind == StartdKind.POD else ("htcondor" if s.kind == StartdKind.NODE else "startd")
        by_node.setdefault(s.node, []).append(f"{s.pool} {kind} {s.busy_cores}/{s.cores}")
    pools: dict[str, PoolView] = {}
    for name in [*spec.pools, *sorted(set(cap) - set(spec.pools))]:
        d = observed.demand.get(name)
        pools[name] = PoolView(
            capacity_cores=cap[name], busy_cores=busy[name], startds=count[name],
            idle_jobs=d.idle_jobs if d else 0, idle_cores=d.idle_cores if d else 0,
            running_jobs=d.running_jobs if d else 0, oldest_idle_seconds=d.oldest_idle_seconds if d else 0.0,
        )
    states = Counter(n.state.value for n in observed.nodes)
    nodes = []
    for n in observed.nodes:
        runs = list(by_node.get(n.name, []))
        if n.k8s_cores_requested > 0 and n.state == NodeState.READY:
            runs.append(f"kubernetes {n.k8s_cores_requested:g} cores")
        nodes.append(NodeView(name=n.name, group=n.group, role=n.role.value, state=n.state.value, cores=n.cores,
                              k8s_cores_requested=n.k8s_cores_requested, runs=tuple(runs)))
    return Snapshot(
        now=observed.now, pools=pools, node_states={s.value: states.get(s.value, 0) for s in NodeState},
        nodes=tuple(nodes), notebook_pending_cores=observed.notebook_pending_cores,
        prompt_latency_p95=prompt_latency_p95, prompt_within_objective=prompt_within_objective,
        notebook_users=notebook_users,
    )


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
        """Per-pool time series for charts: times, capacity cores and idle jobs, oldest idle age."""
        items = self.items()
        pools: list[str] = []
        for snap in items:
            pools.extend(p for p in snap.pools if p not in pools)
        return {
            "t": [s.now for s in items],
            "capacity": {p: [s.pools[p].capacity_cores if p in s.pools else 0 for s in items] for p in pools},
            "idle_jobs": {p: [s.pools[p].idle_jobs if p in s.pools else 0 for s in items] for p in pools},
            "oldest_idle": {p: [s.pools[p].oldest_idle_seconds if p in s.pools else 0.0 for s in items]
                            for p in pools},
            "prompt_p95": [s.prompt_latency_p95 for s in items],
        }
