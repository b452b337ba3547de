"""``TwinBackend``: the simulated enclave behind the broker's Backend protocol.

This is enclave's embedded default backend: the broker and the service drive it exactly as they drive
the live Kubernetes + HTCondor adapters — ``observe()`` a snapshot, ``apply(action)`` one BCS action —
and ``advance(seconds)`` moves simulated time on (a live cluster's clock moves by itself).

    from enclave.twin.backend import TwinBackend
    twin = TwinBackend.from_scenario("one-night")      # or TwinBackend(sim) around a Sim you built
    obs = twin.observe(); twin.apply(action); twin.advance(60)
"""

from __future__ import annotations

import dataclasses
from typing import Any

from enclave.broker.model import (
    Action,
    Backend,
    DeletePods,
    DeployPods,
    DrainNode,
    DrainStartd,
    Node,
    NodeState,
    Observed,
    PendingSpawn,
    PoolDemand,
    Relabel,
    ReturnNode,
    Startd,
    StartdKind,
    StartHTCondor,
)
from enclave.errors import InputError, NotFound, Problem
from enclave.spec.models import EnclaveSpec, NodeRole
from enclave.twin.layout import fixed
from enclave.twin.scenario import load_scenario
from enclave.twin.sim import Sim

_STARTD_FIELDS = {f.name for f in dataclasses.fields(Startd)}


class TwinBackend:
    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.applied: list[Action] = []

    @classmethod
    def from_scenario(cls, scenario: str = "one-night", spec: EnclaveSpec | None = None,
                      policy: str = "static") -> TwinBackend:
        """A twin of ``spec`` (default: the scenario's) loaded with a shipped scenario or scenario file, laid
        out by a policy that makes no moves of its own (``static`` or ``quotas``): the caller drives it."""
        return cls(Sim(load_scenario(scenario, spec=spec), fixed(policy)))

    def advance(self, seconds: float) -> None:
        """Run the simulation ``seconds`` further (never past the scenario's horizon)."""
        if seconds < 0:
            raise InputError([Problem("advance", f"cannot go back in time ({seconds} s)", "give seconds >= 0")])
        self.sim.run_until(min(self.sim.now + seconds, self.sim.horizon))

    def observe(self) -> Observed:
        sim = self.sim
        epoch = sim.sc.start_epoch
        nodes = []
        for n in sim.nodes.values():
            k8s_cpu = n.svc_cpu + n.nb_cpu if n.role == NodeRole.WORKER else 0.0
            k8s_mem = n.svc_mem + n.nb_mem if n.role == NodeRole.WORKER else 0
            if n.state == NodeState.HTCONDOR or (n.state == NodeState.DRAINING and n.drained):
                k8s_cpu, k8s_mem = 0.0, 0
            nodes.append(Node(name=n.name, group=n.group, role=n.role, cores=n.cores, memory_mib=n.mem,
                              state=n.state, k8s_cores_requested=k8s_cpu, k8s_memory_requested_mib=k8s_mem,
                              since=epoch + n.since))
        startds = []
        for s in sim.startds.values():
            # A worker pod still starting is already a Kubernetes pod: the live backend lists it too
            # (enclave.cluster.kube.startds_of), so the broker does not deploy it twice.
            if not s.ready and s.kind != StartdKind.POD:
                continue
            extra: dict[str, Any] = {}
            if "draining" in _STARTD_FIELDS:
                extra["draining"] = not s.accepting if s.ready else s.removing is not None
            startds.append(Startd(name=s.name, node=s.node.name, kind=s.kind, pool=s.pool, cores=s.cores,
                                  memory_mib=s.mem, busy_cores=s.cores - s.free_cores, since=epoch + s.since,
                                  **extra))
        demand = {}
        for pool in sim.pools:
            oldest = min((sim.queues[ac][0].submit for ac in sim.pool_acs[pool] if sim.queues[ac]),
                         default=sim.now)
            demand[pool] = PoolDemand(idle_jobs=sim.idle[pool], idle_cores=sim.idle_cores[pool],
                                      running_jobs=sim.run_jobs[pool],
                                      running_cores=sim.busy[pool], oldest_idle_seconds=sim.now - oldest,
                                      newest_submit=epoch + sim.last_submit[pool] if pool in sim.last_submit
                                      else None)
        spawns = tuple(PendingSpawn(cpu=sim.wl.sessions.cpu[i], memory_mib=sim.wl.sessions.memory_mib[i])
                       for i in sim.nb_pending)
        return Observed(now=epoch + sim.now, nodes=tuple(nodes), startds=tuple(startds), demand=demand,
                        notebook_pending_cores=sum(sp.cpu for sp in spawns), notebook_spawns=spawns)

    def apply(self, action: Action) -> None:
        """Carry one BCS action out in the twin; idempotent like the live adapters."""
        sim = self.sim
        if isinstance(action, Relabel):
            s = sim.startd(action.startd)
            if s.pool != action.from_pool and s.pool != action.to_pool:
                raise NotFound(f"startd '{action.startd}' is labelled '{s.pool}', not '{action.from_pool}'",
                               where="Relabel.from_pool", fix="observe again and decide from the fresh state")
            sim.relabel(action.startd, action.to_pool, getattr(action, "vacate_after_seconds", None))
        elif isinstance(action, DeployPods):
            sim.deploy_pods(action.node, action.pool, action.pods, action.cores_per_pod, action.memory_mib_per_pod)
        elif isinstance(action, DeletePods):
            sim.delete_pods(action.pods)
        elif isinstance(action, DrainNode):
            sim.drain_node(action.node)
        elif isinstance(action, StartHTCondor):
            sim.start_htcondor(action.node, action.pool)
        elif isinstance(action, ReturnNode):
            sim.return_node(action.node)
        elif isinstance(action, DrainStartd):
            sim.drain_startd(action.startd, action.vacate_after_seconds)
        else:
            raise InputError([Problem(f"action {action.kind}", "the twin does not know this action",
                                      "use one of the BCS actions in enclave.broker.model")])
        self.applied.append(action)


def _conforms(twin: TwinBackend) -> Backend:
    """mypy proves here that TwinBackend satisfies the broker's Backend protocol."""
    return twin
