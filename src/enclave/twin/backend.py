"""``TwinBackend``: the simulated enclave behind the broker's Backend protocol.

This is enclave's embedded default backend: the broker and the service drive it exactly as they drive
the live Kubernetes + HTCondor adapters — ``observe()`` a snapshot, ``apply(action)`` one BCS action —
and ``advance(seconds)`` moves simulated time on (a live cluster's clock moves by itself). Whether an action
changes anything, is in effect already or is refused follows ``enclave.broker.transitions``, answered from the
simulator's own dicts (``SimWorld``); the simulator then carries the change out.

    from enclave.twin.backend import TwinBackend
    twin = TwinBackend.from_scenario("one-night")      # or TwinBackend(sim) around a Sim you built
    obs = twin.observe(); twin.apply(action); twin.advance(60)
"""

from __future__ import annotations

import bisect

from enclave.batch.policy import vacating_pools
from enclave.broker.transitions import NodeFacts, StartdFacts, changes
from enclave.domain.capacity import (
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
    RunningJob,
    Startd,
    StartdKind,
    StartHTCondor,
)
from enclave.domain.schedule import TAI_MINUS_UTC_S, ObservingSchedule, Visit
from enclave.errors import InputError, Problem
from enclave.spec.models import EnclaveSpec, NodeRole, node_name
from enclave.twin.layout import fixed
from enclave.twin.scenario import load_scenario
from enclave.twin.sim import Sim, SimNode, SimStartd


def _reported(s: SimStartd) -> bool:
    """Whether ``observe`` shows the startd: a worker pod or a whole worker's HTCondor pod still starting is already
    a Kubernetes pod, which the live backend lists too (``LiveBackend.view``, not ready), so the broker neither
    deploys it twice nor takes the worker for one on its way back."""
    return s.ready or s.kind != StartdKind.STANDALONE


def _back_after_return(n: SimNode, returned: set[str]) -> bool:
    """After ReturnNode a worker stays DRAINING (no startd, nothing starting) for ``return_s``, until the return
    completes: on its way back to the commons."""
    return n.name in returned and n.state == NodeState.DRAINING and n.startd is None and n.pending_pool is None


def _state(n: SimNode, returned: set[str]) -> NodeState:
    """The node's state as live reports it: HTCondor's from the moment its node pod is made (StartHTCondor; live
    lists the pod while its startd starts, ``LiveBackend.view``) until that pod is gone after ReturnNode
    (``return_s``), where the simulator keeps the worker DRAINING on both sides."""
    return NodeState.HTCONDOR if _starting(n) or _back_after_return(n, returned) else n.state


def _starting(n: SimNode) -> bool:
    """HTCondor is starting on the drained worker ``n``: its node pod is made, its startd has not joined."""
    return n.state == NodeState.DRAINING and n.pending_pool is not None and n.startd is None


def _draining(s: SimStartd) -> bool:
    return not s.accepting if s.ready else s.removing is not None


def _jobs(sim: Sim, s: SimStartd, epoch: float) -> tuple[RunningJob, ...]:
    """The startd's running jobs as its dynamic slots report them (``batch.live``: ``Cpus``, ``JobStart``, the
    accounting group's pool): cores, when each was matched to the slot, and its pool — never its end."""
    running, acs = sim.running, sim.acs
    out = []
    for jid in s.running:
        rec = running[jid]
        a = acs[rec[2]]  # a dynamic slot reports its own Cpus, which a reused claim keeps from its first job
        out.append(RunningJob(cores=acs[sim.slot_ac(jid, rec[2])].cpus, start=epoch + rec[6], pool=a.pool))
    return tuple(sorted(out, key=lambda j: (j.start, j.cores)))


def _idle_memory(sim: Sim, pool: str) -> int:
    """MiB the pool's queued jobs request: per autocluster, jobs still queued in its blocks times its request
    (as the live backend sums RequestMemory over idle job ads)."""
    return sum(sum(b.n - b.pos for b in sim.queues[ac]) * sim.acs[ac].memory_mib for ac in sim.pool_acs[pool])


