"""The contract between the broker and the backends that carry its actions out.

A backend (the twin, or live Kubernetes + HTCondor) reports an ``Observed`` snapshot; the broker's pure
``decide(spec, observed)`` returns ``Action``s; the backend applies them one by one. Whether an action changes
anything, is in effect already or is refused is one rule, ``enclave.broker.transitions``, which the broker's
projection and both backends apply; both backends pass the same conformance suite
(``tests/broker/test_conformance.py``), so the twin exercises the contract the live backend keeps.

Vocabulary:
- a *node* is a machine from the spec (``<group>-<NNN>``);
- a *startd* is one HTCondor execute daemon, and carries exactly one pool label. It is either a
  standalone batch-only node, a whole Kubernetes node drained and given to HTCondor (BCS 5), or an
  HTCondor worker pod running inside the Kubernetes commons (BCS 3, 4).
"""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from enum import StrEnum
from typing import Protocol, TypeVar

from enclave.domain.schedule import ObservingSchedule
from enclave.spec.models import NodeRole


class NodeState(StrEnum):
    READY = "ready"
    """Serving its normal role: Kubernetes workloads on a worker, HTCondor on a batch-only node."""
    DRAINING = "draining"
    """Held by the broker (live: its taint, not a cordon); Kubernetes pods are being evicted (BCS 5 step 1). Runs
    neither new pods nor jobs."""
    HTCONDOR = "htcondor"
    """A Kubernetes worker taken out of the commons and running HTCondor on the bare node (BCS 5)."""
    DOWN = "down"
    """Failed or unreachable."""


class StartdKind(StrEnum):
    STANDALONE = "standalone"
    NODE = "node"
    POD = "pod"


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    group: str
    role: NodeRole
    cores: int
    memory_mib: int
    state: NodeState = NodeState.READY
    k8s_cores_requested: float = 0.0
    """CPU requested by Kubernetes pods on the node other than HTCondor worker pods (notebooks, services)."""
    k8s_memory_requested_mib: int = 0
    since: float = 0.0
    """When the node entered its current state (seconds, backend clock): drives cooldown and drain timing."""
    k8s_cores_daemons: float = 0.0
    """The part of ``k8s_cores_requested`` that a drain leaves on the node: DaemonSet and static (mirror) pods, which
    ``kubectl drain`` passes over (kubectl pkg/drain/filters.go, daemonSetFilter and mirrorPodFilter). A drained
    worker still holds them, and they never need room elsewhere."""
    drain_stuck: float = -float("inf")
    """When lending the node whole was last given up unfinished — its drain, or HTCondor's start after it
    (``ReturnNode.drain_stuck``; seconds, backend clock); -inf: never. What held it (a disruption budget that allows
    no eviction, an HTCondor pod that cannot start there) likely holds it still."""

    @property
    def k8s_cores_to_move(self) -> float:
        """What a drain of the node still has to evict: its requests less those a drain leaves there."""
        return self.k8s_cores_requested - self.k8s_cores_daemons


@dataclass(frozen=True, slots=True)
class RunningJob:
    """One job running on a startd, as its dynamic slot reports it to the collector (HTCondor manual, "Machine
    ClassAd Attributes": ``Cpus``, ``JobStart`` — when the job began executing, ``RemoteGroup`` — the accounting
    group that claimed the slot). What the broker may know of a job without foreseeing its end: the work it
    would lose if evicted now is ``cores × (now − start)`` (``enclave.broker.victims``)."""

    cores: int
    start: float
    """When it began executing on this slot (``JobStart``), seconds since the epoch."""
    pool: str | None = None
    """The job's pool (its accounting group's); None when unknown: taken to be the startd's pool."""
    limit_seconds: float | None = None
    """The longest it may execute, when the job declares it (job attribute ``AllowedExecuteDuration``, copied
    into the slot ad by ``STARTD_JOB_ATTRS``): it ends, or is held, by ``start + limit_seconds``."""


