"""The simulated enclave: nodes, Kubernetes pods, HTCondor partitionable slots, jobs and notebooks.

State changes only through the event loop (``run``/``run_until``) and through the BCS operations
(``relabel``, ``deploy_pods``, ``delete_pods``, ``drain_node``, ``start_htcondor``, ``return_node``,
``drain_startd``) that ``TwinBackend.apply`` calls. Speed comes from aggregation: jobs arrive in blocks
(a visit's detectors, a DRP submit), queue per autocluster as id ranges with pre-drawn runtimes, match
through a cached ClassAd verdict per (autocluster, slot signature), and are counted per pool; only a
running job has its own record and end event.
"""

from __future__ import annotations

import gc
import heapq
import math
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any, Protocol

from enclave.batch.policy import pool_submit_hosts
from enclave.batch.render import PRE_JOB_RANK_CORE_WEIGHT, pod_grace_seconds, retirement_ends
from enclave.domain.capacity import NodeState, StartdKind
from enclave.errors import IntegrityError, InvalidTransition, NotFound
from enclave.spec.models import NodeRole, node_name
from enclave.twin.engine import EventQueue
from enclave.twin.match import Matcher, Signature
from enclave.twin.room import Room
from enclave.twin.scenario import FOREVER_S, Loaded, Matching, MemoryPolicy, Reschedule
from enclave.twin.worklife import clock_worklife
from enclave.twin.workloads import Arrival, AutoCluster, Failure, Workload, build, quantize_mib

(EV_END, EV_BLOCK, EV_NB_ARRIVE, EV_NB_END, EV_NB_TIMEOUT, EV_POD_READY, EV_FAIL, EV_REPAIR, EV_DRAIN_DONE,
 EV_HTC_READY, EV_RETURN_DONE, EV_VACATE, EV_TICK, EV_SAMPLE, EV_NEGOTIATE, EV_TURN_END, EV_RELEASE,
 EV_CALL, EV_VACATE_JOBS, EV_SCHEDD) = range(20)
"""EV_TURN_END: a submitter's turn in the negotiation cycle ends, payload its index in ``Sim._turns`` (the
last turn's end is the cycle's). EV_CALL: a model outside the engine (enclave.twin.service_prompt) runs its own
events; the payload is a zero-argument callable. EV_SCHEDD: a schedd's timeout (``Sim._schedd_timeout``),
payload (schedd, generation)."""

EV_INPUT = 64
"""The next scheduled input (an arrival, a notebook spawn, a failure): payload its index in ``Sim._inputs``."""
EV_NODE_FREE = 65
"""A draining node's evicted notebook pods are past their termination grace: (node, drain number)."""

QUEUED, RUNNING, DONE, HELD, ENDED = 0, 1, 2, 3, 4
"""A job's state; HELD: killed over its memory limit (``_oom_kill``), waiting for its release or held for good;
ENDED: removed or held by its owner's account transition (``end_jobs``), never to run again."""
WORKER_IMAGE = "htcondor-worker"
"""The image of every HTCondor worker pod (one image: the node caches it after the first pull)."""
RUNTIME_HISTORY = 2000
"""Finished runtimes kept per pool (``Sim.finished_runtimes``): the broker's sample of the schedds' history."""


class SimNode:
    __slots__ = ("name", "group", "role", "cores", "mem", "state", "since", "svc_cpu", "svc_mem", "nb_cpu",
                 "nb_mem", "pods", "startd", "notebooks", "drained", "pending_pool", "unserving_since",
                 "standalone_pool", "images", "index", "evicting", "free_at", "drains", "terminating",
                 "drain_stuck", "pending_since")

    def __init__(self, name: str, group: str, role: NodeRole, cores: int, mem: int, index: int = 0) -> None:
        self.name = name
        self.index = index
        """Its place in the spec's node order (``Sim.room`` and placement ties go by it)."""
        self.group = group
        self.role = role
        self.cores = cores
        self.mem = mem
        self.state = NodeState.READY
        self.since = 0.0
        self.svc_cpu = 0.0
        self.svc_mem = 0
        self.nb_cpu = 0.0
        self.nb_mem = 0
        self.pods: dict[str, SimStartd] = {}
        self.startd: SimStartd | None = None
        """The bare-metal startd: standalone (batch-only node) or BCS 5 (drained worker)."""
        self.notebooks: set[int] = set()
        self.drained = False
        self.pending_pool: str | None = None
        self.pending_since = 0.0
        """When HTCondor was started on it (``pending_pool``): its node pod's creation, as live lists it."""
        self.unserving_since: float | None = None
        self.standalone_pool: str | None = None
        """The label a batch-only node's rendered config gives its standalone startd, the one it serves whenever
        HTCondor starts there (the layout at setup, and after a repair): a relabel is runtime configuration."""
        self.images: dict[str, float] = {}
        """Image → when it is (or will be) on the node's disk: pulled once, kept across pods and failures."""
        self.evicting = False
        """A drain has sent its evictions: the node is drained once its pods are gone and ``free_at`` is past."""
        self.free_at = 0.0
        self.drains = 0
        """DrainNode count: events of an earlier drain (or one a failure cut short) are recognised as stale."""
        self.terminating = 0
        """Notebook pods the drain's evictions ended, holding the node until ``free_at`` (``Sim.drain_left``)."""
        self.drain_stuck = -math.inf
        """When a drain of it was last given up unfinished (``ReturnNode.drain_stuck``)."""

    @property
    def emptied(self) -> bool:
        """Given to HTCondor, or drained (its evicted pods all gone): only its services are left on it."""
        return self.state == NodeState.HTCONDOR or (self.state == NodeState.DRAINING and self.drained)

    @property
    def pod_cpu(self) -> int:
        return sum(p.cores for p in self.pods.values())

    @property
    def pod_mem(self) -> int:
        return sum(p.mem for p in self.pods.values())

    def schedulable(self) -> bool:
        return self.role == NodeRole.WORKER and self.state == NodeState.READY

    def k8s_free(self) -> tuple[float, int]:
        """CPU and memory Kubernetes may still schedule here (requests), or nothing if not schedulable."""
        if self.role != NodeRole.WORKER or self.state != NodeState.READY:
            return 0.0, 0
        return (self.cores - self.svc_cpu - self.nb_cpu - self.pod_cpu,
                self.mem - self.svc_mem - self.nb_mem - self.pod_mem)


class SimStartd:
    __slots__ = ("name", "node", "kind", "pool", "cores", "mem", "free_cores", "free_mem", "since", "ready",
                 "accepting", "running", "sig", "removing", "dom_t", "due", "deadlines")

    def __init__(self, name: str, node: SimNode, kind: StartdKind, pool: str, cores: int, mem: int,
                 now: float) -> None:
        self.name = name
        self.node = node
        self.kind = kind
        self.pool = pool
        self.cores = cores
        self.mem = mem
        self.free_cores = cores
        self.free_mem = mem
        self.since = now
        self.ready = False
        self.accepting = False
        self.running: set[int] = set()
        self.sig: Signature = (pool, kind.value, cores, mem)
        self.removing: str | None = None
        """Why it accepts no new work: 'delete' (pod), 'return' (BCS 5 reverse), 'drain' (DrainStartd)."""
        self.dom_t = now
        """Since when its claimed share has been what it is now (for dominant-resource utilization)."""
        self.due: float | None = None
        """The deadline of the broker's drain (DrainStartd with a grace): its retirement holds every job until it.
        A relabel that ends the drain clears it (``Sim.relabel``)."""
        self.deadlines: dict[str, float] = {}
        """Pool → the deadline the latest relabel from that pool set (``Relabel.vacate_after_seconds``): its jobs
        still here then are evicted, unless the startd serves that pool again (the rendered PREEMPT,
        ``enclave.batch.policy.vacate_expr``: the slot's entry per pool, and "a startd never evicts a job of the
        pool it serves"). A relabel from that pool without a deadline clears it."""

    def dominant_cores(self) -> float:
        """Cores this partitionable slot counts as used: all of them once ANY resource is fully claimed, as
        HTCondor sees it (a slot with its memory claimed runs nothing more, however many cores are idle)."""
        return max((self.cores - self.free_cores) / self.cores, (self.mem - self.free_mem) / self.mem) * self.cores


class Block:
    """Queued jobs with consecutive ids and their pre-drawn runtimes; ``pos`` jobs already left. ``oom``: some
    job of the block peaks above its first request (``Sim.peak_over``), so starts must check the limit. ``again``:
    its jobs started before (evicted, or retried after a memory kill): a job's wait is submit to its first start,
    counted once (``Sim.waits``; review, stop 53: a restart counted a second wait)."""

    __slots__ = ("first", "n", "pos", "runtimes", "submit", "visit", "oom", "again")

    def __init__(self, first: int, runtimes: list[float], submit: float, visit: int, oom: bool = False,
                 again: bool = False) -> None:
        self.first = first
        self.n = len(runtimes)
        self.pos = 0
        self.runtimes = runtimes
        self.submit = submit
        self.visit = visit
        self.oom = oom
        self.again = again


@dataclass
class Sample:
    t: float
    capacity: dict[str, int]
    busy: dict[str, int]
    idle: dict[str, int]
    notebooks: int
    notebook_cpu: float
    notebook_pending: int


@dataclass
class Counters:
    moves: dict[str, int] = field(default_factory=dict)
    downtime_node_s: float = 0.0
    failed_node_s: float = 0.0
    evicted_jobs: int = 0
    wasted_core_s: float = 0.0
    nb_requested: int = 0
    nb_placed: int = 0
    nb_refused: int = 0
    nb_evicted: int = 0
    nb_waits: list[float] = field(default_factory=list)
    pods_unschedulable: int = 0
    failures: int = 0
    jobs_removed: int = 0
    jobs_held: int = 0
    nb_stopped: int = 0
    """Jobs and notebook servers an account transition ended (``end_jobs``, ``stop_notebooks``)."""
    oom_kills: int = 0
    oom_retries: int = 0
    oom_held: int = 0
    oom_wasted_core_s: float = 0.0
    preempted_jobs: int = 0
    """Jobs a policy's preemption evicted (``Sim.preempt``; also counted in ``evicted_jobs``)."""
    preempted_core_s: float = 0.0
    """Core-seconds those jobs had run and lost (they restart from zero: no checkpointing)."""


class Policy(Protocol):
    """What the simulator asks of a capacity policy (``enclave.twin.policies`` has the ones it compares)."""

    @property
    def name(self) -> str: ...

    @property
    def limited(self) -> bool:
        """Whether ``admit`` may refuse; if not, the engine skips the call in its hot loop."""
        ...

    @property
    def claims_limited(self) -> bool:
        """Whether a claim's reuse for the next job needs ``admit`` too (Kueue admits every job); HTCondor's schedd
        reuses a claim without the negotiator, so group quotas do not limit it."""
        ...

    @property
    def rejected(self) -> list[str] | None:
        """Actions a backend refused; None: the policy takes no actions."""
        ...

    def setup(self, sim: Sim) -> None:
        """Lay capacity out at time 0."""

    def order(self, sim: Sim, pools: list[str]) -> list[str]:
        """Negotiation order among ``pools`` (those with idle jobs, given by priority)."""
        ...

    def admit(self, sim: Sim, pool: str) -> int:
        """How many more cores ``pool`` may claim now."""
        ...

    def cycle_start(self, sim: Sim) -> None:
        """A negotiation cycle begins: the submitter ads are read (group quotas allocate from them)."""

    def headroom(self, sim: Sim, pool: str) -> float:
        """What ``pool`` may still claim, in the units ``job_weight`` counts (``admit``'s cores by default)."""
        ...

    def submitter_request(self, sim: Sim, pool: str) -> float:
        """What ``pool``'s submitter ad would ask for if its schedd counted its jobs now: WeightedRunningJobs plus
        WeightedIdleJobs (``Sim.ad_requested`` keeps the count its last ad sent)."""
        ...

    def job_weight(self, sim: Sim, ac: int) -> float:
        """What one job of autocluster ``ac`` counts against ``headroom`` (its cores by default)."""
        ...

    def next_round(self, sim: Sim) -> bool:
        """The cycle's turns are over: whether the submitters negotiate again in the same cycle (group quotas'
        allocation rounds)."""
        ...

    @property
    def charges_slots(self) -> bool:
        """Whether a match is charged its partitionable slot's whole weight (group quotas: ``Sim._claim_slot``)
        rather than its job's."""
        ...

    def slot_weight(self, sim: Sim, cores: int, mem: int) -> float:
        """SLOT_WEIGHT of a slot ad with ``cores`` and ``mem`` MiB (a partitionable slot's: its unclaimed ones)."""
        ...

    def charge(self, sim: Sim, pool: str, extra: float) -> None:
        """The negotiator charged ``pool`` ``extra`` more than its new jobs weigh (until the next cycle)."""

    def negotiates(self, sim: Sim, pool: str) -> bool:
        """Whether ``pool``'s submitter gets a turn in this round (a group allocated nothing does not)."""
        ...

    def tick(self, sim: Sim) -> float | None:
        """Periodic work; returns the seconds to the next tick, or None for no more ticks."""
        ...

    def on_repair(self, sim: Sim, node: SimNode) -> None:
        """A failed node is back."""