class SimWorld:
    """``enclave.broker.transitions.World`` over the simulator: the facts ``observe`` reports, plus what only
    the simulator knows — the pool of HTCondor still starting on a drained node, and returns under way."""

    def __init__(self, sim: Sim, returned: set[str], control_plane: dict[str, Node]) -> None:
        self.sim = sim
        self.returned = returned
        self.control_plane = control_plane

    def node(self, name: str) -> NodeFacts | None:
        n = self.sim.nodes.get(name)
        if n is None:
            cp = self.control_plane.get(name)
            return None if cp is None else NodeFacts(role=cp.role, state=cp.state)
        bare = n.startd if n.startd is not None and n.startd.kind == StartdKind.NODE else None
        returning = (bare is not None and bare.removing == "return") or _back_after_return(n, self.returned)
        return NodeFacts(role=n.role, state=_state(n, self.returned),
                         htcondor_pool=bare.pool if bare else n.pending_pool, returning=returning)

    def startd(self, name: str) -> StartdFacts | None:
        s = self.sim.startds.get(name)
        n = self.sim.nodes.get(name)
        if s is None and n is not None and _starting(n):
            return StartdFacts(node=name, kind=StartdKind.NODE, pool=n.pending_pool or "", draining=False,
                               leaving=False, starting=True)
        if s is None or not _reported(s):
            return None
        return StartdFacts(node=s.node.name, kind=s.kind, pool=s.pool, draining=_draining(s),
                           leaving=s.removing in ("delete", "return"), starting=not s.ready)