@dataclass(frozen=True, slots=True)
class Startd:
    name: str
    node: str
    kind: StartdKind
    pool: str
    cores: int
    memory_mib: int
    busy_cores: int = 0
    """Cores claimed by running jobs (of any pool: a relabelled startd may still run the old pool's jobs)."""
    busy_memory_mib: int = 0
    """Memory claimed by running jobs (MiB). A partitionable slot whose memory is claimed runs nothing more,
    however many cores are idle: the dashboard's dominant-resource figure needs both (docs/twin.md)."""
    since: float = 0.0
    """When the pool label last changed."""
    draining: bool = False
    """Accepts no new jobs (DrainStartd): on its way out of batch, to be deleted or returned once idle."""
    ready: bool = True
    """Its startd has joined the pool (the collector lists it). False for a worker pod Kubernetes runs whose
    startd has not reported yet: it takes room in the commons but runs no job, so the broker does not count
    it as a latency pool's capacity (make before break, docs/broker.md)."""
    pod_up: bool = False
    """For a startd not ready: its pod's containers run (live: each container's state is running). Its startd is
    then more likely one the collector has not heard from yet — a restarted collector hears from each startd within
    its UPDATE_INTERVAL, 300 s by default (HTCondor manual, configuration macros) — than one that never starts, and
    ``decide.give_up_starts`` leaves it, unless its pod was made after the collector started
    (``Observed.collector_since``). False where not known (the twin, the projection)."""
    jobs: tuple[RunningJob, ...] = ()
    """Its running jobs, one per dynamic slot, when the backend reports them; () with busy cores: not known
    (the broker then orders victims by busy cores alone, docs/broker.md, "Least work lost")."""


@dataclass(frozen=True)
class PoolDemand:
    idle_jobs: int = 0
    idle_cores: int = 0
    running_jobs: int = 0
    running_cores: int = 0
    oldest_idle_seconds: float = 0.0
    idle_memory_mib: int = 0
    """Memory the idle jobs request (their autoclusters' RequestMemory, MiB); 0 when unknown."""
    running_memory_mib: int = 0
    """Memory the running jobs request (MiB). With the cores, the broker sizes a pool's need in both: a pod of
    8 cores / 32 GiB runs 4 jobs of 8 GiB, not 8 (docs/broker.md, memory-aware)."""
    peak_cores: int | None = None
    """The cores (memory-sized) the pool needed over the broker's recent window (``broker.need_window_seconds``):
    the ``broker.need_percentile`` of its needs there, the peak at 1, which the broker loop learns
    (``enclave.broker.window``); None when no window is kept: the need is then the one observed now."""
    nights_cores: int | None = None
    """What the pool's recent nights needed: the median of the last ``broker.need_nights`` nights' learned needs
    (each the ``broker.need_percentile`` of that night's needs), which the broker loop keeps
    (``enclave.broker.window``); None when it learned no night, and once tonight's visits have filled a window.
    The pre-warm holds it (``enclave.broker.decide.pool_figure``)."""
    job_mib_per_core: float | None = None
    """Memory per core the pool's jobs requested when it last had any (MiB), which the broker loop keeps
    (``enclave.broker.window``); None when unknown. The broker fits the worker pods it lends to it
    (``enclave.broker.decide.pod_shape``), also before tonight's first visit."""
    newest_submit: float | None = None
    """When the pool's newest job (queued, running or already finished) was submitted, seconds since the epoch;
    None when unknown. The broker ends the night's pre-warm once this falls quiet after the last visit."""
    runtimes: tuple[float, ...] = ()
    """How long the pool's recently finished jobs ran (seconds, ascending): the schedds' history
    (``CompletionDate − JobCurrentStartDate``). The broker estimates from it whether a running job ends within
    its pool's grace period (``enclave.broker.victims``); () when not observed (pools that never vacate)."""