class Sim:
    mem_limit: int
    """memoryLimit in MiB: no retry requests more (``scenario.Memory.limit_gib``, or the largest slot)."""

    def __init__(self, loaded: Loaded, policy: Policy, *, audit: bool = False,
                 workload: Workload | None = None) -> None:
        self.loaded = loaded
        self.sc = loaded.scenario
        self.spec = loaded.spec
        self.policy = policy
        self.audit = audit
        self.now = 0.0
        self.horizon = self.sc.duration_s
        self.q = EventQueue()
        self.wl = workload if workload is not None else build(self.sc, self.spec)
        self.acs = list(self.wl.acs)  # a copy: retries add autoclusters, and a workload may be shared by runs
        self.matcher = Matcher(self.spec, self.acs)
        self.pools = list(self.spec.pools)
        self.by_priority = sorted(self.pools, key=lambda p: -self.spec.pools[p].priority)
        self.pool_acs: dict[str, list[int]] = {p: [a.index for a in self.acs if a.pool == p] for p in self.pools}
        self._sig_acs: dict[Signature, dict[str, list[int]]] = {}
        self.queues: list[deque[Block]] = [deque() for _ in self.acs]
        self.state = bytearray()
        self.running: dict[int, tuple[SimStartd, float, int, float, int, float, float, float]] = {}
        """Job id → (slot, end, autocluster, submit, visit, runtime, matched at, claimed at)."""
        z = dict.fromkeys(self.pools, 0)
        self.idle = dict(z)
        self.busy = dict(z)
        n_ac = len(self.acs)
        self.run_ac = [0] * n_ac
        self.done_ac = [0] * n_ac
        self.rt_ac = [0.0] * n_ac
        """Per autocluster: running jobs, finished jobs, runtime finished (s). Lists beat dicts in the hot
        loop; the per-pool views (run_jobs, done, core_s, mem_s) are summed from them on demand."""
        self.idle_cores = dict(z)
        self.cap = dict(z)
        self.total_mem = 0
        self.mem_cap_s = 0.0
        self.cap_core_s: dict[str, float] = {}
        self._cap_t = 0.0
        self.shared_cap = 0
        self.total_cap = 0
        self.n_idle = 0
        self.shared_cap_core_s = 0.0
        self.dom_pool_s: dict[str, float] = {}
        """Per pool label, the integral of its slots' dominant-resource cores (``SimStartd.dominant_cores``) up to
        each slot's ``dom_t``: a slot counts under the pool it is labelled for, as its capacity does."""
        self.waits: dict[str, list[float]] = {p: [] for p in self.pools}
        """Pool → submit to first start of each job that started, start-up included (a restart adds none)."""
        self.restart_waits: dict[str, list[float]] = {p: [] for p in self.pools}
        """Pool → submit to start of each restart (after an eviction or a memory kill), start-up included."""
        self.submitted = dict(z)
        self.last_submit: dict[str, float] = {}
        self.finished_runtimes: dict[str, deque[float]] = {p: deque(maxlen=RUNTIME_HISTORY) for p in self.pools}
        """How long each pool's most recently finished jobs held their slot (end − match), newest last: what
        the schedd's history shows (``CompletionDate − JobCurrentStartDate``), never a running job's end."""
        """Simulated time of each pool's newest submission (what the schedd's queue and history tell)."""
        nv = len(self.wl.visit_readout)
        self.visit_left = [self.spec_detectors()] * nv
        self.visit_latency = [math.nan] * nv
        self.visit_min_latency = [0.0] * nv
        self.prompt_latency: list[float] = []
        self.demand_core_s = 0.0
        self.demand_core_s_ac = [0.0] * len(self.acs)
        self.counters = Counters()
        self.samples: list[Sample] = []
        self.nodes: dict[str, SimNode] = {}
        self.node_list: list[SimNode] = []
        """The nodes in the spec's order (``SimNode.index``)."""
        self.room = Room(0)
        """Free Kubernetes requests of the schedulable workers (``_room_changed`` after every change)."""
        self.startds: dict[str, SimStartd] = {}
        self.on_apply: list[Callable[[str], None]] = []
        self.nb_node: dict[int, SimNode] = {}
        self.nb_pending: deque[int] = deque()
        self.nb_peak = 0
        """The most notebook sessions placed at once (``_place_notebook``)."""
        self._nb_main: list[tuple[float, int]] = []
        self._nb_later: list[tuple[float, int, int, Any]] = []
        self.nb_cpu_total = 0.0
        self.nb_core_s = 0.0
        self.nb_dom_total = 0.0
        """Notebook requests in dominant-resource cores: max(CPU, memory x node cores / node memory)."""
        self.nb_dom_s = 0.0
        self._nb_t = 0.0
        nb = self.sc.notebooks
        self.nb_spawn_s = nb.spawn_s if nb is not None else 0.0
        self.nb_timeout_s = nb.spawn_timeout_s if nb is not None else 0.0
        self.divert: Callable[[Arrival], None] | None = None
        """Set by a policy that serves prompt visits outside HTCondor (service_prompt): their arrivals go there."""
        self._setup_htcondor()
        self._setup_memory()
        self._handlers = self._event_handlers()
        self._build_nodes()
        self._schedule_inputs()
        policy.setup(self)
        if self.mem_limit == 0:
            # memoryLimit unset: the largest slot, as ctrl_bps_htcondor detects it from TotalSlotMemory.
            self.mem_limit = max((st.mem for st in self.startds.values()), default=0) or max(
                (n.mem for n in self.nodes.values()), default=0)
        self.counters.moves.clear()  # the initial layout is not a move
        self._touch_cap()

    # ------------------------------------------------------------------ setup

    def _setup_htcondor(self) -> None:
        """The pacing of matches and starts (``scenario.HTCondor``; each default's source is cited there)."""
        h = self.sc.htcondor
        self.htc = h
        self.instant = h.matching == Matching.INSTANT
        self.worklife = 0.0 if self.instant else h.claim_worklife_s
        self.worklives = {p: 0.0 if self.instant else h.pool_claim_worklife_s.get(p, h.claim_worklife_s)
                          for p in self.pools}
        """Pool label -> CLAIM_WORKLIFE of the startds serving it: the startd reads its pool's at each job end
        (``render._pool_worklives``), so a relabelled slot's claim is judged by its new pool's worklife."""
        self.clock_worklives = {} if self.instant else {
            p: clock_worklife(e, FOREVER_S) for p, e in h.pool_claim_worklife_by_clock.items() if p in self.pools}
        """Pool label -> its worklife by the clock or the broker's word (pools.<name>.day_claim_worklife,
        calm_claim_worklife): its entry in ``worklives`` is read again each minute of the clock (``_read_clocks``),
        the finest its edges fall on and the period of the startd cron job that asks for the broker's word."""
        self.calm = False
        """The broker's latest word (``advertise_calm``): whether the latency pools are calm."""
        self.clocks_until = 0.0 if self.clock_worklives else math.inf
        self.startup = 0.0 if self.instant else h.job_startup_s
        self.throttled = not self.instant and h.job_start_delay_s > 0
        self.schedd_of = {p: f"schedd-{p}" if p in h.dedicated_schedds else pool_submit_hosts(self.spec, p)[0]
                          for p in self.pools}
        self.schedd_pools: dict[str, list[str]] = {}
        for p, schedd in self.schedd_of.items():
            self.schedd_pools.setdefault(schedd, []).append(p)
        self.schedd_timeouts = not self.instant and h.reschedule_on_submit != Reschedule.NEVER
        """Whether the schedds' timeouts are modelled: they decide when a schedd asks for a cycle."""
        self._pressure = dict.fromkeys(self.schedd_pools, False)
        """Schedd → ``LastSubmitterPressure > 0``: whether its last timeout that sent submitter ads counted idle
        jobs (schedd.cpp ``Scheduler::timeout``). A submit reads this, not the queue as it is now."""
        self._schedd_need = dict.fromkeys(self.schedd_pools, False)
        """Schedd → ``m_need_reschedule``: it will send RESCHEDULE at its next timeout."""
        self._schedd_ran = dict.fromkeys(self.schedd_pools, 0.0)
        """Schedd → when its last timeout ran (SCHEDD_MIN_INTERVAL counts from it). The first runs as the schedd
        starts, before any submit (schedd_main.cpp ``main_init`` → ``Scheduler::timeout``), and counts nothing."""
        self._schedd_gen = dict.fromkeys(self.schedd_pools, 0)
        self._schedd_at = dict.fromkeys(self.schedd_pools, math.inf)
        """Schedd → when its timeout is armed for."""
        self._advertised = dict.fromkeys(self.pools, False)
        """Submitter (pool) → whether the ad its schedd's last timeout sent shows idle jobs: the negotiator
        negotiates only with submitters whose ad does (matchmaker.cpp ``negotiationTime``: ``num_idle_jobs > 0``;
        ``getSubmitterAds`` ignores those with no requested jobs)."""
        self.ad_requested = dict.fromkeys(self.pools, 0.0)
        """Submitter (pool) → WeightedRunningJobs + WeightedIdleJobs in the ad its schedd's last timeout sent
        (``Policy.submitter_request`` then): what group quotas allocate from, as stale as that ad (GroupEntry.cpp
        ``hgq_prepare_for_matchmaking`` reads the submitter ads from the collector: "The collector info can be a
        bit stale")."""
        self.schedd_reschedules = 0
        """RESCHEDULE commands the schedds sent the negotiator."""
        self.throttle: dict[str, tuple[float, int]] = {}
        """Schedd → (time of its current batch of starts, starts in that batch)."""
        self.cycles = 0
        self.cycle_s = 0.0
        self.reuses = 0
        self.share: dict[int, int] = {}
        """Job id → the autocluster whose request sized the dynamic slot it runs on, for a job that took over a
        claim made for another autocluster (``_successor``); a dynamic slot keeps its size for the claim's life."""
        self.share_s: dict[tuple[int, int], float] = {}
        """(dynamic slot's autocluster, job's autocluster) → seconds that jobs which left their slot ran on a larger
        reused claim than their own request, from their first second (``began``; ``larger_claim_s`` adds the
        running ones): the slots held more than the work asked for, which the clairvoyant bounds and the claimed
        memory count, both over running time."""
        self._cycle_gen = 0
        self._cycle_at = math.inf
        self._in_cycle = False
        self._cycle_started = -math.inf
        self._cycle_done = -math.inf
        self._resched = False
        self._seen: list[int] = []
        """During a cycle: the idle jobs per autocluster the cycle saw when it started, less those matched since
        (a job submitted later waits for the next cycle; the submitter ads are read at the cycle's start)."""
        self._turns: list[tuple[str, float]] = []
        """During a cycle: (pool, when its turn ends) of each submitter with idle jobs at the cycle's start, in
        the negotiation order (``_negotiate``)."""
        self._budget: list[int] | None = None
        """``_seen`` while the cycle's preemption runs (``preempt`` starts no more than the cycle saw)."""
        self._spins = False
        """During a cycle: whether turns go in pie spins under group quotas (``_spin_pie``)."""
        self._min_slot_weight = 0.0
        """During such a cycle: the smallest slot weight it started with (``_smallest_slot_weight``)."""
        self._stale_turned: set[str] = set()
        """During a cycle: the submitters a stale ad has given a turn already (``_add_turns``)."""
        self._offered: set[SimStartd] = set()
        """During a cycle: the startds an earlier turn matched. The negotiator takes a matched slot's ad out of
        the cycle's list (matchmaker.cpp ``negotiate``, "2g. Delete ad from list so that it will not be
        considered again in this negotiation cycle"), and its leftovers go to that match's submitter only
        (CLAIM_PARTITIONABLE_LEFTOVERS, schedd.cpp: the claim's ``MainScheddNegotiate`` for ``match->user``), so
        no later turn of the cycle gets the rest of it. Not under a consumption policy (``_match_pool``)."""

    def _setup_memory(self) -> None:
        """Memory limits and BPS's retry with a larger request (``scenario.Memory``; sources cited there)."""
        m = self.sc.memory
        self.mem_hard = m.policy == MemoryPolicy.HARD
        self.mem_limit = quantize_mib(m.limit_gib * 1024) if m.limit_gib is not None else 0
        self.peak_over: dict[int, float] = {}
        """Job id → peak memory use (MiB) of the jobs that peak above their first request."""
        self.ooms: set[int] = set()
        """Running jobs that will be killed at their (early) end event, not finish."""
        self.kills: dict[int, tuple[int, int]] = {}
        """Job id → (its first autocluster, how often it has been killed)."""
        self.held_jobs: set[int] = set()
        """Jobs held for good: out of retries, or killed at memoryLimit."""
        self._ac_of: dict[tuple[str, int, int, str], int] = {(a.pool, a.cpus, a.memory_mib, a.kind): a.index
                                                           for a in self.acs}

    def spec_detectors(self) -> int:
        return self.sc.prompt.detectors if self.sc.prompt is not None else 0

    def _build_nodes(self) -> None:
        lay = self.sc.layout
        for g in self.spec.cluster.node_groups:
            if g.role == NodeRole.CONTROL_PLANE:
                continue
            for i in range(1, g.count + 1):
                n = SimNode(node_name(g.name, i), g.name, g.role, g.cores, int(g.memory_gib * 1024), len(self.nodes))
                if g.role == NodeRole.WORKER:
                    if self.sc.kubernetes.images_cached_at_start:
                        n.images[WORKER_IMAGE] = -math.inf
                    n.svc_cpu = lay.services_cpu_per_node
                    n.svc_mem = int(lay.services_memory_gib_per_node * 1024)
                self.nodes[n.name] = n
        self.node_list = list(self.nodes.values())
        self.room = Room(len(self.nodes))
        for n in self.node_list:
            self._room_changed(n)

    def _room_changed(self, n: SimNode) -> None:
        """Call after anything that changes what Kubernetes may still place on ``n`` (state, pods, notebooks)."""
        cpu, mem = n.k8s_free()
        self.room.update(n.index, cpu, mem, n.schedulable())

    def _schedule_inputs(self) -> None:
        """Number every input now, in the order it was always numbered, but keep only the next one on the heap:
        the inputs of a large enclave (every notebook spawn of the day) would otherwise make up most of the heap
        and slow every push and pop. Events are still taken in (time, number) order, so nothing changes."""
        seq = self.q._seq
        inputs: list[tuple[float, int, int, Any]] = [(a.t, next(seq), EV_BLOCK, a) for a in self.wl.arrivals]
        inputs += [(t, next(seq), EV_NB_ARRIVE, i) for i, t in enumerate(self.wl.sessions.t)]
        inputs += [(f.t, next(seq), EV_FAIL, f) for f in self.wl.failures]
        inputs.sort(key=lambda e: (e[0], e[1]))
        self._inputs = inputs
        self._feed(0)
        push = self.q.push
        push(0.0, EV_SAMPLE, None)
        push(0.0, EV_TICK, None)
        if not self.instant:
            self._schedule_cycle(0.0)  # the negotiator registers its timer to fire at once (matchmaker.cpp)
        if self.schedd_timeouts:
            for schedd in self.schedd_pools:  # its start-up timeout ran at 0 (``_schedd_ran``); the next is periodic
                self._arm_schedd(schedd, self.htc.schedd_interval_s)

    # ------------------------------------------------------------ capacity

    def _touch_cap(self) -> None:
        """Integrate labelled capacity up to now; call before any change to ``cap``."""
        dt = self.now - self._cap_t
        if dt > 0:
            for p, c in self.cap.items():
                self.cap_core_s[p] = self.cap_core_s.get(p, 0.0) + c * dt
            self.shared_cap_core_s += self.shared_cap * dt
            self.mem_cap_s += self.total_mem * dt
        self._cap_t = self.now

    def _cap_add(self, s: SimStartd, sign: int) -> None:
        self._touch_cap()
        if s.pool in self.cap:
            self.cap[s.pool] += sign * s.cores
        else:
            self.shared_cap += sign * s.cores
        self.total_cap += sign * s.cores
        self.total_mem += sign * s.mem

    def add_startd(self, node: SimNode, kind: StartdKind, pool: str, cores: int, mem: int, name: str,
                   ready_at: float | None = None) -> SimStartd:
        s = SimStartd(name, node, kind, pool, cores, mem, self.now)
        self.startds[name] = s
        self.dom_pool_s.setdefault(pool, 0.0)
        if kind == StartdKind.POD:
            node.pods[name] = s
            self._room_changed(node)
        else:
            node.startd = s
            if kind == StartdKind.STANDALONE and node.standalone_pool is None:
                node.standalone_pool = pool  # the layout's: what the node's rendered config says
        if ready_at is None:
            self._ready(s)
        else:
            self.q.push(ready_at, EV_POD_READY, s)
        return s

    def _ready(self, s: SimStartd) -> None:
        if self.startds.get(s.name) is not s or s.ready:
            return
        s.ready = True
        s.accepting = s.removing is None
        self._cap_add(s, +1)
        if self.instant:
            self.fill_startd(s)  # else the slot waits for the next negotiation cycle

    def _remove_startd(self, s: SimStartd) -> None:
        if self.startds.get(s.name) is not s:
            return
        s.accepting = False  # else the evicted jobs would be matched straight back onto this slot
        self._evict(s)
        if s.ready:
            self._cap_add(s, -1)
        del self.startds[s.name]
        s.ready = s.accepting = False
        if s.kind == StartdKind.POD:
            s.node.pods.pop(s.name, None)
            self._room_changed(s.node)
            if s.node.evicting:
                self._check_drained(s.node)
            self._retry_notebooks()
        elif s.node.startd is s:
            s.node.startd = None

    # ------------------------------------------------------------ matchmaking

    def fill_startd(self, s: SimStartd) -> None:
        """Start queued jobs on a slot with room, pools in the policy's negotiation order (instant matching)."""
        if not self.n_idle or not s.accepting or s.free_cores <= 0:
            return
        table = self._sig_acs.get(s.sig)
        if table is None:
            table = self._sig_table(s.sig)
        idle = self.idle
        pools = [p for p in table if idle[p]]
        if not pools:
            return
        if len(pools) > 1:
            pools = self.policy.order(self, pools)
        queues = self.queues
        acs = self.acs
        limited = self.policy.limited
        weight = self.policy.job_weight
        for pool in pools:
            allowed = self.policy.headroom(self, pool) if limited else 1 << 40
            if allowed <= 0:
                continue
            for ac in table[pool]:
                if not queues[ac]:
                    continue
                a = acs[ac]
                if s.free_cores < a.cpus or s.free_mem < a.memory_mib:
                    continue
                w = weight(self, ac) if limited else a.cpus
                k = min(s.free_cores // a.cpus, s.free_mem // a.memory_mib, int(allowed // w))
                if k > 0:
                    allowed -= self._start(ac, s, k) * w
                if s.free_cores <= 0:
                    return
                if allowed <= 0:
                    break

    def _fill_for(self, s: SimStartd, pool: str, budget: list[int]) -> int:
        """``fill_startd`` for one submitter's turn: ``pool``'s jobs within the cycle's ``budget`` and the policy's
        ``headroom``; returns the jobs started."""
        mine = self._runnable(s, pool)
        if mine is None:
            return 0
        limited = self.policy.limited
        allowed = self.policy.headroom(self, pool) if limited else 1 << 40
        queues = self.queues
        acs = self.acs
        total = 0
        for ac in mine:
            if allowed <= 0:
                break
            if not queues[ac] or not budget[ac]:
                continue
            a = acs[ac]
            w = self.policy.job_weight(self, ac) if limited else a.cpus
            k = min(s.free_cores // a.cpus, s.free_mem // a.memory_mib, int(allowed // w), budget[ac])
            if k > 0:
                started = self._start(ac, s, k)
                budget[ac] -= started
                allowed -= started * w
                total += started
                if s.free_cores <= 0:
                    break
        return total

    def _consume_slot(self, s: SimStartd, pool: str, budget: list[int], first: bool) -> int:
        """``pool``'s matches on partitionable slot ``s`` under group quotas and a consumption policy. Each costs
        "the difference in the slot weight expression before and after the resources consumed by the match are
        deducted from the slot" (HTCondor manual, startd configuration: SLOT_WEIGHT; consumption_policy.cpp
        ``cp_deduct_assets``), which the accountant charges for the rest of the cycle (Accountant.cpp ``AddMatch``:
        "using match cost for slot weight"); with a memory-aware SLOT_WEIGHT that is less than the job's own weight
        where the slot has cores to spare. The first match of a pie spin may go over the limit
        (``SubmitterLimitPermits``). Returns the jobs started, or -1 at the limit."""
        policy = self.policy
        allowed = policy.headroom(self, pool)
        if allowed <= 0:
            return -1
        mine = self._runnable(s, pool)
        if mine is None:
            return 0
        queues = self.queues
        acs = self.acs
        total = 0
        for ac in mine:
            if allowed <= 0:
                break
            if not queues[ac] or not budget[ac]:
                continue
            a = acs[ac]
            k = self._affordable(s, a.cpus, a.memory_mib, budget[ac], allowed, first and not total)
            if k > 0:
                before = policy.slot_weight(self, s.free_cores, s.free_mem)
                started = self._start(ac, s, k)
                budget[ac] -= started
                cost = before - policy.slot_weight(self, s.free_cores, s.free_mem)
                policy.charge(self, pool, cost - started * policy.job_weight(self, ac))
                allowed -= cost
                total += started
                if s.free_cores <= 0:
                    break
        return total

    def _affordable(self, s: SimStartd, cpus: int, mem: int, most: int, allowed: float, round_up: bool) -> int:
        """How many jobs of ``cpus`` and ``mem`` MiB (at most ``most``) ``s`` takes within ``allowed`` at
        ``_consume_slot``'s cost; ``round_up``: the first may cost more than ``allowed``."""
        weight = self.policy.slot_weight
        cores, memory = s.free_cores, s.free_mem
        before = weight(self, cores, memory)
        k, cost = 0, 0.0
        while k < most and cores >= cpus and memory >= mem:
            cores -= cpus
            memory -= mem
            after = weight(self, cores, memory)
            if cost + before - after > allowed and not (round_up and k == 0):
                break
            cost += before - after
            before = after
            k += 1
        return k

    def _runnable(self, s: SimStartd, pool: str) -> list[int] | None:
        """``pool``'s autoclusters that slots of ``s``'s signature may run, or None."""
        table = self._sig_acs.get(s.sig)
        if table is None:
            table = self._sig_table(s.sig)
        return table.get(pool)

    def _sig_table(self, sig: Signature) -> dict[str, list[int]]:
        """The autoclusters each pool may run on slots of this signature (pools by priority), cached."""
        table: dict[str, list[int]] = {}
        for p in self.by_priority:
            matching = [ac for ac in self.pool_acs[p] if self.matcher.matches(ac, sig)]
            if matching:
                table[p] = matching
        self._sig_acs[sig] = table
        return table

    def _fill_from_ac(self, ac: int) -> None:
        """Place queued jobs of one autocluster on any matching slot with room (after an arrival), in the
        negotiator's order (``_candidates``)."""
        a = self.acs[ac]
        q = self.queues[ac]
        matches = self.matcher.matches
        for s in self._candidates(a.pool, a.cpus, a.memory_mib):
            if not q:
                return
            if s.accepting and s.free_cores >= a.cpus and s.free_mem >= a.memory_mib and matches(ac, s.sig):
                allowed = int(self.policy.headroom(self, a.pool) // self.policy.job_weight(self, ac))
                if allowed < 1:
                    return
                self._start(ac, s, min(s.free_cores // a.cpus, s.free_mem // a.memory_mib, allowed))

    def _start(self, ac: int, s: SimStartd, k: int, claim: float | None = None) -> int:
        """Start ``k`` queued jobs of ``ac`` on ``s``: on a new claim, or on ``claim`` (made then) reused."""
        q = self.queues[ac]
        a = self.acs[ac]
        t = self.now
        eq = self.q
        seq = eq._seq
        due_s = eq.due_s
        buckets = eq.buckets
        running = self.running
        state = self.state
        sr = s.running
        waits = self.waits[a.pool]
        claimed = t if claim is None else claim
        begin = t + self.startup
        schedd = self.schedd_of[a.pool] if self.throttled else ""
        limit = a.memory_mib
        started = 0
        while q and started < k:
            b = q[0]
            take = min(b.n - b.pos, k - started)
            first = b.first + b.pos
            rts = b.runtimes
            pos = b.pos
            submit = b.submit
            visit = b.visit
            over = self.peak_over if b.oom and self.mem_hard else None
            first_start = not b.again
            for i in range(take):
                jid = first + i
                rt = rts[pos + i]
                if schedd:
                    begin = self._throttled_start(schedd) + self.startup
                    (waits if first_start else self.restart_waits[a.pool]).append(begin - submit)
                end = begin + rt
                if over is not None:
                    end = self._oom_end(jid, begin, rt, limit)
                running[jid] = (s, end, ac, submit, visit, rt, t, claimed)
                state[jid] = RUNNING
                sr.add(jid)
                e = (end, next(seq), EV_END, jid)
                sec = int(end)  # EventQueue.put, inline (a job's end is finite)
                if sec <= due_s:
                    eq.insert_due(e)
                elif (events := buckets.get(sec)) is None:
                    buckets[sec] = [e]
                    heapq.heappush(eq.seconds, sec)
                else:
                    events.append(e)
            if not schedd:
                (waits if first_start else self.restart_waits[a.pool]).extend([begin - submit] * take)
            b.pos += take
            if b.pos == b.n:
                q.popleft()
            started += take
        cpus = started * a.cpus
        self.dom_pool_s[s.pool] += s.dominant_cores() * (t - s.dom_t)
        s.dom_t = t
        s.free_cores -= cpus
        s.free_mem -= started * a.memory_mib
        self.idle[a.pool] -= started
        self.idle_cores[a.pool] -= cpus
        self.run_ac[ac] += started
        self.n_idle -= started
        self.busy[a.pool] += cpus
        return started

    def _throttled_start(self, schedd: str) -> float:
        """When the schedd may start one more job: JOB_START_COUNT starts, then JOB_START_DELAY seconds, then
        the next batch (``scenario.HTCondor``)."""
        t = self.now
        bt, used = self.throttle.get(schedd, (-math.inf, 0))
        if t >= bt + self.htc.job_start_delay_s:
            bt, used = t, 0
        elif used >= self.htc.job_start_count:
            bt, used = bt + self.htc.job_start_delay_s, 0
        self.throttle[schedd] = (bt, used + 1)
        return max(bt, t)

    def worklife_at(self, pool: str, t: float) -> float:
        """CLAIM_WORKLIFE a startd serving ``pool`` reads at twin time ``t``, with the broker's word now."""
        clock = self.clock_worklives.get(pool)
        if clock is None:
            return self.worklives.get(pool, self.worklife)
        return clock.at(self.sc.start_epoch + t, self.calm)

    def advertise_calm(self, calm: bool) -> None:
        """The broker advertises its word (``render.calm_cron``); each startd's cron job reads it at the next
        minute (``_read_clocks``). The twin's startds all ask at the whole minute, and the collector always
        answers: the word never goes stale while the broker runs."""
        self.calm = calm

    def _read_clocks(self, t: float) -> None:
        """``worklives`` of the pools whose worklife follows the clock or the broker's word, for the minute of
        twin time ``t``; the next job end after that minute reads them again. Once a minute, not at every job end:
        the hot loop keeps its plain dictionary look-up."""
        minute = math.floor((self.sc.start_epoch + t) / 60.0) * 60.0
        for pool, clock in self.clock_worklives.items():
            self.worklives[pool] = clock.at(minute, self.calm)
        self.clocks_until = minute + 60.0 - self.sc.start_epoch

    def _reuse_claim(self, ac: int, s: SimStartd, claim: float) -> None:
        """Claim reuse where a claim's next job needs ``admit`` (``Policy.claims_limited``: Kueue admits every
        job): the slot's share is freed and the next idle job of the same autocluster, if admitted, takes it,
        without a negotiation cycle, while the claim is younger than CLAIM_WORKLIFE. HTCondor's own reuse is
        ``_handoff``."""
        a = self.acs[ac]
        if self.policy.limited and self.policy.claims_limited and self.policy.admit(self, a.pool) < a.cpus:
            return
        if self.matcher.matches(ac, s.sig):  # a relabelled slot no longer serves the claim's owner
            self.reuses += 1
            self._start(ac, s, 1, claim)

    def slot_ac(self, jid: int, ac: int) -> int:
        """The autocluster whose request sized the dynamic slot running job ``jid`` (of autocluster ``ac``) holds:
        its own, or that of the job the claim was made for (``share``)."""
        return self.share.get(jid, ac)

    def _leave_claim(self, jid: int, rec: tuple[SimStartd, float, int, float, int, float, float, float]) -> int:
        """``slot_ac`` of running job ``jid`` (its record ``rec``), which is leaving its slot; a job on a larger
        claim than its own request books its running time there (``share_s``) and leaves ``share``."""
        ac = rec[2]
        slot_ac = self.share.get(jid, ac)
        if slot_ac != ac:
            key = (slot_ac, ac)
            self.share_s[key] = self.share_s.get(key, 0.0) + max(0.0, self.now - self.began(jid, rec))
            del self.share[jid]
        return slot_ac

    def larger_claim_s(self) -> dict[tuple[int, int], float]:
        """``share_s`` with the jobs still running on a larger claim, up to now."""
        out = dict(self.share_s)
        for j, slot in self.share.items():
            rec = self.running[j]
            key = (slot, rec[2])
            out[key] = out.get(key, 0.0) + max(0.0, self.now - self.began(j, rec))
        return out

    def _successor(self, slot_ac: int, s: SimStartd) -> int:
        """The autocluster of the job the schedd runs next on a claim whose job just ended, or -1: the
        submitter's first idle job in the schedd's order (job priority, then cluster.proc: the twin's job ids)
        that the claimed dynamic slot matches, of any of its autoclusters, not only the ended job's
        (htcondor/htcondor 7491a14, schedd.cpp ``Scheduler::FindRunnableJobForClaim`` calls qmgmt.cpp
        ``FindRunnableJob`` with the claim's user; it walks ``PrioRec``, sorted by ``prio_compar``, and takes the
        first job ``IsAMatch`` with the slot's ad). The dynamic slot has its first job's cores and memory, so only
        a request within them matches. Each autocluster's queue head stands for its oldest job (``_evict`` and
        ``_release`` keep it so, but for jobs of several slots evicted in turn)."""
        sa = self.acs[slot_ac]
        pool = sa.pool
        if not self.idle[pool]:
            return -1
        queues = self.queues
        matches = self.matcher.matches
        sig = s.sig
        candidates = self.pool_acs[pool]
        if len(candidates) == 1:
            return slot_ac if queues[slot_ac] and matches(slot_ac, sig) else -1
        acs = self.acs
        best, oldest = -1, math.inf
        for c in candidates:
            q = queues[c]
            if q and (b := q[0]).first + b.pos < oldest:
                a = acs[c]
                if a.cpus <= sa.cpus and a.memory_mib <= sa.memory_mib and matches(c, sig):
                    best, oldest = c, b.first + b.pos
        return best

    def _handoff(self, ac: int, s: SimStartd, claim: float, slot_ac: int, ended_ac: int) -> None:
        """The schedd runs the next job, of ``ac`` (``_successor``), on the claim whose job of ``ended_ac`` just
        ended on ``s``: the dynamic slot (sized for ``slot_ac``), the pool's busy cores and the pool's running
        count stay as they are; the next queued job takes over (the single-job form of ``_start``)."""
        a = self.acs[ac]
        if ac != ended_ac:
            self.run_ac[ended_ac] -= 1
            self.run_ac[ac] += 1
        q = self.queues[ac]
        b = q[0]
        jid = b.first + b.pos
        rt = b.runtimes[b.pos]
        b.pos += 1
        if b.pos == b.n:
            q.popleft()
        if ac != slot_ac:
            self.share[jid] = slot_ac
        t = self.now
        begin = (self._throttled_start(self.schedd_of[a.pool]) if self.throttled else t) + self.startup
        # The starter's cgroup limit is the dynamic slot's memory, not the job's request.
        end = self._oom_end(jid, begin, rt, self.acs[slot_ac].memory_mib) if b.oom and self.mem_hard \
            else begin + rt
        self.running[jid] = (s, end, ac, b.submit, b.visit, rt, t, claim)
        self.state[jid] = RUNNING
        s.running.add(jid)
        eq = self.q
        e = (end, next(eq._seq), EV_END, jid)
        sec = int(end)  # EventQueue.put, inline (a job's end is finite)
        if sec <= eq.due_s:
            eq.insert_due(e)
        elif (events := eq.buckets.get(sec)) is None:
            eq.buckets[sec] = [e]
            heapq.heappush(eq.seconds, sec)
        else:
            events.append(e)
        (self.restart_waits if b.again else self.waits)[a.pool].append(begin - b.submit)
        self.idle[a.pool] -= 1
        self.idle_cores[a.pool] -= a.cpus
        self.n_idle -= 1
        self.reuses += 1
        if self._in_cycle and ac < len(self._seen) and self._seen[ac] > 0:
            # The queue's oldest job, one the cycle saw: the cycle has one fewer to match, so a job submitted since
            # it began does not take its place (review, stop 53).
            self._seen[ac] -= 1

    # ------------------------------------------------------------ memory: kills and retries

    def _oom_end(self, jid: int, begin: float, rt: float, limit: int) -> float:
        """When a job starting at ``begin`` ends: at ``begin + rt``, or, if its peak use exceeds the hard limit
        (its dynamic slot's memory: its quantized request, or a reused claim's), when its use crosses the limit.
        Use is modelled as rising linearly from 0 at the start to the peak at the end of the run, so the crossing
        is at ``begin + rt x limit / peak``."""
        peak = self.peak_over.get(jid)
        if peak is None or peak <= limit:
            return begin + rt
        self.ooms.add(jid)
        return begin + rt * limit / peak

    def _oom_kill(self, jid: int, rec: tuple[SimStartd, float, int, float, int, float, float, float]) -> None:
        """The starter puts the job on hold (CGROUP_MEMORY_LIMIT_POLICY = hard; HoldReasonCode 34,
        JobOutOfResources). BPS's periodic_release releases it, with RequestMemory min(int(request x
        memoryMultiplier^starts), memoryLimit), while NumJobStarts <= JobMaxRetries and the request that failed
        was below memoryLimit (lsst/ctrl_bps_htcondor prepare_utils.py: _create_periodic_release_expr,
        _create_request_memory_expr); otherwise it stays held (and BPS's periodic_remove takes it away)."""
        self.ooms.discard(jid)
        _, _, ac, submit, visit, rt, start, _ = rec
        a = self.acs[ac]
        first_ac, kills = self.kills.get(jid, (ac, 0))
        starts = kills + 1
        self.kills[jid] = (first_ac, starts)
        self.state[jid] = HELD
        c = self.counters
        c.oom_kills += 1
        c.oom_wasted_core_s += (self.now - start) * a.cpus
        m = self.sc.memory
        request0 = self.acs[first_ac].memory_mib
        failed_request = min(int(request0 * m.multiplier ** kills), self.mem_limit)
        if m.multiplier <= 1 or starts > m.retries or failed_request >= self.mem_limit:
            c.oom_held += 1
            self.held_jobs.add(jid)
            return
        request = quantize_mib(min(int(request0 * m.multiplier ** starts), self.mem_limit))
        interval = m.periodic_expr_interval_s
        release = (math.floor(self.now / interval) + 1) * interval
        self.q.push(release, EV_RELEASE, (jid, self._retry_ac(a, request), submit, visit, rt))

    def _retry_ac(self, a: AutoCluster, memory_mib: int) -> int:
        """The autocluster of ``a``'s jobs with a larger request (HTCondor autoclusters by RequestMemory)."""
        key = (a.pool, a.cpus, memory_mib, a.kind)
        idx = self._ac_of.get(key)
        if idx is None:
            idx = self._ac_of[key] = len(self.acs)
            self.acs.append(AutoCluster(idx, a.pool, a.cpus, memory_mib, a.kind))
            self.matcher.extend(self.acs[idx])
            for per_ac in (self.run_ac, self.done_ac):
                per_ac.append(0)
            for totals in (self.rt_ac, self.demand_core_s_ac):
                totals.append(0.0)
            self.queues.append(deque())
            self.pool_acs[a.pool].append(idx)
            self._sig_acs.clear()  # rebuilt on demand with the new autocluster
        return idx

    def _release(self, payload: tuple[int, int, float, int, float]) -> None:
        """periodic_release: the held job is idle again, in its larger autocluster, same id and runtime."""
        jid, ac, submit, visit, rt = payload
        if self.state[jid] != HELD:  # its owner's account transition removed it meanwhile (``end_jobs``)
            return
        a = self.acs[ac]
        self.state[jid] = QUEUED
        self.counters.oom_retries += 1
        q = self.queues[ac]
        # In id order (a retry keeps its cluster.proc, and releases come in another order), so the head stays the
        # oldest (``_successor``); the scan is short, a retry autocluster's queue holding released jobs.
        i = next((i for i, b in enumerate(q) if b.first + b.pos > jid), len(q))
        q.insert(i, Block(jid, [rt], submit, visit, True, again=True))
        self.idle[a.pool] += 1
        self.idle_cores[a.pool] += a.cpus
        self.n_idle += 1
        if self.instant:
            self._fill_from_ac(ac)
        elif self.schedd_timeouts:  # Scheduler::releaseJob ends with needReschedule() (schedd.cpp)
            self._need_reschedule(self.schedd_of[a.pool])

    # ------------------------------------------------------------ negotiation cycles

    def _schedule_cycle(self, at: float) -> None:
        """(Re)arm the negotiator's timer; an earlier armed time becomes stale (generation check)."""
        self._cycle_gen += 1
        self._cycle_at = at
        self.q.push(at, EV_NEGOTIATE, self._cycle_gen)

    def _reschedule(self) -> None:
        """A RESCHEDULE command: a cycle as soon as NEGOTIATOR_CYCLE_DELAY (since the last one finished) and
        NEGOTIATOR_MIN_INTERVAL (since it started) allow; during a cycle, once it finishes (matchmaker.cpp:
        RESCHEDULE_commandHandler resets the timer to 0, negotiationTime defers it)."""
        if self._in_cycle:
            self._resched = True
            return
        h = self.htc
        at = max(self.now, self._cycle_done + h.negotiator_cycle_delay_s,
                 self._cycle_started + h.negotiator_min_interval_s)
        if at < self._cycle_at:
            self._schedule_cycle(at)

    def _negotiate(self, gen: int) -> None:
        """A cycle starts: the submitters with idle jobs, in the policy's negotiation order (the rendered
        GROUP_SORT_EXPR; ``Policy.order``), each get a turn. The negotiator negotiates with one submitter at a
        time and sends each match to its schedd during that submitter's session, and the schedd starts claiming
        at once (matchmaker.cpp: negotiationTime -> GroupEntry::hgq_negotiate_with_all_groups -> negotiateWithGroup
        -> negotiate -> matchmakingProtocol, PERMISSION_AND_AD; schedd.cpp: MainScheddNegotiate::
        scheduler_handleMatch -> Scheduler::enqueueStartdContact, a zero-second timer). So a submitter's matches
        are claimed by the time its turn ends (the twin takes that time: exact for a submitter with one
        autocluster, at most its own turn late otherwise): ``cycle_base_s`` (reading ads, accounting) plus, per
        turn so far, ``cycle_per_submitter_s`` and ``cycle_per_autocluster_s`` per idle autocluster of that
        submitter. A shared schedd changes nothing: each of its submitters has a session of its own."""
        if gen != self._cycle_gen:
            return  # a timer that was re-armed
        h = self.htc
        self._cycle_at = math.inf
        self._in_cycle = True
        self._cycle_started = self.now
        queues = self.queues
        self._seen = [sum(b.n - b.pos for b in q) for q in queues]
        self._offered = set()
        self._spins = self.policy.limited and self.policy.charges_slots and not self.instant
        if self._spins:
            self._min_slot_weight = self._smallest_slot_weight()
        self.policy.cycle_start(self)
        self._turns = []
        t = self._add_turns(self.now + h.cycle_base_s)
        self.q.push(self._turns[0][1] if self._turns else t, EV_TURN_END, 0)

    def _smallest_slot_weight(self) -> float:
        """minSlotWeight: the smallest SLOT_WEIGHT among the cycle's slot ads (matchmaker.cpp ``sumSlotWeights``),
        each partitionable slot's unclaimed resources and each running job's dynamic slot."""
        policy = self.policy
        weights = [policy.slot_weight(self, s.free_cores, s.free_mem) for s in self.startds.values() if s.ready]
        on_own = list(self.run_ac)  # jobs on a dynamic slot of their own request; the others are in ``share``
        for j in self.share:
            on_own[self.running[j][2]] -= 1
        slots = {ac for ac, n in enumerate(on_own) if n} | set(self.share.values())
        weights += [policy.job_weight(self, ac) for ac in slots]
        return min(weights, default=0.0)

    def _add_turns(self, t: float, first: bool = True) -> float:
        """Append a turn for each submitter with idle jobs the cycle saw, in the policy's negotiation order, from
        ``t``; returns when the last ends. With the schedds modelled, only submitters whose ad shows idle jobs
        (``_advertised``); one whose ad is stale, its jobs since started on reused claims, gets a turn of its own
        once a cycle, in the first round its group is allocated something, which matches nothing: its schedd has
        nothing to offer, is satisfied, and updates its ads (``_negotiation_finished``). A group allocated nothing
        is skipped, stale or not (GroupEntry.cpp: "skipping, zero slots allocated"; review, stop 53)."""
        budget = self._cycle_budget()
        modelled = self.schedd_timeouts
        negotiates = self.policy.negotiates
        pools = [p for p in self.by_priority if any(budget[ac] for ac in self.pool_acs[p])
                 and (self._advertised[p] or not modelled) and negotiates(self, p)]
        if len(pools) > 1:
            pools = self.policy.order(self, pools)
        if first:
            self._stale_turned = set()
        if modelled:
            stale = [p for p in self.by_priority if self._advertised[p] and p not in pools
                     and p not in self._stale_turned and not any(budget[ac] for ac in self.pool_acs[p])
                     and negotiates(self, p)]
            self._stale_turned.update(stale)
            pools += stale
        h = self.htc
        for p in pools:
            t += h.cycle_per_submitter_s + h.cycle_per_autocluster_s * sum(1 for ac in self.pool_acs[p]
                                                                             if budget[ac])
            self._turns.append((p, t))
        return t

    def _cycle_budget(self) -> list[int]:
        """``_seen``, one entry per autocluster: those made since the cycle started (retries with a larger request)
        had no idle job then."""
        budget = self._seen
        budget += [0] * (len(self.acs) - len(budget))
        return budget

    def _turn_end(self, i: int) -> None:
        """Turn ``i`` ends: its submitter's matches reach the schedd, which claims the slots (jobs the cycle saw,
        within the policy's admit). The last turn's end is the cycle's: preemption, then the timer is re-armed."""
        turns = self._turns
        if i < len(turns):
            pool = turns[i][0]
            if any(self._cycle_budget()[ac] for ac in self.pool_acs[pool]):
                self._match_pool(pool)
            if self.schedd_timeouts:
                self._negotiation_finished(pool)
            if i + 1 == len(turns) and self.policy.next_round(self):
                self._add_turns(turns[i][1], first=False)  # group quotas' next allocation round, in the same cycle
            if i + 1 < len(turns):
                self.q.push(turns[i + 1][1], EV_TURN_END, i + 1)
                return
        self._cycle_end()

    def _match_pool(self, pool: str) -> None:
        """Match ``pool``'s jobs the cycle saw on every slot with room, in the order the rendered
        NEGOTIATOR_PRE_JOB_RANK sorts them (``_candidates``). Without a consumption policy a slot an earlier turn
        of the cycle matched is out of the list (``_offered``); with one it stays offered ("In this mode we don't
        remove offers", matchmaker.cpp ``negotiate``). Under group quotas the turn goes in pie spins
        (``_spin_pie``) and a match costs the whole slot (``_claim_slot``) or, under a consumption policy, the
        change in the slot's weight (``_consume_slot``)."""
        budget = self._cycle_budget()
        left = sum(budget[ac] for ac in self.pool_acs[pool])
        if self._spins:
            self._spin_pie(pool, budget, left)
            return
        offered = set() if self.htc.consumption_policy else self._offered
        for s in self._candidates(pool):
            if left <= 0 or not self.idle[pool]:
                return
            if s.accepting and s.free_cores > 0 and s not in offered:
                started = self._fill_for(s, pool, budget)
                if started:
                    offered.add(s)
                    left -= started

    def _spin_pie(self, pool: str, budget: list[int], left: int) -> None:
        """``pool``'s turn under group quotas, in pie spins (matchmaker.cpp ``negotiateWithGroup``: a spin follows
        every spin that matched something, unless what the submitter may still claim is below the smallest slot
        weight the cycle started with, ``minSlotWeight``). Each spin is a new ``negotiate`` call whose first match
        may go over the limit (``SubmitterLimitPermits``). Without a consumption policy a slot an earlier match of
        the cycle took is out of it (``_offered``) and a match costs the whole slot (``_claim_slot``); with one
        the slot stays offered and a match costs what its job takes (``_consume_slot``)."""
        consumption = self.htc.consumption_policy
        offered: set[SimStartd] = set() if consumption else self._offered
        match = self._consume_slot if consumption else self._claim_slot
        while True:
            first = True
            for s in self._candidates(pool):
                if left <= 0 or not self.idle[pool]:
                    return
                if s.accepting and s.free_cores > 0 and s not in offered:
                    started = match(s, pool, budget, first)
                    if started < 0:
                        break
                    if started:
                        if not consumption:
                            offered.add(s)
                        left -= started
                        first = False
            headroom = self.policy.headroom(self, pool)
            if first or headroom <= 0 or headroom < self._min_slot_weight:
                return

    def _claim_slot(self, s: SimStartd, pool: str, budget: list[int], first: bool) -> int:
        """One match of ``pool``'s turn on partitionable slot ``s`` under group quotas, charged as the negotiator
        charges it: the slot's whole SLOT_WEIGHT as advertised, its unclaimed resources (matchmaker.cpp
        ``negotiate``, "traditional match cost is just slot weight expression", ``accountant.GetSlotWeight(offer)``),
        permitted only if that fits what the submitter may still claim, or as its first match of the pie spin
        (``SubmitterLimitPermits``: "Allow user to round up once per pie spin"; ``_spin_pie``). A slot that does
        not fit is passed over for the next candidate. The schedd then runs as many of the submitter's jobs on the
        claim's leftovers as fit (CLAIM_PARTITIONABLE_LEFTOVERS), which the negotiator does not charge again (it
        makes a match, and charges a slot, per job: NEGOTIATOR_DEPTH_FIRST is false; not modelled). Returns the
        jobs started, or -1 when the submitter has reached its limit ("Reached submitter resource limit ...
        stopping")."""
        policy = self.policy
        allowed = policy.headroom(self, pool)
        if allowed <= 0:
            return -1
        mine = self._runnable(s, pool)
        if mine is None:
            return 0
        cost = policy.slot_weight(self, s.free_cores, s.free_mem)
        if cost > allowed and not first:
            return 0
        queues = self.queues
        acs = self.acs
        total = 0
        weight = 0.0
        for ac in mine:
            if not queues[ac] or not budget[ac]:
                continue
            a = acs[ac]
            k = min(s.free_cores // a.cpus, s.free_mem // a.memory_mib, budget[ac])
            if k > 0:
                started = self._start(ac, s, k)
                budget[ac] -= started
                total += started
                weight += started * policy.job_weight(self, ac)
                if s.free_cores <= 0:
                    break
        if total:
            policy.charge(self, pool, cost - weight)
        return total

    def _candidates(self, pool: str, cpus: int = 1, memory_mib: int = 0) -> list[SimStartd]:
        """The startds with room for a request of ``cpus`` and ``memory_mib``, in the negotiator's order for
        ``pool``'s jobs: the rendered NEGOTIATOR_PRE_JOB_RANK (``enclave.batch.render.pre_job_rank``) puts a slot of
        the job's own pool first (what matters when the pool overflows onto others), then HTCondor's default,
        ``- (100000 * Cpus) - Memory`` on the partitionable slot's unclaimed cores and MiB
        (``render.PRE_JOB_RANK_DEFAULT``, from param_info.in): the smallest slot first, so jobs pack onto partly
        used machines and whole ones stay free for large requests. Ties keep the collector's order (Python's sort
        is stable; the default NEGOTIATOR_POST_JOB_RANK is equal for partitionable slots). The order is taken once
        for the turn: the negotiator sorts a request's candidates once and takes matches from that list
        (matchmaker.cpp, ``MatchListType`` with NEGOTIATOR_MATCHLIST_CACHING on by default). The startd's own RANK
        (0: enclave renders none) and the unclaimed-slot term (a partitionable slot is always unclaimed) are
        equal for every candidate."""
        room = [s for s in self.startds.values()
                if s.accepting and s.free_cores >= cpus and s.free_mem >= memory_mib]
        room.sort(key=lambda s: (s.pool != pool, PRE_JOB_RANK_CORE_WEIGHT * s.free_cores + s.free_mem))
        return room

    def _cycle_end(self) -> None:
        """The last turn is over: preemption (the negotiator considers it in the same cycle, after free slots),
        then the timer is re-armed."""
        self._budget = self._cycle_budget()
        self._policy_preempts()
        self._budget = None
        self._turns = []
        h = self.htc
        d = self.now - self._cycle_started
        self.cycles += 1
        self.cycle_s += d
        self._in_cycle = False
        self._cycle_done = self.now
        if self._resched:
            self._resched = False
            self._schedule_cycle(max(self.now + h.negotiator_cycle_delay_s,
                                     self._cycle_started + h.negotiator_min_interval_s))
        else:
            # "reduce negotiator delay drift" (matchmaker.cpp): interval start to start, at least the delay.
            self._schedule_cycle(self.now + max(h.negotiator_cycle_delay_s, h.negotiator_interval_s - d))

    def _policy_preempts(self) -> None:
        """A policy that preempts (``preempt(sim)``: quotas-preempt, cohorts) does so now."""
        preempt = getattr(self.policy, "preempt", None)
        if preempt is not None and self.n_idle:
            preempt(self)

    def preempt(self, victims: list[int], ac: int, s: SimStartd, k: int) -> int:
        """Preemption's entry point for policies: evict ``victims`` (running on ``s``) and start up to ``k``
        jobs of ``ac`` in their place (within the cycle's budget); the victims go back to the front of their
        queues and restart from zero. Returns the jobs started. Nothing is evicted when the cycle's budget for
        ``ac`` is spent: the negotiator preempts only for a job it matches (matchmaker.cpp ``matchmakingAlgorithm``
        on one request), and a job submitted since the cycle began is no request of it (review, stop 53: a victim
        was evicted and its cores left idle)."""
        if self._budget is not None and self._budget[ac] <= 0:
            return 0
        lost = sum((self.now - self.running[j][6]) * self.acs[self.running[j][2]].cpus for j in victims)
        self._evict(s, only=set(victims), refill=False)
        self.counters.preempted_jobs += len(victims)
        self.counters.preempted_core_s += lost
        a = self.acs[ac]
        k = min(k, s.free_cores // a.cpus, s.free_mem // a.memory_mib)
        if self._budget is not None:
            k = min(k, self._budget[ac])
        started = self._start(ac, s, k) if k > 0 and self.queues[ac] else 0
        if self._budget is not None:
            self._budget[ac] -= started
        return started

    def claim_budget(self, ac: int) -> bool:
        """Whether the cycle may match one more job of ``ac`` (counted if so); always outside a cycle."""
        if self._budget is None:
            return True
        if self._budget[ac] <= 0:
            return False
        self._budget[ac] -= 1
        return True

    def _evict(self, s: SimStartd, pool: str | None = None, *, only: set[int] | None = None,
               refill: bool = True) -> None:
        """Stop jobs on a slot (failure, vacate, removal, preemption: ``only`` those) and queue them again at
        the front, same ids; ``refill``: in the instant model, match them again at once."""
        if not s.running:
            return
        touched: set[int] = set()
        # Highest id first: each goes to the front of its queue, so the oldest ends at the head (``_successor``).
        for jid in sorted(s.running if only is None else only & s.running, reverse=True):
            _, _, ac, submit, visit, rt, start, _ = self.running[jid]
            a = self.acs[ac]
            if pool is not None and a.pool != pool:
                continue
            self._take_off(jid, s, ac, start, QUEUED)
            self.idle[a.pool] += 1
            self.idle_cores[a.pool] += a.cpus
            self.n_idle += 1
            self.counters.evicted_jobs += 1
            self.queues[ac].appendleft(Block(jid, [rt], submit, visit, jid in self.peak_over, again=True))
            touched.add(ac)
        if self.instant and refill:
            for ac in sorted(touched):
                self._fill_from_ac(ac)

    def _take_off(self, jid: int, s: SimStartd, ac: int, start: float, state: int) -> None:
        """A running job leaves its slot before its end (evicted, or ended by its owner's account transition):
        its share of the slot is freed and the work it had done since ``start`` is lost. Only an eviction's loss is
        ``wasted_core_s`` (evicted core-hours); a job its owner's transition ends (``ENDED``) counts under
        ``account_transitions`` instead (review, stop 53: it counted in both)."""
        a = self.acs[ac]
        slot = self.acs[self._leave_claim(jid, self.running[jid])]
        del self.running[jid]
        s.running.discard(jid)
        self.ooms.discard(jid)
        self.state[jid] = state
        self._dom_close(s)
        s.free_cores += slot.cpus
        s.free_mem += slot.memory_mib
        self.busy[a.pool] -= slot.cpus
        self.run_ac[ac] -= 1
        if state != ENDED:
            self.counters.wasted_core_s += (self.now - start) * a.cpus

    # ------------------------------------------------------------ notebooks

    def _place_notebook(self, i: int) -> bool:
        cpu = self.wl.sessions.cpu[i]
        mem = self.wl.sessions.memory_mib[i]
        # The default kube-scheduler scores LeastAllocated: spread onto the emptiest node that fits (room.py).
        at = self.room.best(cpu, mem)
        if at is None:
            return False
        best = self.node_list[at]
        self.nb_integrate()
        self.nb_cpu_total += cpu
        self.nb_dom_total += max(cpu, mem * best.cores / best.mem)
        best.nb_cpu += cpu
        best.nb_mem += mem
        best.notebooks.add(i)
        self._room_changed(best)
        self.nb_node[i] = best
        if len(self.nb_node) > self.nb_peak:
            self.nb_peak = len(self.nb_node)
        self.counters.nb_placed += 1
        self.counters.nb_waits.append(self.now - self.wl.sessions.t[i] + self.nb_spawn_s)
        self._push_nb_end(self.now + self.nb_spawn_s + self.wl.sessions.duration[i], i)
        return True

    def _end_notebook(self, i: int) -> None:
        n = self.nb_node.pop(i, None)
        if n is None:
            return
        self.nb_integrate()
        self.nb_cpu_total -= self.wl.sessions.cpu[i]
        self.nb_dom_total -= max(self.wl.sessions.cpu[i], self.wl.sessions.memory_mib[i] * n.cores / n.mem)
        n.nb_cpu -= self.wl.sessions.cpu[i]
        n.nb_mem -= self.wl.sessions.memory_mib[i]
        n.notebooks.discard(i)
        self._room_changed(n)

    def nb_integrate(self) -> None:
        """Integrate notebook CPU requests over time (for utilization) up to now."""
        self.nb_core_s += self.nb_cpu_total * (self.now - self._nb_t)
        self.nb_dom_s += self.nb_dom_total * (self.now - self._nb_t)
        self._nb_t = self.now

    def _retry_notebooks(self) -> None:
        """Place waiting spawns, oldest first, that fit now; skip cheaply those larger than any node's room."""
        if not self.nb_pending:
            return
        cpu = self.wl.sessions.cpu
        mem = self.wl.sessions.memory_mib
        max_cpu, max_mem = self.room.most()
        keep: deque[int] = deque()
        for i in self.nb_pending:
            if cpu[i] <= max_cpu and mem[i] <= max_mem and self._place_notebook(i):
                max_cpu, max_mem = self.room.most()
            else:
                keep.append(i)
        self.nb_pending = keep

    # ------------------------------------------------------------ BCS operations (TwinBackend.apply)

    def _moved(self, kind: str) -> None:
        self.counters.moves[kind] = self.counters.moves.get(kind, 0) + 1
        for hook in self.on_apply:
            hook(kind)

    def node(self, name: str) -> SimNode:
        n = self.nodes.get(name)
        if n is None:
            raise NotFound(f"no node '{name}' in the twin", where="twin", fix="use a node name from observe()")
        return n

    def startd(self, name: str) -> SimStartd:
        s = self.startds.get(name)
        if s is None:
            raise NotFound(f"no startd '{name}' in the twin", where="twin", fix="use a startd name from observe()")
        return s

    def relabel(self, name: str, to_pool: str, vacate_after: float | None = None) -> None:
        s = self.startd(name)
        if to_pool not in self.spec.pools and to_pool not in self.cap:
            raise NotFound(f"no pool '{to_pool}'", where="Relabel.to_pool", fix="use a pool from the spec")
        if s.pool == to_pool:
            return
        old = s.pool
        if s.ready:
            self._cap_add(s, -1)
        self._dom_close(s)  # the claimed share so far counts under the old label, from now under the new
        self.dom_pool_s.setdefault(to_pool, 0.0)
        s.pool = to_pool
        s.sig = (to_pool, s.kind.value, s.cores, s.mem)
        s.since = self.now
        if s.ready:
            self._cap_add(s, +1)
        if s.removing == "drain":
            s.removing = None
            s.accepting = s.ready
            s.due = None  # the drain's deadline ends with it: its EV_VACATE is stale (_vacate)
        self._moved("Relabel")
        if vacate_after is not None:
            due = s.deadlines[old] = self.now + vacate_after
            self.q.push(due, EV_VACATE, (s, old, due))
        else:
            s.deadlines.pop(old, None)
        if self.instant:
            self.fill_startd(s)

    def deploy_pods(self, node_name: str, pool: str, pods: tuple[str, ...], cores: int, mem: int, *,
                    move: bool = True) -> int:
        """Create the HTCondor worker pods that fit on ``node_name``; returns how many. ``move``: a policy's action,
        counted in ``moves``; not a Deployment's controller putting its replicas back (``LayoutPolicy.reconcile``;
        review, stop 53: static's restores after a repair counted as moves)."""
        n = self.node(node_name)
        if n.role != NodeRole.WORKER:
            raise InvalidTransition(f"node '{node_name}' is {n.role.value}, not a Kubernetes worker",
                                    where="DeployPods.node", fix="deploy HTCondor pods on worker nodes")
        made = 0
        for name in pods:
            if name in self.startds:
                continue
            free_cpu, free_mem = n.k8s_free()
            if free_cpu < cores or free_mem < mem:
                # The pod would stay Pending; the twin does not create it, and counts it so reports show it.
                self.counters.pods_unschedulable += 1
                continue
            self.add_startd(n, StartdKind.POD, pool, cores, mem, name, ready_at=self.pod_ready_at(n))
            made += 1
        if made and move:
            self._moved("DeployPods")
        return made

    def pod_ready_at(self, n: SimNode, image: str = WORKER_IMAGE) -> float:
        """When a pod created now on ``n`` reports to the collector: bound after ``schedule_s``, then its image
        (pulled at ``pull_gbit_s`` unless the node has it or is already pulling it), then the container start."""
        k = self.sc.kubernetes
        bound = self.now + k.schedule_s
        have = n.images.get(image)
        if have is None:
            have = n.images[image] = bound + self.spec.storage.image_size_gib * 8 / k.pull_gbit_s
        return max(bound, have) + self.sc.layout.pod_startup_s

    def delete_pods(self, pods: tuple[str, ...]) -> None:
        acted = False
        for name in pods:
            s = self.startds.get(name)
            if s is None or s.removing == "delete":
                continue
            if s.kind != StartdKind.POD:
                raise InvalidTransition(f"startd '{name}' is not an HTCondor pod", where="DeletePods.pods",
                                        fix="use ReturnNode for BCS 5 nodes")
            acted = True
            self._terminate_pod(s)
        if acted:
            self._moved("DeletePods")

    def _terminate_pod(self, s: SimStartd) -> None:
        """SIGTERM to an HTCondor worker pod (deleted, or evicted by a drain): condor_master shuts down gracefully,
        the startd matches nothing more and its jobs retire, as ``retire_s`` allows."""
        s.removing = "delete"
        s.accepting = False
        if not s.running or not s.ready:
            self._remove_startd(s)
        else:
            self._retire(s)

    def _retire(self, s: SimStartd) -> None:
        """The jobs of a startd whose pod (or node pod) is deleted: condor_master shuts the startd down gracefully
        and it retires each job as the rendered MaxJobRetirementTime has it — until a broker drain's deadline
        (``render.retirement_expr``), else by its own pool's rule from each job's start (``render.retirement_ends``)
        — and the kubelet kills the container, with whatever still runs, at the pod's terminationGracePeriodSeconds
        (``render.pod_grace_seconds``). A shared slot (quotas) has no label: killed at the pod's grace."""
        kill = self.now + pod_grace_seconds(self.spec)
        if s.due is not None or s.pool not in self.spec.pools:
            self.q.push(min(s.due, kill) if s.due is not None else kill, EV_VACATE, (s, None, None))
            return
        when: dict[float, set[int]] = {}
        for jid in s.running:
            run = self.running[jid]
            at = min(retirement_ends(self.spec, self.acs[run[2]].pool, run[6], self.now), kill)
            when.setdefault(at, set()).add(jid)
        for at in sorted(when):
            self.q.push(at, EV_VACATE_JOBS, (s, when[at]))

    def drain_startd(self, name: str, vacate_after: float | None) -> None:
        s = self.startd(name)
        if s.removing is not None:
            return
        s.removing = "drain"
        s.accepting = False
        if vacate_after is not None:
            s.due = self.now + vacate_after
            self.q.push(s.due, EV_VACATE, (s, None, s.due))
        self._moved("DrainStartd")

    def drain_node(self, name: str) -> None:
        n = self.node(name)
        if n.state in (NodeState.DRAINING, NodeState.HTCONDOR):
            return
        if n.role != NodeRole.WORKER or n.state != NodeState.READY:
            raise InvalidTransition(f"node '{name}' is {n.role.value}/{n.state.value}; only a ready worker can "
                                    "be drained", where="DrainNode.node", fix="pick a ready Kubernetes worker")
        n.state = NodeState.DRAINING
        self._room_changed(n)
        n.since = self.now
        n.drained = False
        n.evicting = False
        n.drains += 1
        n.unserving_since = self.now
        self.q.push(self.now + self.sc.timing.drain_s, EV_DRAIN_DONE, (n, n.drains))
        self._moved("DrainNode")

    def drain_left(self, name: str) -> int | None:
        """The pods a drain of the node still has to move: its notebooks and worker pods, and the notebook pods
        its evictions ended that still terminate (``Backend.drain_left``); 0 once drained or HTCondor runs there,
        None when it is not draining (a return under way is the backend's to tell: ``TwinBackend.drain_left``)."""
        n = self.node(name)
        if n.emptied:
            return 0
        if n.state != NodeState.DRAINING:
            return None
        return len(n.notebooks) + len(n.pods) + (n.terminating if self.now < n.free_at else 0)

    def start_htcondor(self, name: str, pool: str) -> None:
        n = self.node(name)
        if n.state == NodeState.HTCONDOR or n.pending_pool == pool:
            return
        if n.state != NodeState.DRAINING:
            raise InvalidTransition(f"node '{name}' is {n.state.value}; HTCondor starts only on a drained node",
                                    where="StartHTCondor.node", fix="apply DrainNode first (BCS 5 step 1)")
        n.pending_pool = pool
        n.pending_since = self.now
        if n.drained:
            self.q.push(self.now + self.sc.timing.htcondor_start_s, EV_HTC_READY, n)
        self._moved("StartHTCondor")

    def return_node(self, name: str, drain_stuck: bool = False) -> None:
        n = self.node(name)
        if n.state == NodeState.READY or n.state == NodeState.DOWN:
            return
        if drain_stuck:
            n.drain_stuck = self.now
        if n.state == NodeState.HTCONDOR and n.startd is not None:
            s = n.startd
            if s.removing == "return":
                return
            s.removing = "return"
            s.accepting = False
            if not s.running:
                self._finish_return(n)
            else:  # the node pod is deleted: its jobs retire as a deleted worker pod's do
                self._retire(s)
        else:
            n.pending_pool = None
            self._finish_return(n)
        self._moved("ReturnNode")

    def _finish_return(self, n: SimNode) -> None:
        n.drains += 1  # a drain under way is given up: its evictions, still queued, are stale
        if n.startd is not None:
            self._remove_startd(n.startd)
        if n.unserving_since is None:
            n.unserving_since = self.now
        n.state = NodeState.DRAINING
        self._room_changed(n)
        n.pending_pool = None
        self.q.push(self.now + self.sc.timing.return_s, EV_RETURN_DONE, n)

    def _startd_idle(self, s: SimStartd) -> None:
        if s.removing == "delete":
            self._remove_startd(s)
        elif s.removing == "return":
            self._finish_return(s.node)

    # ------------------------------------------------------------ failures

    def _fail(self, n: SimNode, repair_s: float) -> None:
        """The node goes down: first it takes nothing more (no notebook or pod is placed there, none of its slots
        is matched), then its pods, startd and notebooks go. Removing a pod retries the waiting notebook spawns and,
        under instant matching, matches the evicted jobs again: neither may land on the failing node."""
        if n.state == NodeState.DOWN:
            return
        self.counters.failures += 1
        if n.unserving_since is not None:
            self.counters.downtime_node_s += self.now - n.unserving_since
            n.unserving_since = None
        n.state = NodeState.DOWN
        self._room_changed(n)
        startds = list(n.pods.values()) + ([n.startd] if n.startd is not None else [])
        for s in startds:
            s.accepting = False
        n.evicting = False  # a drain under way ends here (its pods go with the node)
        for s in startds:
            self._remove_startd(s)
        for i in sorted(n.notebooks):
            self._end_notebook(i)
            self.counters.nb_evicted += 1
        n.since = self.now
        n.drained = False
        n.drains += 1  # the pending events of that drain are stale
        n.pending_pool = None
        self.q.push(self.now + repair_s, EV_REPAIR, n)

    def _repair(self, n: SimNode) -> None:
        self.counters.failed_node_s += self.now - n.since
        n.state = NodeState.READY
        self._room_changed(n)
        n.since = self.now
        if n.role == NodeRole.BATCH_ONLY:
            # The standalone startd returns in its rendered pool, not the one the broker last moved it to: a
            # relabel is runtime configuration, which "is lost on restarts" (DC_CONFIG_RUNTIME, htcondor/htcondor
            # src/condor_daemon_core.V6/README.config; htcondor2's RemoteParam sets nothing else), so the startd
            # reads its config files again. With no EnclavePoolSince set at runtime it publishes the rendered
            # default, 0, which the broker reads as out of cooldown (batch/render.py), as after setup.
            if n.standalone_pool is None:
                raise IntegrityError(f"batch-only node {n.name} was repaired but had no startd", where="twin",
                                     fix="this is a twin bug: report the scenario and seed")
            # HTCondor starts on the repaired node: its startd is matched only after its first ad.
            s = self.add_startd(n, StartdKind.STANDALONE, n.standalone_pool, n.cores, n.mem, n.name,
                                ready_at=self.now + self.sc.timing.htcondor_start_s)
            s.since = -math.inf
        else:
            self._retry_notebooks()
        self.policy.on_repair(self, n)

    # ------------------------------------------------------------ the loop

    def run(self, progress: Callable[[float], None] | None = None) -> None:
        self.run_until(self.horizon, progress)
        self.finish()

    def run_until(self, until: float, progress: Callable[[float], None] | None = None) -> None:
        # The loop allocates hundreds of thousands of short-lived tuples and builds no reference cycles, so
        # reference counting frees everything; the cyclic collector would only rescan the heap (~25 % time).
        enabled = gc.isenabled()
        gc.disable()
        try:
            self._loop(until, progress)
        finally:
            if enabled:
                gc.enable()

    def _loop(self, until: float, progress: Callable[[float], None] | None) -> None:
        q = self.q
        due = q.due
        running = self.running
        state = self.state
        acs = self.acs
        busy = self.busy
        run_ac = self.run_ac
        done_ac = self.done_ac
        rt_ac = self.rt_ac
        visit_left = self.visit_left
        visit_latency = self.visit_latency
        prompt_latency = self.prompt_latency
        worklife = self.worklife
        worklives = self.worklives
        successor = self._successor
        leave_claim = self._leave_claim
        share = self.share
        idle = self.idle  # the submitter's idle jobs: none (the common case) and no claim is reused
        ooms = self.ooms
        dom_pool_s = self.dom_pool_s
        # Claim reuse without freeing the slot; a policy that limits claims (admit) frees and re-admits instead.
        handoff = not self.instant and not (self.policy.limited and self.policy.claims_limited)
        finished_rt = self.finished_runtimes
        next_progress = 0.0
        step = max(until / 200.0, 1.0)
        processed = 0
        # EventQueue.pop, inline: the current second's events, then the next second's (refill).
        while (due or (due := q.refill())) and due[-1][0] <= until:
            t, _, kind, payload = due.pop()
            processed += 1
            self.now = q.now = t
            if kind == EV_END:
                rec = running.get(payload)
                if rec is None or rec[1] != t:
                    continue  # a stale end: the job was evicted and requeued
                del running[payload]
                s, _, ac, submit, visit, rt, matched, claim = rec
                if t >= self.clocks_until:
                    self._read_clocks(t)
                a = acs[ac]
                slot_ac = leave_claim(payload, rec) if share else ac
                s.running.discard(payload)
                if ooms and payload in ooms:
                    self._oom_kill(payload, rec)  # then its share of the slot is freed or reused as after an end
                else:
                    state[payload] = DONE
                    done_ac[ac] += 1
                    rt_ac[ac] += rt
                    finished_rt[a.pool].append(t - matched)
                    if visit >= 0:
                        prompt_latency.append(t - submit)
                        left = visit_left[visit] - 1
                        visit_left[visit] = left
                        if left == 0:
                            visit_latency[visit] = t - submit
                if handoff and idle[a.pool] and s.accepting and t - claim < worklives.get(s.pool, worklife) \
                        and (nxt := successor(slot_ac, s)) >= 0:
                    self._handoff(nxt, s, claim, slot_ac, ac)  # same claim, same dynamic slot: nothing is freed
                    continue
                # s.dominant_cores(), inline (a call per job end in the instant model): same operations, same order
                used_cores = (s.cores - s.free_cores) / s.cores
                used_mem = (s.mem - s.free_mem) / s.mem
                dom_pool_s[s.pool] += (used_mem if used_mem > used_cores else used_cores) * s.cores * (t - s.dom_t)
                s.dom_t = t
                sa = acs[slot_ac]
                s.free_cores += sa.cpus
                s.free_mem += sa.memory_mib
                busy[a.pool] -= sa.cpus
                run_ac[ac] -= 1
                if s.accepting:
                    if self.n_idle:
                        if self.instant:
                            self.fill_startd(s)
                        elif not handoff and t - claim < worklives.get(s.pool, worklife) and self.queues[ac]:
                            self._reuse_claim(ac, s, claim)
                elif not s.running:
                    self._startd_idle(s)
            else:
                self._dispatch(kind, payload)
            if progress is not None and t >= next_progress:
                progress(t)
                next_progress = t + step
        self.q.processed += processed
        self.now = q.now = max(self.now, until)

    def _dispatch(self, kind: int, payload: Any) -> None:
        self._handlers[kind](payload)
        if self.audit:
            self.check()

    def _event_handlers(self) -> dict[int, Callable[[Any], None]]:
        """Every event kind but EV_END (the hot path, handled inline in ``_loop``) → its handler."""
        return {EV_BLOCK: self._arrive, EV_NB_ARRIVE: self._notebook_arrives, EV_NB_END: self._notebook_ends,
                EV_NB_TIMEOUT: self._notebook_times_out, EV_POD_READY: self._ready, EV_FAIL: self._failure,
                EV_REPAIR: self._repair, EV_DRAIN_DONE: self._drain_done, EV_HTC_READY: self._htcondor_ready,
                EV_RETURN_DONE: self._return_done, EV_VACATE: self._vacate, EV_VACATE_JOBS: self._vacate_jobs,
                EV_TICK: self._tick,
                EV_SAMPLE: self._sample_and_schedule, EV_NEGOTIATE: self._negotiate, EV_TURN_END: self._turn_end,
                EV_RELEASE: self._release, EV_CALL: self._call, EV_INPUT: self._input, EV_NODE_FREE: self._node_free,
                EV_SCHEDD: self._schedd_timeout}

    @staticmethod
    def _call(fn: Callable[[], None]) -> None:
        fn()

    def _feed(self, k: int) -> None:
        """Put input ``k`` (if any) on the heap, under its own number."""
        if k < len(self._inputs):
            t, seq, _, _ = self._inputs[k]
            self.q.put((t, seq, EV_INPUT, k))

    def _input(self, k: int) -> None:
        self._feed(k + 1)
        _, _, kind, payload = self._inputs[k]
        self._handlers[kind](payload)

    def _notebook_arrives(self, i: int) -> None:
        self.counters.nb_requested += 1
        if not self._place_notebook(i):
            self.nb_pending.append(i)
            self.q.push(self.now + self.nb_timeout_s, EV_NB_TIMEOUT, i)

    def _push_nb_end(self, t: float, i: int) -> None:
        """Schedule a session's end. Sessions last hours, so a large enclave has thousands pending: only the
        earliest few wait on the event heap (``_nb_main``: their keys), the rest in ``_nb_later``, and the
        earliest pending end is always on the heap, so events still come in (time, number) order."""
        e = (t, next(self.q._seq), EV_NB_END, i)
        if not self._nb_main or (t, e[1]) < self._nb_main[0]:
            heapq.heappush(self._nb_main, (t, e[1]))
            self.q.put(e)
        else:
            heapq.heappush(self._nb_later, e)

    def _notebook_ends(self, i: int) -> None:
        # This end was the earliest of those on the heap; bring the next one there if it is now the earliest.
        heapq.heappop(self._nb_main)
        later = self._nb_later
        if later and (not self._nb_main or (later[0][0], later[0][1]) < self._nb_main[0]):
            e = heapq.heappop(later)
            heapq.heappush(self._nb_main, (e[0], e[1]))
            self.q.put(e)
        self._end_notebook(i)
        self._retry_notebooks()

    def _notebook_times_out(self, i: int) -> None:
        if i in self.nb_pending:
            self.nb_pending.remove(i)
            self.counters.nb_refused += 1

    def _failure(self, f: Failure) -> None:
        self._fail(self.nodes[f.node], f.repair_s)

    def _return_done(self, n: SimNode) -> None:
        if n.state == NodeState.DRAINING and n.startd is None and n.pending_pool is None:
            n.state = NodeState.READY
            self._room_changed(n)
            n.since = self.now
            n.drained = False
            n.evicting = False
            if n.unserving_since is not None:
                self.counters.downtime_node_s += self.now - n.unserving_since
                n.unserving_since = None
            self._retry_notebooks()

    def _vacate_jobs(self, payload: tuple[SimStartd, set[int]]) -> None:
        """Evict the jobs a retiring startd's retirement has run out for (``_retire``), if still there."""
        st, jobs = payload
        if self.startds.get(st.name) is st and not st.accepting:
            self._evict(st, only=jobs)
            if not st.running:
                self._startd_idle(st)

    def _vacate(self, payload: tuple[SimStartd, str | None, float | None]) -> None:
        """Evict what a startd still runs after its grace: jobs of ``pool`` (a relabel's deadline ``due``), or all
        (None: a drain's deadline ``due``, or a deleted pod's kill, ``due`` None). Stale, and nothing is evicted:
        a relabel's deadline that a later relabel from the same pool replaced or cleared, or whose pool the startd
        serves again; a drain's that a relabel ended (``Sim.relabel``) or a later drain replaced."""
        st, pool, due = payload
        if pool is not None:
            if st.pool == pool or st.deadlines.get(pool) != due:
                return
            del st.deadlines[pool]
        elif due is not None and st.due != due:
            return
        if self.startds.get(st.name) is st and (pool is not None or not st.accepting):
            self._evict(st, pool)
            if not st.running and not st.accepting:
                self._startd_idle(st)
            elif st.accepting and self.instant:
                self.fill_startd(st)

    def _tick(self, _: None) -> None:
        nxt = self.policy.tick(self)
        if nxt is not None:
            self.q.push(self.now + nxt, EV_TICK, None)

    def _sample_and_schedule(self, _: None) -> None:
        self._sample()
        self.q.push(self.now + self.sc.timing.sample_s, EV_SAMPLE, None)

    def _arrive(self, arrival: Arrival) -> None:
        if arrival.visit >= 0 and self.divert is not None:
            self.divert(arrival)
            return
        n = len(arrival.runtimes)
        first = len(self.state)
        self.state.extend(bytes(n))
        a = self.acs[arrival.ac]
        self.idle[a.pool] += n
        self.idle_cores[a.pool] += n * a.cpus
        self.n_idle += n
        self.submitted[a.pool] += n
        self.last_submit[a.pool] = arrival.t
        # Clairvoyant bookkeeping: the work that could at best be done before the horizon.
        left = self.horizon - arrival.t
        rts = arrival.runtimes
        longest = max(rts)
        work = a.cpus * (sum(rts) if longest <= left else sum(min(rt, left) for rt in rts))
        self.demand_core_s += work
        self.demand_core_s_ac[arrival.ac] += work
        if arrival.visit >= 0:
            self.visit_min_latency[arrival.visit] = longest
        if arrival.over:
            self.peak_over.update({first + i: peak for i, peak in arrival.over.items()})
        self.queues[arrival.ac].append(Block(first, arrival.runtimes, arrival.t, arrival.visit, bool(arrival.over)))
        if self.instant:
            self._fill_from_ac(arrival.ac)
            self._policy_preempts()
        elif self.schedd_timeouts:
            self._submitted(a.pool)

    # ------------------------------------------------------------ the schedds' timeouts

    def _submitted(self, pool: str) -> None:
        """A submit to ``pool``'s schedd has ended (``Scheduler::endSubmitTransaction``). A 26.x schedd asks for
        a cycle only if its last timeout counted no idle job (``LastSubmitterPressure`` 0): the count is as
        stale as that timeout, up to SCHEDD_INTERVAL old. ``always``: a schedd before 26.0, which forwarded
        condor_submit's RESCHEDULE (SUBMIT_SEND_RESCHEDULE) through the same ``needReschedule``; a 26.x
        schedd ignores that command (schedd.cpp ``external_reschedule_request``: "this is now (mostly) a
        dummy command"), and so ignores condor_reschedule too."""
        schedd = self.schedd_of[pool]
        if self.htc.reschedule_on_submit == Reschedule.ALWAYS or not self._pressure[schedd]:
            self._need_reschedule(schedd)

    def _need_reschedule(self, schedd: str) -> None:
        """``Scheduler::needReschedule``: the schedd will send RESCHEDULE at its timeout, which it runs now
        (``_timeout_now``)."""
        self._schedd_need[schedd] = True
        self._timeout_now(schedd)

    def _timeout_now(self, schedd: str) -> None:
        """``Scheduler::timeout`` called now: it runs at once, or once SCHEDD_MIN_INTERVAL has passed since the
        last one started ("If we are called too frequently, delay"), in place of the periodic one."""
        at = max(self.now, self._schedd_ran[schedd] + self.htc.schedd_min_interval_s)
        if at < self._schedd_at[schedd]:
            self._arm_schedd(schedd, at)

    def _arm_schedd(self, schedd: str, at: float) -> None:
        self._schedd_gen[schedd] += 1
        self._schedd_at[schedd] = at
        self.q.push(at, EV_SCHEDD, (schedd, self._schedd_gen[schedd]))

    def _negotiation_finished(self, pool: str) -> None:
        """The negotiator is done with ``pool``'s submitter. Satisfied (it matched every job the schedd offered:
        ``ScheddNegotiate::getSatisfaction``), the schedd runs its timeout to update its ads at once
        (``Scheduler::negotiationFinished``: "invalidate our ads immediately"), so the idle count the next submit
        reads is the one after these matches."""
        if not self.idle[pool]:  # none left over: none rejected, none left to offer
            self._timeout_now(self.schedd_of[pool])

    def _schedd_timeout(self, payload: tuple[str, int]) -> None:
        """``Scheduler::timeout`` (schedd.cpp, htcondor/htcondor 7491a14): ``count_jobs`` sends the submitter ads
        (``_advertised``: until the next, a submitter whose ad shows no idle job is not negotiated with); when the
        pressure they show (idle jobs or none) differs from the last, it becomes the last and
        ``m_need_reschedule`` becomes whether there is some (so idle jobs that appear between submits, evicted
        ones say, ask for a cycle too); if a reschedule is needed it is sent. The next timeout comes
        SCHEDD_INTERVAL later (its timeslice, 5 % of the schedd's time, never binds here)."""
        schedd, gen = payload
        if gen != self._schedd_gen[schedd]:
            return  # re-armed sooner
        self._schedd_ran[schedd] = self.now
        for p in self.schedd_pools[schedd]:
            self._advertised[p] = self.idle[p] > 0
            self.ad_requested[p] = self.policy.submitter_request(self, p)
        pressure = any(self._advertised[p] for p in self.schedd_pools[schedd])  # TotalSubmitterPressure > 0
        if pressure != self._pressure[schedd]:
            self._pressure[schedd] = pressure
            self._schedd_need[schedd] = pressure
        if self._schedd_need[schedd]:
            self._schedd_need[schedd] = False
            self.schedd_reschedules += 1
            self._reschedule()
        self._arm_schedd(schedd, self.now + self.htc.schedd_interval_s)

    def _drain_done(self, payload: tuple[SimNode, int]) -> None:
        """The drain's evictions (BCS 5 step 1, ``kubectl drain``): every pod gets SIGTERM. A notebook's session
        ends now but its pod holds the node for its termination grace; an HTCondor pod's jobs retire
        (``_terminate_pod``). The node is drained when all are gone (``_check_drained``)."""
        n, drain = payload
        if drain != n.drains or n.state != NodeState.DRAINING or n.drained or n.evicting:
            return
        n.evicting = True
        n.free_at = self.now
        n.terminating = len(n.notebooks)
        if n.notebooks:
            for i in sorted(n.notebooks):
                self._end_notebook(i)
                self.counters.nb_evicted += 1
            n.free_at = self.now + self.sc.kubernetes.termination_grace_s
            self.q.push(n.free_at, EV_NODE_FREE, (n, drain))
        for s in list(n.pods.values()):
            self._terminate_pod(s)
        self._check_drained(n)

    def _node_free(self, payload: tuple[SimNode, int]) -> None:
        n, drain = payload
        if drain == n.drains:
            self._check_drained(n)

    def _check_drained(self, n: SimNode) -> None:
        """A draining node whose evicted pods have all terminated is drained: HTCondor may start there."""
        if (n.state != NodeState.DRAINING or not n.evicting or n.drained or n.pods or self.now < n.free_at):
            return
        n.drained = True
        if n.pending_pool is not None:
            self.q.push(self.now + self.sc.timing.htcondor_start_s, EV_HTC_READY, n)
        self._retry_notebooks()

    def _htcondor_ready(self, n: SimNode) -> None:
        if n.state != NodeState.DRAINING or not n.drained or n.pending_pool is None or n.startd is not None:
            return
        pool = n.pending_pool
        n.pending_pool = None
        n.state = NodeState.HTCONDOR
        self._room_changed(n)
        n.evicting = False
        n.since = self.now
        if n.unserving_since is not None:
            self.counters.downtime_node_s += self.now - n.unserving_since
            n.unserving_since = None
        self.add_startd(n, StartdKind.NODE, pool, n.cores, n.mem, n.name)

    def _sample(self) -> None:
        cap = dict(self.cap)
        if self.shared_cap:
            cap["shared"] = self.shared_cap
        self.samples.append(Sample(
            self.now, cap, dict(self.busy), dict(self.idle), len(self.nb_node),
            self.nb_cpu_total, len(self.nb_pending)))

    def finish(self) -> None:
        """Close the books at the horizon: capacity integrals and the partial work of running jobs."""
        self.now = self.q.now = max(self.now, self.horizon)
        self._touch_cap()
        self.nb_integrate()
        for n in self.nodes.values():
            if n.unserving_since is not None:
                self.counters.downtime_node_s += self.now - n.unserving_since
                n.unserving_since = None
            if n.state == NodeState.DOWN:
                self.counters.failed_node_s += self.now - n.since
                n.since = self.now

    def _per_pool(self, values: list[int] | list[float], weight: str = "") -> dict[str, float]:
        out = dict.fromkeys(self.pools, 0.0)
        for a, v in zip(self.acs, values, strict=True):
            out[a.pool] += v * (getattr(a, weight) if weight else 1)
        return out

    @property
    def run_jobs(self) -> dict[str, int]:
        return {p: int(v) for p, v in self._per_pool(self.run_ac).items()}

    @property
    def run_cores(self) -> dict[str, int]:
        """RequestCpus of the running jobs per pool (a job on a larger reused claim holds more: ``busy``)."""
        return {p: int(v) for p, v in self._per_pool(self.run_ac, "cpus").items()}

    @property
    def run_mem(self) -> dict[str, int]:
        """RequestMemory (MiB) of the running jobs per pool."""
        return {p: int(v) for p, v in self._per_pool(self.run_ac, "memory_mib").items()}

    @property
    def done(self) -> dict[str, int]:
        return {p: int(v) for p, v in self._per_pool(self.done_ac).items()}

    @property
    def core_s(self) -> dict[str, float]:
        """Core-seconds of finished jobs per pool."""
        return self._per_pool(self.rt_ac, "cpus")

    @property
    def mem_s(self) -> dict[str, float]:
        """MiB-seconds of finished jobs per pool."""
        return self._per_pool(self.rt_ac, "memory_mib")

    def _dom_close(self, s: SimStartd) -> None:
        """Count ``s``'s claimed share up to now, before it changes."""
        self.dom_pool_s[s.pool] += s.dominant_cores() * (self.now - s.dom_t)
        s.dom_t = self.now

    def dominant_core_s(self) -> float:
        """Dominant-resource core-seconds of every slot up to now (the slots still claimed included)."""
        return sum(self.dominant_pool_core_s().values())

    def dominant_pool_core_s(self) -> dict[str, float]:
        """``dominant_core_s`` per pool label (``shared`` for one unlabelled pool)."""
        out = dict(self.dom_pool_s)
        for s in self.startds.values():
            if s.running:
                out[s.pool] += s.dominant_cores() * (self.now - s.dom_t)
        return out

    def running_core_s(self, memory: bool = False) -> dict[str, float]:
        """Core-seconds (or MiB-seconds) the still-running jobs have used so far, per pool: each from its first
        second (``began``), not its match; one the schedd's start throttle holds back has used nothing yet."""
        out = dict.fromkeys(self.pools, 0.0)
        now = self.now
        for jid, rec in self.running.items():
            a = self.acs[rec[2]]
            out[a.pool] += max(0.0, now - self.began(jid, rec)) * (a.memory_mib if memory else a.cpus)
        return out

    def began(self, jid: int, rec: tuple[SimStartd, float, int, float, int, float, float, float]) -> float:
        """When running job ``jid`` (its record ``rec``) starts or started its first second: its end less its
        runtime, or, for a job to be killed over its memory limit, less the part of its runtime until the kill
        (``_oom_end``, at the limit of its dynamic slot's memory)."""
        _, end, ac, _, _, rt, _, _ = rec
        if jid in self.ooms:
            return end - rt * self.acs[self.slot_ac(jid, ac)].memory_mib / self.peak_over[jid]
        return end - rt

    # ------------------------------------------------------------ an account transition (issue 21)

    def end_jobs(self, jids: Collection[int], pools: Collection[str], *, running: bool, hold: bool) -> int:
        """condor_rm (or condor_hold) of the jobs among ``jids`` in ``pools`` that are running (``running``) or
        queued (not): they leave the queue and the slot for good (a held job waits for a release the twin's horizon
        never sees). Returns how many."""
        wanted = {j for j in jids if j < len(self.state) and self.state[j] == (RUNNING if running else QUEUED)}
        ended = self._end_running(wanted, pools) if running else self._end_queued(wanted, pools)
        if not running:  # condor_rm/condor_hold take held jobs too: those waiting for periodic_release
            ended += self._end_held({j for j in jids if j < len(self.state) and self.state[j] == HELD}, pools)
        if hold:
            self.counters.jobs_held += ended
        else:
            self.counters.jobs_removed += ended
        return ended

    def _end_held(self, jids: set[int], pools: Collection[str]) -> int:
        ended = [j for j in jids if self.acs[self.kills[j][0]].pool in pools]
        for jid in ended:
            self.state[jid] = ENDED
            self.held_jobs.discard(jid)
        return len(ended)

    def _end_running(self, jids: set[int], pools: Collection[str]) -> int:
        ended = 0
        for jid in sorted(jids):
            s, _, ac, _, _, _, start, _ = self.running[jid]
            a = self.acs[ac]
            if a.pool not in pools:
                continue
            self._take_off(jid, s, ac, start, ENDED)
            ended += 1
            if s.accepting and self.instant:
                self.fill_startd(s)
            elif not s.accepting and not s.running:
                self._startd_idle(s)
        return ended

    def _end_queued(self, jids: set[int], pools: Collection[str]) -> int:
        ended = 0
        for ac, q in enumerate(self.queues):
            a = self.acs[ac]
            if a.pool not in pools or not any(b.first + b.pos <= j < b.first + b.n for b in q for j in jids):
                continue
            kept: deque[Block] = deque()
            for b in q:
                run: list[float] = []
                for i in range(b.pos, b.n):
                    jid = b.first + i
                    if jid in jids:
                        self.state[jid] = ENDED
                        ended += 1
                        self.idle[a.pool] -= 1
                        self.idle_cores[a.pool] -= a.cpus
                        self.n_idle -= 1
                        if run:
                            kept.append(Block(jid - len(run), run, b.submit, b.visit, b.oom, b.again))
                        run = []
                    else:
                        run.append(b.runtimes[i])
                if run:
                    kept.append(Block(b.first + b.n - len(run), run, b.submit, b.visit, b.oom, b.again))
            self.queues[ac] = kept
        return ended

    def stop_notebooks(self, sessions: Collection[int]) -> int:
        """The hub stops these notebook servers (running or still waiting for room); returns how many."""
        stopped = 0
        for i in sessions:
            if i in self.nb_node:
                self._end_notebook(i)
                stopped += 1
            elif i in self.nb_pending:
                self.nb_pending.remove(i)
                stopped += 1
        self.counters.nb_stopped += stopped
        if stopped:
            self._retry_notebooks()
        return stopped

    # ------------------------------------------------------------ invariants

    def check(self) -> None:
        """Conservation and no double booking; raise IntegrityError on the first violation."""
        problems = self._check_jobs() + self._check_pools() + self._check_startds() + self._check_nodes()
        if problems:
            raise IntegrityError("; ".join(problems[:5]), where=f"twin at t={self.now:.1f}s",
                                 fix="this is a twin bug: report the scenario and seed")

    def _queued(self) -> int:
        return sum(b.n - b.pos for q in self.queues for b in q)

    def _check_jobs(self) -> list[str]:
        """Every job is queued, running or done, exactly once, and the records agree with its state."""
        problems: list[str] = []
        for q in self.queues:
            for b in q:
                for i in range(b.pos, b.n):
                    if self.state[b.first + i] != QUEUED:
                        problems.append(f"job {b.first + i} is queued but in state {self.state[b.first + i]}")
        total = len(self.state)
        queued = self._queued()
        n_running = self.state.count(RUNNING)
        n_done = self.state.count(DONE)
        n_held, n_ended = self.state.count(HELD), self.state.count(ENDED)
        if queued + n_running + n_done + n_held + n_ended != total:
            problems.append(f"{total} jobs submitted but {queued} queued + {n_running} running + {n_done} done + "
                            f"{n_held} held + {n_ended} ended")
        if n_running != len(self.running):
            problems.append(f"{n_running} jobs in state running but {len(self.running)} running records")
        if n_done != sum(self.done.values()):
            problems.append(f"{n_done} jobs done but the pools count {sum(self.done.values())}")
        return problems

    def _check_pools(self) -> list[str]:
        """The per-pool counters equal what the queues and running records add up to."""
        problems: list[str] = []
        for p in self.pools:
            runs = [(j, r) for j, r in self.running.items() if self.acs[r[2]].pool == p]
            cores = sum(self.acs[self.slot_ac(j, r[2])].cpus for j, r in runs)
            if len(runs) != self.run_jobs[p] or cores != self.busy[p]:
                problems.append(f"pool {p}: running counters disagree with the running jobs")
            idle_cores = sum((b.n - b.pos) * self.acs[ac].cpus for ac in self.pool_acs[p] for b in self.queues[ac])
            if idle_cores != self.idle_cores[p]:
                problems.append(f"pool {p}: {idle_cores} idle cores queued but the counter says {self.idle_cores[p]}")
        queued = self._queued()
        if queued != sum(self.idle.values()):
            problems.append(f"{queued} jobs queued but the pools count {sum(self.idle.values())} idle")
        return problems

    def _check_startds(self) -> list[str]:
        """No job on two slots, no slot claimed beyond its cores or memory, nothing on a slot not yet ready."""
        problems: list[str] = []
        seen: set[int] = set()
        for s in self.startds.values():
            slots = [self.acs[self.slot_ac(j, self.running[j][2])] for j in s.running]
            cores = sum(a.cpus for a in slots)
            mem = sum(a.memory_mib for a in slots)
            if s.running & seen:
                problems.append(f"jobs {sorted(s.running & seen)} run on two startds")
            seen |= s.running
            if cores + s.free_cores != s.cores or mem + s.free_mem != s.mem or s.free_cores < 0 or s.free_mem < 0:
                problems.append(f"startd {s.name}: {cores} cores / {mem} MiB claimed, {s.free_cores} / "
                                f"{s.free_mem} free of {s.cores} / {s.mem}")
            if not s.ready and s.running:
                problems.append(f"startd {s.name} runs jobs before it is ready")
        if seen != set(self.running):
            problems.append("running jobs and startd claims disagree")
        return problems

    def _check_nodes(self) -> list[str]:
        """No node hosts more than it has, nor Kubernetes and bare HTCondor at once, nor anything while down."""
        problems: list[str] = []
        for n in self.nodes.values():
            used = n.svc_cpu + n.nb_cpu + n.pod_cpu if n.role == NodeRole.WORKER else 0
            bare = n.startd.cores if n.startd is not None else 0
            if n.role == NodeRole.WORKER and n.startd is not None and (n.pods or n.notebooks):
                problems.append(f"node {n.name} runs HTCondor on the bare node and Kubernetes pods at once")
            if used > n.cores + 1e-9 or bare > n.cores:
                problems.append(f"node {n.name}: {used} cores of Kubernetes requests, {bare} bare HTCondor cores, "
                                f"only {n.cores} cores")
            mem_used = n.svc_mem + n.nb_mem + n.pod_mem if n.role == NodeRole.WORKER else 0
            if mem_used > n.mem:
                problems.append(f"node {n.name}: {mem_used} MiB requested of {n.mem}")
            if n.state == NodeState.DOWN and (n.pods or n.startd is not None or n.notebooks):
                problems.append(f"node {n.name} is down but still hosts work")
            indexed = self.room.free(n.index)
            if indexed != (n.k8s_free() if n.schedulable() else None):
                problems.append(f"node {n.name}: the placement index holds {indexed}, the node has {n.k8s_free()}")
        return problems