class TwinBackend:
    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.applied: list[Action] = []
        """The actions that changed something, in order."""
        self._returned: set[str] = set()
        self._visits: tuple[Visit, ...] | None = None
        self._starts: list[float] = []
        # The simulator leaves the control plane out (it runs neither notebooks nor jobs); the live backend
        # reports it, so the twin does too: the broker then sees the same nodes from both.
        self._control_plane = {
            node_name(g.name, i): Node(name=node_name(g.name, i), group=g.name, role=g.role, cores=g.cores,
                                       memory_mib=int(g.memory_gib * 1024), since=sim.sc.start_epoch)
            for g in sim.spec.groups(NodeRole.CONTROL_PLANE) for i in range(1, g.count + 1)
            if node_name(g.name, i) not in sim.nodes}

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

    def progress(self, node: str | None = None) -> int:
        """Nothing is ever pending outside the simulation: evictions and starts are its events."""
        return 0

    def drain_left(self, node: str) -> int | None:
        """``Sim.drain_left``; None for a worker on its way back (``return_s``), which the simulator keeps draining
        while live already shows it given back."""
        if node in self.sim.nodes and _back_after_return(self.sim.nodes[node], self._returned):
            return None
        return self.sim.drain_left(node)

    @property
    def finished(self) -> bool:
        """The scenario's horizon is reached: ``advance`` moves the clock no further."""
        return self.sim.now >= self.sim.horizon

    def observe(self) -> Observed:
        sim = self.sim
        epoch = sim.sc.start_epoch
        nodes = list(self._control_plane.values())
        # The layout's services on each worker are its DaemonSet pods: a drain leaves them (kubectl drain
        # --ignore-daemonsets) and the broker's NoSchedule taint evicts nothing
        # (kubernetes.io/docs/concepts/scheduling-eviction/taint-and-toleration/), so the simulator's drain never
        # moves them. The live adapter reports them the same way (``cluster.kube.KubeCluster.nodes``).
        daemons = sim.sc.layout.services_cpu_per_node
        startds = []
        for n in sim.nodes.values():
            worker = n.role == NodeRole.WORKER
            k8s_cpu = n.svc_cpu + n.nb_cpu if worker else 0.0
            k8s_mem = n.svc_mem + n.nb_mem if worker else 0
            if n.emptied:
                k8s_cpu, k8s_mem = n.svc_cpu, n.svc_mem  # drained: only the services are left
            # Starting HTCondor, or on its way back (``return_s``): labelled for HTCondor, as live keeps a worker
            # while its node pod is there (``KubeCluster.return_node``), not a drained worker HTCondor could start on.
            nodes.append(Node(name=n.name, group=n.group, role=n.role, cores=n.cores, memory_mib=n.mem,
                              state=_state(n, self._returned), k8s_cores_requested=k8s_cpu,
                              k8s_memory_requested_mib=k8s_mem,
                              since=epoch + n.since, k8s_cores_daemons=min(n.svc_cpu, daemons) if worker else 0.0,
                              drain_stuck=epoch + n.drain_stuck))
            if _starting(n):  # its node pod is listed, its startd not joined yet (``LiveBackend.view``)
                startds.append(Startd(name=n.name, node=n.name, kind=StartdKind.NODE, pool=n.pending_pool or "",
                                      cores=n.cores, memory_mib=n.mem, since=epoch + n.pending_since, ready=False))
        for s in sim.startds.values():
            if _reported(s):
                startds.append(Startd(name=s.name, node=s.node.name, kind=s.kind, pool=s.pool, cores=s.cores,
                                      memory_mib=s.mem, busy_cores=s.cores - s.free_cores,
                                      busy_memory_mib=s.mem - s.free_mem, since=max(0.0, epoch + s.since),
                                      draining=_draining(s), ready=s.ready,
                                      jobs=_jobs(sim, s, epoch) if s.running else ()))
        demand = {}
        vacating = set(vacating_pools(sim.spec))
        jobs, cores, memory = sim.run_jobs, sim.run_cores, sim.run_mem  # as the schedd's job ads: requests
        for pool in sim.pools:
            oldest = min((sim.queues[ac][0].submit for ac in sim.pool_acs[pool] if sim.queues[ac]),
                         default=sim.now)
            demand[pool] = PoolDemand(idle_jobs=sim.idle[pool], idle_cores=sim.idle_cores[pool],
                                      running_jobs=jobs[pool], running_cores=cores[pool],
                                      oldest_idle_seconds=sim.now - oldest,
                                      idle_memory_mib=_idle_memory(sim, pool), running_memory_mib=memory[pool],
                                      newest_submit=epoch + sim.last_submit[pool] if pool in sim.last_submit
                                      else None,
                                      runtimes=tuple(sorted(sim.finished_runtimes[pool])) if pool in vacating
                                      else ())
        spawns = tuple(PendingSpawn(cpu=sim.wl.sessions.cpu[i], memory_mib=sim.wl.sessions.memory_mib[i])
                       for i in sim.nb_pending)
        return Observed(now=epoch + sim.now, nodes=tuple(nodes), startds=tuple(startds), demand=demand,
                        notebook_pending_cores=sum(sp.cpu for sp in spawns), notebook_spawns=spawns,
                        schedule=self._schedule())

    def _schedule(self) -> ObservingSchedule | None:
        """The scenario's visits as a next_visit feed has announced them by now (``prompt.visits.feed``): each
        ``lead_s`` before its start, so the schedule is complete from t = 0 up to now + ``lead_s``; with no lead,
        the whole schedule from t = 0 (a night plan pushed ahead). None without a feed."""
        p = self.sim.sc.prompt
        feed = p.visits.feed if p is not None and p.visits is not None else None
        if p is None or feed is None:
            return None
        epoch = self.sim.sc.start_epoch
        if self._visits is None:
            # Validated once; each observation takes a prefix without validating again.
            self._visits = tuple(Visit(groupId=f"twin-{i:06d}", startTime=epoch + r - feed.duration_s + TAI_MINUS_UTC_S,
                                       duration=feed.duration_s, detectors=p.detectors)
                                 for i, r in enumerate(self.sim.wl.visit_readout))
            self._starts = [v.start for v in self._visits]
        now = epoch + self.sim.now
        if feed.lead_s is None:
            return ObservingSchedule.model_construct(visits=self._visits, complete_from=epoch,
                                                     complete_until=epoch + self.sim.horizon, source="twin night plan")
        until = now + feed.lead_s
        return ObservingSchedule.model_construct(visits=self._visits[:bisect.bisect_right(self._starts, until)],
                                                 complete_from=epoch, complete_until=until,
                                                 source=f"twin next_visit feed, {feed.lead_s:g} s ahead")

    def advertise_calm(self, calm: bool) -> None:
        self.sim.advertise_calm(calm)

    def apply(self, action: Action) -> bool:
        """Carry one BCS action out in the twin; True if the simulator changed something."""
        self._returned = {n for n in self._returned if self.sim.nodes[n].state != NodeState.READY}
        if not changes(action, SimWorld(self.sim, self._returned, self._control_plane)):
            return False
        moves = sum(self.sim.counters.moves.values())
        _carry_out(self.sim, action)
        match action:
            case ReturnNode(node=node):
                self._returned.add(node)
            case DrainNode(node=node) | StartHTCondor(node=node):
                self._returned.discard(node)
        # A pod the node has no room for is not created (the simulator counts it as unschedulable).
        changed = sum(self.sim.counters.moves.values()) > moves
        if changed:
            self.applied.append(action)
        return changed


def _carry_out(sim: Sim, action: Action) -> None:
    match action:
        case Relabel():
            sim.relabel(action.startd, action.to_pool, action.vacate_after_seconds)
        case DeployPods():
            sim.deploy_pods(action.node, action.pool, action.pods, action.cores_per_pod, action.memory_mib_per_pod)
        case DeletePods():
            sim.delete_pods(action.pods)
        case DrainNode():
            sim.drain_node(action.node)
        case StartHTCondor():
            sim.start_htcondor(action.node, action.pool)
        case ReturnNode():
            sim.return_node(action.node, action.drain_stuck)
        case DrainStartd():
            sim.drain_startd(action.startd, action.vacate_after_seconds)


def _conforms(twin: TwinBackend) -> Backend:
    """mypy proves here that TwinBackend satisfies the broker's Backend protocol."""
    return twin