@dataclass(frozen=True)
class PendingSpawn:
    """A notebook pod waiting for a worker with room: it needs all of its request on one node."""

    cpu: float
    memory_mib: int
    nodes: frozenset[str] | None = None
    """The workers its node selector and required node affinity admit (``cluster.objects.admits``) and whose taints
    it tolerates (``cluster.objects.tolerates``); None: any. Room freed anywhere else would not place it (a notebook
    profile pinned to some nodes, a worker tainted for other work)."""

    def admits(self, node: str) -> bool:
        return self.nodes is None or node in self.nodes


@dataclass(frozen=True)
class Observed:
    now: float
    """Backend clock, seconds since the Unix epoch (simulated in the twin)."""
    nodes: tuple[Node, ...]
    startds: tuple[Startd, ...]
    demand: dict[str, PoolDemand] = field(default_factory=dict)
    notebook_pending_cores: float = 0.0
    """CPU requested by notebook spawns that are waiting for room in the commons."""
    notebook_spawns: tuple[PendingSpawn, ...] = ()
    """The waiting spawns one by one, when the backend can tell (the broker then frees room on one worker for
    each; with only the total it frees cores anywhere, which fragmentation can defeat)."""
    collector_since: float | None = None
    """When the pool's collector started (``HTCondorBatch.collector_since``), None where not known (the twin's collector
    never restarts). A borrowed startd whose pod runs, made after then, has had the collector all along: not joined
    ``start_timeout_seconds`` later, it never will (a token the collector refuses, another CONDOR_HOST)."""
    schedule: ObservingSchedule | None = None
    """The observing schedule the broker pre-warms for (``enclave.domain.schedule``): a twin's next_visit feed,
    or the one pushed to the enclave (``enclave broker schedule push``); None: twilight alone decides."""


# --- Actions: one per BCS procedure and its reverse. Every action names its actor and reason. ---

_A = TypeVar("_A")


def _filled_at_once(cls: type[_A]) -> type[_A]:
    """A frozen dataclass's ``__init__``, with the same parameters and defaults, that fills the new instance's
    ``__dict__`` directly. The dataclass's own sets each field through ``object.__setattr__`` (a global, an
    attribute and a call a field), so building an action cost twice as much; the broker builds thousands a decision
    (``bench.broker_decide``). Written as the dataclasses module writes its ``__init__`` (``exec`` of generated
    source); equality, hash, repr and immutability stay the dataclass's. Only for plain fields: a field with a
    default factory, left out of ``__init__`` or keyword-only, or a ``__post_init__``, is refused, as this
    ``__init__`` would not do what the dataclass's does."""
    fs = fields(cls)  # type: ignore[arg-type]
    odd = [f.name for f in fs if f.default_factory is not MISSING or not f.init or f.kw_only]
    if odd or hasattr(cls, "__post_init__"):
        raise TypeError(f"_filled_at_once: {cls.__name__} has fields it cannot fill ({odd or '__post_init__'}); "
                        "leave the class to the dataclass's own __init__")
    defaults = {f.name: f.default for f in fs if f.default is not MISSING}
    params = ", ".join(f"{f.name}=__defaults[{f.name!r}]" if f.name in defaults else f.name for f in fs)
    body = "".join(f"    __values[{f.name!r}] = {f.name}\n" for f in fs)
    scope = {"__defaults": defaults}
    exec(f"def __init__(self, {params}):\n    __values = self.__dict__\n{body}", scope)  # noqa: S102
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"  # type: ignore[attr-defined]
    init.__module__ = cls.__module__
    setattr(cls, "__init__", init)  # noqa: B010
    return cls


@dataclass(frozen=True)
class Action:
    actor: str
    reason: str

    @property
    def kind(self) -> str:
        return type(self).__name__


@_filled_at_once
@dataclass(frozen=True)
class Relabel(Action):
    """BCS 1/2 (and BCS 4/5 step "change ClassAds"): set a startd's pool label."""

    startd: str
    from_pool: str
    to_pool: str
    vacate_after_seconds: float | None = None
    """None: jobs of ``from_pool`` still running on the startd finish (drain). A number: they are evicted
    after that grace period (the old pool's ``take_away: vacate``)."""


@_filled_at_once
@dataclass(frozen=True)
class DeployPods(Action):
    """BCS 4: start HTCondor worker pods on a Kubernetes node, labelled for a pool."""

    node: str
    pool: str
    pods: tuple[str, ...]
    cores_per_pod: int
    memory_mib_per_pod: int


@_filled_at_once
@dataclass(frozen=True)
class DeletePods(Action):
    """BCS 3: delete HTCondor worker pods (after draining them of running jobs)."""

    pods: tuple[str, ...]


@dataclass(frozen=True)
class DrainNode(Action):
    """BCS 5 step 1: taint a Kubernetes node against new pods (not a cordon: an administrator's stays theirs) and
    evict its pods. The optional fields are ``kubectl drain``'s flags given for this drain (``enclave batch
    drain-node --force …``); None: the spec's ``cluster.drain``."""

    node: str
    force: bool | None = None
    ignore_daemonsets: bool | None = None
    delete_emptydir_data: bool | None = None
    grace_period_seconds: int | None = None
    """kubectl's --grace-period: seconds each evicted pod gets to stop; None (kubectl's -1): the pod's own."""


@dataclass(frozen=True)
class StartHTCondor(Action):
    """BCS 5 steps 2–3: start HTCondor on a drained node, labelled for a pool."""

    node: str
    pool: str


@_filled_at_once
@dataclass(frozen=True)
class ReturnNode(Action):
    """Reverse of BCS 5: stop HTCondor on the node (after its jobs drain) and take the broker's taint off."""

    node: str
    drain_stuck: bool = False
    """It gives up lending the node whole, unfinished: a drain that did not finish (``decide.return_stuck_drains``)
    or an HTCondor that never started there (``decide.give_up_starts``). The backends remember when, on the node
    (``Node.drain_stuck``), so that it is not drained again at once."""


@_filled_at_once
@dataclass(frozen=True)
class DrainStartd(Action):
    """Stop new matches on a startd so running jobs finish (drain), or evict after grace (vacate)."""

    startd: str
    vacate_after_seconds: float | None = None


class Backend(Protocol):
    """What the broker and its runners need from the world: the twin (``enclave.twin.backend``) and the live
    Kubernetes + HTCondor adapters (``enclave.cluster.live``) implement it, clock included."""

    def observe(self) -> Observed:
        """A snapshot of nodes, startds and demand, stamped with the backend's clock."""
        ...

    def apply(self, action: Action) -> bool:
        """Carry one action out; True if it changed something, False if it was in effect already (a no-op).
        Refuses a stale or impossible action with the error ``enclave.broker.transitions`` names for it."""
        ...

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of the backend's clock pass: the twin simulates them, the live backend waits them."""
        ...

    def advertise_calm(self, calm: bool) -> None:
        """Publish the broker's word on the latency pools (``enclave.broker.calm``), which the startds of a pool
        with ``calm_claim_worklife`` read (``enclave.batch.render.calm_cron``). The broker loop calls it each
        cycle, only when some pool reads it."""
        ...

    def progress(self, node: str | None = None) -> int:
        """Push on work still under way (evictions a disruption budget refused, as ``kubectl drain`` retries);
        returns how many items are still pending. Call once per broker cycle. ``node``: that node's drain alone (a
        drain waited on, ``BrokerService.wait_drained``: as ``kubectl drain`` retries its own node's evictions)."""
        ...

    def drain_left(self, node: str) -> int | None:
        """How many pods a drain of ``node`` still has to move: not evicted yet, or evicted and still terminating
        (``kubectl drain`` waits until they are gone); 0 once its drain is done (HTCondor may have started there);
        None when no drain is under way there (never drained, or given back since: the drain was undone)."""
        ...

    @property
    def finished(self) -> bool:
        """True once the backend has nothing more to run (the twin's scenario is over); never for live."""
        ...
